package storetest

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

// The full-text search corpus of the SEARCH benchmarks (store/sqlite and server/imapd): one
// mailbox of SearchCorpusSize messages whose text is Zipf-distributed words from a fixed
// vocabulary, as in natural language, so the common words are in most messages and the rare
// ones in few; every SearchRareEvery-th message also holds SearchRareWord. Building it takes
// minutes, so a benchmark keeps it in SearchCorpusDir for later runs.
const (
	SearchCorpusSize    = 100_000
	SearchRareEvery     = 500 // 200 messages hold the rare word
	SearchRareWord      = "petrelbench"
	SearchCorpusAccount = "bench@example.org"
	searchVocabulary    = 30_000
	searchWords         = 250 // words per body, about 1.7 KB of text
	// searchCorpusVersion changes with the corpus or the schema it needs.
	searchCorpusVersion = 2
)

// SearchCorpusDir is where the cached corpus lives; delete it to build it again.
func SearchCorpusDir() string {
	return filepath.Join(os.TempDir(), fmt.Sprintf("petrel-bench-search-v%d-%d", searchCorpusVersion, SearchCorpusSize))
}

// SearchCommonWord is a word in about three quarters of the corpus's messages.
func SearchCommonWord() string { return searchVocab()[20] }

func searchVocab() []string {
	r := rand.New(rand.NewPCG(1, 2))
	vocab := make([]string, searchVocabulary)
	for i := range vocab {
		w := make([]byte, 3+r.IntN(8))
		for j := range w {
			w[j] = byte('a' + r.IntN(26))
		}
		vocab[i] = string(w)
	}
	return vocab
}

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
	if i%SearchRareEvery == 0 {
		b.WriteString(" " + SearchRareWord)
	}
	return store.SearchText{
		Subject: vocab[z.Uint64()] + " " + vocab[z.Uint64()],
		From:    fmt.Sprintf("Sender %d <sender%d@example.net>", i%97, i%97),
		To:      SearchCorpusAccount,
		Header:  fmt.Sprintf("message-id: <%d@example.net>\n", i),
		Body:    b.String(),
	}
}

// OpenSearchCorpus opens the cached corpus with open (a store on a data directory),
// building it first if the directory does not hold a complete one, and returns the store
// and the mailbox.
func OpenSearchCorpus(b testing.TB, open func(dir string) store.Store) (store.Store, store.Mailbox) {
	b.Helper()
	ctx := context.Background()
	dir := SearchCorpusDir()
	done := filepath.Join(dir, "complete")
	if _, err := os.Stat(done); err != nil {
		os.RemoveAll(dir)
		if err := os.MkdirAll(dir, 0o700); err != nil {
			b.Fatal(err)
		}
		b.Logf("building the %d-message search corpus in %s (once)", SearchCorpusSize, dir)
		s := open(dir)
		buildSearchCorpus(b, s)
		if err := s.Close(); err != nil || b.Failed() {
			b.Fatalf("building the corpus: %v", err)
		}
		if err := os.WriteFile(done, nil, 0o600); err != nil {
			b.Fatal(err)
		}
	}
	s := open(dir)
	b.Cleanup(func() { s.Close() })
	a, err := s.AccountByAddress(ctx, SearchCorpusAccount)
	if err != nil {
		b.Fatal(err)
	}
	box, err := s.Mailbox(ctx, a.ID, store.Inbox)
	if err != nil || box.Messages != SearchCorpusSize {
		b.Fatalf("corpus mailbox %+v, %v", box, err)
	}
	return s, box
}

func buildSearchCorpus(b testing.TB, s store.Store) {
	ctx := context.Background()
	if err := s.AddDomain(ctx, "example.org"); err != nil {
		b.Fatal(err)
	}
	a, err := s.AddAccount(ctx, SearchCorpusAccount, store.Credentials{})
	if err != nil {
		b.Fatal(err)
	}
	vocab := searchVocab()
	var next atomic.Int64
	var wg sync.WaitGroup
	for range 32 {
		wg.Go(func() {
			for {
				i := int(next.Add(1))
				if i > SearchCorpusSize {
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
}
