package storetest

import (
	"context"
	"errors"
	"math"
	"reflect"
	"slices"
	"testing"
	"time"

	"petrel/internal/store"
)

// SorterStore is a store with the keys of IMAP SORT and THREAD.
type SorterStore interface {
	store.Store
	store.Sorter
}

// RunSorter tests a store's Sorter: open returns a new, empty store, which the test closes.
func RunSorter(t *testing.T, open func(t *testing.T) SorterStore) {
	s := open(t)
	defer s.Close()
	f := &fixture{t: t, s: s, ctx: context.Background()}
	a := f.account("a@example.org")
	inbox := f.mailbox(a.ID, store.Inbox)
	to := store.Target{AccountID: a.ID}

	keys := &store.SortKeys{
		Date: time.Date(2025, 2, 1, 8, 0, 0, 0, time.UTC), Subject: "HELLO", Reply: true,
		From: "BOB", To: "ALICE", Cc: "", DisplayFrom: "BOB B", DisplayTo: "ALICE@EXAMPLE.ORG",
		MessageID: "2@x", References: []string{"0@x", "1@x"},
	}
	withKeys := delivery("Subject: Re: hello\r\n\r\none\r\n", to)
	withKeys.Parsed.Sort = keys
	d1, err := s.Deliver(f.ctx, withKeys)
	if err != nil {
		t.Fatal(err)
	}
	d2 := f.deliver("Subject: old\r\n\r\ntwo\r\n", to) // no keys: a body stored before they were kept

	rows, err := s.SortRows(f.ctx, inbox.ID, nil)
	if err != nil || len(rows) != 2 {
		t.Fatalf("SortRows = %+v, %v; want 2 rows", rows, err)
	}
	m1, m2 := d1.Messages[0], d2.Messages[0]
	want0 := store.SortRow{UID: m1.UID, BlobID: m1.BlobID, Size: m1.Size, InternalDate: m1.InternalDate, Keys: keys}
	if !reflect.DeepEqual(rows[0], want0) {
		t.Errorf("row with keys = %+v (keys %+v), want %+v", rows[0], rows[0].Keys, want0)
	}
	if rows[1].UID != m2.UID || rows[1].BlobID != m2.BlobID || rows[1].Keys != nil {
		t.Errorf("row without keys = %+v; want UID %d, no keys", rows[1], m2.UID)
	}

	// UID ranges select rows: one, several, none.
	for _, tc := range []struct {
		uids []store.UIDRange
		want []uint32
	}{
		{[]store.UIDRange{{First: m2.UID, Last: m2.UID}}, []uint32{m2.UID}},
		{[]store.UIDRange{{First: m2.UID, Last: math.MaxUint32}, {First: 1, Last: m1.UID}}, []uint32{m1.UID, m2.UID}},
		{[]store.UIDRange{{First: m2.UID + 1, Last: m2.UID + 5}}, nil},
	} {
		rows, err := s.SortRows(f.ctx, inbox.ID, tc.uids)
		var got []uint32
		for _, r := range rows {
			got = append(got, r.UID)
		}
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("SortRows(%v) = UIDs %v, %v; want %v", tc.uids, got, err, tc.want)
		}
	}

	// SetSortKeys fills the missing keys and keeps the ones a body has; an unknown body
	// is skipped.
	late := &store.SortKeys{Subject: "OLD"}
	if err := s.SetSortKeys(f.ctx, map[int64]*store.SortKeys{m2.BlobID: late, m1.BlobID: late, 1 << 40: late}); err != nil {
		t.Fatal(err)
	}
	rows, err = s.SortRows(f.ctx, inbox.ID, nil)
	if err != nil || len(rows) != 2 || !reflect.DeepEqual(rows[0].Keys, keys) || !reflect.DeepEqual(rows[1].Keys, late) {
		t.Errorf("after SetSortKeys: %+v, %v", rows, err)
	}

	// A copy shares the body and so its keys; an expunged message leaves the list.
	archive := f.mailbox(a.ID, store.Archive)
	if _, err := s.Copy(f.ctx, inbox.ID, []uint32{m1.UID}, archive.ID); err != nil {
		t.Fatal(err)
	}
	f.expunge(inbox.ID, m1.UID)
	if rows, err := s.SortRows(f.ctx, archive.ID, nil); err != nil || len(rows) != 1 || !reflect.DeepEqual(rows[0].Keys, keys) {
		t.Errorf("SortRows of the copy = %+v, %v", rows, err)
	}
	if rows, err := s.SortRows(f.ctx, inbox.ID, nil); err != nil || len(rows) != 1 || rows[0].UID != m2.UID {
		t.Errorf("SortRows after the expunge = %+v, %v", rows, err)
	}

	// An empty mailbox has no rows; an unknown one is ErrNotFound.
	if rows, err := s.SortRows(f.ctx, f.mailbox(a.ID, store.Junk).ID, nil); err != nil || len(rows) != 0 {
		t.Errorf("SortRows(empty) = %+v, %v", rows, err)
	}
	if _, err := s.SortRows(f.ctx, 1<<40, nil); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("SortRows(unknown) = %v, want ErrNotFound", err)
	}
}
