# Outbound relay (issue 11): 2 KB messages submitted (STARTTLS, AUTH as user1) to
# user{n}@sink{n}.test for n = 1..10, queued, and delivered by the target to the far MX,
# `petrel-load sink` on loopback, which counts arrivals. delivered/s runs from the first
# arrival at the sink to the last, so it is the slower of submission and delivery.
# - Petrel finds the MX through DNS: petrel-load dns, started here for the whole run, serves
#   the ten domains' MX (mx.sink.test, 127.0.0.1) as its [outbound] resolver; [outbound] port
#   is the sink's. It signs every message with example.test's DKIM key (RSA-2048 and
#   Ed25519, made at domain add), as shipped: 32 workers, 4 connections per domain.
# - Postfix routes the ten domains to the sink with transport_maps (no DNS) and does not sign
#   (no DKIM milter): its defaults otherwise (up to 100 smtp processes, 20 per destination).
# Run compare.sh in its own network namespace for this one (the sink's and DNS server's
# loopback ports are the only network it needs): unshare -n bash -c 'ip link set lo up;
# bash bench/compare.sh --only outbound'.
SINK_PORT=$(free_port)
OUT_DNS_PORT=$(free_port)
outbound_dns_records=(-record "mx.sink.test A 127.0.0.1")
for i in $(seq 10); do outbound_dns_records+=(-record "sink$i.test MX 10 mx.sink.test"); done
"$LOAD" dns -listen "127.0.0.1:$OUT_DNS_PORT" -timeout 24h "${outbound_dns_records[@]}" >/dev/null 2>&1 &
BG_PIDS+=($!)

outbound() { # MESSAGES
	local sink
	/usr/bin/time -o "$WORK/sink.cpu" -f '%U %S' "$LOAD" sink -listen "127.0.0.1:$SINK_PORT" -expect "$1" -wait-timeout 5m -json -allow-errors >"$WORK/sink.json" &
	sink=$!
	wait_port 127.0.0.1 "$SINK_PORT" || return 1
	/usr/bin/time -o "$WORK/submit.cpu" -f '%U %S' "$LOAD" smtp -json -allow-errors -cafile "$CERT" -servername localhost -addr "$T_SUBMISSION" -starttls -auth "user1@example.test:$PASS" -from user1@example.test \
		-to 'user{n}@sink{n}.test' -mailboxes 10 -c 8 -n "$1" -size 2048 >"$WORK/submit.json"
	wait "$sink"
	echo "outbound load tool CPU (user system, s): submit $(cat "$WORK/submit.cpu") sink $(cat "$WORK/sink.cpu")" >&2
	cat "$WORK/sink.json"
}

scenario outbound "Outbound relay: submission to a loopback MX, 2 KB, C=8" "outbound" outbound "$(scale 3000)"
metric outbound delivery.per_sec "delivered msg/s (first to last arrival at the sink)" higher ">=3"
profile outbound
