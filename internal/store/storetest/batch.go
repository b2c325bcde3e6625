package storetest

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"petrel/internal/store"
)

// BatchStore is a store with AppendBatch.
type BatchStore interface {
	store.Store
	store.BatchAppender
}

// RunBatchAppender runs the tests of store.BatchAppender. open must return a new, empty
// store for each call; the suite closes it.
func RunBatchAppender(t *testing.T, open func(t *testing.T) BatchStore) {
	t.Run("AppendBatch", func(t *testing.T) {
		t.Parallel()
		s := open(t)
		t.Cleanup(func() {
			if err := s.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
		})
		testAppendBatch(t, &fixture{t: t, s: s, ctx: t.Context()}, s)
	})
}

func batchMessage(i int, uid uint32, flags ...string) store.BatchMessage {
	body := fmt.Sprintf("Subject: message %d\r\n\r\nbody %d\r\n", i, i)
	return store.BatchMessage{UID: uid, AppendMessage: store.AppendMessage{
		Body: strings.NewReader(body), Size: int64(len(body)), Flags: flags,
		InternalDate: time.Date(2020, 1, 1, 0, 0, i, 0, time.UTC),
	}}
}

// testAppendBatch: messages with wanted UIDs (gaps included) and without take them in order,
// with their flags, keywords and dates; a UID below UIDNEXT takes the next; a bad message
// stops the batch with the messages before it committed; an unknown mailbox is ErrNotFound.
func testAppendBatch(t *testing.T, f *fixture, b store.BatchAppender) {
	a := f.account("alice@example.org")
	box := f.create(a.ID, "Moved")
	if err := f.s.AdoptUIDs(f.ctx, box.ID, 4242, 1); err != nil {
		t.Fatal(err)
	}
	var msgs []store.BatchMessage
	var want []uint32
	for i := range 300 {
		uid := uint32(2*i + 3) // 3, 5, 7, ...: gaps, as expunges on the other server left
		if i%50 == 49 {
			uid = 0 // the next UID
		}
		msgs = append(msgs, batchMessage(i, uid, store.FlagSeen, "$Label1"))
		if uid == 0 {
			uid = want[len(want)-1] + 1
		}
		want = append(want, uid)
	}
	got, err := b.AppendBatch(f.ctx, a.ID, "Moved", msgs)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(msgs) {
		t.Fatalf("%d appended, want %d", len(got), len(msgs))
	}
	listed := f.messages(box.ID)
	if len(listed) != len(msgs) {
		t.Fatalf("%d messages in the mailbox, want %d", len(listed), len(msgs))
	}
	for i, ap := range got {
		if ap.UIDValidity != 4242 || ap.Message.UID != want[i] || listed[i].UID != want[i] {
			t.Fatalf("message %d: UIDVALIDITY %d UID %d (listed %d), want 4242 %d", i, ap.UIDValidity, ap.Message.UID, listed[i].UID, want[i])
		}
		if !listed[i].InternalDate.Equal(msgs[i].InternalDate) || strings.Join(listed[i].Flags, " ") != "$Label1 \\Seen" {
			t.Fatalf("message %d: date %v flags %v", i, listed[i].InternalDate, listed[i].Flags)
		}
		if body := f.blob(listed[i].BlobID); !strings.Contains(body, fmt.Sprintf("Subject: message %d\r\n", i)) {
			t.Fatalf("UID %d holds %q", listed[i].UID, body)
		}
	}
	f.checkCounts(a.ID)

	// A wanted UID below UIDNEXT (a delivery came first) takes the next one.
	last := want[len(want)-1]
	got, err = b.AppendBatch(f.ctx, a.ID, "Moved", []store.BatchMessage{batchMessage(1000, 5)})
	if err != nil || len(got) != 1 || got[0].Message.UID != last+1 {
		t.Fatalf("a UID below UIDNEXT: %v %+v, want UID %d", err, got, last+1)
	}

	// A body shorter than announced fails its message; the ones before are committed.
	bad := batchMessage(2000, 0)
	bad.Size += 10
	got, err = b.AppendBatch(f.ctx, a.ID, "Moved", []store.BatchMessage{batchMessage(2001, 0), batchMessage(2002, 0), bad, batchMessage(2003, 0)})
	if err == nil || len(got) != 2 {
		t.Fatalf("a bad body: %v, %d appended, want an error and 2", err, len(got))
	}
	for _, ap := range got {
		if m := f.messages(box.ID); m[len(m)-1].UID < ap.Message.UID {
			t.Errorf("appended UID %d is not in the mailbox", ap.Message.UID)
		}
	}
	f.checkCounts(a.ID)

	// Runs of consecutive UIDs (a Maildir without expunges) between gaps and messages
	// without one: each takes the UID it asks for, UIDNEXT ends after the last, and the
	// mailbox's and account's MODSEQs are above every message's.
	runs := f.create(a.ID, "Runs")
	var wantRuns []uint32
	msgs = msgs[:0]
	for i, uid := range []uint32{7, 8, 9, 10, 0, 12, 13, 40, 41, 42, 0, 0, 45, 46, 100} {
		msgs = append(msgs, batchMessage(4000+i, uid))
		if uid == 0 {
			uid = wantRuns[len(wantRuns)-1] + 1
		}
		wantRuns = append(wantRuns, uid)
	}
	if got, err = b.AppendBatch(f.ctx, a.ID, "Runs", msgs); err != nil || len(got) != len(msgs) {
		t.Fatalf("runs of UIDs: %v, %d appended", err, len(got))
	}
	listed = f.messages(runs.ID)
	var maxModSeq uint64
	for i, m := range listed {
		if m.UID != wantRuns[i] || got[i].Message.UID != wantRuns[i] {
			t.Fatalf("runs of UIDs: message %d has UID %d (appended %d), want %d", i, m.UID, got[i].Message.UID, wantRuns[i])
		}
		maxModSeq = max(maxModSeq, m.ModSeq)
	}
	mb, err := f.s.MailboxByID(f.ctx, runs.ID)
	if err != nil || mb.UIDNext != 101 || mb.HighestModSeq < maxModSeq {
		t.Fatalf("runs of UIDs: mailbox %+v %v, want UIDNEXT 101 and HIGHESTMODSEQ >= %d", mb, err, maxModSeq)
	}
	f.checkCounts(a.ID)

	_, err = b.AppendBatch(f.ctx, a.ID, "Nowhere", []store.BatchMessage{batchMessage(3000, 7)})
	wantErr(t, "AppendBatch to a missing mailbox", err, store.ErrNotFound)
	_, err = b.AppendBatch(f.ctx, a.ID, "Nowhere", []store.BatchMessage{batchMessage(3001, 0)})
	wantErr(t, "AppendBatch to a missing mailbox", err, store.ErrNotFound)
}
