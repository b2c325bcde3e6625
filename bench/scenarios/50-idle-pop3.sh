# Memory per idle connection: 2,000 POP3 connections over implicit TLS (handshake and greeting,
# no login), held 5 s; PSS and RSS summed over every process that serves POP3 (Petrel's one;
# Dovecot's master and all its children), before opening and while holding. The server is
# restarted first: a process that held 2,000 connections in an earlier round keeps much of
# that memory (malloc arenas, Go's heap), which would hide the cost of the next 2,000.
idle_pop3() { # N HOLD
	load idle -addr "$T_POP3S" -tls -n "$1" -c 16 -hold "$2" -children -pid "$("${T_NAME}_pids" | paste -sd,)"
}

idle_hold=5s
[ "$QUICK" = 1 ] && idle_hold=1s
scenario idle-pop3 "2,000 idle POP3 connections over TLS" "pop3" idle_pop3 "$(scale 2000)" "$idle_hold"
metric idle-pop3 idle.pss_kb_per_conn "PSS KB per connection" lower "<=0.1"
metric idle-pop3 idle.rss_kb_per_conn "RSS KB per connection" lower
prepare idle-pop3 restart_target
profile idle-pop3
