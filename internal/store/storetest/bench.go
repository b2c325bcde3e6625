package storetest

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"petrel/internal/store"
)

// BenchDeliveries measures concurrent deliveries, the shape of inbound SMTP under load:
// writers goroutines deliver 4 KB messages, each to the INBOX of one of 16 accounts in
// turn, until b.N messages are committed. It reports deliveries/s, so that two backends
// can be compared on one machine (go test -bench). s must be a new, empty store.
func BenchDeliveries(b *testing.B, s store.Store, writers int) {
	ctx := context.Background()
	if err := s.AddDomain(ctx, "example.org"); err != nil {
		b.Fatal(err)
	}
	const accounts, size = 16, 4096
	ids := make([]int64, accounts)
	for i := range ids {
		a, err := s.AddAccount(ctx, fmt.Sprintf("bench%d@example.org", i), store.Credentials{})
		if err != nil {
			b.Fatal(err)
		}
		ids[i] = a.ID
	}
	line := []byte("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ!?\r\n")
	filler := bytes.Repeat(line, size/len(line)+1)[:size]
	var next atomic.Int64
	var wg sync.WaitGroup
	b.ResetTimer()
	start := time.Now()
	for w := range writers {
		wg.Go(func() {
			for {
				i := next.Add(1) - 1
				if i >= int64(b.N) {
					return
				}
				// Distinct bodies: a backend that deduplicates must not skip the work.
				body := append(fmt.Appendf(nil, "Subject: %d-%d\r\n\r\n", w, i), filler...)
				d := &store.Delivery{
					MailFrom: "sender@remote.example",
					Targets:  []store.Target{{AccountID: ids[i%accounts], Mailbox: store.Inbox}},
					Body:     bytes.NewReader(body),
					Size:     int64(len(body)),
					Parsed:   store.ParsedMessage{MessageID: "bench@remote.example", Subject: "bench"},
				}
				if _, err := s.Deliver(ctx, d); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	b.StopTimer()
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "deliveries/s")
}
