package sqlite

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"petrel/internal/store"
)

func textDelivery(word string, accountID int64) *store.Delivery {
	d := message("Subject: x\r\n\r\n"+word+"\r\n", accountID)
	d.Parsed.Text = &store.SearchText{Subject: "x", Body: word}
	return d
}

func pendingCount(t *testing.T, s *Store) int {
	t.Helper()
	var n int
	if err := s.rdb.QueryRow(`SELECT count(*) FROM search_pending`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestIndexerBackground: the commit leaves a delivery's body in search_pending, and the
// indexer indexes it without any search asking, in few transactions: the deliveries'
// commits carry no index rows.
func TestIndexerBackground(t *testing.T) {
	ctx := context.Background()
	s := openTemp(t, Options{})
	a := setup(t, s, "a@example.org")
	const n = 40
	for i := range n {
		if _, err := s.Deliver(ctx, textDelivery(fmt.Sprintf("word%d", i), a.ID)); err != nil {
			t.Fatal(err)
		}
	}
	if got := s.index.queued(); got > n {
		t.Fatalf("%d bodies queued for %d deliveries", got, n)
	}
	deadline := time.Now().Add(30 * time.Second)
	for pendingCount(t, s) > 0 || s.index.queued() > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d bodies still pending after 30 s", pendingCount(t, s))
		}
		time.Sleep(10 * time.Millisecond)
	}
	if w := s.indexWrites.Load(); w == 0 || w >= n {
		t.Errorf("%d index writes for %d sequential deliveries; want batches", w, n)
	}
	// Indexed by the indexer, found without a flush.
	var hits int
	if err := s.rdb.QueryRow(`SELECT count(*) FROM search WHERE search MATCH 'word7'`).Scan(&hits); err != nil || hits != 1 {
		t.Errorf("index rows for word7: %d, %v", hits, err)
	}
	if ids, err := s.Unindexed(ctx, 10); err != nil || len(ids) != 0 {
		t.Errorf("Unindexed = %v, %v; the indexer's bodies are not the backlog's", ids, err)
	}
}

// TestIndexerClose: Close indexes what is queued, and a body freed before its turn is
// skipped.
func TestIndexerClose(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "petrel.db")
	s := openPath(t, path, Options{})
	a := setup(t, s, "a@example.org")
	for _, w := range []string{"kept", "expunged"} {
		if _, err := s.Deliver(ctx, textDelivery(w, a.ID)); err != nil {
			t.Fatal(err)
		}
	}
	box, err := s.Mailbox(ctx, a.ID, store.Inbox)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Expunge(ctx, box.ID, []uint32{2}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openPath(t, path, Options{})
	defer s.Close()
	if n := pendingCount(t, s); n != 0 {
		t.Errorf("%d bodies pending after Close", n)
	}
	if got, err := s.Search(ctx, box.ID, store.FieldText, "kept"); err != nil || !slices.Equal(got, []uint32{1}) {
		t.Errorf("Search(kept) = %v, %v", got, err)
	}
}

// TestIndexerLeftovers: bodies a stopped process left in search_pending (its queue was in
// memory) are the backlog of the next Open, listed by Unindexed for the mail layer.
func TestIndexerLeftovers(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "petrel.db")
	s := openPath(t, path, Options{})
	a := setup(t, s, "a@example.org")
	// Empty the queue without indexing, as a crash would.
	s.index.run.Lock()
	d, err := s.Deliver(ctx, textDelivery("lost", a.ID))
	if err != nil {
		t.Fatal(err)
	}
	s.index.mu.Lock()
	s.index.queue, s.index.bytes = nil, 0
	s.index.mu.Unlock()
	s.index.run.Unlock()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openPath(t, path, Options{})
	defer s.Close()
	ids, err := s.Unindexed(ctx, 10)
	if err != nil || !slices.Equal(ids, []int64{d.BlobID}) {
		t.Fatalf("Unindexed = %v, %v; want [%d]", ids, err, d.BlobID)
	}
	if err := s.IndexBlob(ctx, d.BlobID, store.SearchText{Body: "lost"}); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Search(ctx, d.Messages[0].MailboxID, store.FieldText, "lost"); err != nil || !slices.Equal(got, []uint32{1}) {
		t.Errorf("Search(lost) = %v, %v", got, err)
	}
}
