package postgres

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"petrel/internal/mailtest"
	"petrel/internal/store"
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

// BenchmarkCrossNodeChange measures how long a delivery committed by one Store (node) takes
// to reach a subscriber of another Store on the same database: from before Deliver on A to
// the event on B's channel, one delivery at a time. It reports the median and the 99th
// percentile (issue 12 asks for the delivery-to-IDLE latency across nodes; an IMAP session
// in IDLE wakes on this event).
func BenchmarkCrossNodeChange(b *testing.B) {
	a, other, acct := twoNodes(b)
	ch, cancel := other.Subscribe(acct.ID)
	defer cancel()
	ctx := context.Background()
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := range b.N {
		body := fmt.Sprintf("Subject: %d\r\n\r\nlatency\r\n", i)
		start := time.Now()
		if _, err := a.Deliver(ctx, &store.Delivery{Targets: []store.Target{{AccountID: acct.ID, Mailbox: store.Inbox}},
			Body: strings.NewReader(body), Size: int64(len(body))}); err != nil {
			b.Fatal(err)
		}
		select {
		case _, ok := <-ch:
			if !ok {
				b.Fatal("subscriber cut off")
			}
		case <-time.After(30 * time.Second):
			b.Fatal("no change event on the other node within 30 s")
		}
		lat = append(lat, time.Since(start))
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "ms-median")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "ms-p99")
}
