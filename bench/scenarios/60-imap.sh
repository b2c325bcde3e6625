# IMAP: placeholders until petrel-load has IMAP scenarios and Petrel serves IMAP (the Petrel
# target gets the "imap" capability when its config accepts an [imap] section). To make one
# real: add the scenario to petrel-load, then replace "-" by a command such as
#   load imap-fetch -addr "$T_IMAPS" -tls -user 'pop{n}@example.test' -pass "$PASS" ...
scenario imap-fetch "IMAP FETCH all of a large mailbox" "imap" -
metric imap-fetch ops_per_sec "fetched msg/s" higher

scenario imap-search "IMAP SEARCH TEXT on a large mailbox" "imap" -
metric imap-search latency.p50_ms "p50 ms" lower

scenario imap-idle "2,000 idle IMAP connections over TLS" "imap" -
metric imap-idle idle.pss_kb_per_conn "PSS KB per connection" lower "<=0.1"
