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
# - The submitting client pipelines (petrel-load smtp -pipelining: MAIL, RCPT and DATA in one
#   write, RFC 2920), as both servers offer; the sink groups its replies the same way. The
#   load tool and the sink share the machine's cores with the server measured, so their CPU
#   per message bounds the figure too; it goes to logs/load.log ("load tool CPU").
# Run compare.sh in its own network namespace for this one (the sink's and DNS server's
# loopback ports are the only network it needs): unshare -n bash -c 'ip link set lo up;
# bash bench/compare.sh --only outbound'.
SINK_PORT=$(free_port)
OUT_DNS_PORT=$(free_port)
outbound_dns_records=(-record "mx.sink.test A 127.0.0.1")
for i in $(seq 10); do outbound_dns_records+=(-record "sink$i.test MX 10 mx.sink.test"); done
"$LOAD" dns -listen "127.0.0.1:$OUT_DNS_PORT" -timeout 24h "${outbound_dns_records[@]}" >/dev/null 2>&1 &
BG_PIDS+=($!)

# tool_cpu FILE prints the tool_cpu_s of a petrel-load JSON result.
tool_cpu() { sed -n 's/^  "tool_cpu_s": \([0-9.]*\),*$/\1/p' "$1"; }

outbound() { # MESSAGES
	local sink
	"$LOAD" sink -listen "127.0.0.1:$SINK_PORT" -expect "$1" -wait-timeout 5m -json -allow-errors >"$WORK/sink.json" &
	sink=$!
	wait_port 127.0.0.1 "$SINK_PORT" || return 1
	load smtp -addr "$T_SUBMISSION" -starttls -auth "user1@example.test:$PASS" -from user1@example.test \
		-to 'user{n}@sink{n}.test' -mailboxes 10 -c 8 -n "$1" -size 2048 -pipelining >"$WORK/submit.json"
	wait "$sink"
	echo "outbound load tool CPU: submit $(tool_cpu "$WORK/submit.json") s, sink $(tool_cpu "$WORK/sink.json") s" >&2
	cat "$WORK/sink.json"
}

scenario outbound "Outbound relay: submission to a loopback MX, 2 KB, C=8" "outbound" outbound "$(scale 3000)"
metric outbound delivery.per_sec "delivered msg/s (first to last arrival at the sink)" higher ">=3"
profile outbound
