package smtpd

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
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
	words := benchWords(rand.New(rand.NewPCG(1, 2)), 4000)
	body := "From: \"News Desk\" <news@letters.example>\r\nSubject: " + benchText(rand.New(rand.NewPCG(3, 4)), words, 60) +
		"\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
	r := rand.New(rand.NewPCG(5, 6))
	for len(body) < 2048 {
		body += benchText(r, words, 70) + "\r\n"
	}
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
