package smtpd

import (
	"context"
	"fmt"
	"log/slog"
	"testing"

	"petrel/internal/mail/deliver"
	"petrel/internal/store/sqlite"
)

// BenchmarkInboundIndex is the A/B of the background full-text indexer on the whole inbound
// path (BenchmarkInboundSQLite's set-up) with a 2 KB message of words, so that the index has
// text to tokenize: "background" is the store as `petrel serve` runs it, "in-commit" writes
// each body's index row in the delivery's commit as before the indexer
// (sqlite.Options.IndexInCommit). msgs/s is what a sender sees; indexed-cpu-µs/msg adds the
// indexing still queued when the last message was accepted, so deferring it hides nothing.
func BenchmarkInboundIndex(b *testing.B) {
	_, body := wordyMessage()
	rcpts := make([]string, 8)
	for i := range rcpts {
		rcpts[i] = fmt.Sprintf("user%d@example.test", i+1)
	}
	for _, inCommit := range []bool{false, true} {
		b.Run(map[bool]string{false: "background", true: "in-commit"}[inCommit], func(b *testing.B) {
			st, _ := openBenchStoreOptions(b, len(rcpts), sqlite.Options{IndexInCommit: inCommit})
			addr := serveBench(b, Config{}, deliver.New(st, slog.New(slog.DiscardHandler)))
			cpu := cpuTime()
			benchInboundMessage(b, addr, 32, "bench@elsewhere.example", body, rcpts)
			if err := st.IndexQueued(context.Background()); err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64((cpuTime()-cpu).Microseconds())/float64(b.N), "indexed-cpu-µs/msg")
		})
	}
}
