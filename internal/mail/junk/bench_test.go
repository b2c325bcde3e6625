package junk

import (
	"context"
	"syscall"
	"testing"
	"time"

	"petrel/internal/store"
)

// BenchmarkClassify is the classifier's cost per delivery: tokens from the decoded text,
// the account's counts of those tokens read from SQLite, and the score; the account has
// trained 720 messages of the generated corpus.
func BenchmarkClassify(b *testing.B) {
	f, acct := openFilter(b)
	ctx := context.Background()
	msgs := corpus(13, 1200)
	for _, m := range msgs[:720] {
		if _, err := f.TrainMessage(ctx, acct, m.raw, m.junk); err != nil {
			b.Fatal(err)
		}
	}
	texts := decoded(b, msgs[720:])
	b.ResetTimer()
	cpu := cpuTime()
	for i := range b.N {
		if _, err := f.Classify(ctx, acct, texts[i%len(texts)]); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64((cpuTime()-cpu).Microseconds())/float64(b.N), "cpu-µs/op")
}

// cpuTime is the process's CPU time: on a shared machine, wall time per operation says
// more about the neighbours than about the code.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkTokens is the tokenizer alone on the same messages.
func BenchmarkTokens(b *testing.B) {
	texts := decoded(b, corpus(13, 200))
	b.ResetTimer()
	cpu := cpuTime()
	for i := range b.N {
		Tokens(texts[i%len(texts)])
	}
	b.ReportMetric(float64((cpuTime()-cpu).Microseconds())/float64(b.N), "cpu-µs/op")
}

// BenchmarkTrain is the state update of one lesson (a message moved into or out of Junk):
// parse, tokens, and one durable commit of the marker, the counts and the token rows.
func BenchmarkTrain(b *testing.B) {
	f, acct := openFilter(b)
	ctx := context.Background()
	msgs := corpus(17, 2000)
	b.ResetTimer()
	cpu := cpuTime()
	defer func() { b.ReportMetric(float64((cpuTime()-cpu).Microseconds())/float64(b.N), "cpu-µs/op") }()
	for i := range b.N {
		m := msgs[i%len(msgs)]
		// Alternating the verdict of a message seen before exercises the correction path too.
		if _, err := f.TrainMessage(ctx, acct, m.raw, m.junk != (i/len(msgs)%2 == 1)); err != nil {
			b.Fatal(err)
		}
	}
}

// decoded returns the decoded text of each message.
func decoded(b *testing.B, msgs []corpusMsg) []*store.SearchText {
	texts := make([]*store.SearchText, 0, len(msgs))
	for _, m := range msgs {
		pm, err := parse(m.raw)
		if err != nil {
			b.Fatal(err)
		}
		texts = append(texts, pm.Text)
	}
	return texts
}
