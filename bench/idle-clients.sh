#!/bin/bash
# Memory and CPU at rest of `petrel fetch --idle` with N IMAP accounts (default 20), next to
# fetchmail --idle (one process per account: fetchmail IDLEs on one server per process), both
# against a development instance of petrel serve. Needs fixed ports: run it in its own network
# namespace, with the binary built first:
#   go build -o /tmp/petrel ./cmd/petrel && unshare -n bench/idle-clients.sh /tmp/petrel
# Prints the resident memory (VmRSS) and the CPU ticks used in 30 s without mail.
set -e
N=${N:-20}
PETREL=${1:?usage: idle-clients.sh PETREL-BINARY}
ip link set lo up
D=$(mktemp -d); cd $D
$PETREL --data $D/data serve > serve.log 2>&1 &
SERVE=$!
for i in $(seq 1 100); do (echo > /dev/tcp/127.0.0.1/2143) 2>/dev/null && break; sleep 0.1; done
for i in $(seq 1 $N); do echo "pw-secret-$i" | $PETREL --data $D/data account add u$i@example.test >/dev/null; done
: > client.toml
for i in $(seq 1 ${N:-20}); do cat >> client.toml <<EOT
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
$PETREL fetch --config client.toml --idle > fetch.log 2>&1 &
F=$!
sleep 15   # let all 20 log in and settle into IDLE
t0=$(awk '{print $14+$15}' /proc/$F/stat)
sleep 30
t1=$(awk '{print $14+$15}' /proc/$F/stat)
echo "petrel fetch --idle, ${N:-20} accounts: $(grep -E "VmRSS|RssAnon|RssFile" /proc/$F/status | tr -s "\t\n" "  ") ; CPU ticks in 30 s at rest: $((t1-t0)) ; threads $(grep Threads /proc/$F/status)"
echo "established IMAP connections: $(ss -tn state established '( dport = :2143 )' | tail -n +2 | wc -l)"
# one message pushed: check it arrives
printf 'From: a@example.test\r\nTo: u1@example.test\r\nSubject: push\r\n\r\nhi\r\n' > m.eml
python3 - <<PY
import smtplib
s=smtplib.SMTP("127.0.0.1",2525); s.sendmail("a@example.test",["u1@example.test"],open("m.eml").read()); s.quit()
PY
for i in $(seq 1 100); do ls Mail1/new 2>/dev/null | grep -q . && break; sleep 0.1; done
echo "pushed message archived: $(ls Mail1/new | wc -l)"
kill $F; wait $F || true
kill $SERVE; wait $SERVE || true
cat fetch.log | head -5

# fetchmail, one daemon per account
D=$(mktemp -d); cd $D
$PETREL --data $D/data serve > serve.log 2>&1 &
SERVE=$!
for i in $(seq 1 100); do (echo > /dev/tcp/127.0.0.1/2143) 2>/dev/null && break; sleep 0.1; done

pids=""
for i in $(seq 1 $N); do
  echo "pw-secret-$i" | $PETREL --data $D/data account add u$i@example.test >/dev/null
  mkdir -p h$i; chmod 700 h$i
  cat > h$i/rc <<EOT
poll localhost protocol imap port 2143 user "u$i@example.test" password "pw-secret-$i" idle sslproto tls1.2+ sslcertck sslcertfile "$D/data/tls/cert.pem" mda "/bin/cat > /dev/null" keep
EOT
  chmod 600 h$i/rc
  FETCHMAILHOME=$D/h$i fetchmail -f h$i/rc --pidfile $D/h$i/pid -d 60 --nodetach --nosyslog > h$i/log 2>&1 &
  pids="$pids $!"
done
sleep 15
rss=0; for p in $pids; do r=$(awk '/VmRSS/{print $2}' /proc/$p/status); rss=$((rss+r)); done
t0=0; for p in $pids; do t=$(awk '{print $14+$15}' /proc/$p/stat); t0=$((t0+t)); done
sleep 30
t1=0; for p in $pids; do t=$(awk '{print $14+$15}' /proc/$p/stat); t1=$((t1+t)); done
echo "fetchmail --idle, $N processes: total VmRSS ${rss} kB ; CPU ticks in 30 s: $((t1-t0))"
echo "established IMAP connections: $(ss -tn state established '( dport = :2143 )' | tail -n +2 | wc -l)"
for p in $pids; do kill $p; done; wait $pids 2>/dev/null || true
kill $SERVE; wait $SERVE || true
head -3 h1/log
