#!/usr/bin/env bash
# imap-mixed-ab.sh: server CPU per command of the imap-mixed load for one or more petrel
# binaries, Petrel alone, runs alternating, so that an A/B taken on a loaded machine compares
# like with like (docs/benchmarks.md, "IMAP mixed load: what each command reads").
#
#   go build -o /tmp/petrel-load ./bench/cmd/petrel-load
#   unshare -n bash -c 'ip link set lo up; bash bench/imap-mixed-ab.sh /tmp/petrel-load /tmp/petrel-old /tmp/petrel'
#
# The corpus (8 accounts imap1..imap8 of 2,000 messages of 4 KB, as compare.sh's) is
# delivered once with the first binary into a template data directory; each run starts a
# binary on a copy of it (a newer binary migrates the copy as it opens it), logs every
# session in once untimed (argon2id), then runs imap-mixed -c 10 for DURATION and reads the
# server's CPU from /proc/PID/stat. ROUNDS (default 2) rounds; PROFILE=DIR writes a CPU
# profile of each run. Ports 12xxx on 127.0.0.1: run it in a network namespace.
set -euo pipefail
LOAD=$1
shift
[ $# -ge 1 ] || { echo "usage: $0 PETREL-LOAD PETREL..." >&2; exit 2; }
ROUNDS=${ROUNDS:-2} DURATION=${DURATION:-10s} PROFILE=${PROFILE:-}
D=$(mktemp -d)
P=
trap '[ -z "$P" ] || kill -TERM "$P" 2>/dev/null; rm -rf "$D"' EXIT
PASS=bench-pw

openssl req -x509 -newkey rsa:2048 -nodes -keyout "$D/key.pem" -out "$D/cert.pem" -days 2 \
	-subj /CN=localhost 2>/dev/null
config() { # DATA
	cat <<EOF
hostname = "localhost"
data = "$1"
domains = ["example.test"]
[log]
level = "warn"
[tls]
cert = "$D/cert.pem"
key = "$D/key.pem"
[smtp]
listen = ["127.0.0.1:12525"]
submission = ["127.0.0.1:12587"]
submissions = ["127.0.0.1:12465"]
[pop3]
listen = ["127.0.0.1:12110"]
listen_tls = ["127.0.0.1:12995"]
[imap]
listen = ["127.0.0.1:12143"]
listen_tls = ["127.0.0.1:12993"]
max_account_sessions = 1000
[limits]
max_connections = 20000
max_connections_per_ip = 20000
[http]
listen = ["127.0.0.1:12080"]
listen_tls = ["127.0.0.1:12443"]
[managesieve]
listen = ["127.0.0.1:12190"]
[mail_auth]
verify = false
EOF
}
wait_port() {
	for _ in $(seq 300); do
		(exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
		sleep 0.1
	done
	return 1
}

# The template corpus.
config "$D/tmpl" >"$D/tmpl.toml"
for i in $(seq 8); do printf '%s\n' "$PASS" | "$1" -c "$D/tmpl.toml" account add "imap$i@example.test" >/dev/null; done
"$1" -c "$D/tmpl.toml" serve >"$D/setup.log" 2>&1 &
P=$!
wait_port 12525
"$LOAD" smtp -addr 127.0.0.1:12525 -c 16 -n 16000 -size 4096 -to 'imap{n}@example.test' -mailboxes 8 \
	-wait-pop3 127.0.0.1:12995 -pop3-tls -insecure -pop3-pass "$PASS" -wait-c 8 -wait-timeout 10m >/dev/null
kill -TERM "$P"
wait "$P" || true
P=

mixed() { # DURATION [-json]
	"$LOAD" imap-mixed -addr 127.0.0.1:12993 -tls -insecure -user 'imap{n}@example.test' -pass "$PASS" \
		-mailboxes 8 -c 10 -duration "$@"
}
hz=$(getconf CLK_TCK)
printf 'binary\tround\tcommands/s\tserver CPU ms per command\tload tool CPU ms per command\terrors\tload average\n'
for round in $(seq "$ROUNDS"); do
	for bin in "$@"; do
		rm -rf "$D/run"
		cp -a "$D/tmpl" "$D/run"
		config "$D/run" >"$D/run.toml"
		args=()
		[ -z "$PROFILE" ] || { mkdir -p "$PROFILE"; args=(--cpuprofile "$PROFILE/$(basename "$bin")-$round.cpu"); }
		"$bin" -c "$D/run.toml" serve "${args[@]}" >>"$D/serve.log" 2>&1 &
		P=$!
		wait_port 12993
		mixed 2s >/dev/null || true # every session's first login (argon2id), untimed
		t0=$(awk '{print $14 + $15}' "/proc/$P/stat")
		# The load tool's own CPU (user + system, from bash's time) counts too: it shares the
		# two cores with the server.
		{ TIMEFORMAT='%U %S'; time mixed "$DURATION" -json -allow-errors >"$D/run.json"; } 2>"$D/time" # errors are counted in the table
		t1=$(awk '{print $14 + $15}' "/proc/$P/stat")
		kill -TERM "$P"
		wait "$P" || true
		P=
		awk -v bin="$bin" -v round="$round" -v ticks=$((t1 - t0)) -v hz="$hz" -v load="$(cut -d' ' -f1 /proc/loadavg)" \
			-v client="$(tail -n 1 "$D/time" | awk '{print $1 + $2}')" '
			/^  "ops": / { gsub(/[^0-9]/, ""); ops = $0 }
			/^  "ops_per_sec": / { gsub(/[^0-9.]/, ""); rate = $0 }
			/^  "errors": / { gsub(/[^0-9]/, ""); errs = $0 }
			END { printf "%s\t%d\t%.1f\t%.3f\t%.3f\t%d\t%s\n", bin, round, rate, ticks / hz * 1000 / ops, client * 1000 / ops, errs, load }' "$D/run.json"
	done
done
