package sqlite

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"petrel/internal/store"
	"petrel/internal/store/storetest"
)

// pop3Corpus creates n accounts with perBox messages of size bytes in each INBOX, delivered
// from 16 goroutines, and returns the INBOX IDs.
func pop3Corpus(b *testing.B, s *Store, n, perBox, size int) []int64 {
	b.Helper()
	ctx := context.Background()
	body := bytes.Repeat([]byte("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ!?\r\n"), size/66+1)[:size]
	boxes := make([]int64, n)
	accts := make([]int64, n)
	for i := range n {
		a := setup(b, s, fmt.Sprintf("pop%d@example.org", i))
		box, err := s.Mailbox(ctx, a.ID, store.Inbox)
		if err != nil {
			b.Fatal(err)
		}
		boxes[i], accts[i] = box.ID, a.ID
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= n*perBox {
					return
				}
				d := &store.Delivery{
					Targets: []store.Target{{AccountID: accts[i%n], Mailbox: store.Inbox}},
					Body:    bytes.NewReader(body),
					Size:    int64(len(body)),
					Parsed:  store.ParsedMessage{MessageID: "bench@example.org", Subject: "bench"},
				}
				if _, err := s.Deliver(ctx, d); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	return boxes
}

// BenchmarkPOP3Session is the store's side of a POP3 session that downloads and deletes a
// whole maildrop, the shape of `petrel-load pop3 -dele`: Messages at login, OpenBlob and
// read of every message, Expunge of all of them at QUIT; 8 sessions at once on different
// mailboxes of 100 messages of 4 KB. One op is one session. Run it with a fixed count
// (-benchtime 200x): every op needs its own full mailbox, delivered before the timer starts.
//
// cpu-µs/msg includes the background reclaim of the expunged bodies: the benchmark waits
// for it to finish before it stops the clock. expunge-µs is the mean time an Expunge call
// took, which is what a POP3 client waits for after QUIT.
func BenchmarkPOP3Session(b *testing.B) {
	const perBox, size = 100, 4096
	s := openTemp(b, Options{})
	defer s.Close()
	boxes := pop3Corpus(b, s, b.N, perBox, size)
	ctx := context.Background()
	var next, expungeNs atomic.Int64
	b.SetParallelism(4) // × GOMAXPROCS(2) = 8 sessions, like -c 8
	cpu := cpuTime()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			box := boxes[next.Add(1)-1]
			ms, err := s.Messages(ctx, box, store.Filter{})
			if err != nil || len(ms) != perBox {
				b.Errorf("Messages: %d, %v", len(ms), err)
				return
			}
			uids := make([]uint32, len(ms))
			for i, m := range ms {
				r, err := s.OpenBlob(ctx, m.BlobID)
				if err != nil {
					b.Error(err)
					return
				}
				if n, err := io.Copy(io.Discard, r); err != nil || n != size {
					b.Errorf("read %d bytes: %v", n, err)
				}
				r.Close()
				uids[i] = m.UID
			}
			start := time.Now()
			if _, err := s.Expunge(ctx, box, uids); err != nil {
				b.Error(err)
				return
			}
			expungeNs.Add(int64(time.Since(start)))
		}
	})
	s.waitReclaimed(b)
	b.StopTimer()
	msgs := float64(b.N * perBox)
	b.ReportMetric(msgs/b.Elapsed().Seconds(), "msgs/s")
	b.ReportMetric(float64((cpuTime()-cpu).Microseconds())/msgs, "cpu-µs/msg")
	b.ReportMetric(float64(expungeNs.Load())/1e3/float64(b.N), "expunge-µs")
}

// BenchmarkLogin is the store's side of a POP3 login: the whole maildrop listing
// (Store.Messages) of a mailbox of 1,000 messages.
func BenchmarkLogin(b *testing.B) {
	s := openTemp(b, Options{})
	defer s.Close()
	boxes := pop3Corpus(b, s, 1, 1000, 256)
	ctx := context.Background()
	cpu := cpuTime()
	b.ResetTimer()
	for b.Loop() {
		ms, err := s.Messages(ctx, boxes[0], store.Filter{})
		if err != nil || len(ms) != 1000 {
			b.Fatalf("Messages: %d, %v", len(ms), err)
		}
	}
	b.ReportMetric(float64((cpuTime()-cpu).Microseconds())/float64(b.N), "cpu-µs/op")
}

// BenchmarkOpenBlob is the store's side of a POP3 RETR of a 4 KB message: OpenBlob and
// reading it whole, from 8 goroutines, over 1,000 messages.
func BenchmarkOpenBlob(b *testing.B) {
	const size = 4096
	s := openTemp(b, Options{})
	defer s.Close()
	boxes := pop3Corpus(b, s, 1, 1000, size)
	ctx := context.Background()
	ms, err := s.Messages(ctx, boxes[0], store.Filter{})
	if err != nil {
		b.Fatal(err)
	}
	var next atomic.Int64
	b.SetParallelism(4)
	cpu := cpuTime()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			m := ms[int(next.Add(1))%len(ms)]
			r, err := s.OpenBlob(ctx, m.BlobID)
			if err != nil {
				b.Error(err)
				return
			}
			if n, err := io.Copy(io.Discard, r); err != nil || n != size {
				b.Errorf("read %d bytes: %v", n, err)
			}
			r.Close()
		}
	})
	b.ReportMetric(float64((cpuTime()-cpu).Microseconds())/float64(b.N), "cpu-µs/op")
}

// BenchmarkDeliver is storetest.BenchDeliveries with 32 writers (compare with the
// PostgreSQL store's benchmark of the same name).
func BenchmarkDeliver(b *testing.B) {
	s := openTemp(b, Options{})
	defer s.Close()
	storetest.BenchDeliveries(b, s, 32)
}
