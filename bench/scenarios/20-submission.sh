# Submission: STARTTLS, AUTH PLAIN as user1, MAIL FROM user1 (both servers check the sender
# against the login), 2 KB to the user{n} mailboxes for 5 seconds; C=8, a new connection (TLS
# handshake and login) every 10 messages.
submission() { # DURATION
	load smtp -addr "$T_SUBMISSION" -starttls -auth "user1@example.test:$PASS" -from user1@example.test \
		-to 'user{n}@example.test' -mailboxes "$USERS" -c 8 -k 10 -n 0 -duration "$1" -size 2048
}

scenario submission "Submission STARTTLS+AUTH 2 KB, C=8, 10 per connection" "submission" submission "$(span 5)"
metric submission ops_per_sec "accepted msg/s" higher ">=4"
metric submission connect.p50_ms "p50 connect+TLS+AUTH ms" lower
profile submission
