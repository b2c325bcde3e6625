#!/usr/bin/env bash
# mailauth-relay.sh: the two performance figures of issue 11 in one script.
#
#   bash bench/mailauth-relay.sh inbound    # what verification costs inbound (about 3 minutes)
#   bash bench/mailauth-relay.sh outbound   # relaying against Postfix (about 5 minutes)
#   bash bench/mailauth-relay.sh            # both
#
# inbound: bench/signed-inbound.sh in a network namespace, 2 KB messages over 32 connections
#   into petrel serve, DNS from petrel-load dns on loopback, in ROUNDS rounds (default 5)
#   that alternate three modes: verification off with unsigned mail, verification on with
#   unsigned mail (SPF + DMARC), verification on with rsa-sha256-signed mail (SPF, DKIM,
#   DMARC). Prints, per mode, the median server CPU per message (from /proc) and accepted
#   messages per second, and the cost of verification against "off" in both.
# outbound: bench/compare.sh --only outbound (scenarios/70-outbound.sh) against Postfix, in
#   ROUNDS_OUT rounds (default 3) alternating which goes first: 3,000 messages of 2 KB
#   submitted over 8 STARTTLS+AUTH connections, relayed to petrel-load sink; Petrel
#   DKIM-signs each (RSA-2048 and Ed25519), Postfix signs nothing (no milter: the issue's
#   peer). Prints delivered msg/s of both and each server's own CPU per message (the process
#   trees' user+system time, Postfix's with Dovecot's auth, from /proc).
#
# Needs root (network namespaces; Postfix's master), Go, Postfix and Dovecot (compare.sh
# installs them when missing). On a shared machine wrap each part in the benchmark lock:
#   flock /work/bench.lock bash bench/mailauth-relay.sh inbound
set -euo pipefail
BENCH=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$BENCH/.." && pwd)
ROUNDS=${ROUNDS:-5} ROUNDS_OUT=${ROUNDS_OUT:-3} N=${N:-3000}
what=${1:-all}
OUT=${OUT:-$(mktemp -d /tmp/mailauth-relay.XXXXXX)}
mkdir -p "$OUT"
median() { tr ' ' '\n' | grep . | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

inbound() {
	(cd "$ROOT" && go build -o "$OUT/petrel" ./cmd/petrel && go build -o "$OUT/petrel-load" ./bench/cmd/petrel-load)
	echo "== inbound verification, load average $(cut -d' ' -f1-3 /proc/loadavg)"
	unshare -n env N="$N" ROUNDS="$ROUNDS" MODES="off unsigned rsa" \
		bash "$BENCH/signed-inbound.sh" "$OUT/petrel-load" "$OUT/petrel" 2>"$OUT/inbound-rounds.log" | tee "$OUT/inbound.txt"
	cat "$OUT/inbound-rounds.log"
	awk 'NR > 1 { cpu[$2] = $3; rate[$2] = $4 }
		END { for (m in cpu) if (m != "off")
			printf "%-9s verification: +%.0f%% server CPU per message, %.0f%% less throughput than off\n",
				m, (cpu[m] / cpu["off"] - 1) * 100, (1 - rate[m] / rate["off"]) * 100 }' "$OUT/inbound.txt"
	echo "== load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
}

outbound() {
	echo "== outbound relay against Postfix, load average $(cut -d' ' -f1-3 /proc/loadavg)"
	unshare -n bash -c "ip link set lo up; bash '$BENCH/compare.sh' --rounds $ROUNDS_OUT --users 10 --only outbound --out '$OUT/outbound'" >"$OUT/outbound.log" 2>&1 ||
		{ tail -30 "$OUT/outbound.log"; return 1; }
	grep -E "compare: round" "$OUT/outbound.log"
	grep -F "Outbound relay" "$OUT/outbound/results.md"
	for t in petrel anchor; do
		ms=$(awk -v t="$t" '$2 == t && $3 != "profile" { printf "%s ", $4 }' "$OUT/outbound/server-cpu.tsv" | median)
		echo "$t: server CPU per message $((ms * 1000 / 3000)) µs (median of $ROUNDS_OUT rounds, 3,000 messages each)"
	done
	echo "== load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
}

case $what in
inbound) inbound ;;
outbound) outbound ;;
all) inbound && outbound ;;
*) echo "usage: mailauth-relay.sh [inbound|outbound|all]" >&2; exit 2 ;;
esac
echo "results in $OUT"
