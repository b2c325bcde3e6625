#!/usr/bin/env bash
# mailauth-relay.sh: the two performance figures of issue 11 in one script.
#
#   bash bench/mailauth-relay.sh inbound    # what verification costs inbound (about 3 minutes)
#   bash bench/mailauth-relay.sh outbound   # relaying against Postfix (about 5 minutes)
#   bash bench/mailauth-relay.sh            # both
#   bash bench/mailauth-relay.sh outbound-ab main   # this tree against main, Petrel alone
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
# outbound-ab [REV]: the relay scenario against Petrel alone, a binary built from REV
#   (default main) and one from this tree, ROUNDS_AB rounds (default 3) alternating which
#   goes first, in one locked run: CPU per message and msg/s of each, medians, so that a
#   change is judged on a loaded machine by its CPU per message (about 4 minutes).
#
# Needs root (network namespaces; Postfix's master), Go, Postfix and Dovecot (compare.sh
# installs them when missing). On a shared machine wrap each part in the benchmark lock:
#   flock /work/bench.lock bash bench/mailauth-relay.sh inbound
set -euo pipefail
BENCH=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$BENCH/.." && pwd)
ROUNDS=${ROUNDS:-5} ROUNDS_OUT=${ROUNDS_OUT:-3} ROUNDS_AB=${ROUNDS_AB:-3} N=${N:-3000}
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
	grep -h -F "load tool CPU" "$OUT/outbound/logs/load.log" || true
	grep -F "Outbound relay" "$OUT/outbound/results.md"
	for t in petrel anchor; do
		ms=$(awk -v t="$t" '$2 == t && $3 != "profile" { printf "%s ", $4 }' "$OUT/outbound/server-cpu.tsv" | median)
		echo "$t: server CPU per message $((ms * 1000 / 3000)) µs (median of $ROUNDS_OUT rounds, 3,000 messages each)"
	done
	echo "== load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
}

outbound_ab() { # REV
	local rev=${1:-main} src round t first
	src=$(mktemp -d /tmp/mailauth-relay-src.XXXXXX)
	(cd "$ROOT" && git archive "$rev" | tar -x -C "$src")
	(cd "$src" && go build -o "$OUT/petrel-a" ./cmd/petrel) && rm -rf "$src"
	(cd "$ROOT" && go build -o "$OUT/petrel-b" ./cmd/petrel)
	echo "== outbound A/B, Petrel alone: a = $rev ($(cd "$ROOT" && git rev-parse --short "$rev")), b = this tree ($(cd "$ROOT" && git rev-parse --short HEAD)$(cd "$ROOT" && git diff --quiet HEAD || echo +changes)); load average $(cut -d' ' -f1-3 /proc/loadavg)"
	: >"$OUT/ab.tsv"
	for round in $(seq "$ROUNDS_AB"); do
		first=a; [ $((round % 2)) = 0 ] && first=b
		for t in $first $([ $first = a ] && echo b || echo a); do
			unshare -n bash -c "ip link set lo up; PETREL_BIN='$OUT/petrel-$t' bash '$BENCH/compare.sh' --rounds 1 --users 10 --targets petrel --only outbound --out '$OUT/ab-$t-$round'" >"$OUT/ab-$t-$round.log" 2>&1 ||
				{ tail -30 "$OUT/ab-$t-$round.log"; return 1; }
			ms=$(awk '$2 == "petrel" { print $4 }' "$OUT/ab-$t-$round/server-cpu.tsv")
			rate=$(awk -F' *\\| *' '/Outbound relay/ { print $4 }' "$OUT/ab-$t-$round/results.md")
			printf '%s\t%s\t%s\t%s\t%s\n' "$t" "$round" "$((ms * 1000 / 3000))" "$rate" "$(cut -d' ' -f1 /proc/loadavg)" | tee -a "$OUT/ab.tsv"
			grep -h -F "load tool CPU" "$OUT/ab-$t-$round/logs/load.log" || true
		done
	done
	for t in a b; do
		echo "$t: server CPU per message $(awk -v t=$t '$1 == t { printf "%s ", $3 }' "$OUT/ab.tsv" | median) µs, $(awk -v t=$t '$1 == t { printf "%s ", $4 }' "$OUT/ab.tsv" | median) msg/s (medians of $ROUNDS_AB rounds, 3,000 messages each)"
	done
	echo "== load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
}

case $what in
inbound) inbound ;;
outbound) outbound ;;
outbound-ab) outbound_ab "${2:-main}" ;;
all) inbound && outbound ;;
*) echo "usage: mailauth-relay.sh [inbound|outbound|outbound-ab [REV]|all]" >&2; exit 2 ;;
esac
echo "results in $OUT"
