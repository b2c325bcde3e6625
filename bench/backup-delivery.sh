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
DUR=20s ROUNDS=2 CONNS=8
while [ $# -gt 1 ]; do
	case "$1" in
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
	exec unshare -n bash -c 'ip link set lo up && exec bash "$0" "$@"' "$0" -d "$DUR" -r "$ROUNDS" -c "$CONNS" "$SRC"
fi

W=$(mktemp -d /tmp/petrel-backup-delivery.XXXXXX)
SERVE_PID=""
cleanup() {
	if [ -n "$SERVE_PID" ]; then kill "$SERVE_PID" 2>/dev/null && wait "$SERVE_PID" 2>/dev/null; fi
	rm -rf "$W"
}
trap cleanup EXIT
log() { printf '%s backup-delivery: %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

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
P backup "$W/bk-alone" >"$W/bk-alone.out"
t2=$(date +%s.%N)
awk -v a="$t0" -v b="$t1" -v c="$t2" -v n="$DBBYTES" 'BEGIN {
	printf "plain copy   %6.1f s %7.1f MB/s\nbackup       %6.1f s %7.1f MB/s (server not started; all of it: store copy, other files, verification)\n", b - a, n / (b - a) / 1e6, c - b, n / (c - b) / 1e6 }'
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

deliver() { # prints messages/s
	"$W/petrel-load" smtp -addr 127.0.0.1:2525 -c "$CONNS" -n 0 -duration "$DUR" -size 2048 \
		-to bench@example.test -json | python3 -c 'import json,sys; print("%.1f" % json.load(sys.stdin)["ops_per_sec"])'
}
with_backup() {
	local flag=$W/backing-up i=$(( ${ROUND:-0} * 1000 ))
	touch "$flag"
	(
		while [ -e "$flag" ]; do
			i=$((i + 1))
			s=$(date +%s.%N)
			"$W/petrel" --data "$W/data" backup "$W/bk-$i" >"$W/bk-$i.out" &
			echo $! >"$W/backup.pid"
			if wait $!; then
				e=$(date +%s.%N)
				awk -v a="$s" -v b="$e" -v n="$DBBYTES" 'BEGIN { printf "%.1f %.1f\n", b - a, n / (b - a) / 1e6 }' >>"$W/backups"
			fi
			store_copy <"$W/bk-$i.out" >>"$W/snapshots"
			rm -f "$W/bk-$i.out"
			rm -rf "$W/bk-$i"
		done
	) &
	local bpid=$!
	deliver
	rm -f "$flag"
	# The backup still running when the measurement ends is stopped, not awaited.
	kill "$(cat "$W/backup.pid")" 2>/dev/null || true
	wait "$bpid"
}

for r in $(seq "$ROUNDS"); do
	ROUND=$r
	if [ $((r % 2)) = 1 ]; then order="without with"; else order="with without"; fi
	for what in $order; do
		log "round $r: delivery $what backup (load average $(cut -d' ' -f1 /proc/loadavg))"
		if [ "$what" = with ]; then rate=$(with_backup); else rate=$(deliver); fi
		echo "$r $what $rate" >>"$W/rates"
		printf 'round %s  %-7s backup: %8s msgs/s\n' "$r" "$what" "$rate"
	done
done
awk '{ s[$2] += $3; n[$2]++ } END {
	w = s["with"] / n["with"]; wo = s["without"] / n["without"]
	printf "mean: without %.1f msgs/s, with %.1f msgs/s: %.1f%% slower during backups\n", wo, w, 100 * (wo - w) / wo }' "$W/rates"
touch "$W/backups"
awk '{ t += $1; m += $2; n++ } END { printf "backups finished under load: %d", n; if (n) printf ", mean %.1f s, %.1f MB/s", t / n, m / n; print "" }' "$W/backups"
touch "$W/snapshots"
awk '{ t += $1; n++ } END { if (n) printf "store copies (snapshots) finished under load: %d, mean %.1f s\n", n, t / n }' "$W/snapshots"
log "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
