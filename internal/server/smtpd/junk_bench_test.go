package smtpd

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strings"
	"testing"

	"petrel/internal/mail/deliver"
	"petrel/internal/mail/junk"
	"petrel/internal/store"
)

// BenchmarkInboundJunk is BenchmarkInboundSQLite with a 2 KB message of words (the
// classifier's cost follows the words, and the benchmark's usual "xxx" lines have none)
// and 8 accounts that each trained 400 such messages, with the built-in junk classifier
// off and on: the budget compares the two in the same run.
func BenchmarkInboundJunk(b *testing.B) {
	words, body := wordyMessage()
	rcpts := make([]string, 8)
	for i := range rcpts {
		rcpts[i] = fmt.Sprintf("user%d@example.test", i+1)
	}
	for _, on := range []bool{false, true} {
		b.Run(map[bool]string{false: "off", true: "on"}[on], func(b *testing.B) {
			addr := startJunkServer(b, len(rcpts), on, words)
			benchInboundMessage(b, addr, 32, "bench@elsewhere.example", body, rcpts)
		})
	}
}

// wordyMessage returns the vocabulary and a 2 KB message of its words, the same on every
// call.
func wordyMessage() (words []string, body string) {
	words = benchWords(rand.New(rand.NewPCG(1, 2)), 4000)
	body = "From: \"News Desk\" <news@letters.example>\r\nSubject: " + benchText(rand.New(rand.NewPCG(3, 4)), words, 60) +
		"\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
	r := rand.New(rand.NewPCG(5, 6))
	for len(body) < 2048 {
		body += benchText(r, words, 70) + "\r\n"
	}
	return words, body
}

// benchWords makes n distinct lower-case words of 3 to 10 letters.
func benchWords(r *rand.Rand, n int) []string {
	seen := map[string]bool{}
	var out []string
	for len(out) < n {
		w := make([]byte, 3+r.IntN(8))
		for i := range w {
			w[i] = byte('a' + r.IntN(26))
		}
		if !seen[string(w)] {
			seen[string(w)] = true
			out = append(out, string(w))
		}
	}
	return out
}

// benchText is a line of up to width bytes of words drawn with a Zipf law, as in text.
func benchText(r *rand.Rand, words []string, width int) string {
	z := rand.NewZipf(r, 1.1, 2, uint64(len(words)-1))
	var b strings.Builder
	for b.Len() < width {
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(words[z.Uint64()])
	}
	return b.String()
}

// startJunkServer is startStoreServer with accounts that each trained 400 messages (half
// junk, half not, from shifted word ranks), whose deliverer classifies when on.
func startJunkServer(b *testing.B, accounts int, on bool, words []string) string {
	ctx := context.Background()
	st, accts := openBenchStore(b, accounts)
	d := deliver.New(st, slog.New(slog.DiscardHandler))
	f := &junk.Filter{Store: st}
	r := rand.New(rand.NewPCG(7, 8))
	for _, acct := range accts {
		// Both runs train, so that the store (and the checkpoint its writes leave to do)
		// is the same; only the classification differs.
		for m := range 400 {
			isJunk := m%2 == 1
			pool := words
			if isJunk {
				pool = words[len(words)/3:] // junk favours other words
			}
			text := &store.SearchText{Subject: benchText(r, pool, 40), From: "x@sender.example", Body: benchText(r, pool, 1500)}
			if _, err := f.Train(ctx, acct.ID, text, isJunk); err != nil {
				b.Fatal(err)
			}
		}
	}
	if on {
		d.SetJunk(f)
	}
	return serveBench(b, Config{}, d)
}
