#!/bin/bash
# Memory and CPU at rest of `petrel fetch --idle` with N IMAP accounts (default 20), next to
# fetchmail --idle (one process per account: fetchmail IDLEs on one server per process), all
# against a development instance of petrel serve. Needs fixed ports: run it in its own network
# namespace, under the shared bench lock, with the binary built as dist/debian builds it:
#   CGO_ENABLED=0 go build -trimpath -o /tmp/petrel ./cmd/petrel
#   flock /work/bench.lock unshare -n bench/idle-clients.sh /tmp/petrel [/tmp/petrel-before ...]
# Several petrel binaries are measured in turn (A/B in one run); fetchmail once, last
# (FETCHMAIL=0 skips it). For each client it prints, once all accounts are in IDLE and the run
# has been quiet for SETTLE seconds (default 20): VmRSS, its anonymous and file parts, PSS
# (smaps_rollup, summed over fetchmail's processes), threads, the load average, and the CPU ticks (1/100 s) used
# in the next REST seconds (default 60) without mail. Then one message is delivered to the
# first account over SMTP; the script checks that it is archived, and measures VmRSS and PSS
# again once the run is back at rest (petrel gives memory back 2 s after a sync; we wait 10).
# Each run takes about 2 minutes per client; keep a locked run under 8 minutes.
set -e
N=${N:-20}
SETTLE=${SETTLE:-20}
REST=${REST:-60}
[ $# -ge 1 ] || { echo "usage: idle-clients.sh PETREL-BINARY [MORE-PETREL-BINARIES...]" >&2; exit 2; }
ip link set lo up
echo "# $(date -u +%FT%TZ) N=$N SETTLE=${SETTLE}s REST=${REST}s; $(uptime)"

ticks() { local t=0 p; for p in "$@"; do t=$((t + $(awk '{print $14+$15}' /proc/$p/stat))); done; echo $t; }
kb() { local f=$1 k=$2; shift 2; local s=0 p; for p in "$@"; do s=$((s + $(awk -v k="$k:" '$1==k{print $2}' /proc/$p/$f))); done; echo $s; }
load() { echo "load average $(cut -d' ' -f1-3 /proc/loadavg)"; }
mem() { echo "VmRSS $(kb status VmRSS "$@") kB (anon $(kb status RssAnon "$@"), file $(kb status RssFile "$@")), PSS $(kb smaps_rollup Pss "$@") kB"; }

# serve DIR: a development instance with N accounts u1..uN@example.test.
serve() {
	"$PETREL" --data "$1/data" serve > "$1/serve.log" 2>&1 &
	SERVE=$!
	for i in $(seq 1 300); do (echo > /dev/tcp/127.0.0.1/2143) 2>/dev/null && break; sleep 0.1; done
	for i in $(seq 1 $N); do echo "pw-secret-$i" | "$PETREL" --data "$1/data" account add u$i@example.test >/dev/null; done
}
idle_conns() { ss -tn state established '( dport = :2143 )' | tail -n +2 | wc -l; }
push() {
	python3 - <<PY
import smtplib
s=smtplib.SMTP("127.0.0.1",2525)
s.sendmail("a@example.test",["u1@example.test"],b"From: a@example.test\r\nTo: u1@example.test\r\nSubject: push\r\n\r\nhi\r\n")
s.quit()
PY
}

PETRELS=("$@")
for PETREL in "${PETRELS[@]}"; do
	D=$(mktemp -d); cd $D
	serve $D
	: > client.toml
	for i in $(seq 1 $N); do cat >> client.toml <<EOT
[accounts.a$i]
user = "u$i@example.test"
password_command = "echo pw-secret-$i"
[accounts.a$i.imap]
host = "localhost"
port = 2143
tls = "starttls"
ca_file = "data/tls/cert.pem"
archive = "Mail$i"
EOT
	done
	"$PETREL" fetch --config client.toml --idle > fetch.log 2>&1 &
	F=$!
	sleep $SETTLE
	c=$(idle_conns)
	m=$(mem $F)
	t0=$(ticks $F); sleep $REST; t1=$(ticks $F)
	echo "petrel fetch --idle ($PETREL), $N accounts, $c connections: $m, $(awk '/Threads/{print $2}' /proc/$F/status) threads; CPU ticks in ${REST} s at rest: $((t1-t0)); $(load)"
	push
	for i in $(seq 1 300); do ls Mail1/new 2>/dev/null | grep -q . && break; sleep 0.1; done
	sleep 10
	echo "  after one pushed message ($(ls Mail1/new | wc -l) archived), back at rest: $(mem $F); $(load)"
	kill $F; wait $F || true
	kill $SERVE; wait $SERVE || true
	grep -v "^$" fetch.log | head -3
	cd /; rm -rf $D
done

[ "${FETCHMAIL:-1}" = 0 ] && exit 0
# fetchmail, one daemon per account, against the first binary's server.
PETREL=${PETRELS[0]}
D=$(mktemp -d); cd $D
serve $D
pids=()
for i in $(seq 1 $N); do
	mkdir -p h$i; chmod 700 h$i
	cat > h$i/rc <<EOT
poll localhost protocol imap port 2143 user "u$i@example.test" password "pw-secret-$i" idle sslproto tls1.2+ sslcertck sslcertfile "$D/data/tls/cert.pem" mda "/usr/bin/tee -a $D/h$i/got > /dev/null" keep
EOT
	chmod 600 h$i/rc
	FETCHMAILHOME=$D/h$i fetchmail -f h$i/rc --pidfile $D/h$i/pid -d 60 --nodetach --nosyslog > h$i/log 2>&1 &
	pids+=($!)
done
sleep $SETTLE
c=$(idle_conns)
m=$(mem "${pids[@]}")
t0=$(ticks "${pids[@]}"); sleep $REST; t1=$(ticks "${pids[@]}")
echo "fetchmail --idle ($(fetchmail --version 2>/dev/null | sed -n 's/.*release \([0-9.]*\).*/\1/p')), $N processes, $c connections: $m (sums over the processes); CPU ticks in ${REST} s at rest: $((t1-t0)); $(load)"
push
for i in $(seq 1 300); do [ -s h1/got ] && break; sleep 0.1; done
sleep 10
echo "  after one pushed message ($(grep -c '^Subject: push' h1/got 2>/dev/null || echo 0) delivered), back at rest: $(mem "${pids[@]}"); $(load)"
kill "${pids[@]}"; wait "${pids[@]}" 2>/dev/null || true
kill $SERVE; wait $SERVE || true
head -3 h1/log
cd /; rm -rf $D
