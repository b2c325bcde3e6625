#!/usr/bin/env bash
# compare.sh: Petrel side by side with Postfix + Dovecot, same machine, same run.
#
#   bash bench/compare.sh                 # full comparison: 3 rounds, about 14 minutes on 2 cores
#   bash bench/compare.sh --quick         # smoke: 1 round, small loads, about 2 minutes
#   bash bench/compare.sh --profile       # also CPU and allocation profiles of Petrel's hot paths
#
# Options:
#   --rounds N     rounds (default 3; --quick: 1); each round runs every scenario against every
#                  target, alternating which target goes first
#   --quick        small loads and 1 round, for CI smoke and for trying changes
#   --profile      after the rounds, run each profiled scenario once more against a Petrel
#                  started with --cpuprofile/--memprofile and add `go tool pprof -top` summaries
#   --only REGEX   run only the scenarios whose id matches (grep -E)
#   --out DIR      where results go (default bench/results/YYYYMMDD-HHMMSS)
#   --keep         keep the temporary directory (configs, logs, mail) for inspection
#   --targets LIST which servers, default "petrel anchor"; "petrel" alone needs neither root
#                  nor Postfix/Dovecot (the CI smoke test, bench/smoke_test.go, runs that)
#   --users N      recipient and POP3 accounts of each kind (default 100)
#
# With the anchor it needs root (Postfix's master starts as root; packages are installed if
# missing). It needs Go. Everything listens on 127.0.0.1 on free ports; Postfix, Dovecot and Petrel run as
# instances of their own under a temporary directory, removed at exit.
#
# Layout: targets/*.sh describe the servers (petrel, anchor), scenarios/NN-*.sh the
# measurements; cmd/petrel-compare turns the raw JSON of cmd/petrel-load into the table.
# Adding a scenario is one file in scenarios/: see scenarios/README.md.
set -euo pipefail

BENCH=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$BENCH/.." && pwd)

ROUNDS=3 QUICK=0 PROFILE=0 ONLY="" OUT="" KEEP=0 TARGET_LIST="petrel anchor" USERS=100
while [ $# -gt 0 ]; do
	case "$1" in
	--rounds) ROUNDS=$2; shift 2 ;;
	--quick) QUICK=1; shift ;;
	--profile) PROFILE=1; shift ;;
	--only) ONLY=$2; shift 2 ;;
	--out) OUT=$2; shift 2 ;;
	--keep) KEEP=1; shift ;;
	--targets) TARGET_LIST=$2; shift 2 ;;
	--users) USERS=$2; shift 2 ;;
	-h | --help) sed -n '2,/^set -e/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
	*) echo "compare.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
	esac
done
if [ "$QUICK" = 1 ] && [ "$ROUNDS" = 3 ]; then ROUNDS=1; fi
read -r -a TARGETS <<<"$TARGET_LIST"
with_anchor() { case " $TARGET_LIST " in *" anchor "*) return 0 ;; *) return 1 ;; esac; }
if with_anchor && [ "$(id -u)" -ne 0 ]; then
	echo "compare.sh: run as root (Postfix's master needs it): sudo bash $0 $*" >&2
	exit 2
fi

# Accounts and the shared password: USERS recipients user1..userN for SMTP, USERS POP3
# mailboxes pop1..popN holding the retrieval corpus, and IMAP_USERS mailboxes imap1..imapN
# holding the IMAP corpus (scenarios/60-imap.sh).
PASS=bench-password-1
IMAP_USERS=8
export PASS

log() { printf '%s compare: %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

# ---------------------------------------------------------------- packages
install_anchor() {
	if command -v postfix >/dev/null && command -v dovecot >/dev/null && [ -x /usr/lib/dovecot/pop3 ] &&
		[ -x /usr/lib/dovecot/lmtp ] && [ -x /usr/lib/dovecot/imap ]; then
		return
	fi
	log "installing postfix and dovecot from Debian (their own daemons kept stopped)"
	# A policy-rc.d that denies starts keeps the packages' daemons off the standard ports; the
	# one in place before, if any, comes back byte for byte.
	local policy=/usr/sbin/policy-rc.d saved="" rc=0
	if [ -e "$policy" ]; then saved=$(mktemp); cp -p "$policy" "$saved"; fi
	printf '#!/bin/sh\nexit 101\n' >"$policy"
	chmod +x "$policy"
	export DEBIAN_FRONTEND=noninteractive
	echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
	apt-get update -q && apt-get install -y -q --no-install-recommends \
		postfix dovecot-core dovecot-pop3d dovecot-imapd dovecot-lmtpd openssl || rc=$?
	if [ -n "$saved" ]; then cp -p "$saved" "$policy"; rm -f "$saved"; else rm -f "$policy"; fi
	return "$rc"
}
if with_anchor; then install_anchor; fi

# ---------------------------------------------------------------- work directory, cleanup
WORK=$(mktemp -d /tmp/petrel-compare.XXXXXX)
STARTED_TARGETS=()
BG_PIDS=() # helpers a scenario file starts for the whole run (70-outbound.sh's DNS server)
cleanup() {
	local t
	[ ${#BG_PIDS[@]} = 0 ] || kill "${BG_PIDS[@]}" 2>/dev/null || true
	for t in "${STARTED_TARGETS[@]}"; do
		"${t}_stop" || true
		[ -d "${OUT:-}/logs" ] && "${t}_logs" >"$OUT/logs/server-$t.log" 2>&1 || true
	done
	if [ "$KEEP" = 1 ]; then log "kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

STAMP=$(date -u +%Y%m%d-%H%M%S)
OUT=${OUT:-$BENCH/results/$STAMP}
mkdir -p "$OUT/raw" "$OUT/logs"
MANIFEST=$OUT/manifest.tsv
: >"$MANIFEST"

# ---------------------------------------------------------------- binaries
log "building petrel, petrel-load, petrel-compare"
BIN=$WORK/bin
mkdir -p "$BIN"
# PETREL_BIN: a petrel binary built elsewhere (an A/B run against another revision, see
# mailauth-relay.sh outbound-ab) instead of this tree's.
if [ -n "${PETREL_BIN:-}" ]; then cp "$PETREL_BIN" "$BIN/petrel"; else (cd "$ROOT" && go build -o "$BIN/petrel" ./cmd/petrel); fi
(cd "$ROOT" && go build -o "$BIN/petrel-load" ./bench/cmd/petrel-load && go build -o "$BIN/petrel-compare" ./bench/cmd/petrel-compare)
PETREL=$BIN/petrel LOAD=$BIN/petrel-load COMPARE=$BIN/petrel-compare

# ---------------------------------------------------------------- helpers for targets and scenarios
PORTS=$WORK/ports
# shellcheck source=lib.sh
. "$BENCH/lib.sh"

all_accounts() {
	local i
	for i in $(seq "$USERS"); do echo "user$i@example.test"; done
	for i in $(seq "$USERS"); do echo "pop$i@example.test"; done
	for i in $(seq "$IMAP_USERS"); do echo "imap$i@example.test"; done
}

# A self-signed certificate for localhost, served by all three.
CERT=$WORK/tls/cert.pem KEY=$WORK/tls/key.pem
mkdir -p "$WORK/tls"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=localhost \
	-addext subjectAltName=DNS:localhost -keyout "$KEY" -out "$CERT" 2>/dev/null
chmod 644 "$KEY" # Dovecot's and Postfix's unprivileged processes read it; it protects nothing

# scale N prints N, or N/20 (at least 1) in --quick mode.
scale() {
	if [ "$QUICK" = 1 ]; then echo $(((${1} + 19) / 20)); else echo "$1"; fi
}

# span SECONDS prints a duration for a time-bounded run: SECONDS, or 1 s in --quick mode.
span() {
	if [ "$QUICK" = 1 ]; then echo 1s; else echo "${1}s"; fi
}

# load runs petrel-load with the settings every scenario shares; the JSON goes to stdout.
load() {
	local sc=$1
	shift
	"$LOAD" "$sc" -json -allow-errors -cafile "$CERT" -servername localhost "$@"
}

# ---------------------------------------------------------------- scenario registry
# A scenario file (scenarios/NN-name.sh) calls these at load time:
#   scenario ID "TITLE" "NEEDS" COMMAND...   COMMAND runs one measurement against the target
#                                           described by T_* and prints petrel-load's JSON;
#                                           NEEDS lists capabilities (smtp submission pop3 imap
#                                           outbound); a target without one shows n/a. A
#                                           COMMAND of "-" is a placeholder: n/a everywhere.
#   metric ID JSONKEY "LABEL" higher|lower [GOAL]
#                                           a row of the table: JSONKEY is a dotted path into
#                                           the JSON (ops_per_sec, delivery.per_sec,
#                                           idle.pss_kb_per_conn); GOAL bounds the ratio
#                                           Petrel/anchor, e.g. ">=3" or "<=0.1"
#   prepare ID COMMAND...                   untimed, before each run of ID against a target
#   profile ID                              profile Petrel on this scenario with --profile
SCENARIOS=()
declare -A SC_TITLE SC_NEEDS SC_CMD SC_PREP SC_PROFILE
scenario() {
	local id=$1 title=$2 needs=$3
	shift 3
	SCENARIOS+=("$id")
	SC_TITLE[$id]=$title SC_NEEDS[$id]=$needs SC_CMD[$id]="$*"
	printf 'scenario\t%s\t%s\t%s\n' "$id" "$title" "$needs" >>"$MANIFEST"
}
metric() {
	printf 'metric\t%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" "${5:-}" >>"$MANIFEST"
}
prepare() {
	local id=$1
	shift
	SC_PREP[$id]="$*"
}
profile() { SC_PROFILE[$1]=1; }

# restart_target restarts the current target's servers (for a prepare step).
restart_target() { "${T_NAME}_restart"; }

# has_cap CAP: whether the current target (T_CAPS) has it.
has_cap() { case " $T_CAPS " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }

for f in "$BENCH"/scenarios/[0-9]*.sh; do
	# shellcheck source=/dev/null
	. "$f"
done
# A target file (targets/NAME.sh; NAME without a dash) defines:
#   NAME_label        its name in the table
#   NAME_setup        configure and start it on free ports, with the accounts of all_accounts
#   NAME_stop         stop everything it started (also called after a failed setup)
#   NAME_restart      restart the servers (fresh processes)
#   NAME_use          set T_NAME, T_LABEL, T_CAPS and the T_* addresses for the scenarios
#   NAME_pids         print the PIDs whose process trees serve POP3/IMAP (memory figures)
#   NAME_cpu_pids     print the PIDs whose process trees do the target's work (server CPU)
#   NAME_logs         print what its logs hold worth keeping (warnings, errors)
for f in "$BENCH"/targets/*.sh; do
	# shellcheck source=/dev/null
	. "$f"
done

# runnable TARGET ID: whether the target can run the scenario; if not, an n/a record says why.
runnable() {
	local t=$1 id=$2 cap
	"${t}_use"
	for cap in ${SC_NEEDS[$id]}; do
		if ! has_cap "$cap"; then
			printf 'na\t%s\t%s\t%s\n' "$id" "$t" "no $cap" >>"$MANIFEST"
			return 1
		fi
	done
	if [ "${SC_CMD[$id]}" = "-" ]; then
		printf 'na\t%s\t%s\t%s\n' "$id" "$t" "no load scenario yet" >>"$MANIFEST"
		return 1
	fi
}

# prepare_one TARGET ID: the scenario's untimed preparation, if it has one.
prepare_one() {
	"${1}_use"
	if [ -n "${SC_PREP[$2]:-}" ]; then
		eval "${SC_PREP[$2]}" >>"$OUT/logs/prepare.log" 2>&1 || log "prepare $2 on $1 failed (see logs/prepare.log)"
	fi
}

# cpu_ticks prints the machine's busy and total CPU ticks (all cores) from /proc/stat.
cpu_ticks() {
	awk '/^cpu / { t = 0; for (i = 2; i <= NF; i++) t += $i; print t - $5 - $6, t }' /proc/stat
}

# server_ticks TARGET prints the CPU ticks (user and system) spent so far by the target's
# servers: every process of the trees of ${TARGET}_cpu_pids, each with the ticks of
# the children it has waited for. Dovecot's per-session processes that ended are then
# counted in their parent (the master), those still running in themselves, none twice.
server_ticks() {
	local pids
	pids=$("${1}_cpu_pids" 2>/dev/null | tr '\n,' '  ') || true
	[ -n "$pids" ] || { echo 0; return; }
	ps -e -o pid=,ppid= | awk -v roots="$pids" '
		{ parent[$1] = $2; n++; pid[n] = $1 }
		END {
			split(roots, r, " "); for (i in r) keep[r[i]] = 1
			do {
				added = 0
				for (i = 1; i <= n; i++) if (!(pid[i] in keep) && (parent[pid[i]] in keep)) { keep[pid[i]] = 1; added = 1 }
			} while (added)
			for (p in keep) print p
		}' | while read -r p; do
		# The command name (field 2) may hold spaces: count the fields after its ")".
		sed 's/^.*) //' "/proc/$p/stat" 2>/dev/null | awk '{ print $12 + $13 + $14 + $15 }'
	done | awk '{ t += $1 } END { print t + 0 }'
}

# add_server_cpu FILE TICKS adds the servers' CPU over the run to petrel-load's JSON in FILE:
# server_cpu_s, and server_cpu_us_per_op (CPU per message or command). Unlike the rates it
# does not depend on how much of the machine each server got, so it compares them fairly
# on a loaded machine.
add_server_cpu() {
	local f=$1 ticks=$2 hz ops
	hz=$(getconf CLK_TCK)
	ops=$(sed -n 's/^  "ops": \([0-9]*\),$/\1/p' "$f")
	[ -n "$ops" ] && [ "$ops" -gt 0 ] || return 0
	awk -v t="$ticks" -v hz="$hz" -v ops="$ops" '
		/^  "ops": / { printf "  \"server_cpu_s\": %.3f,\n  \"server_cpu_us_per_op\": %.2f,\n", t / hz, t / hz * 1e6 / ops }
		{ print }' "$f" >"$f.tmp" && mv "$f.tmp" "$f"
}

# measure ROUND TARGET ID [FILE]: one measurement; the JSON goes to raw/ (or FILE), with the
# servers' CPU added (add_server_cpu). How busy the CPUs were meanwhile (server and load
# tool together) goes to the manifest: near 100% means the run was CPU-bound on this machine.
# The servers' CPU time also goes to server-cpu.tsv: scenario, target, round, milliseconds.
measure() {
	local round=$1 t=$2 id=$3
	local out=${4:-$OUT/raw/r$round-$t-$id.json}
	"${t}_use"
	local t0=$SECONDS b0 n0 b1 n1 s0 s1 ms
	echo "== round $round $t $id: ${SC_CMD[$id]}" >>"$OUT/logs/load.log"
	read -r b0 n0 < <(cpu_ticks)
	s0=$(server_ticks "$t")
	if ! eval "${SC_CMD[$id]}" >"$out" 2>>"$OUT/logs/load.log"; then
		log "round $round $t $id: petrel-load failed (see logs/load.log)"
	fi
	s1=$(server_ticks "$t")
	add_server_cpu "$out" $((s1 - s0))
	read -r b1 n1 < <(cpu_ticks)
	if [ "$round" != profile ] && [ "$n1" -gt "$n0" ]; then
		printf 'cpu\t%s\t%s\t%s\t%s\n' "$id" "$t" "$round" "$(((b1 - b0) * 100 / (n1 - n0)))" >>"$MANIFEST"
	fi
	ms=$(((s1 - s0) * 1000 / $(getconf CLK_TCK)))
	printf '%s\t%s\t%s\t%s\n' "$id" "$t" "$round" "$ms" >>"$OUT/server-cpu.tsv"
	log "round $round $t $id: $((SECONDS - t0)) s, server CPU $ms ms"
}

# ---------------------------------------------------------------- machine
{
	printf 'info\tdate\t%s\n' "$(date -u '+%Y-%m-%d %H:%M UTC')"
	printf 'info\tcpu\t%s\n' "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')"
	printf 'info\tnproc\t%s\n' "$(nproc)"
	printf 'info\tmemory\t%s\n' "$(awk '/MemTotal/ {printf "%.1f GB", $2/1e6}' /proc/meminfo)"
	printf 'info\tkernel\t%s\n' "$(uname -r)"
	printf 'info\tdisk\t%s\n' "$(df -T "$WORK" | awk 'NR==2 {print $1 " (" $2 ")"}')"
	# The disk's rate of synchronous 4 KB writes: what a one-fsync-per-message server gets.
	dd_out=$(dd if=/dev/zero of="$WORK/dsync.test" bs=4k count=300 oflag=dsync 2>&1 | tail -1)
	rm -f "$WORK/dsync.test"
	printf 'info\tfsync\t%s\n' "$(echo "$dd_out" | awk -F, '{gsub(/^ +/, "", $3); print $3}') ~ $(echo "$dd_out" | awk '{for (i=1;i<=NF;i++) if ($i=="s,") print int(300/$(i-1))}') synchronous 4 KB writes/s (dd oflag=dsync)"
	printf 'info\tgo\t%s\n' "$(go version | cut -d' ' -f3)"
	printf 'info\tpostfix\t%s\n' "$(postconf -dh mail_version)"
	printf 'info\tdovecot\t%s\n' "$(dovecot --version)"
	printf 'info\tpetrel\t%s\n' "$(cd "$ROOT" && git describe --always --dirty 2>/dev/null || echo unknown)"
	printf 'info\tload_before\t%s\n' "$(cut -d' ' -f1-3 /proc/loadavg)"
	printf 'info\trounds\t%s\n' "$ROUNDS"
	printf 'info\tmode\t%s\n' "$([ "$QUICK" = 1 ] && echo quick || echo full)"
	printf 'info\tdovecot login processes\t%s\n' "${ANCHOR_LOGIN_MODE:-performance} mode"
	for t in "${TARGETS[@]}"; do
		lbl="${t}_label"
		printf 'target\t%s\t%s\n' "$t" "${!lbl}"
	done
} >>"$MANIFEST"

# ---------------------------------------------------------------- start
# Thousands of idle connections need descriptors: on both sides.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
for t in "${TARGETS[@]}"; do
	log "starting $t"
	STARTED_TARGETS+=("$t")
	"${t}_setup" >"$OUT/logs/setup-$t.log" 2>&1 || { log "$t did not start:"; cat "$OUT/logs/setup-$t.log" >&2; exit 1; }
done

selected() { [ -z "$ONLY" ] || echo "$1" | grep -Eq -- "$ONLY"; }

# ---------------------------------------------------------------- rounds
for round in $(seq "$ROUNDS"); do
	order=("${TARGETS[@]}")
	if [ $((round % 2)) = 0 ] && [ ${#TARGETS[@]} = 2 ]; then order=("${TARGETS[1]}" "${TARGETS[0]}"); fi
	log "round $round of $ROUNDS (first: ${order[0]}; load average $(cut -d' ' -f1-3 /proc/loadavg))"
	for id in "${SCENARIOS[@]}"; do
		selected "$id" || continue
		for t in "${order[@]}"; do
			runnable "$t" "$id" || continue
			prepare_one "$t" "$id"
			measure "$round" "$t" "$id"
		done
	done
done

# ---------------------------------------------------------------- profiles
if [ "$PROFILE" = 1 ]; then
	mkdir -p "$OUT/profiles"
	for id in "${SCENARIOS[@]}"; do
		[ -n "${SC_PROFILE[$id]:-}" ] && selected "$id" || continue
		runnable petrel "$id" || continue
		log "profiling petrel on $id"
		prepare_one petrel "$id"
		petrel_profile_start "$OUT/profiles/$id"
		measure profile petrel "$id" "$OUT/profiles/$id.json"
		petrel_profile_stop
		# The profiling restart empties Petrel's cache of verified passwords, so the profile
		# holds one argon2id hash per account logging in; a running server has them cached.
		# Its share is printed, then it is left out of the listing.
		{
			echo "## $id: argon2id (first logins after the restart)"
			go tool pprof -top -nodecount=1 -focus=argon2 "$PETREL" "$OUT/profiles/$id.cpu" 2>/dev/null |
				grep -E '^(Duration|Showing nodes)' || true
			echo
			echo "## $id: CPU without argon2id, by cumulative time"
			go tool pprof -top -cum -nodecount=40 -ignore=argon2 "$PETREL" "$OUT/profiles/$id.cpu" 2>/dev/null | grep -v -E '^(File|Build ID|Type|Time):'
			echo
			echo "## $id: CPU without argon2id, by own time"
			go tool pprof -top -nodecount=20 -ignore=argon2 "$PETREL" "$OUT/profiles/$id.cpu" 2>/dev/null | grep -v -E '^(File|Build ID|Type|Time|Duration):|Active filters|ignore='
			echo
			echo "## $id: allocations (alloc_space, without argon2id)"
			go tool pprof -top -nodecount=25 -ignore=argon2 -sample_index=alloc_space "$PETREL" "$OUT/profiles/$id.mem" 2>/dev/null | grep -v -E '^(File|Build ID|Type|Time):'
			echo
		} >"$OUT/profiles/$id.txt"
	done
fi

printf 'info\tload_after\t%s\n' "$(cut -d' ' -f1-3 /proc/loadavg)" >>"$MANIFEST"
printf 'info\tduration\t%s s\n' "$SECONDS" >>"$MANIFEST"

# ---------------------------------------------------------------- table
args=(-manifest "$MANIFEST" -raw "$OUT/raw" -md "$OUT/results.md" -json "$OUT/results.json")
[ "$PROFILE" = 1 ] && args+=(-profiles "$OUT/profiles")
"$COMPARE" table "${args[@]}"
cat "$OUT/results.md"
log "results in $OUT (results.md, results.json, raw/, logs/)"
