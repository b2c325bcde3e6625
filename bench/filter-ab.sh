#!/usr/bin/env bash
# filter-ab.sh: the inbound cost of filtering (issue 13's budget), A/B in one run.
#
# Two Petrel instances on loopback, started side by side from the same binary:
#   plain     [junk] enabled = false, no Sieve scripts
#   filtered  the junk classifier on, every account trained (40 ham, 40 spam messages) and
#             running the 20-rule script of sieve.Rules20 (written out below)
# petrel-load sends 2 KB messages over C connections to user1..user8 of one instance, then
# of the other, alternating for ROUNDS rounds (which goes first alternates too), so both
# meet the same machine load; the
# accepted msg/s of each run and the server's CPU time per message (from /proc, user and
# system) are printed, then the medians and the ratios. A 250 from Petrel means committed
# (the store's group commit), so accepted is delivered. On a shared machine the msg/s of a
# run follows the other jobs more than the server; the CPU per message is the steadier
# figure, and what throughput a CPU-bound server reaches is its inverse.
#
# Usage: bash bench/filter-ab.sh [ROUNDS] [SECONDS] [CONNS]      (default 3 10 16)
# PROFILE=1 also writes CPU profiles of both instances to $WORK/{plain,filtered}.cpu.
set -euo pipefail

ROUNDS=${1:-3} SECS=${2:-10} CONNS=${3:-16}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=$(mktemp -d /tmp/petrel-filter-ab.XXXXXX)
PASS=load-password
# The servers' PIDs are written to $WORK/*.pid (setup runs in a command substitution, a
# subshell); at exit each gets SIGTERM (a graceful stop writes its profile) and is waited for.
cleanup() {
	local p
	for f in "$WORK"/*.pid; do
		[ -e "$f" ] || continue
		p=$(cat "$f")
		kill -TERM "$p" 2>/dev/null || continue
		wait_gone "$p" || true
	done
}
trap cleanup EXIT

BIN=$WORK/bin
mkdir -p "$BIN"
(cd "$ROOT" && go build -o "$BIN/petrel" ./cmd/petrel && go build -o "$BIN/petrel-load" ./bench/cmd/petrel-load &&
	go build -o "$BIN/petrel-compare" ./bench/cmd/petrel-compare)
PETREL=$BIN/petrel COMPARE=$BIN/petrel-compare PORTS=$WORK/ports
CERT=$WORK/cert.pem KEY=$WORK/key.pem
# The instances are compare.sh's Petrel target (its config, accounts, start and wait), each in
# a directory of its own.
# shellcheck source=lib.sh
. "$ROOT/bench/lib.sh"
# shellcheck source=targets/petrel.sh
. "$ROOT/bench/targets/petrel.sh"
all_accounts() { for n in $(seq 8); do echo "user$n@example.test"; done; }

rules20() {
	echo 'require ["fileinto", "imap4flags", "variables", "envelope", "body", "copy"];'
	for i in 0 1 2 3 4 5 6 7; do
		echo "if header :contains \"list-id\" \"list$i.example.org\" { fileinto \"Lists/$i\"; stop; }"
	done
	for i in 0 1 2 3 4 5; do
		echo "if address :domain :is \"from\" \"vendor$i.example\" { addflag \"\$Vendor$i\"; }"
	done
	echo 'if header :matches "subject" "*[SPAM]*" { fileinto "Junk"; stop; }'
	echo 'if envelope :is "from" "" { fileinto "Bounces"; stop; }'
	echo 'if size :over 5M { addflag "$Big"; }'
	echo 'if body :contains "unsubscribe" { addflag "$Newsletter"; }'
	echo 'if header :matches "from" "*@*" { set "sender_domain" "${2}"; }'
	echo 'if anyof (header :contains "x-priority" "1", header :is "importance" "high") { addflag "\\Flagged"; }'
}

# corpus writes training messages: ham about meetings and code, spam about prizes.
corpus() { # DIR KIND
	mkdir -p "$1"
	local words
	if [ "$2" = ham ]; then
		words="meeting agenda review patch release notes quarterly budget lunch project schedule design"
	else
		words="winner prize claim free casino offer viagra lottery urgent transfer bitcoin guaranteed"
	fi
	for i in $(seq 40); do
		{
			printf 'From: Sender %s <s%s@%s.example>\r\nTo: user@example.test\r\nSubject: %s %s\r\n\r\n' \
				"$i" "$i" "$2" "$(echo "$words" | cut -d' ' -f$((i % 12 + 1)))" "$i"
			for _ in 1 2 3; do printf '%s number %s\r\n' "$words" "$i"; done
		} >"$1/$i.eml"
	done
}

setup() { # NAME FILTERED: starts the instance; prints its SMTP port
	local WORK="$WORK/$1" # the target's files go to $WORK/NAME/petrel
	local P_EXTRA_CONFIG
	P_EXTRA_CONFIG=$(printf '[junk]\nenabled = %s' "$([ "$2" = 1 ] && echo true || echo false)")
	petrel_prepare >&2 || return 1
	local conf="$WORK/petrel/petrel.toml" u
	if [ "$2" = 1 ]; then
		for u in $(all_accounts); do
			"$PETREL" -c "$conf" sieve put "$u" rules20 "$TOP/rules20.sieve" >/dev/null || return 1
			"$PETREL" -c "$conf" sieve activate "$u" rules20 >/dev/null || return 1
			"$PETREL" -c "$conf" junk train "$u" --ham "$TOP/ham" >/dev/null || return 1
			"$PETREL" -c "$conf" junk train "$u" --spam "$TOP/spam" >/dev/null || return 1
		done
	fi
	local prof=()
	if [ "${PROFILE:-0}" = 1 ]; then prof=(--cpuprofile "$TOP/$1.cpu"); fi
	petrel_start "${prof[@]}" >&2 || return 1
	echo "$P_PID" >"$TOP/$1.pid"
	echo "$P_SMTP_PORT"
}

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 -subj /CN=localhost \
	-keyout "$KEY" -out "$CERT" 2>/dev/null
TOP=$WORK
rules20 >"$TOP/rules20.sieve"
corpus "$TOP/ham" ham
corpus "$TOP/spam" spam
PLAIN=$(setup plain 0)
FILTERED=$(setup filtered 1)

# cputicks prints the CPU time (user + system, in clock ticks) the server NAME used so far.
cputicks() { awk '{print $14 + $15}' "/proc/$(cat "$WORK/$1.pid")/stat"; }

run() { # NAME PORT: prints "msg/s cpu-µs-per-message"
	local before after out
	before=$(cputicks "$1")
	out=$("$BIN/petrel-load" smtp -addr "127.0.0.1:$2" -c "$CONNS" -n 0 -duration "${SECS}s" -size 2048 \
		-from sender@remote.example -to 'user{n}@example.test' -mailboxes 8 -json)
	after=$(cputicks "$1")
	python3 -c 'import json,sys; r=json.loads(sys.argv[1]); n=r["ops"]; print("%.1f %.0f" % (r["ops_per_sec"], (int(sys.argv[2]) * 1e6 / int(sys.argv[3])) / max(n, 1)))' \
		"$out" "$((after - before))" "$(getconf CLK_TCK)"
}

plain=() filtered=() plaincpu=() filteredcpu=()
echo "start: $(uptime)"
for r in $(seq "$ROUNDS"); do
	# Odd rounds run plain first, even rounds filtered first, so that neither always meets
	# the other's after-effects (its commit backlog, a warm or cold cache).
	order="plain filtered"
	if [ $((r % 2)) = 0 ]; then order="filtered plain"; fi
	for which in $order; do
		if [ "$which" = plain ]; then
			read -r rate cpu <<<"$(run plain "$PLAIN")"
			plain+=("$rate") plaincpu+=("$cpu")
		else
			read -r rate cpu <<<"$(run filtered "$FILTERED")"
			filtered+=("$rate") filteredcpu+=("$cpu")
		fi
	done
	echo "round $r ($order): plain ${plain[-1]} msg/s (${plaincpu[-1]} CPU-µs/msg), filtered ${filtered[-1]} msg/s (${filteredcpu[-1]} CPU-µs/msg); load average $(cut -d' ' -f1 /proc/loadavg)"
done
echo "end: $(uptime)"
python3 - "${plain[*]}" "${filtered[*]}" "${plaincpu[*]}" "${filteredcpu[*]}" <<'EOF2'
import statistics, sys
p, f, pc, fc = ([float(x) for x in a.split()] for a in sys.argv[1:5])
mp, mf = statistics.median(p), statistics.median(f)
cp, cf = statistics.median(pc), statistics.median(fc)
print(f"median: plain {mp:.1f} msg/s, filtered {mf:.1f} msg/s: {100 * (1 - mf / mp):.1f}% below plain")
print(f"median CPU per message: plain {cp:.0f} µs, filtered {cf:.0f} µs: throughput bound {100 * (1 - cp / cf):.1f}% below plain")
EOF2
grep -h 'level=\(WARN\|ERROR\)' "$WORK"/*/petrel/petrel.log | head -5 || true
echo "work directory: $WORK"
