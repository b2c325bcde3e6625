package sqlite

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"petrel/internal/store"
)

// BenchmarkDue is the queue's look for work under the relay load: 200 entries for ten
// domains, asked for all domains (the scheduler) and for one (a worker after each message).
func BenchmarkDue(b *testing.B) {
	s := openTemp(b, Options{})
	defer s.Close()
	ctx := context.Background()
	enqueue := func(i int) error {
		d := fmt.Sprintf("sink%d.test", i%10)
		o := &store.Outbound{MailFrom: "a@example.test", Recipients: []store.OutboundRecipient{{Address: "u@" + d, Domain: d}},
			Body: strings.NewReader("Subject: x\r\n\r\nbody\r\n"), Size: 20}
		_, err := s.Enqueue(ctx, o)
		return err
	}
	for i := range 200 {
		if err := enqueue(i); err != nil {
			b.Fatal(err)
		}
	}
	now := time.Now().Add(time.Second)
	for _, bc := range []struct {
		name   string
		domain string
		limit  int
	}{{"all", "", 1000}, {"domain", "sink3.test", 16}} {
		b.Run(bc.name, func(b *testing.B) {
			cpu := cpuTime()
			for b.Loop() {
				if g, err := s.Due(ctx, now, bc.domain, bc.limit); err != nil || len(g) == 0 {
					b.Fatal(len(g), err)
				}
			}
			b.ReportMetric(float64((cpuTime()-cpu).Microseconds())/float64(b.N), "cpu-µs/op")
		})
	}
}
