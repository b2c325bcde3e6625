# Inbound SMTP (the MX role): 2 KB messages over C connections that never reconnect, spread
# over the user1..user100 mailboxes, sent for 5 seconds. accepted/s counts 250 replies;
# delivered/s runs from the first connection until every accepted message is visible over POP3
# (for Postfix: queued, handed to Dovecot over LMTP, written to the Maildir).
smtp_inbound() { # C DURATION
	load smtp -addr "$T_SMTP" -c "$1" -n 0 -duration "$2" -size 2048 -to 'user{n}@example.test' -mailboxes "$USERS" \
		-wait-pop3 "$T_POP3S" -pop3-tls -pop3-pass "$PASS" -wait-c 8 -wait-timeout 3m
}

scenario smtp-in-c1 "Inbound SMTP 2 KB, C=1" "smtp pop3" smtp_inbound 1 "$(span 5)"
metric smtp-in-c1 ops_per_sec "accepted msg/s" higher
metric smtp-in-c1 delivery.per_sec "delivered msg/s (end to end)" higher ">=3"

scenario smtp-in-c8 "Inbound SMTP 2 KB, C=8" "smtp pop3" smtp_inbound 8 "$(span 5)"
metric smtp-in-c8 ops_per_sec "accepted msg/s" higher
metric smtp-in-c8 delivery.per_sec "delivered msg/s (end to end)" higher

scenario smtp-in-c32 "Inbound SMTP 2 KB, C=32" "smtp pop3" smtp_inbound 32 "$(span 5)"
metric smtp-in-c32 ops_per_sec "accepted msg/s" higher
metric smtp-in-c32 delivery.per_sec "delivered msg/s (end to end)" higher ">=10"
metric smtp-in-c32 latency.p99_ms "p99 transaction ms" lower
profile smtp-in-c32
