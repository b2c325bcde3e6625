# Outbound delivery: a placeholder until the targets learn to relay to a loopback MX (a target
# gets the "outbound" capability then). Petrel relays (issue 11) and petrel-load has the sink
# that counts what arrives (petrel-load sink, bench/README.md); what is left is the targets'
# relay configuration: Petrel with outbound.port and a test resolver pointing the sink's
# domain at it, Postfix with a transport to it.
scenario outbound "Outbound delivery to a loopback MX, 2 KB" "outbound" -
metric outbound delivery.per_sec "delivered msg/s" higher
