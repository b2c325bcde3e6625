package storetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"petrel/internal/store"
)

// BlobBatchStore is a store that reads many bodies in one go.
type BlobBatchStore interface {
	store.Store
	store.BlobBatch
}

// RunBlobBatch tests a store's BlobBatch: open returns a new, empty store, which the test
// closes.
func RunBlobBatch(t *testing.T, open func(t *testing.T) BlobBatchStore) {
	s := open(t)
	defer s.Close()
	f := &fixture{t: t, s: s, ctx: context.Background()}
	a := f.account("a@example.org")
	inbox := f.mailbox(a.ID, store.Inbox)
	to := store.Target{AccountID: a.ID}

	small := f.deliver("Subject: one\r\n\r\nsmall\r\n", to).Messages[0]
	other := f.deliver("Subject: two\r\n\r\nanother\r\n", to).Messages[0]
	// Larger than one chunk of any store: whole bodies of this size may be skipped.
	bigBody := "Subject: big\r\n\r\n" + strings.Repeat("0123456789abcde\n", 40<<10)
	big := f.deliver(bigBody, to).Messages[0]
	gone := f.deliver("Subject: gone\r\n\r\nexpunged\r\n", to).Messages[0]
	f.expunge(inbox.ID, gone.UID)

	read := func(ids []int64, maxSize int64) map[int64]string {
		t.Helper()
		got := map[int64]string{}
		err := s.ReadBlobs(f.ctx, ids, maxSize, func(id int64, body []byte) error {
			if _, dup := got[id]; dup {
				t.Errorf("ReadBlobs gave body %d twice", id)
			}
			got[id] = string(body)
			return nil
		})
		if err != nil {
			t.Fatalf("ReadBlobs(%v, %d): %v", ids, maxSize, err)
		}
		return got
	}

	// Every body asked for, whole, each once (an ID twice in the list gives it once); an
	// expunged body and an unknown ID are skipped.
	got := read([]int64{other.BlobID, small.BlobID, small.BlobID, gone.BlobID, 1 << 40}, 1<<20)
	if len(got) != 2 || got[small.BlobID] != f.blob(small.BlobID) || got[other.BlobID] != f.blob(other.BlobID) {
		t.Errorf("ReadBlobs = %v; want the two stored bodies", got)
	}
	if _, ok := got[gone.BlobID]; ok {
		t.Error("ReadBlobs gave an expunged body")
	}

	// maxSize skips larger bodies; a body it returns is whole.
	got = read([]int64{small.BlobID, other.BlobID}, small.Size)
	if len(got) != 1 || got[small.BlobID] != f.blob(small.BlobID) {
		t.Errorf("ReadBlobs with maxSize %d = %v; want only the small body", small.Size, got)
	}
	got = read([]int64{big.BlobID}, 1<<30)
	if b, ok := got[big.BlobID]; ok && b != bigBody {
		t.Errorf("ReadBlobs of a %d-octet body gave %d octets", len(bigBody), len(b))
	}

	// No IDs: nothing, no error.
	if got := read(nil, 1<<20); len(got) != 0 {
		t.Errorf("ReadBlobs(nil) = %v", got)
	}

	// An error from fn stops the reading and comes back.
	stop := errors.New("stop")
	calls := 0
	err := s.ReadBlobs(f.ctx, []int64{small.BlobID, other.BlobID}, 1<<20, func(int64, []byte) error {
		calls++
		return stop
	})
	if !errors.Is(err, stop) || calls != 1 {
		t.Errorf("ReadBlobs with a failing fn = %v after %d calls; want %v after 1", err, calls, stop)
	}
}

// FlagSearchStore is a store that lists UIDs by flag.
type FlagSearchStore interface {
	store.Store
	store.FlagSearch
}

// RunFlagSearch tests a store's FlagSearch: open returns a new, empty store, which the test
// closes.
func RunFlagSearch(t *testing.T, open func(t *testing.T) FlagSearchStore) {
	s := open(t)
	defer s.Close()
	f, inbox, empty, uids := flagFixture(t, s, 6)
	f.setFlags(inbox.ID, []uint32{uids[0], uids[2]}, store.FlagsAdd, store.FlagSeen)
	f.setFlags(inbox.ID, []uint32{uids[2], uids[3]}, store.FlagsAdd, store.FlagDeleted, "$Seenish")
	f.setFlags(inbox.ID, []uint32{uids[4]}, store.FlagsAdd, store.FlagFlagged)
	f.setFlags(inbox.ID, []uint32{uids[5]}, store.FlagsAdd, store.FlagAnswered, "Flagged")
	f.expunge(inbox.ID, uids[3])
	all := []uint32{uids[0], uids[1], uids[2], uids[4], uids[5]}

	for _, tc := range []struct {
		name   string
		ranges []store.UIDRange
		flag   string
		has    bool
		want   []uint32
	}{
		{"every message", nil, "", false, all},
		{"every message, has ignored", nil, "", true, all},
		{"seen", nil, store.FlagSeen, true, []uint32{uids[0], uids[2]}},
		{"unseen", nil, store.FlagSeen, false, []uint32{uids[1], uids[4], uids[5]}},
		{"seen in any case", nil, `\SEEN`, true, []uint32{uids[0], uids[2]}},
		{"deleted, expunged left out", nil, store.FlagDeleted, true, []uint32{uids[2]}},
		{"a keyword is not a prefix match", nil, "$Seen", true, nil},
		{"keyword", nil, "$seenish", true, []uint32{uids[2]}},
		{"ranges", []store.UIDRange{{First: uids[4], Last: uids[5]}, {First: 1, Last: uids[1]}}, store.FlagSeen, false, []uint32{uids[1], uids[4], uids[5]}},
		{"one range", []store.UIDRange{{First: uids[1], Last: uids[2]}}, "", false, []uint32{uids[1], uids[2]}},
		// The listings a store may serve from indexes of their own (UNSEEN, FLAGGED, DELETED),
		// alone, in one range and in several; a keyword spelled like a system flag is not one.
		{"flagged", nil, store.FlagFlagged, true, []uint32{uids[4]}},
		{"flagged in any case", nil, `\flagged`, true, []uint32{uids[4]}},
		{"unflagged", nil, store.FlagFlagged, false, []uint32{uids[0], uids[1], uids[2], uids[5]}},
		{"keyword Flagged", nil, "flagged", true, []uint32{uids[5]}},
		{"answered", nil, store.FlagAnswered, true, []uint32{uids[5]}},
		{"undeleted", nil, store.FlagDeleted, false, []uint32{uids[0], uids[1], uids[4], uids[5]}},
		{"deleted in one range", []store.UIDRange{{First: uids[1], Last: uids[5]}}, store.FlagDeleted, true, []uint32{uids[2]}},
		{"unseen in one range", []store.UIDRange{{First: uids[2], Last: uids[4]}}, store.FlagSeen, false, []uint32{uids[4]}},
		{"flagged in ranges", []store.UIDRange{{First: uids[0], Last: uids[0]}, {First: uids[4], Last: uids[5]}}, store.FlagFlagged, true, []uint32{uids[4]}},
		{"a range of none", []store.UIDRange{{First: uids[5] + 1, Last: uids[5] + 9}}, "", false, nil},
	} {
		got, err := s.UIDsByFlag(f.ctx, inbox.ID, tc.ranges, tc.flag, tc.has)
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("%s: UIDsByFlag(%v, %q, %v) = %v, %v; want %v", tc.name, tc.ranges, tc.flag, tc.has, got, err, tc.want)
		}
	}
	if got, err := s.UIDsByFlag(f.ctx, empty.ID, nil, "", false); err != nil || len(got) != 0 {
		t.Errorf("UIDsByFlag of an empty mailbox = %v, %v", got, err)
	}
	_, err := s.UIDsByFlag(f.ctx, empty.ID+1000, nil, "", false)
	wantErr(t, "UIDsByFlag of a missing mailbox", err, store.ErrNotFound)
}

// FlagFirstStore is a store that finds a mailbox's first message by a flag.
type FlagFirstStore interface {
	store.Store
	store.FlagFirst
}

// RunFlagFirst tests a store's FlagFirst: open returns a new, empty store, which the test
// closes.
func RunFlagFirst(t *testing.T, open func(t *testing.T) FlagFirstStore) {
	s := open(t)
	defer s.Close()
	f, inbox, empty, uids := flagFixture(t, s, 5)
	f.setFlags(inbox.ID, []uint32{uids[0], uids[1]}, store.FlagsAdd, store.FlagSeen)
	f.setFlags(inbox.ID, []uint32{uids[1], uids[3]}, store.FlagsAdd, store.FlagFlagged, "Work")
	f.setFlags(inbox.ID, []uint32{uids[2]}, store.FlagsAdd, store.FlagDeleted)
	f.expunge(inbox.ID, uids[2])

	for _, tc := range []struct {
		name string
		flag string
		has  bool
		want uint32
	}{
		{"first message", "", false, uids[0]},
		{"first unseen", store.FlagSeen, false, uids[3]},
		{"first seen", store.FlagSeen, true, uids[0]},
		{"first flagged", store.FlagFlagged, true, uids[1]},
		{"first unflagged", store.FlagFlagged, false, uids[0]},
		{"flag in any case", `\FLAGGED`, true, uids[1]},
		{"keyword", "work", true, uids[1]},
		{"deleted, expunged left out", store.FlagDeleted, true, 0},
		{"first undeleted", store.FlagDeleted, false, uids[0]},
		{"nobody has it", store.FlagDraft, true, 0},
	} {
		got, err := s.FirstUIDByFlag(f.ctx, inbox.ID, tc.flag, tc.has)
		if err != nil || got != tc.want {
			t.Errorf("%s: FirstUIDByFlag(%q, %v) = %d, %v; want %d", tc.name, tc.flag, tc.has, got, err, tc.want)
		}
		// The same answer as the head of the listing, when the store lists too.
		if fs, ok := s.(store.FlagSearch); ok {
			all, err := fs.UIDsByFlag(f.ctx, inbox.ID, nil, tc.flag, tc.has)
			if err != nil || (len(all) > 0) != (got != 0) || len(all) > 0 && all[0] != got {
				t.Errorf("%s: UIDsByFlag = %v, %v; FirstUIDByFlag %d", tc.name, all, err, got)
			}
		}
	}
	if got, err := s.FirstUIDByFlag(f.ctx, empty.ID, store.FlagSeen, false); err != nil || got != 0 {
		t.Errorf("FirstUIDByFlag of an empty mailbox = %d, %v", got, err)
	}
	_, err := s.FirstUIDByFlag(f.ctx, empty.ID+1000, store.FlagSeen, false)
	wantErr(t, "FirstUIDByFlag of a missing mailbox", err, store.ErrNotFound)
}

// HeaderBatchStore is a store that reads many header sections in one go.
type HeaderBatchStore interface {
	store.Store
	store.HeaderBatch
}

// RunHeaderBatch tests a store's HeaderBatch: open returns a new, empty store, which the
// test closes.
func RunHeaderBatch(t *testing.T, open func(t *testing.T) HeaderBatchStore) {
	s := open(t)
	defer s.Close()
	f := &fixture{t: t, s: s, ctx: context.Background()}
	a := f.account("a@example.org")
	inbox := f.mailbox(a.ID, store.Inbox)
	to := store.Target{AccountID: a.ID}

	// Headers of every shape store.HeaderSize knows: an ordinary one, one with an empty
	// line inside a bare-LF run, none at all (the header is the whole message), an empty
	// header, and one long enough to pass a chunk of any store.
	bodies := []string{
		"Subject: one\r\nFrom: a@example.org\r\n\r\nbody\r\n\r\nmore\r\n",
		"Subject: lf\nX-A: b\n\nbody\r\n\r\n",
		"Subject: no body\r\nX-A: b\r\n",
		"\r\nSubject: not a header\r\n\r\nbody\r\n",
		"Subject: long\r\nX-Long: " + strings.Repeat("x", 300<<10) + "\r\n\r\nbody\r\n",
	}
	var ids []int64
	want := map[int64]string{}
	for _, b := range bodies {
		m := f.deliver(b, to).Messages[0]
		ids = append(ids, m.BlobID)
		stored := f.blob(m.BlobID)
		want[m.BlobID] = stored[:store.HeaderSize([]byte(stored))]
	}
	gone := f.deliver("Subject: gone\r\n\r\nexpunged\r\n", to).Messages[0]
	f.expunge(inbox.ID, gone.UID)

	read := func(ids []int64) map[int64]string {
		t.Helper()
		got := map[int64]string{}
		err := s.ReadHeaders(f.ctx, ids, func(id int64, header []byte) error {
			if _, dup := got[id]; dup {
				t.Errorf("ReadHeaders gave header %d twice", id)
			}
			got[id] = string(header)
			return nil
		})
		if err != nil {
			t.Fatalf("ReadHeaders(%v): %v", ids, err)
		}
		return got
	}
	// A header it gives is exactly the body's first HeaderSize octets; an ordinary one it
	// must give (else the interface saves nothing); an expunged body and an unknown ID are
	// skipped.
	got := read(append([]int64{gone.BlobID, 1 << 40, ids[0]}, ids...))
	for id, h := range got {
		if w, ok := want[id]; !ok || h != w {
			t.Errorf("ReadHeaders gave %d: %.80q; want %.80q (asked: %v)", id, h, w, ok)
		}
	}
	if _, ok := got[ids[0]]; !ok {
		t.Errorf("ReadHeaders skipped an ordinary message: got %d of %d", len(got), len(ids))
	}
	if got := read(nil); len(got) != 0 {
		t.Errorf("ReadHeaders(nil) = %v", got)
	}
	stop := errors.New("stop")
	calls := 0
	err := s.ReadHeaders(f.ctx, ids[:2], func(int64, []byte) error {
		calls++
		return stop
	})
	if !errors.Is(err, stop) || calls != 1 {
		t.Errorf("ReadHeaders with a failing fn = %v after %d calls; want %v after 1", err, calls, stop)
	}
}

// flagFixture gives the flag tests an account with n messages in its INBOX and an empty
// mailbox, and the messages' UIDs.
func flagFixture(t *testing.T, s store.Store, n int) (f *fixture, inbox, empty store.Mailbox, uids []uint32) {
	f = &fixture{t: t, s: s, ctx: context.Background()}
	a := f.account("a@example.org")
	inbox = f.mailbox(a.ID, store.Inbox)
	empty = f.create(a.ID, "Empty")
	to := store.Target{AccountID: a.ID}
	for i := range n {
		uids = append(uids, f.deliver(fmt.Sprintf("Subject: %d\r\n\r\nbody\r\n", i), to).Messages[0].UID)
	}
	return f, inbox, empty, uids
}
