package sqlite

import (
	"context"
	"slices"
	"testing"

	"petrel/internal/store"
	"petrel/internal/store/storetest"
)

// The conformance suite again with every search answered from the mailbox maps.
func TestConformanceSearchMap(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		s := openTemp(t, Options{})
		s.searchMaps.min = 1
		return s
	})
}

// TestSearchMapFollowsChanges: a map built by one search answers the next ones while the
// mailbox is unchanged, and a change that keeps the message count (one expunged, one
// delivered) or copies a body within the mailbox is seen by the search after it.
func TestSearchMapFollowsChanges(t *testing.T) {
	ctx := context.Background()
	s := openTemp(t, Options{})
	s.searchMaps.min = 1
	a := setup(t, s, "a@example.org")
	for _, w := range []string{"wombat", "wombat", "other", "wombat"} {
		if _, err := s.Deliver(ctx, textDelivery(w, a.ID)); err != nil {
			t.Fatal(err)
		}
	}
	box, err := s.Mailbox(ctx, a.ID, store.Inbox)
	if err != nil {
		t.Fatal(err)
	}
	search := func(want ...uint32) {
		t.Helper()
		got, err := s.Search(ctx, box.ID, store.FieldText, "wombat")
		if err != nil || !slices.Equal(got, want) {
			t.Fatalf("Search = %v, %v; want %v", got, err, want)
		}
	}
	search(1, 2, 4)
	if len(s.searchMaps.maps) != 1 {
		t.Fatalf("%d maps after a search, want 1", len(s.searchMaps.maps))
	}
	search(1, 2, 4)

	if _, err := s.Expunge(ctx, box.ID, []uint32{2}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Deliver(ctx, textDelivery("wombat", a.ID)); err != nil {
		t.Fatal(err)
	}
	search(1, 4, 5)

	// A copy within the mailbox: two messages share one body.
	if _, err := s.Copy(ctx, box.ID, []uint32{1}, box.ID); err != nil {
		t.Fatal(err)
	}
	search(1, 4, 5, 6)
}

// The maps kept are bounded, the least recently used going first.
func TestSearchMapCacheBound(t *testing.T) {
	var c searchMapCache
	for id := int64(1); id <= searchMaps+2; id++ {
		c.put(&blobUIDs{mailboxID: id, uidnext: 10, messages: 5})
	}
	if len(c.maps) != searchMaps || c.get(1, 10, 5) != nil || c.get(2, 10, 5) != nil {
		t.Fatalf("cache keeps %d maps (want %d) or the oldest", len(c.maps), searchMaps)
	}
	if c.get(3, 10, 5) == nil {
		t.Fatal("mailbox 3 lost")
	}
	if c.get(3, 11, 5) != nil || c.get(3, 10, 5) != nil {
		t.Fatal("a map outlived a change of UIDNEXT")
	}
}
