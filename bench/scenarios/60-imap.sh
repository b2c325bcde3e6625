# IMAP (issue 10): fetch-all (S5), a mixed session load and idle sessions in IDLE, against
# Petrel's IMAP server and Dovecot. SEARCH over a large folder is 65-imap-search.sh. (A Petrel
# without IMAP lacks the "imap" capability, targets/petrel.sh, and shows n/a.)
#
# The corpus: IMAP_USERS mailboxes imap1..imapN (8) holding 2,000 messages of 4 KB each (100 in
# --quick mode), delivered over SMTP before the first IMAP run (untimed, once per comparison:
# against Postfix+Dovecot about a minute). The scenarios keep it: imap-fetch only reads
# (BODY.PEEK), imap-mixed appends as many messages as it expunges.
imap_corpus() {
	[ -e "$WORK/imap-corpus-$T_NAME" ] && return 0
	load smtp -addr "$T_SMTP" -c 16 -n $((IMAP_USERS * $(scale 2000))) -size 4096 -to 'imap{n}@example.test' \
		-mailboxes "$IMAP_USERS" -wait-pop3 "$T_POP3S" -pop3-tls -pop3-pass "$PASS" -wait-c 8 -wait-timeout 10m >/dev/null &&
		touch "$WORK/imap-corpus-$T_NAME"
}

# S5, IMAP fetch-all: 8 clients over implicit TLS, each repeatedly logs in (LOGIN) to the next
# imapN account, SELECTs INBOX and sends UID FETCH 1:* (UID RFC822.SIZE BODY.PEEK[]), every
# message checked (literal size = RFC822.SIZE, CRLF lines); sessions start for 5 s, so a fast
# and a slow server are measured over the same time (a whole mailbox takes Dovecot ~0.5 s).
imap_fetch() { # DURATION
	load imap-fetch -addr "$T_IMAPS" -tls -user 'imap{n}@example.test' -pass "$PASS" -mailboxes "$IMAP_USERS" \
		-c 8 -duration "$1"
}
scenario imap-fetch "IMAP fetch-all, 8×2,000×4 KB, C=8" "imap" imap_fetch "$(span 5)"
prepare imap-fetch imap_corpus
metric imap-fetch ops_per_sec "fetched msg/s" higher ">=3"
metric imap-fetch mb_per_sec "MB/s" higher
metric imap-fetch connect.p50_ms "p50 connect+TLS+login ms" lower
metric imap-fetch server_cpu_us_per_op "server CPU µs per msg" lower
profile imap-fetch

# Mixed IMAP load: 10 sessions over implicit TLS on the imapN accounts (two accounts have two
# sessions, which then see each other's changes), each with INBOX selected, cycling through
# SELECT, FETCH of the newest 50 headers, STORE \Flagged / \Seen, UID SEARCH UNSEEN / FLAGGED,
# APPEND 4 KB, STORE \Deleted + EXPUNGE, for 5 s. One op is one command answered OK.
imap_mixed() { # DURATION
	load imap-mixed -addr "$T_IMAPS" -tls -user 'imap{n}@example.test' -pass "$PASS" -mailboxes "$IMAP_USERS" \
		-c 10 -duration "$1"
}
scenario imap-mixed "IMAP mixed load (select, fetch, flag, search, append, expunge), C=10" "imap" imap_mixed "$(span 5)"
prepare imap-mixed imap_corpus
metric imap-mixed ops_per_sec "commands/s" higher ">=3"
metric imap-mixed latency.p99_ms "p99 command ms" lower
metric imap-mixed server_cpu_us_per_op "server CPU µs per command" lower
profile imap-mixed

# Memory per idle IMAP session: 10,000 connections (500 in --quick mode) over implicit TLS,
# each logged in to one of the user1..userN accounts (100 per account with 100 users), INBOX
# selected, in IDLE, held 5 s; PSS and RSS summed over every process that serves IMAP
# (Petrel's one; Dovecot's master and all its children, with one imap process per session),
# before opening and while holding, as idle-pop3 measures. The server is restarted first, as
# for idle-pop3.
idle_imap() { # N HOLD
	load imap-idle -addr "$T_IMAPS" -tls -user 'user{n}@example.test' -pass "$PASS" -mailboxes "$USERS" \
		-n "$1" -c 16 -hold "$2" -children -pid "$("${T_NAME}_pids" | paste -sd,)"
}
scenario imap-idle "10,000 idle IMAP connections over TLS (logged in, IDLE)" "imap" idle_imap "$(scale 10000)" "$idle_hold"
# The issue asks for under 24 KB per session where Dovecot spends about 550 KB: 0.044×.
metric imap-idle idle.pss_kb_per_conn "PSS KB per connection" lower "<=0.044"
metric imap-idle idle.rss_kb_per_conn "RSS KB per connection" lower
prepare imap-idle restart_target
profile imap-idle
