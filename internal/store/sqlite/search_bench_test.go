package sqlite

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"petrel/internal/store"
)

// The full-text search benchmark: SEARCH TEXT for one word in a mailbox of 100,000
// messages (issue 10 asks for under 50 ms). Building the mailbox takes minutes, so it is
// built once and kept in the temporary directory (searchCorpusDir) for later runs; delete
// the directory to build it again.
const (
	searchCorpusSize = 100_000
	searchVocabulary = 30_000 // distinct words of the generated text
	searchWords      = 250    // words per message body (about 1.7 KB of text)
	searchRareEvery  = 500    // every 500th message holds the rare word: 200 hits
	searchRareWord   = "petrelbench"
	// searchCorpusVersion changes when the schema of the newest migration changed during
	// development, so that an old cached corpus is not used.
	searchCorpusVersion = 2
)

// searchCorpusDir names the cached corpus after its parameters and the schema version, so
// a change to either builds a new one.
func searchCorpusDir() string {
	return filepath.Join(os.TempDir(), fmt.Sprintf("petrel-bench-search-v%d.%d-%d-%d-%d",
		len(migrations), searchCorpusVersion, searchCorpusSize, searchVocabulary, searchWords))
}

// searchText is message i's text: Zipf-distributed words from a fixed vocabulary, as in
// natural language, so the common words are in most messages and the rare ones in few.
func searchText(vocab []string, i int) store.SearchText {
	r := rand.New(rand.NewPCG(uint64(i), 42))
	z := rand.NewZipf(r, 1.1, 2, uint64(len(vocab)-1))
	var b strings.Builder
	for w := range searchWords {
		if w > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(vocab[z.Uint64()])
	}
	if i%searchRareEvery == 0 {
		b.WriteString(" " + searchRareWord)
	}
	return store.SearchText{
		Subject: vocab[z.Uint64()] + " " + vocab[z.Uint64()],
		From:    fmt.Sprintf("Sender %d <sender%d@example.net>", i%97, i%97),
		To:      "bench@example.org",
		Header:  fmt.Sprintf("message-id: <%d@example.net>\n", i),
		Body:    b.String(),
	}
}

func searchVocab() []string {
	r := rand.New(rand.NewPCG(1, 2))
	vocab := make([]string, searchVocabulary)
	for i := range vocab {
		n := 3 + r.IntN(8)
		w := make([]byte, n)
		for j := range w {
			w[j] = byte('a' + r.IntN(26))
		}
		vocab[i] = string(w)
	}
	return vocab
}

// searchCorpus opens the cached corpus, building it first if needed, and returns the store
// and the mailbox.
func searchCorpus(b *testing.B) (*Store, int64) {
	b.Helper()
	ctx := context.Background()
	dir := searchCorpusDir()
	path := filepath.Join(dir, "petrel.db")
	done := filepath.Join(dir, "complete")
	if _, err := os.Stat(done); err != nil {
		os.RemoveAll(dir)
		if err := os.MkdirAll(dir, 0o700); err != nil {
			b.Fatal(err)
		}
		b.Logf("building the %d-message corpus in %s (once)", searchCorpusSize, dir)
		s, err := Open(path, Options{MaxBatch: 512})
		if err != nil {
			b.Fatal(err)
		}
		a := setup(b, s, "bench@example.org")
		vocab := searchVocab()
		var next atomic.Int64
		var wg sync.WaitGroup
		for range 32 {
			wg.Go(func() {
				for {
					i := int(next.Add(1))
					if i > searchCorpusSize {
						return
					}
					text := searchText(vocab, i)
					body := "Subject: " + text.Subject + "\r\nFrom: " + text.From + "\r\n\r\n" + text.Body + "\r\n"
					d := &store.Delivery{
						Targets: []store.Target{{AccountID: a.ID, Mailbox: store.Inbox}},
						Body:    strings.NewReader(body),
						Size:    int64(len(body)),
						Parsed:  store.ParsedMessage{Subject: text.Subject, From: text.From, Text: &text},
					}
					if _, err := s.Deliver(ctx, d); err != nil {
						b.Error(err)
						return
					}
				}
			})
		}
		wg.Wait()
		if err := s.Close(); err != nil || b.Failed() {
			b.Fatalf("building the corpus: %v", err)
		}
		if err := os.WriteFile(done, nil, 0o600); err != nil {
			b.Fatal(err)
		}
	}
	s, err := Open(path, Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	a, err := s.AccountByAddress(ctx, "bench@example.org")
	if err != nil {
		b.Fatal(err)
	}
	box, err := s.Mailbox(ctx, a.ID, store.Inbox)
	if err != nil || box.Messages != searchCorpusSize {
		b.Fatalf("corpus mailbox %+v, %v", box, err)
	}
	return s, box.ID
}

// BenchmarkSearch100K searches one word in the TEXT of a 100,000-message mailbox: a rare
// word (200 messages), a common one (the vocabulary's 20th, in about a quarter of them), a
// prefix, and a word in no message. It reports the hits and the size of the index per
// message (its pages, from the dbstat table).
func BenchmarkSearch100K(b *testing.B) {
	s, box := searchCorpus(b)
	ctx := context.Background()
	var indexBytes int64
	if err := s.rdb.QueryRowContext(ctx, `SELECT sum(pgsize) FROM dbstat WHERE name LIKE 'search%'`).Scan(&indexBytes); err != nil {
		b.Fatal(err)
	}
	vocab := searchVocab()
	for _, tc := range []struct{ name, word string }{
		{"rare", searchRareWord},
		{"common", vocab[20]},
		{"prefix", searchRareWord[:6]},
		{"absent", "nosuchword"},
	} {
		b.Run(tc.name, func(b *testing.B) {
			var hits int
			cpu := cpuTime()
			for b.Loop() {
				uids, err := s.Search(ctx, box, store.FieldText, tc.word)
				if err != nil {
					b.Fatal(err)
				}
				hits = len(uids)
			}
			b.ReportMetric(float64((cpuTime()-cpu).Microseconds())/float64(b.N)/1000, "cpu-ms/op")
			b.ReportMetric(float64(hits), "hits")
			b.ReportMetric(float64(indexBytes)/searchCorpusSize, "index-B/msg")
		})
	}
}
