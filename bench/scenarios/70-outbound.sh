# Outbound delivery: a placeholder until Petrel relays to remote domains (a target gets the
# "outbound" capability when it can deliver to a loopback sink MX) and petrel-load has a sink
# that counts what arrives.
scenario outbound "Outbound delivery to a loopback MX, 2 KB" "outbound" -
metric outbound delivery.per_sec "delivered msg/s" higher
