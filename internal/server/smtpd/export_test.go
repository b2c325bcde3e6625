package smtpd

import "testing"

// For the external tests (package smtpd_test), which need internal/mailtest; mailtest
// imports smtpd, so they cannot live in this package.

// BenchInboundMessage is benchInboundMessage.
func BenchInboundMessage(b *testing.B, addr string, conns int, from, body string, rcpts []string) {
	benchInboundMessage(b, addr, conns, from, body, rcpts)
}

// StartBenchServer runs cfg over a Deliverer that stores nothing, for benchmarks.
func StartBenchServer(b *testing.B, cfg Config) string {
	return startServer(b, cfg, discardDeliverer()).addr
}

// StartStoreServer runs cfg over a fresh SQLite store with accounts user1..userN@example.test.
func StartStoreServer(b *testing.B, accounts int, cfg Config) string {
	return startStoreServerConfig(b, accounts, cfg)
}
