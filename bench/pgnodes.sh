#!/usr/bin/env bash
# pgnodes.sh: inbound SMTP through whole Petrel nodes, embedded store against PostgreSQL with
# 1, 2 and 3 nodes on one database, in one run on one machine (issue 12's figures).
#
#   sudo unshare -n bash -c 'ip link set lo up; bash bench/pgnodes.sh'
#
# Environment: N messages per configuration (default 3000), C connections in all (default
# 16, split over the nodes), SIZE bytes per message (default 4096), RUNS the configurations
# in order (default "embedded postgres1 embedded postgres1 embedded postgres1 postgres2
# postgres3": three alternating pairs for the ratio, then 2 and 3 nodes; each word is
# embedded or postgresK for K nodes, and base-embedded or base-postgresK the same built
# from the commit BASE names, for an A/B in one run), POOL the nodes' store.pool_size (default: unset, the
# built-in default), PROFILE a directory for each node's CPU profile (petrel serve
# --cpuprofile), STATEMENTS=1 to list the statements PostgreSQL ran per delivered message
# after each PostgreSQL configuration (pg_stat_statements, in the Debian package; with how
# often each was planned: a prepared statement that PostgreSQL keeps planning anew), PERF a
# directory for a system-wide `perf record -g` of each PostgreSQL configuration's load
# (read this cluster's part with `perf report -i DIR/LABEL.perf --pid $(cat DIR/LABEL.pids)`).
#
# Needs root (PostgreSQL runs as the postgres user) and the Debian postgresql package. A
# throwaway cluster on a unix socket in a temporary directory, durable defaults (fsync,
# synchronous_commit on); the nodes listen on 127.0.0.1 only, so run it in a network
# namespace of its own.
#
# For each configuration it prints delivered/s (N over the wall time of the slowest load
# process), and CPU seconds per 1000 messages of the Petrel nodes together and of
# PostgreSQL's processes (utime+stime from /proc); at the end, the medians of the one-node
# runs and the ratio PostgreSQL / embedded (issue 12 asks for at least 50%).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
N=${N:-3000} C=${C:-16} SIZE=${SIZE:-4096} RUNS=${RUNS:-embedded postgres1 embedded postgres1 embedded postgres1 postgres2 postgres3}
PROFILE=${PROFILE:-} STATEMENTS=${STATEMENTS:-0} POOL=${POOL:-} PERF=${PERF:-} BASE=${BASE:-}
WORK=$(mktemp -d)
chmod 755 "$WORK" # PostgreSQL runs as postgres and must reach its directory
PIDS=()
cleanup() {
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$WORK"
}
trap cleanup EXIT
cd "$ROOT"
go build -o "$WORK/petrel" ./cmd/petrel
if [ -n "$BASE" ]; then
	# The same node built from another commit, for the base-* configurations (its schema
	# must be one this tree's database setup accepts: each run has a fresh database).
	mkdir "$WORK/base"
	git -C "$ROOT" archive "$BASE" | tar -x -C "$WORK/base"
	(cd "$WORK/base" && go build -o "$WORK/petrel-base" ./cmd/petrel)
fi
go build -o "$WORK/petrel-load" ./bench/cmd/petrel-load
PGBIN=$(ls -d /usr/lib/postgresql/*/bin | tail -1)
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$WORK/key.pem" -out "$WORK/cert.pem" \
	-days 2 -subj /CN=localhost 2>/dev/null

mkdir "$WORK/pg" && chown postgres: "$WORK/pg"
setpriv --reuid postgres --regid postgres --clear-groups -- "$PGBIN/initdb" -D "$WORK/pg/data" -U postgres -A trust \
	-E UTF8 --locale=C --no-sync >/dev/null
setpriv --reuid postgres --regid postgres --clear-groups -- "$PGBIN/postgres" -D "$WORK/pg/data" -k "$WORK/pg" \
	-c listen_addresses= -c max_connections=300 -c shared_buffers=64MB \
	-c shared_preload_libraries=pg_stat_statements -c pg_stat_statements.track=all \
	-c pg_stat_statements.track_planning=$([ "$STATEMENTS" = 1 ] && echo on || echo off) >"$WORK/pg/log" 2>&1 &
PG=$!
PIDS+=("$PG")
until "$PGBIN/pg_isready" -q -h "$WORK/pg"; do sleep 0.2; done

# cpu PID...: utime+stime of the processes, in clock ticks.
cpu() {
	local t=0 p
	for p in "$@"; do
		[ -r "/proc/$p/stat" ] && t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat")))
	done
	echo "$t"
}
# pgcpu: utime+stime of every PostgreSQL process, the exited backends' included (cutime of
# the postmaster).
pgcpu() {
	local t
	t=$(awk '{print $14 + $15 + $16 + $17}' "/proc/$PG/stat")
	for p in $(pgrep -P "$PG"); do t=$((t + $(cpu "$p"))); done
	echo "$t"
}

# walstats: the WAL flushes, bytes and full-page images of the cluster so far (pg_stat_wal):
# deliveries per flush tell how much PostgreSQL's group commit shares, bytes per delivery
# what each message writes.
walstats() { psql -qAt -F ' ' -h "$WORK/pg" -U postgres -d postgres -c 'SELECT wal_sync, wal_bytes, wal_fpi FROM pg_stat_wal'; }

# run LABEL NODES STORE-TOML: start NODES nodes, deliver N messages over C connections
# split among them, print the figures, stop the nodes.
run() {
	local label=$1 nodes=$2 storeconf=$3 dbname=${4:-} i base nodepids=() loadpids=() start end bin=$WORK/petrel
	case "$label" in base-*) bin=$WORK/petrel-base ;; esac
	for i in $(seq 1 "$nodes"); do
		base=$((31000 + 100 * i))
		mkdir -p "$WORK/$label/n$i"
		cat >"$WORK/$label/n$i/petrel.toml" <<EOF
hostname = "localhost"
data = "$WORK/$label/n$i/data"
domains = ["example.test"]
[log]
level = "warn"
[tls]
cert = "$WORK/cert.pem"
key = "$WORK/key.pem"
[smtp]
listen = ["127.0.0.1:$base"]
submission = ["127.0.0.1:$((base + 1))"]
submissions = ["127.0.0.1:$((base + 2))"]
[pop3]
listen = ["127.0.0.1:$((base + 3))"]
listen_tls = ["127.0.0.1:$((base + 4))"]
[imap]
listen = ["127.0.0.1:$((base + 5))"]
listen_tls = ["127.0.0.1:$((base + 6))"]
[http]
listen = ["127.0.0.1:$((base + 7))"]
listen_tls = ["127.0.0.1:$((base + 8))"]
[managesieve]
listen = ["127.0.0.1:$((base + 9))"]
[limits]
max_connections_per_ip = 20000
[mail_auth]
verify = false
[store]
$storeconf
EOF
	done
	for u in $(seq 1 16); do
		printf 'bench-pw-1\n' | "$bin" -c "$WORK/$label/n1/petrel.toml" account add "user$u@example.test" >/dev/null
	done
	local prof
	for i in $(seq 1 "$nodes"); do
		prof=()
		[ -n "$PROFILE" ] && mkdir -p "$PROFILE" && prof=(--cpuprofile "$PROFILE/$label-n$i.pprof")
		"$bin" -c "$WORK/$label/n$i/petrel.toml" serve "${prof[@]}" >"$WORK/$label/n$i/out" 2>&1 &
		nodepids+=("$!")
		PIDS+=("$!")
	done
	for i in $(seq 1 "$nodes"); do
		until grep -q "listening on 127.0.0.1:$((31000 + 100 * i))\b" "$WORK/$label/n$i/out" 2>/dev/null; do sleep 0.2; done
	done
	local c0 p0
	[ "$STATEMENTS" = 1 ] && [ -n "$dbname" ] && pgq "$dbname" 'SELECT pg_stat_statements_reset()' >/dev/null
	local w0
	w0=$(walstats)
	c0=$(cpu "${nodepids[@]}")
	p0=$(pgcpu)
	local perfpid=
	if [ -n "$PERF" ] && [ -n "$dbname" ]; then
		mkdir -p "$PERF"
		perf record -a -g -F 499 -o "$PERF/$label.perf" >/dev/null 2>&1 &
		perfpid=$!
	fi
	start=$(date +%s.%N)
	for i in $(seq 1 "$nodes"); do
		"$WORK/petrel-load" smtp -addr "127.0.0.1:$((31000 + 100 * i))" -n $((N / nodes)) -c $((C / nodes)) -size "$SIZE" \
			-to 'user{n}@example.test' -mailboxes 16 -json >"$WORK/$label/load$i.json" &
		loadpids+=("$!")
	done
	for p in "${loadpids[@]}"; do wait "$p"; done
	end=$(date +%s.%N)
	if [ -n "$perfpid" ]; then
		kill -INT "$perfpid"
		wait "$perfpid" || true
		# The cluster's processes, to tell them from other PostgreSQL on the machine.
		{ echo "$PG"; pgrep -P "$PG"; } | paste -sd, >"$PERF/$label.pids"
	fi
	local c1 p1 tick w1
	c1=$(cpu "${nodepids[@]}")
	p1=$(pgcpu)
	w1=$(walstats)
	[ -n "$dbname" ] || w1=$w0 # the embedded store's runs: no figure
	read -r ws0 wb0 wf0 <<<"$w0"
	read -r ws1 wb1 wf1 <<<"$w1"
	tick=$(getconf CLK_TCK)
	awk -v l="$label" -v n="$N" -v s="$start" -v e="$end" -v pc=$((c1 - c0)) -v gc=$((p1 - p0)) -v tk="$tick" -v nodes="$nodes" \
		-v ws=$((ws1 - ws0)) -v wb=$((wb1 - wb0)) -v wf=$((wf1 - wf0)) 'BEGIN { printf "%-12s nodes=%d delivered/s=%7.0f  petrel CPU s/1000 msgs=%5.2f  postgres CPU s/1000 msgs=%5.2f", l, nodes, n / (e - s), pc / tk / n * 1000, gc / tk / n * 1000
			if (ws > 0) printf "  WAL flushes=%d (%.1f msgs each) WAL KB/msg=%.1f FPI/msg=%.2f", ws, n / ws, wb / n / 1024, wf / n
			printf "\n" }' |
		tee -a "$WORK/results"
	if [ "$STATEMENTS" = 1 ] && [ -n "$dbname" ]; then
		pgq "$dbname" "SELECT round(calls::numeric / $N, 2) AS per_msg, round(plans::numeric / $N, 2) AS plans_per_msg,
			round(total_exec_time::numeric / $N, 3) AS ms_per_msg,
			left(regexp_replace(query, '\s+', ' ', 'g'), 110) AS statement
			FROM pg_stat_statements JOIN pg_database d ON d.oid = dbid WHERE d.datname = '$dbname' AND calls >= $N / 10
			ORDER BY calls DESC LIMIT 25"
	fi
	for p in "${nodepids[@]}"; do kill "$p"; wait "$p" 2>/dev/null || true; done
}

pgq() { psql -q -h "$WORK/pg" -U postgres -d "$1" -c "$2"; }
k=0
uptime
# The settings the figures depend on, as the cluster runs them (PostgreSQL's defaults but
# for shared_buffers).
psql -qAt -h "$WORK/pg" -U postgres -d postgres -c "SELECT 'PostgreSQL ' || current_setting('server_version') || ': ' ||
	string_agg(name || '=' || current_setting(name), ' ' ORDER BY name) FROM pg_settings
	WHERE name IN ('fsync', 'synchronous_commit', 'full_page_writes', 'wal_compression', 'shared_buffers',
		'wal_sync_method', 'checkpoint_timeout', 'max_wal_size', 'default_toast_compression', 'gin_pending_list_limit')"
for r in $RUNS; do
	k=$((k + 1))
	case "$r" in
	embedded | base-embedded) run "$r$k" 1 'backend = "sqlite"' ;;
	postgres[1-9] | base-postgres[1-9])
		pgq postgres "CREATE DATABASE run$k"
		pgq "run$k" 'CREATE EXTENSION pg_stat_statements'
		run "${r%[1-9]}$k" "${r#*postgres}" "backend = \"postgres\""$'\n'"dsn = \"host=$WORK/pg user=postgres dbname=run$k sslmode=disable\""$'\n'"${POOL:+pool_size = $POOL}" "run$k"
		;;
	*) echo "pgnodes.sh: unknown configuration $r" >&2; exit 2 ;;
	esac
done
uptime
# The issue's ratio: one node on PostgreSQL against the same node on the embedded store,
# medians over the alternating runs (and the base-* runs' against the same embedded node),
# with the median CPU per 1000 messages of each.
awk 'function field(name,   v) { if (!match($0, name "= *[0-9.]+")) return ""; v = substr($0, RSTART, RLENGTH); sub(/.*= */, "", v); return v }
	{ k = $1; sub(/[0-9]+$/, "", k)
	if ($2 == "nodes=1") { rate[k] = rate[k] " " field("delivered/s"); pc[k] = pc[k] " " field("petrel CPU s/1000 msgs"); gc[k] = gc[k] " " field("postgres CPU s/1000 msgs") } }
	function median(list,   a, n, i, j, t) {
		n = split(list, a, " ")
		for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] + 0 < a[i] + 0) { t = a[i]; a[i] = a[j]; a[j] = t }
		return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
	}
	END { if (rate["embedded"] == "") exit
		e = median(rate["embedded"])
		printf "one node, median: embedded %.0f/s (%s), petrel CPU s/1000 msgs %.2f\n", e, rate["embedded"], median(pc["embedded"])
		split("postgres base-postgres base-embedded", ks, " ")
		for (i = 1; i <= 3; i++) { k = ks[i]; if (rate[k] == "") continue
			printf "one node, median: %s %.0f/s (%s), petrel CPU s/1000 msgs %.2f, postgres CPU s/1000 msgs %.2f: %.0f%% of embedded\n",
				k, median(rate[k]), rate[k], median(pc[k]), median(gc[k]), 100 * median(rate[k]) / e } }' "$WORK/results"
