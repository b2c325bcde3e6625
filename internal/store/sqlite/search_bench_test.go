package sqlite

import (
	"context"
	"path/filepath"
	"testing"

	"petrel/internal/store"
	"petrel/internal/store/storetest"
)

// BenchmarkSearch100K searches one word in the TEXT of a 100,000-message mailbox (issue 10
// asks for under 50 ms; storetest.OpenSearchCorpus builds the mailbox once and keeps it): a
// rare word (200 messages), a common one (about three quarters of them), a prefix, and a
// word in no message. It reports the hits, the CPU per search and the size of the index per
// message (its pages, from the dbstat table).
func BenchmarkSearch100K(b *testing.B) {
	st, box := storetest.OpenSearchCorpus(b, func(dir string) store.Store {
		s, err := Open(filepath.Join(dir, "petrel.db"), Options{MaxBatch: 512})
		if err != nil {
			b.Fatal(err)
		}
		return s
	})
	s := st.(*Store)
	ctx := context.Background()
	var indexBytes int64
	if err := s.rdb.QueryRowContext(ctx, `SELECT sum(pgsize) FROM dbstat WHERE name LIKE 'search%'`).Scan(&indexBytes); err != nil {
		b.Fatal(err)
	}
	for _, tc := range []struct{ name, word string }{
		{"rare", storetest.SearchRareWord},
		{"common", storetest.SearchCommonWord()},
		{"prefix", storetest.SearchRareWord[:6]},
		{"absent", "nosuchword"},
	} {
		b.Run(tc.name, func(b *testing.B) {
			var hits int
			cpu := cpuTime()
			for b.Loop() {
				uids, err := s.Search(ctx, box.ID, store.FieldText, tc.word)
				if err != nil {
					b.Fatal(err)
				}
				hits = len(uids)
			}
			b.ReportMetric(float64((cpuTime()-cpu).Microseconds())/float64(b.N)/1000, "cpu-ms/op")
			b.ReportMetric(float64(hits), "hits")
			b.ReportMetric(float64(indexBytes)/storetest.SearchCorpusSize, "index-B/msg")
		})
	}
}
