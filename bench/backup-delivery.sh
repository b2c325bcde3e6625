#!/usr/bin/env bash
# backup-delivery.sh: inbound SMTP delivery with and without an online backup running, in one
# run (issue 16: delivery during a backup no more than 20% slower), and the backup's MB/s
# next to a plain copy of the same database file.
#
#   bash bench/backup-delivery.sh DATA            # DATA: a data directory with a store
#   bash bench/backup-delivery.sh -d 20s -r 3 DATA
#
# Options:
#   -d DURATION  each delivery measurement (default 20s)
#   -r N         rounds (default 2); each round measures without and with backup, the order
#                alternating between rounds
#   -c N         SMTP connections of the load (default 8)
#   -b "RATES"   backup rates to measure, MB/s, space-separated (default "20 0": the default
#                store.backup_rate, and no limit); each round measures delivery without a
#                backup and beside a backup at each rate
#   -t DIR       write the backups under DIR instead of the run's directory on the same disk
#                as the store (say, /dev/shm: then the backups' writes do not compete with the
#                commits' fsyncs, which splits what a backup costs delivery in disk and in CPU)
#   -o PETREL    also measure delivery beside the backups of another petrel binary (say, one
#                built from main), as "with-old", for an A/B of two builds in one run
#
# Per measurement it prints delivery's messages/s, the server's CPU per message (utime +
# stime of the petrel serve process over the messages it accepted), the load generator's
# SMTP transaction latency (p50/p99: the commit's fsync is in it) and, beside a backup, the
# backups' own CPU seconds and MB/s.
#
# DATA is copied first (the run never changes it); bench/import-compare.sh --keep DIR
# leaves a 100,000-message one in DIR/petrel-data. The copy is served as the development
# instance (`petrel --data COPY serve`: SMTP on 127.0.0.1:2525) inside a network namespace of
# its own, and bench/cmd/petrel-load sends 2 KB messages to bench@example.test (the account
# import-compare makes; it is added if missing). "With backup": `petrel backup` runs over and
# over (each into a fresh directory) for the whole measurement, so every message of it is
# delivered while a backup reads the store; the one running when it ends is stopped.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
DUR=20s ROUNDS=2 CONNS=8 RATES="20 0" OLD="" TARGET=""
while [ $# -gt 1 ]; do
	case "$1" in
	-o) OLD=$(realpath "$2"); shift 2 ;;
	-b) RATES=$2; shift 2 ;;
	-t) TARGET=$(realpath "$2"); shift 2 ;;
	-d) DUR=$2; shift 2 ;;
	-r) ROUNDS=$2; shift 2 ;;
	-c) CONNS=$2; shift 2 ;;
	*) echo "backup-delivery.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
	esac
done
case "${1:-}" in
"" | -h | --help) sed -n '2,/^set -e/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
esac
SRC=$(cd "$1" && pwd)
if [ -z "${BACKUP_DELIVERY_NETNS:-}" ]; then
	export BACKUP_DELIVERY_NETNS=1
	exec unshare -n bash -c 'ip link set lo up && exec bash "$0" "$@"' "$0" -d "$DUR" -r "$ROUNDS" -c "$CONNS" -b "$RATES" ${OLD:+-o "$OLD"} ${TARGET:+-t "$TARGET"} "$SRC"
fi

W=$(mktemp -d /tmp/petrel-backup-delivery.XXXXXX)
SERVE_PID=""
cleanup() {
	if [ -n "$SERVE_PID" ]; then kill "$SERVE_PID" 2>/dev/null && wait "$SERVE_PID" 2>/dev/null; fi
	rm -rf "$W" ${BK:+"$BK"}
}
trap cleanup EXIT
log() { printf '%s backup-delivery: %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

BK=""
if [ -n "$TARGET" ]; then BK=$(mktemp -d "$TARGET/petrel-backup-delivery.XXXXXX"); fi
log "building petrel and petrel-load"
(cd "$ROOT" && go build -o "$W/petrel" ./cmd/petrel && go build -o "$W/petrel-load" ./bench/cmd/petrel-load)
log "copying $SRC"
cp -a "$SRC" "$W/data"
P() { "$W/petrel" --data "$W/data" "$@"; }
# In the background, petrel is started without P, so that $! is its own PID (killed by it).
DB=$(find "$W/data" -maxdepth 1 -name '*.db' | head -1)
DBBYTES=$(stat -c %s "$DB")
P account list | grep -q '^bench@example.test' || P account add bench@example.test <<<"bench-password-1" >/dev/null

log "plain copy of the database file ($DBBYTES bytes), then one backup, before the server starts"
t0=$(date +%s.%N)
cp "$DB" "$W/plain-copy" && sync -f "$W/plain-copy"
t1=$(date +%s.%N)
P backup --rate 0 "$W/bk-alone" >"$W/bk-alone.out"
t2=$(date +%s.%N)
awk -v a="$t0" -v b="$t1" -v c="$t2" -v n="$DBBYTES" 'BEGIN {
	printf "plain copy   %6.1f s %7.1f MB/s\nbackup       %6.1f s %7.1f MB/s (--rate 0, server not started; all of it: store copy, other files, verification)\n", b - a, n / (b - a) / 1e6, c - b, n / (c - b) / 1e6 }'
store_copy() { # the store copy's (the snapshot's) seconds, from backup's output, if it says
	python3 -c 'import re, sys
m = re.search(r"store copied in ([0-9.hms]+)", sys.stdin.read())
if m:
    print(sum(float(v) * {"h": 3600, "m": 60, "s": 1, "ms": 0.001}[u] for v, u in re.findall(r"([0-9.]+)(ms|h|m|s)", m.group(1))))'
}
sc=$(store_copy <"$W/bk-alone.out")
[ -n "$sc" ] && awk -v t="$sc" -v n="$DBBYTES" 'BEGIN { printf "  store copy %6.1f s %7.1f MB/s (the snapshot: the read transaction lasts this long)\n", t, n / t / 1e6 }'
rm -rf "$W/plain-copy" "$W/bk-alone"

"$W/petrel" --data "$W/data" serve >"$W/serve.log" 2>&1 &
SERVE_PID=$!
for _ in $(seq 300); do grep -q 'listening on.*2525' "$W/serve.log" && break; sleep 0.1; done
grep -q 'listening on.*2525' "$W/serve.log" || { cat "$W/serve.log" >&2; exit 1; }

cputicks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; } # utime + stime, clock ticks
TICK=$(getconf CLK_TCK)
deliver() { # prints "messages/s CPU-ms-per-message p50-ms p99-ms" of one measurement
	local c0 c1
	c0=$(cputicks "$SERVE_PID")
	"$W/petrel-load" smtp -addr 127.0.0.1:2525 -c "$CONNS" -n 0 -duration "$DUR" -size 2048 \
		-to bench@example.test -json >"$W/load.json"
	c1=$(cputicks "$SERVE_PID")
	python3 -c 'import json, sys
r = json.load(open(sys.argv[1])); l = r["latency"]
print("%.1f %.3f %.1f %.1f" % (r["ops_per_sec"], 1000 * (int(sys.argv[3]) - int(sys.argv[2])) / int(sys.argv[4]) / max(r["ops"], 1), l["p50_ms"], l["p99_ms"]))' \
		"$W/load.json" "$c0" "$c1" "$TICK"
}
with_backup() { # $1: MB/s, or old (-o); prints deliver's figures, then the backups' CPU seconds
	local flag=$W/backing-up i=$(( ${ROUND:-0} * 1000 )) rate=$1
	local cmd=("$W/petrel" --data "$W/data" backup --rate "$rate")
	[ "$rate" = old ] && cmd=("$OLD" --data "$W/data" backup)
	touch "$flag"
	(
		while [ -e "$flag" ]; do
			i=$((i + 1))
			s=$(date +%s.%N)
			"${cmd[@]}" "${BK:-$W}/bk-$i" >"$W/bk-$i.out" &
			echo $! >"$W/backup.pid"
			if wait $!; then
				e=$(date +%s.%N)
				awk -v a="$s" -v b="$e" -v n="$DBBYTES" -v r="$rate" 'BEGIN { printf "%s %.1f %.1f\n", r, b - a, n / (b - a) / 1e6 }' >>"$W/backups"
			fi
			sc=$(store_copy <"$W/bk-$i.out")
			[ -n "$sc" ] && echo "$rate $sc" >>"$W/snapshots"
			rm -f "$W/bk-$i.out"
			rm -rf "${BK:-$W}/bk-$i"
		done
		# The CPU time of every backup of this measurement (the children of this shell).
		# (Not in a pipeline: that would run times in a subshell of its own, with no children.)
		times >"$W/times"
		tail -1 "$W/times" | awk '{ split($1, u, /[ms]/); split($2, s, /[ms]/); printf "%.1f\n", u[1] * 60 + u[2] + s[1] * 60 + s[2] }' >"$W/backup-cpu"
	) &
	local bpid=$!
	local figures
	figures=$(deliver)
	rm -f "$flag"
	# The backup still running when the measurement ends is stopped, not awaited.
	kill "$(cat "$W/backup.pid")" 2>/dev/null || true
	wait "$bpid"
	echo "$figures $(cat "$W/backup-cpu")"
}

for r in $(seq "$ROUNDS"); do
	ROUND=$r
	variants="without"
	for b in $RATES ${OLD:+old}; do variants="$variants with-$b"; done
	if [ $((r % 2)) = 0 ]; then variants=$(echo "$variants" | tr ' ' '\n' | tac | tr '\n' ' '); fi
	for what in $variants; do
		log "round $r: delivery $what (load average $(cut -d' ' -f1 /proc/loadavg))"
		if [ "$what" = without ]; then figures="$(deliver) -"; else figures=$(with_backup "${what#with-}"); fi
		echo "$r $what $figures $(cut -d' ' -f1 /proc/loadavg)" >>"$W/rates"
		set -- $figures
		printf 'round %s  %-8s %8s msgs/s  %6s ms CPU/msg  p50 %5s ms  p99 %6s ms  backup CPU %5s s  load %s\n' \
			"$r" "$what" "$1" "$2" "$3" "$4" "$5" "$(cut -d' ' -f1 /proc/loadavg)"
	done
done
echo "means (backup rates in MB/s; 'slower' against the rounds without):"
awk '{ s[$2] += $3; c[$2] += $4; p[$2] += $6; n[$2]++ } END {
	wo = s["without"] / n["without"]
	for (k in n) printf "  %-8s %8.1f msgs/s  %6.3f ms CPU/msg  p99 %6.1f ms  %5.1f%% slower\n", k, s[k] / n[k], c[k] / n[k], p[k] / n[k], 100 * (wo - s[k] / n[k]) / wo }' "$W/rates" | sort
touch "$W/backups" "$W/snapshots"
awk '{ t[$1] += $2; m[$1] += $3; n[$1]++ } END { for (r in n) printf "backups finished under load at --rate %s: %d, mean %.1f s, %.1f MB/s\n", r, n[r], t[r] / n[r], m[r] / n[r] }' "$W/backups"
awk '{ t[$1] += $2; n[$1]++ } END { for (r in n) printf "store copies (snapshots) finished under load at --rate %s: %d, mean %.1f s\n", r, n[r], t[r] / n[r] }' "$W/snapshots"
log "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
