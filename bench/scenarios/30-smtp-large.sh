# Inbound SMTP with 100 KB messages, C=8, for 5 seconds: bandwidth through the DATA path and
# the store.
smtp_large() { # DURATION
	load smtp -addr "$T_SMTP" -c 8 -n 0 -duration "$1" -size 102400 -to 'user{n}@example.test' -mailboxes "$USERS" \
		-wait-pop3 "$T_POP3S" -pop3-tls -pop3-pass "$PASS" -wait-c 8 -wait-timeout 3m
}

scenario smtp-100k "Inbound SMTP 100 KB, C=8" "smtp pop3" smtp_large "$(span 5)"
profile smtp-100k
metric smtp-100k mb_per_sec "accepted MB/s" higher
metric smtp-100k delivery.per_sec "delivered msg/s (end to end)" higher
