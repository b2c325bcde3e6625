#!/bin/bash
# What verifying signed mail costs inbound: petrel serve on the MX port with [mail_auth] on,
# DNS from petrel-load's dns scenario on loopback (the senders' SPF, DMARC p=reject and DKIM
# key records), 2 KB messages from petrel-load smtp over 32 connections to 8 mailboxes in
# four modes: verification off, on with unsigned mail (SPF + DMARC), on with mail signed
# rsa-sha256 (2048-bit), on with mail signed ed25519-sha256. [door] and [junk] are off so that
# only the verification differs. Each PETREL binary given is measured in every round, the
# modes and binaries alternating, so a before/after pair shares the machine's moods.
# Needs fixed ports: run it in its own network namespace, as root:
#   go build -o /tmp/petrel ./cmd/petrel && go build -o /tmp/petrel-load ./bench/cmd/petrel-load
#   unshare -n bench/signed-inbound.sh /tmp/petrel-load /tmp/petrel [/tmp/petrel-other ...]
# Prints, per binary and mode, the median over ROUNDS (default 3) of the server's CPU time per
# message (utime + stime of the process, from /proc) and of the accepted messages per second.
# MODES (default "off unsigned rsa ed25519") picks the modes; PROFILE=DIR writes each server's
# CPU profile to DIR/BINARY-MODE.prof.
set -euo pipefail
LOAD=${1:?usage: signed-inbound.sh PETREL-LOAD PETREL...}
shift
[ $# -gt 0 ] || { echo "usage: signed-inbound.sh PETREL-LOAD PETREL..." >&2; exit 2; }
N=${N:-5000} ROUNDS=${ROUNDS:-3} MODES=${MODES:-off unsigned rsa ed25519}
ip link set lo up
W=$(mktemp -d)
DNS_PID=
trap '[ -n "$DNS_PID" ] && kill "$DNS_PID" 2>/dev/null; rm -rf "$W"' EXIT

openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$W/rsa.pem" 2>/dev/null
openssl genpkey -algorithm ED25519 -out "$W/ed.pem" 2>/dev/null
rsa_p=$(openssl pkey -in "$W/rsa.pem" -pubout -outform DER | base64 -w0)
ed_p=$(openssl pkey -in "$W/ed.pem" -pubout -outform DER | tail -c 32 | base64 -w0)
"$LOAD" dns -listen 127.0.0.1:5353 -timeout 24h \
	-record "bench.test TXT v=spf1 ip4:127.0.0.0/8 -all" \
	-record "_dmarc.bench.test TXT v=DMARC1; p=reject" \
	-record "r1._domainkey.bench.test TXT v=DKIM1; k=rsa; p=$rsa_p" \
	-record "e1._domainkey.bench.test TXT v=DKIM1; k=ed25519; p=$ed_p" >"$W/dns.json" &
DNS_PID=$!
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=localhost \
	-keyout "$W/key.pem" -out "$W/cert.pem" 2>/dev/null

config() { # DATA-DIR VERIFY
	cat <<EOT
hostname = "mx.example.test"
data = "$1"
domains = ["example.test"]
[tls]
cert = "$W/cert.pem"
key = "$W/key.pem"
[smtp]
listen = ["127.0.0.1:2525"]
[limits]
max_connections = 20000
max_connections_per_ip = 20000
[mail_auth]
verify = $2
[dns]
resolver = "127.0.0.1:5353"
[door]
enabled = false
[junk]
enabled = false
EOT
}

# one BINARY MODE: prints "cpu-µs-per-message msgs-per-second"
one() {
	local bin=$1 mode=$2 d="$W/run" verify=true sign=() pid t0 t1 rate
	rm -rf "$d" && mkdir -p "$d"
	case $mode in
	off) verify=false ;;
	rsa) sign=(-dkim-key "$W/rsa.pem" -dkim-selector r1) ;;
	ed25519) sign=(-dkim-key "$W/ed.pem" -dkim-selector e1) ;;
	esac
	config "$d/data" "$verify" >"$d/petrel.toml"
	for i in $(seq 8); do echo "bench-pw-1" | "$bin" -c "$d/petrel.toml" account add "user$i@example.test" >/dev/null; done
	local prof=()
	[ -z "${PROFILE:-}" ] || prof=(--cpuprofile "$PROFILE/$(basename "$bin")-$mode.prof")
	"$bin" -c "$d/petrel.toml" serve "${prof[@]}" >"$d/serve.log" 2>&1 &
	pid=$!
	for _ in $(seq 300); do (echo >/dev/tcp/127.0.0.1/2525) 2>/dev/null && break; sleep 0.1; done
	t0=$(awk '{print $14+$15}' "/proc/$pid/stat")
	rate=$("$LOAD" smtp -addr 127.0.0.1:2525 -json -n "$N" -c 32 -size 2048 -from news@bench.test \
		-to 'user{n}@example.test' -mailboxes 8 "${sign[@]}" | sed -n 's/^  "ops_per_sec": \([0-9.]*\),$/\1/p')
	t1=$(awk '{print $14+$15}' "/proc/$pid/stat")
	kill "$pid" && wait "$pid" || true
	[ -z "${KEEP_LOG:-}" ] || cp "$d/serve.log" "$W/../signed-inbound-$mode.log"
	echo "$(((t1 - t0) * 1000000 / $(getconf CLK_TCK) / N)) ${rate%.*}"
}

declare -A CPU RATE
for r in $(seq "$ROUNDS"); do
	for mode in $MODES; do
		for bin in "$@"; do
			read -r c s < <(one "$bin" "$mode")
			CPU[$bin $mode]+="$c " RATE[$bin $mode]+="$s "
			echo "round $r $bin $mode: $c µs/msg, $s msg/s" >&2
		done
	done
done
median() { tr ' ' '\n' | grep . | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
printf '%-28s %-9s %12s %10s\n' binary mode "cpu µs/msg" "msg/s"
for bin in "$@"; do
	for mode in $MODES; do
		printf '%-28s %-9s %12s %10s\n' "$bin" "$mode" "$(echo "${CPU[$bin $mode]}" | median)" "$(echo "${RATE[$bin $mode]}" | median)"
	done
done
