package storetest

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"

	"petrel/internal/store"
)

func testExpunge(t *testing.T, f *fixture) {
	ctx := f.ctx
	a := f.account("a@example.org")
	box := f.mailbox(a.ID, store.Inbox)
	var ds []store.Delivered
	for range 4 {
		ds = append(ds, f.deliver(body1, inbox(a.ID)))
	}
	ch, cancel := f.s.Subscribe(a.ID)
	defer cancel()
	before := f.mailbox(a.ID, store.Inbox)

	e := f.expunge(box.ID, 3, 1, 42)
	after := f.mailbox(a.ID, store.Inbox)
	if !slices.Equal(e.UIDs, []uint32{1, 3}) || e.ModSeq != after.HighestModSeq {
		t.Errorf("Expunge = %+v, mailbox MODSEQ %d", e, after.HighestModSeq)
	}
	if got := uids(f.messages(box.ID)); !slices.Equal(got, []uint32{2, 4}) {
		t.Errorf("UIDs after expunge %v", got)
	}
	if after.Messages != 2 || after.UIDNext != before.UIDNext || after.HighestModSeq <= before.HighestModSeq {
		t.Errorf("mailbox %+v after expunge, was %+v", after, before)
	}
	expectChange(t, ch, store.Change{Kind: store.ChangeExpunge, AccountID: a.ID, MailboxID: box.ID, UIDs: []uint32{1, 3}, ModSeq: after.HighestModSeq})
	for i, d := range ds {
		_, err := f.s.OpenBlob(ctx, d.BlobID)
		if i == 0 || i == 2 {
			wantErr(t, fmt.Sprintf("OpenBlob of expunged message %d", i+1), err, store.ErrNotFound)
		} else if err != nil {
			t.Errorf("OpenBlob of kept message %d: %v", i+1, err)
		}
	}
	// The expunged messages left tombstones with the MODSEQ of the expunge.
	if got := f.vanished(box.ID, store.Filter{}); !slices.Equal(got, []uint32{1, 3}) {
		t.Errorf("tombstones %v", got)
	}
	// Nothing to expunge: no change.
	if e := f.expunge(box.ID, 1); len(e.UIDs) != 0 || e.ModSeq != 0 {
		t.Errorf("empty Expunge = %+v", e)
	}
	if got := f.mailbox(a.ID, store.Inbox); !sameMailbox(got, after) {
		t.Errorf("empty expunge changed the mailbox: %+v -> %+v", after, got)
	}
	_, err := f.s.Expunge(ctx, box.ID+1000, []uint32{1})
	wantErr(t, "Expunge missing mailbox", err, store.ErrNotFound)

	// UIDs are never reused.
	if d := f.deliver(body1, inbox(a.ID)); d.Messages[0].UID != 5 {
		t.Errorf("UID after expunge %d, want 5", d.Messages[0].UID)
	}
	f.checkCounts(a.ID)
}

// testVanished: tombstones answer "what vanished since MODSEQ n" (QRESYNC, RFC 7162
// §3.2.5.1), restricted to UID ranges when asked.
func testVanished(t *testing.T, f *fixture) {
	ctx := f.ctx
	a, box := f.inboxWith(8)
	if got := f.vanished(box.ID, store.Filter{}); len(got) != 0 {
		t.Errorf("tombstones before any expunge %v", got)
	}
	first := f.expunge(box.ID, 2, 5)
	synced := f.mailbox(a.ID, store.Inbox).HighestModSeq // a device syncs here
	second := f.expunge(box.ID, 7)
	moved, err := f.s.Move(ctx, box.ID, []uint32{8}, f.mailbox(a.ID, store.Archive).ID)
	if err != nil {
		t.Fatal(err)
	}
	f.setFlags(box.ID, []uint32{1}, store.FlagsAdd, store.FlagSeen) // not a vanish

	for _, tc := range []struct {
		f    store.Filter
		want []uint32
	}{
		{store.Filter{}, []uint32{2, 5, 7, 8}},
		{store.Filter{ChangedSince: first.ModSeq - 1}, []uint32{2, 5, 7, 8}},
		{store.Filter{ChangedSince: first.ModSeq}, []uint32{7, 8}},
		{store.Filter{ChangedSince: synced}, []uint32{7, 8}},
		{store.Filter{ChangedSince: second.ModSeq}, []uint32{8}},
		{store.Filter{ChangedSince: moved.ModSeq}, nil},
		{store.Filter{UIDs: []store.UIDRange{span(1, 5)}}, []uint32{2, 5}},
		{store.Filter{UIDs: []store.UIDRange{span(8, 8), span(3, 4), span(6, math.MaxUint32)}}, []uint32{7, 8}},
		{store.Filter{UIDs: []store.UIDRange{span(6, 2)}, ChangedSince: first.ModSeq - 1}, []uint32{2, 5}},
		{store.Filter{UIDs: []store.UIDRange{span(1, 5)}, ChangedSince: first.ModSeq}, nil},
	} {
		if got := f.vanished(box.ID, tc.f); !slices.Equal(got, tc.want) {
			t.Errorf("Vanished(%+v) = %v, want %v", tc.f, got, tc.want)
		}
	}
	_, err = f.s.Vanished(ctx, box.ID+1000, store.Filter{})
	wantErr(t, "Vanished of a missing mailbox", err, store.ErrNotFound)
	// The destination of the move has no tombstone.
	if got := f.vanished(f.mailbox(a.ID, store.Archive).ID, store.Filter{}); len(got) != 0 {
		t.Errorf("tombstones in the move's destination %v", got)
	}
}

// testMessagesFilter: Messages by UID ranges and CHANGEDSINCE (RFC 7162 §3.1.4).
func testMessagesFilter(t *testing.T, f *fixture) {
	ctx := f.ctx
	a, box := f.inboxWith(10)
	delivered := f.mailbox(a.ID, store.Inbox).HighestModSeq
	f.setFlags(box.ID, []uint32{3, 9}, store.FlagsAdd, store.FlagSeen)
	flagged := f.mailbox(a.ID, store.Inbox).HighestModSeq
	f.setFlags(box.ID, []uint32{4}, store.FlagsAdd, store.FlagAnswered)
	f.expunge(box.ID, 5)

	list := func(filter store.Filter) []uint32 {
		t.Helper()
		ms, err := f.s.Messages(ctx, box.ID, filter)
		if err != nil {
			t.Fatalf("Messages(%+v): %v", filter, err)
		}
		for _, m := range ms {
			if m.ModSeq <= filter.ChangedSince {
				t.Errorf("Messages(%+v) returned UID %d of MODSEQ %d", filter, m.UID, m.ModSeq)
			}
		}
		return uids(ms)
	}
	for _, tc := range []struct {
		f    store.Filter
		want []uint32
	}{
		{store.Filter{}, []uint32{1, 2, 3, 4, 6, 7, 8, 9, 10}},
		{store.Filter{UIDs: []store.UIDRange{span(2, 4)}}, []uint32{2, 3, 4}},
		{store.Filter{UIDs: []store.UIDRange{span(8, math.MaxUint32), span(2, 4), span(3, 6)}}, []uint32{2, 3, 4, 6, 8, 9, 10}},
		{store.Filter{UIDs: []store.UIDRange{span(7, 6)}}, []uint32{6, 7}},
		{store.Filter{UIDs: []store.UIDRange{span(5, 5)}}, nil},
		{store.Filter{UIDs: []store.UIDRange{span(11, math.MaxUint32)}}, nil},
		{store.Filter{UIDs: []store.UIDRange{span(1, 1), span(10, 10)}}, []uint32{1, 10}},
		{store.Filter{ChangedSince: delivered}, []uint32{3, 4, 9}},
		{store.Filter{ChangedSince: flagged}, []uint32{4}},
		{store.Filter{ChangedSince: flagged + 100}, nil},
		{store.Filter{ChangedSince: delivered, UIDs: []store.UIDRange{span(1, 8)}}, []uint32{3, 4}},
	} {
		if got := list(tc.f); !slices.Equal(got, tc.want) {
			t.Errorf("Messages(%+v) = %v, want %v", tc.f, got, tc.want)
		}
	}
	_, err := f.s.Messages(ctx, box.ID+1000, store.Filter{UIDs: []store.UIDRange{span(1, 1)}})
	wantErr(t, "Messages of a missing mailbox with a filter", err, store.ErrNotFound)
}

// testCopy: COPY shares bodies, keeps flags and dates, gives new UIDs in the order of the
// old ones and reports the mapping (COPYUID, RFC 4315).
func testCopy(t *testing.T, f *fixture) {
	ctx := f.ctx
	a, src, dst, _ := f.copySetup()
	f.setFlags(src.ID, []uint32{3}, store.FlagsAdd, "$Work")
	srcBefore := f.messages(src.ID)
	ch, cancel := f.s.Subscribe(a.ID)
	defer cancel()

	c, err := f.s.Copy(ctx, src.ID, []uint32{3, 1, 99}, dst.ID)
	if err != nil {
		t.Fatal(err)
	}
	dstAfter := f.mailbox(a.ID, store.Archive)
	if c.UIDValidity != dst.UIDValidity || !slices.Equal(c.From, []uint32{1, 3}) || !slices.Equal(c.To, []uint32{2, 3}) ||
		c.ModSeq != dstAfter.HighestModSeq {
		t.Errorf("Copy = %+v", c)
	}
	expectChange(t, ch, store.Change{Kind: store.ChangeAdd, AccountID: a.ID, MailboxID: dst.ID, UIDs: []uint32{2, 3}, ModSeq: c.ModSeq})
	copies := f.messages(dst.ID)
	for i, from := range []int{0, 2} {
		cp, orig := copies[i+1], srcBefore[from]
		if cp.ID == orig.ID || cp.BlobID != orig.BlobID || !slices.Equal(cp.Flags, orig.Flags) ||
			!cp.InternalDate.Equal(orig.InternalDate) || cp.Size != orig.Size || cp.ModSeq != c.ModSeq {
			t.Errorf("copy %+v of %+v", cp, orig)
		}
	}
	if got := f.messages(src.ID); len(got) != 3 || got[0].ModSeq != srcBefore[0].ModSeq {
		t.Errorf("source after copy %+v", got)
	}
	// Expunging the originals keeps the copies' bodies.
	f.expunge(src.ID, 1, 2, 3)
	if got := f.blob(copies[1].BlobID); got != body1+"0\r\n" {
		t.Errorf("copied body after expunging the original: %q", got)
	}
	if got := f.vanished(dst.ID, store.Filter{}); len(got) != 0 {
		t.Errorf("copy left tombstones in the destination %v", got)
	}
	// Nothing to copy.
	c, err = f.s.Copy(ctx, src.ID, []uint32{1}, dst.ID)
	if err != nil || len(c.From) != 0 || c.ModSeq != 0 || c.UIDValidity != dst.UIDValidity {
		t.Errorf("empty Copy = %+v, %v", c, err)
	}
	_, err = f.s.Copy(ctx, src.ID, []uint32{1}, dst.ID+1000)
	wantErr(t, "Copy to a missing mailbox", err, store.ErrNotFound)
	_, err = f.s.Copy(ctx, src.ID+1000, []uint32{1}, dst.ID)
	wantErr(t, "Copy from a missing mailbox", err, store.ErrNotFound)
	f.checkCounts(a.ID)
}

func testMove(t *testing.T, f *fixture) {
	ctx := f.ctx
	a, src, dst, ds := f.copySetup()
	ch, cancel := f.s.Subscribe(a.ID)
	defer cancel()
	before := f.mailbox(a.ID, store.Inbox)
	usage, err := f.s.Usage(ctx, a.ID)
	if err != nil {
		t.Fatal(err)
	}

	c, err := f.s.Move(ctx, src.ID, []uint32{3, 1}, dst.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got := uids(f.messages(src.ID)); !slices.Equal(got, []uint32{2}) {
		t.Errorf("source UIDs after move %v", got)
	}
	moved := f.messages(dst.ID)
	if got := uids(moved); !slices.Equal(got, []uint32{1, 2, 3}) {
		t.Fatalf("destination UIDs after move %v", got)
	}
	// New UIDs follow the order of the old ones; ID, body and flags travel along.
	if moved[1].ID != ds[0].Messages[0].ID || moved[1].BlobID != ds[0].BlobID || len(moved[1].Flags) != 0 ||
		moved[2].ID != ds[2].Messages[0].ID || !slices.Equal(moved[2].Flags, []string{`\Flagged`}) {
		t.Errorf("moved messages %+v", moved)
	}
	srcAfter, dstAfter := f.mailbox(a.ID, store.Inbox), f.mailbox(a.ID, store.Archive)
	if srcAfter.Messages != 1 || dstAfter.Messages != 3 || dstAfter.UIDNext != 4 || srcAfter.UIDNext != before.UIDNext ||
		srcAfter.HighestModSeq <= before.HighestModSeq || dstAfter.HighestModSeq != srcAfter.HighestModSeq ||
		moved[1].ModSeq != dstAfter.HighestModSeq {
		t.Errorf("after move: source %+v, destination %+v, moved %+v", srcAfter, dstAfter, moved)
	}
	if c.UIDValidity != dst.UIDValidity || !slices.Equal(c.From, []uint32{1, 3}) || !slices.Equal(c.To, []uint32{2, 3}) ||
		c.ModSeq != dstAfter.HighestModSeq {
		t.Errorf("Move = %+v", c)
	}
	if got := f.blob(moved[1].BlobID); got != body1+"0\r\n" {
		t.Errorf("moved body %q", got)
	}
	if got := f.vanished(src.ID, store.Filter{ChangedSince: before.HighestModSeq}); !slices.Equal(got, []uint32{1, 3}) {
		t.Errorf("tombstones of the move %v", got)
	}
	if got, err := f.s.Usage(ctx, a.ID); err != nil || got != usage {
		t.Errorf("Usage after move %+v, %v; was %+v", got, err, usage)
	}
	got := collect(t, ch, 2)
	slices.SortFunc(got, func(x, y store.Change) int { return int(x.Kind - y.Kind) })
	wantAdd := store.Change{Kind: store.ChangeAdd, AccountID: a.ID, MailboxID: dst.ID, UIDs: []uint32{2, 3}, ModSeq: dstAfter.HighestModSeq}
	wantExp := store.Change{Kind: store.ChangeExpunge, AccountID: a.ID, MailboxID: src.ID, UIDs: []uint32{1, 3}, ModSeq: dstAfter.HighestModSeq}
	if !sameChange(got[0], wantAdd) || !sameChange(got[1], wantExp) {
		t.Errorf("move changes %+v, want %+v and %+v", got, wantAdd, wantExp)
	}

	_, err = f.s.Move(ctx, src.ID, []uint32{2}, dst.ID+1000)
	wantErr(t, "Move to a missing mailbox", err, store.ErrNotFound)
	_, err = f.s.Move(ctx, src.ID+1000, []uint32{2}, dst.ID)
	wantErr(t, "Move from a missing mailbox", err, store.ErrNotFound)
	if got := uids(f.messages(src.ID)); !slices.Equal(got, []uint32{2}) {
		t.Errorf("failed moves changed the source: %v", got)
	}
	f.checkCounts(a.ID)
}

func testExpungeDurable(t *testing.T, reopen func() *fixture) {
	f := reopen()
	ctx := f.ctx
	a := f.account("a@example.org")
	b := f.account("b@example.org")
	var ds []store.Delivered
	for i := range 6 {
		targets := []store.Target{inbox(a.ID)}
		if i%3 == 0 {
			targets = append(targets, inbox(b.ID)) // messages 1 and 4 are shared with b
		}
		ds = append(ds, f.deliver(fmt.Sprintf("%smessage %d\r\n", body1, i+1), targets...))
	}
	big := strings.Repeat("0123456789abcdef", 40<<10) + "\r\n" // 640 KB: a body of several parts
	ds = append(ds, f.deliver(big, inbox(a.ID)))
	box := f.mailbox(a.ID, store.Inbox)
	if _, err := f.s.Expunge(ctx, box.ID, []uint32{1, 2, 3, 7}); err != nil {
		t.Fatal(err)
	}

	check := func(f *fixture, round string, uidNext uint32) {
		t.Helper()
		if got := uids(f.messages(box.ID)); !slices.Equal(got, []uint32{4, 5, 6}) {
			t.Errorf("%s: UIDs %v, want [4 5 6]", round, got)
		}
		if got := f.vanished(box.ID, store.Filter{UIDs: []store.UIDRange{span(1, 7)}}); !slices.Equal(got, []uint32{1, 2, 3, 7}) {
			t.Errorf("%s: tombstones %v, want [1 2 3 7]", round, got)
		}
		if got := f.mailbox(a.ID, store.Inbox); got.Messages != 3 || got.UIDNext != uidNext {
			t.Errorf("%s: mailbox %+v, want 3 messages and UIDNEXT %d", round, got, uidNext)
		}
		for i, d := range ds {
			uid := i + 1
			switch {
			case uid == 1: // expunged from a, still b's
				if got := f.blob(d.BlobID); got != fmt.Sprintf("%smessage 1\r\n", body1) {
					t.Errorf("%s: shared body after expunge from one mailbox = %q", round, got)
				}
			case uid == 2 || uid == 3 || uid == 7:
				_, err := f.s.OpenBlob(ctx, d.BlobID)
				wantErr(t, fmt.Sprintf("%s: OpenBlob of expunged message %d", round, uid), err, store.ErrNotFound)
				_, err = f.s.Parsed(ctx, d.BlobID)
				wantErr(t, fmt.Sprintf("%s: Parsed of expunged message %d", round, uid), err, store.ErrNotFound)
			default:
				if got := f.blob(d.BlobID); got != fmt.Sprintf("%smessage %d\r\n", body1, uid) {
					t.Errorf("%s: kept message %d = %q", round, uid, got)
				}
			}
		}
		if ms := f.messages(f.mailbox(b.ID, store.Inbox).ID); len(ms) != 2 {
			t.Errorf("%s: b has %d messages, want 2", round, len(ms))
		}
	}
	check(f, "before reopen", 8)
	f = reopen()
	check(f, "after reopen", 8)
	// The store may have freed the bodies meanwhile; still nothing comes back.
	if d := f.deliver(body1, inbox(a.ID)); d.Messages[0].UID != 8 {
		t.Errorf("UID after reopen %d, want 8", d.Messages[0].UID)
	}
	if _, err := f.s.Expunge(ctx, box.ID, []uint32{8}); err != nil {
		t.Fatal(err)
	}
	f = reopen()
	check(f, "after a second reopen", 9)
}

// copySetup gives a@example.org an Archive holding one message and an INBOX holding three
// (bodies body1 and a digit 0, 1, 2), the third flagged, as they are after the deliveries.
func (f *fixture) copySetup() (a store.Account, src, dst store.Mailbox, ds []store.Delivered) {
	f.t.Helper()
	a = f.account("a@example.org")
	f.deliver("existing\r\n", store.Target{AccountID: a.ID, Mailbox: store.Archive})
	for i := range 3 {
		ds = append(ds, f.deliver(fmt.Sprintf("%s%d\r\n", body1, i), inbox(a.ID)))
	}
	src, dst = f.mailbox(a.ID, store.Inbox), f.mailbox(a.ID, store.Archive)
	f.setFlags(src.ID, []uint32{3}, store.FlagsAdd, store.FlagFlagged)
	return a, src, dst, ds
}
