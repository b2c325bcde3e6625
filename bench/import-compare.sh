#!/usr/bin/env bash
# import-compare.sh: `petrel import maildir` against `doveadm import` of the same Maildir, in
# one run on this machine (issue 16: Petrel at least 3x Dovecot over 100,000 messages).
#
#   bash bench/import-compare.sh                  # 100,000 messages, both importers
#   bash bench/import-compare.sh -n 20000         # fewer messages
#
# Options:
#   -n N         messages in the Maildir (default 100000), 1 to 8 KB each, in INBOX and two
#                folders, with a dovecot-uidlist per folder as Dovecot writes it (so Petrel
#                keeps the UIDs, its slower path) and flags in the file names
#   --keep DIR   work in DIR and keep it (default: a temporary directory, removed at exit)
#   --only WHO   "petrel" or "dovecot"
#
# Dovecot imports with `doveadm import` into a Maildir of its own, with
# maildir_copy_with_hardlinks = no: with it, doveadm links the source's files instead of
# writing them (same file system), which is not an import of the bytes. Both read the same
# source, already in the page cache (it is read once before either runs). Needs root (Dovecot
# refuses to run mail access as root, so it runs as nobody) and the Debian package
# dovecot-core. Nothing listens on the network: doveadm import works on files, and the run is
# in a network namespace of its own (unshare -n) anyway. The Dovecot daemon runs only for
# doveadm's user look-up (auth), with no protocol listener.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
N=100000 KEEP="" ONLY=""
while [ $# -gt 0 ]; do
	case "$1" in
	-n) N=$2; shift 2 ;;
	--keep) KEEP=$2; shift 2 ;;
	--only) ONLY=$2; shift 2 ;;
	-h | --help) sed -n '2,/^set -e/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
	*) echo "import-compare.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
	esac
done
if [ "$(id -u)" -ne 0 ]; then
	echo "import-compare.sh: run as root (doveadm runs the mail access as nobody)" >&2
	exit 2
fi
if [ -z "${IMPORT_COMPARE_NETNS:-}" ]; then
	# Re-run inside a network namespace of our own: nothing here needs the network.
	export IMPORT_COMPARE_NETNS=1
	exec unshare -n bash "$0" -n "$N" ${KEEP:+--keep "$KEEP"} ${ONLY:+--only "$ONLY"}
fi
command -v doveadm >/dev/null || [ "$ONLY" = petrel ] || { echo "import-compare.sh: doveadm missing (apt-get install dovecot-core)" >&2; exit 2; }

if [ -n "$KEEP" ]; then
	W=$KEEP
	mkdir -p "$W"
else
	W=$(mktemp -d /tmp/petrel-import-compare.XXXXXX)
	trap 'rm -rf "$W"' EXIT
fi
chmod 755 "$W"
log() { printf '%s import-compare: %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
now() { date +%s.%N; }

log "building petrel"
(cd "$ROOT" && go build -o "$W/petrel" ./cmd/petrel)

SRC=$W/src
if [ ! -e "$SRC/.done-$N" ]; then
	log "writing a Maildir of $N messages"
	rm -rf "$SRC"
	python3 - "$SRC" "$N" <<'EOF'
import os, random, sys
root, n = sys.argv[1], int(sys.argv[2])
rng = random.Random(16)
words = ("mail server message import folder backup delivery account the of and to in "
         "is that for with as on by this from at be are it an or was which").split()
folders = ["", ".Archive", ".Lists.Go"]          # Maildir++: INBOX, Archive, Lists/Go
share = [0.6, 0.3, 0.1]
per = [int(n * s) for s in share]
per[0] += n - sum(per)
flags = ["", "S", "S", "S", "RS", "FS", "S"]
base = 1700000000
k = 0
for f, count in zip(folders, per):
    d = os.path.join(root, f) if f else root
    for sub in ("cur", "new", "tmp"):
        os.makedirs(os.path.join(d, sub), exist_ok=True)
    lines = ["3 V%d N%d G%032x\n" % (base + len(f), count + 1, rng.getrandbits(128))]
    for uid in range(1, count + 1):
        k += 1
        size = rng.randint(1024, 8192)
        body = []
        while sum(len(l) for l in body) < size:
            body.append(" ".join(rng.choice(words) for _ in range(12)) + "\n")
        msg = ("Return-Path: <sender%d@example.net>\n"
               "Received: from mx.example.net by mail.example.org; Mon, 7 Dec 2026 12:%02d:%02d +0000\n"
               "From: Sender %d <sender%d@example.net>\n"
               "To: bench@example.test\n"
               "Subject: message %d about %s\n"
               "Date: Mon, 7 Dec 2026 12:%02d:%02d +0000\n"
               "Message-ID: <%d.bench@example.net>\n"
               "MIME-Version: 1.0\n"
               "Content-Type: text/plain; charset=utf-8\n\n" % (
                   k % 500, k % 60, k % 60, k % 500, k % 500, k, rng.choice(words),
                   k % 60, k % 60, k)) + "".join(body)
        name = "%d.M%dP%d.bench" % (base + k, k, k)
        fl = rng.choice(flags)
        path = os.path.join(d, "cur", "%s,S=%d:2,%s" % (name, len(msg), fl))
        with open(path, "w") as fh:
            fh.write(msg)
        t = base + k
        os.utime(path, (t, t))
        lines.append("%d :%s,S=%d\n" % (uid, name, len(msg)))
    with open(os.path.join(d, "dovecot-uidlist"), "w") as fh:
        fh.writelines(lines)
EOF
	touch "$SRC/.done-$N"
fi
chmod -R a+rX "$SRC"
BYTES=$(find "$SRC" -path '*/cur/*' -type f -printf '%s\n' | awk '{s+=$1} END {print s}')
COUNT=$(find "$SRC" -path '*/cur/*' -type f | wc -l)
log "source: $COUNT messages, $BYTES bytes; reading it into the page cache"
find "$SRC" -type f -exec cat {} + >/dev/null

report() { # name seconds
	awk -v who="$1" -v s="$2" -v n="$COUNT" -v b="$BYTES" \
		'BEGIN { printf "%-8s %8.1f s %9.0f msgs/s %7.2f MB/s\n", who, s, n / s, b / s / 1e6 }'
}

petrel_run() {
	local data=$W/petrel-data
	rm -rf "$data"
	"$W/petrel" --data "$data" account add bench@example.test <<<"bench-password-1" >/dev/null
	log "petrel import maildir"
	local t0 t1
	t0=$(now)
	"$W/petrel" --data "$data" import maildir bench@example.test "$SRC" >"$W/petrel-import.out"
	sync -f "$data"
	t1=$(now)
	PETREL_S=$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')
	report petrel "$PETREL_S"
	du -sh "$data" >&2
}

dovecot_run() {
	local d=$W/dovecot
	rm -rf "$d"
	mkdir -p "$d/mail/bench" "$d/run" "$d/state"
	chmod -R 755 "$d"
	local uid gid
	uid=$(id -u nobody) gid=$(id -g nobody)
	chown -R nobody: "$d/mail"
	echo "bench:{PLAIN}x:$uid:$gid::$d/mail/bench" >"$d/passwd"
	cat >"$d/dovecot.conf" <<EOF
base_dir = $d/run
state_dir = $d/state
instance_name = petrel-import-compare-$$
protocols = none
# doveadm asks the auth service for the user: the daemon runs for it, with no listener.
default_internal_user = dovecot
default_login_user = dovenull
service anvil {
  chroot =
}
service auth {
  unix_listener auth-userdb {
    mode = 0666
  }
}
first_valid_uid = $uid
first_valid_gid = $gid
mail_location = maildir:$d/mail/%u
maildir_copy_with_hardlinks = no
log_path = $d/dovecot.log
passdb {
  driver = passwd-file
  args = scheme=PLAIN $d/passwd
}
userdb {
  driver = passwd-file
  args = $d/passwd
}
EOF
	dovecot -F -c "$d/dovecot.conf" &
	DOVECOT_PID=$!
	for _ in $(seq 100); do [ -S "$d/run/auth-userdb" ] && break; sleep 0.1; done
	# Dovecot keeps its index in the source Maildir and locks dovecot-uidlist to read it: it
	# gets a copy of its own, owned by its user, indexed before the clock starts (as a
	# Maildir that Dovecot served has its index).
	log "copying the source for Dovecot and indexing it"
	rm -rf "$W/src-dovecot"
	cp -a "$SRC" "$W/src-dovecot"
	chown -R nobody: "$W/src-dovecot"
	doveadm -c "$d/dovecot.conf" -o "mail_location=maildir:$W/src-dovecot" mailbox status -u bench messages '*' >/dev/null
	log "doveadm import"
	local t0 t1
	t0=$(now)
	doveadm -c "$d/dovecot.conf" import -u bench "maildir:$W/src-dovecot" "" all
	sync -f "$d/mail"
	t1=$(now)
	DOVECOT_S=$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')
	report dovecot "$DOVECOT_S"
	du -sh "$d/mail" >&2
	local got
	got=$(doveadm -c "$d/dovecot.conf" -f flow mailbox status -u bench messages '*' | awk -F= '{s+=$2} END {print s}')
	[ "$got" = "$COUNT" ] || echo "dovecot holds $got messages, want $COUNT" >&2
	kill "$DOVECOT_PID"
	wait "$DOVECOT_PID" || true
}

log "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
# The order alternates by the minute, so a long series does not always favour one.
if [ $(( $(date +%M) % 2 )) = 0 ]; then order="petrel dovecot"; else order="dovecot petrel"; fi
for who in $order; do
	[ -z "$ONLY" ] || [ "$ONLY" = "$who" ] || continue
	"${who}_run"
done
if [ -z "$ONLY" ]; then
	awk -v p="$PETREL_S" -v d="$DOVECOT_S" 'BEGIN { printf "petrel/dovecot: %.2fx\n", d / p }'
fi
log "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
