# IMAP SEARCH over a large folder. The corpus: imap1's folder "Large" holds the search corpus of
# petrel-load imap-append (bench/load/corpus.go): SEARCH_MESSAGES messages (default 100,000,
# the size; 5,000 in --quick mode; the environment variable sets another) of
# 250 words each, about 2.4 KB, the same bytes on both targets, the words Zipf-distributed over a
# made-up vocabulary of 20,000. It is appended once per comparison (untimed) by 4 sessions with
# MULTIAPPEND of 100 messages; that run's JSON is kept in raw/ (append msg/s).
#
# Each scenario is one session with the folder selected sending UID SEARCH TEXT for one word for
# 5 s, after one untimed search of it (a server's first search may build what later ones use:
# Petrel indexes what its background indexer has not reached yet, Dovecot builds its cache).
# RFC 3501's TEXT is a substring match; Dovecot as Debian ships it has no full-text index and
# reads every message; Petrel answers from its FTS5 index (words and prefixes). On this corpus
# both find the same messages: the hits row shows both counts.
SEARCH_MESSAGES=$(scale "${SEARCH_MESSAGES:-100000}")
search_size=$(echo "$SEARCH_MESSAGES" | sed ':a;s/\B[0-9]\{3\}\>/,&/;ta')

search_corpus() {
	[ -e "$WORK/search-corpus-$T_NAME" ] && return 0
	load imap-append -addr "$T_IMAPS" -tls -user imap1@example.test -pass "$PASS" -mailbox Large \
		-n "$SEARCH_MESSAGES" -c 4 -batch 100 -timeout 30m >"$OUT/raw/search-corpus-$T_NAME.json" &&
		touch "$WORK/search-corpus-$T_NAME"
}

imap_search() { # petrel-load imap-search flags choosing the word
	load imap-search -addr "$T_IMAPS" -tls -user imap1@example.test -pass "$PASS" -mailbox Large \
		-duration "$(span 5)" -op-timeout 5m "$@"
}

scenario imap-search-rare "IMAP SEARCH TEXT, rare word (1 message in 500), $search_size-message folder" "imap" imap_search -word saxophonist
prepare imap-search-rare search_corpus
metric imap-search-rare latency.p50_ms "p50 ms per search" lower
metric imap-search-rare search.hits_per_search "messages found" higher

# The corpus word of frequency rank 20: in about 70% of the messages.
scenario imap-search-common "IMAP SEARCH TEXT, common word (~70% of the messages), $search_size-message folder" "imap" imap_search -rank 20
prepare imap-search-common search_corpus
metric imap-search-common latency.p50_ms "p50 ms per search" lower
metric imap-search-common search.hits_per_search "messages found" higher
profile imap-search-common
