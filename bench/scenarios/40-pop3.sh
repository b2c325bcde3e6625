# POP3 retrieve-all over implicit TLS: 8 clients, each of pop1..pop100 once (login, STAT,
# LIST, RETR every message checked against LIST, QUIT), 100 messages of 4 KB in each mailbox.
# The corpus is delivered over SMTP before the first run (untimed) and again after the DELE
# run emptied it.
pop3_corpus() {
	[ -e "$WORK/corpus-$T_NAME" ] && return 0
	load smtp -addr "$T_SMTP" -c 16 -n $((USERS * $(scale 100))) -size 4096 -to 'pop{n}@example.test' \
		-mailboxes "$USERS" -wait-pop3 "$T_POP3S" -pop3-tls -pop3-pass "$PASS" -wait-c 8 -wait-timeout 5m >/dev/null &&
		touch "$WORK/corpus-$T_NAME"
}

pop3_retrieve() { # [-dele]
	load pop3 -addr "$T_POP3S" -tls -user 'pop{n}@example.test' -pass "$PASS" -mailboxes "$USERS" -c 8 "$@"
	if [ "${1:-}" = -dele ]; then rm -f "$WORK/corpus-$T_NAME"; fi
}

scenario pop3-retr "POP3 retrieve-all, 100×100×4 KB, C=8" "pop3" pop3_retrieve
prepare pop3-retr pop3_corpus
metric pop3-retr ops_per_sec "retrieved msg/s" higher ">=3"
metric pop3-retr mb_per_sec "MB/s" higher
metric pop3-retr connect.p50_ms "p50 connect+TLS+login ms" lower
profile pop3-retr

scenario pop3-dele "POP3 retrieve-all and DELE, 100×100×4 KB, C=8" "pop3" pop3_retrieve -dele
prepare pop3-dele pop3_corpus
metric pop3-dele ops_per_sec "retrieved+deleted msg/s" higher ">=3"
profile pop3-dele
