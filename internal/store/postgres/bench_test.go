package postgres

import (
	"testing"

	"petrel/internal/mailtest"
	"petrel/internal/store/storetest"
)

// BenchmarkDeliver is storetest.BenchDeliveries with 32 writers on a pool of 32
// connections (compare with the embedded store's benchmark of the same name). The test
// cluster runs with PostgreSQL's durable defaults (fsync, synchronous_commit on).
func BenchmarkDeliver(b *testing.B) {
	s := openDSN(b, mailtest.PostgresDSN(b), Options{PoolSize: 32})
	defer s.Close()
	storetest.BenchDeliveries(b, s, 32)
}
