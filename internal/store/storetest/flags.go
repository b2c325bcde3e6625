package storetest

import (
	"slices"
	"testing"

	"petrel/internal/store"
)

func testSetFlags(t *testing.T, f *fixture) {
	ctx := f.ctx
	a, box := f.inboxWith(3)
	ch, cancel := f.s.Subscribe(a.ID)
	defer cancel()
	start := f.mailbox(a.ID, store.Inbox).HighestModSeq

	u := f.setFlags(box.ID, []uint32{1, 3, 99}, store.FlagsAdd, `\seen`, "Work")
	ms := f.messages(box.ID)
	if !slices.Equal(ms[0].Flags, []string{"Work", `\Seen`}) || len(ms[1].Flags) != 0 || !slices.Equal(ms[2].Flags, ms[0].Flags) {
		t.Errorf("flags after add: %q %q %q", ms[0].Flags, ms[1].Flags, ms[2].Flags)
	}
	m1 := f.mailbox(a.ID, store.Inbox).HighestModSeq
	if ms[0].ModSeq != m1 || ms[2].ModSeq != m1 || ms[1].ModSeq >= m1 || m1 <= start {
		t.Errorf("MODSEQs %d %d %d, mailbox %d (was %d)", ms[0].ModSeq, ms[1].ModSeq, ms[2].ModSeq, m1, start)
	}
	wantUpdate := []store.UIDFlags{{UID: 1, Flags: []string{"Work", `\Seen`}}, {UID: 3, Flags: []string{"Work", `\Seen`}}}
	if u.ModSeq != m1 || !sameUIDFlags(u.Changed, wantUpdate) || len(u.Failed) != 0 {
		t.Errorf("SetFlags = %+v, want MODSEQ %d and %+v", u, m1, wantUpdate)
	}
	expectChange(t, ch, store.Change{Kind: store.ChangeFlags, AccountID: a.ID, MailboxID: box.ID, UIDs: []uint32{1, 3}, ModSeq: m1})

	// Setting flags a message already has changes nothing, not even MODSEQ (RFC 7162 §3.1.3).
	if u := f.setFlags(box.ID, []uint32{1}, store.FlagsAdd, `\Seen`); u.ModSeq != 0 || len(u.Changed) != 0 {
		t.Errorf("no-op SetFlags = %+v", u)
	}
	if got := f.mailbox(a.ID, store.Inbox).HighestModSeq; got != m1 {
		t.Errorf("no-op SetFlags moved MODSEQ %d -> %d", m1, got)
	}

	u = f.setFlags(box.ID, []uint32{1, 2, 3}, store.FlagsRemove, "work") // keywords are case-insensitive
	ms = f.messages(box.ID)
	if !slices.Equal(ms[0].Flags, []string{`\Seen`}) || len(ms[1].Flags) != 0 || ms[1].ModSeq >= m1 || ms[0].ModSeq <= m1 {
		t.Errorf("after remove: %+v", ms)
	}
	if !sameUIDFlags(u.Changed, []store.UIDFlags{{UID: 1, Flags: []string{`\Seen`}}, {UID: 3, Flags: []string{`\Seen`}}}) || u.ModSeq != ms[0].ModSeq {
		t.Errorf("SetFlags remove = %+v", u)
	}
	expectChange(t, ch, store.Change{Kind: store.ChangeFlags, AccountID: a.ID, MailboxID: box.ID, UIDs: []uint32{1, 3}, ModSeq: ms[0].ModSeq})

	_, err := f.s.SetFlags(ctx, box.ID+1000, []uint32{1}, store.FlagChange{Mode: store.FlagsAdd, Flags: []string{`\Seen`}})
	wantErr(t, "SetFlags missing mailbox", err, store.ErrNotFound)
	for _, bad := range []string{"bad flag", `\Recent`, `\Bogus`, "a(b", ""} {
		_, err := f.s.SetFlags(ctx, box.ID, []uint32{1}, store.FlagChange{Mode: store.FlagsAdd, Flags: []string{bad}})
		wantErr(t, "SetFlags "+strconvQuote(bad), err, store.ErrInvalid)
	}
	_, err = f.s.SetFlags(ctx, box.ID, []uint32{1}, store.FlagChange{Flags: []string{`\Seen`}})
	wantErr(t, "SetFlags without a mode", err, store.ErrInvalid)
	f.checkCounts(a.ID)
}

func sameUIDFlags(a, b []store.UIDFlags) bool {
	return slices.EqualFunc(a, b, func(x, y store.UIDFlags) bool { return x.UID == y.UID && slices.Equal(x.Flags, y.Flags) })
}

func testSetFlagsReplace(t *testing.T, f *fixture) {
	a, box := f.inboxWith(3)
	f.setFlags(box.ID, []uint32{1, 2}, store.FlagsAdd, store.FlagSeen, "Old")
	u := f.setFlags(box.ID, []uint32{1, 2, 3}, store.FlagsReplace, store.FlagFlagged, "New")
	want := []string{"New", store.FlagFlagged}
	if len(u.Changed) != 3 || !slices.Equal(u.Changed[0].Flags, want) || !slices.Equal(u.Changed[2].Flags, want) {
		t.Errorf("replace = %+v", u)
	}
	for _, m := range f.messages(box.ID) {
		if !slices.Equal(m.Flags, want) || m.ModSeq != u.ModSeq {
			t.Errorf("after replace: %+v", m)
		}
	}
	// Replacing with what is there changes nothing; replacing with nothing clears.
	if u := f.setFlags(box.ID, []uint32{1}, store.FlagsReplace, "new", store.FlagFlagged); len(u.Changed) != 0 || u.ModSeq != 0 {
		t.Errorf("replace with the same flags = %+v", u)
	}
	u = f.setFlags(box.ID, []uint32{2}, store.FlagsReplace)
	if !sameUIDFlags(u.Changed, []store.UIDFlags{{UID: 2}}) {
		t.Errorf("replace with nothing = %+v", u)
	}
	if ms := f.messages(box.ID); len(ms[1].Flags) != 0 || len(ms[0].Flags) != 2 {
		t.Errorf("after clearing: %+v", ms)
	}
	f.checkCounts(a.ID)
}

// testSetFlagsUnchangedSince: STORE (UNCHANGEDSINCE n) changes only the messages whose MODSEQ
// is at most n and names the others (RFC 7162 §3.1.3).
func testSetFlagsUnchangedSince(t *testing.T, f *fixture) {
	ctx := f.ctx
	a, box := f.inboxWith(4)
	known := f.mailbox(a.ID, store.Inbox).HighestModSeq                // what a client saw
	f.setFlags(box.ID, []uint32{2}, store.FlagsAdd, store.FlagFlagged) // another client, later
	m2 := f.messages(box.ID)[1].ModSeq

	cond := func(since uint64, mode store.FlagMode, uids []uint32, flags ...string) store.FlagsUpdated {
		t.Helper()
		u, err := f.s.SetFlags(ctx, box.ID, uids, store.FlagChange{Mode: mode, Flags: flags, Conditional: true, UnchangedSince: since})
		if err != nil {
			t.Fatal(err)
		}
		return u
	}
	u := cond(known, store.FlagsAdd, []uint32{1, 2, 3}, store.FlagSeen)
	if !slices.Equal(u.Failed, []uint32{2}) || len(u.Changed) != 2 || u.Changed[0].UID != 1 || u.Changed[1].UID != 3 {
		t.Errorf("conditional STORE = %+v, want 2 failed and 1, 3 changed", u)
	}
	ms := f.messages(box.ID)
	if slices.Contains(ms[1].Flags, store.FlagSeen) || ms[1].ModSeq != m2 || !slices.Contains(ms[0].Flags, store.FlagSeen) {
		t.Errorf("after the conditional STORE: %+v", ms)
	}
	// A message that passes but already has the flags is neither changed nor failed.
	u = cond(u.ModSeq, store.FlagsAdd, []uint32{1, 4}, store.FlagSeen)
	if len(u.Failed) != 0 || !sameUIDFlags(u.Changed, []store.UIDFlags{{UID: 4, Flags: []string{store.FlagSeen}}}) {
		t.Errorf("conditional STORE on an unchanged message = %+v", u)
	}
	// UNCHANGEDSINCE 0 fails every message: none has MODSEQ 0.
	highest := f.mailbox(a.ID, store.Inbox).HighestModSeq
	u = cond(0, store.FlagsReplace, []uint32{1, 2, 3, 4})
	if !slices.Equal(u.Failed, []uint32{1, 2, 3, 4}) || len(u.Changed) != 0 || u.ModSeq != 0 {
		t.Errorf("UNCHANGEDSINCE 0 = %+v", u)
	}
	if got := f.mailbox(a.ID, store.Inbox).HighestModSeq; got != highest {
		t.Errorf("a STORE that failed everywhere moved HIGHESTMODSEQ %d -> %d", highest, got)
	}
	// With the current MODSEQ everything passes.
	u = cond(highest, store.FlagsRemove, []uint32{1, 2, 3, 4}, store.FlagSeen, store.FlagFlagged)
	if len(u.Failed) != 0 || len(u.Changed) != 4 {
		t.Errorf("conditional STORE at HIGHESTMODSEQ = %+v", u)
	}
	f.checkCounts(a.ID)
}

// testKeywords: a mailbox lists every keyword its messages got (PERMANENTFLAGS), sorted,
// once whatever the case, never a system flag, and keeps them when messages lose them.
func testKeywords(t *testing.T, f *fixture) {
	ctx := f.ctx
	a := f.account("a@example.org")
	box := f.mailbox(a.ID, store.Inbox)
	if len(box.Keywords) != 0 {
		t.Errorf("new INBOX keywords %q", box.Keywords)
	}
	d := delivery(body1, inbox(a.ID))
	d.Flags = []string{"$Label1", store.FlagSeen}
	if _, err := f.s.Deliver(ctx, d); err != nil {
		t.Fatal(err)
	}
	f.deliver(body1, inbox(a.ID))
	f.setFlags(box.ID, []uint32{2}, store.FlagsAdd, "Work", store.FlagAnswered)
	f.setFlags(box.ID, []uint32{1}, store.FlagsAdd, "work") // the message keeps one spelling
	f.setFlags(box.ID, []uint32{1}, store.FlagsReplace, "$Junk")
	f.setFlags(box.ID, []uint32{2}, store.FlagsRemove, "Work")
	want := []string{"$Junk", "$Label1", "Work"}
	if got := f.mailbox(a.ID, store.Inbox).Keywords; !slices.Equal(got, want) {
		t.Errorf("INBOX keywords %q, want %q", got, want)
	}
	// A copy brings its keywords along.
	if _, err := f.s.Copy(ctx, box.ID, []uint32{1}, f.mailbox(a.ID, store.Archive).ID); err != nil {
		t.Fatal(err)
	}
	if got := f.mailbox(a.ID, store.Archive).Keywords; !slices.Equal(got, []string{"$Junk"}) {
		t.Errorf("Archive keywords after a copy %q", got)
	}
	f.checkCounts(a.ID)
}

// testCounts: counts and usage follow every kind of change (checkCounts recomputes them),
// and a body in two mailboxes counts twice.
func testCounts(t *testing.T, f *fixture) {
	ctx := f.ctx
	a := f.account("a@example.org")
	b := f.account("b@example.org")
	box := f.mailbox(a.ID, store.Inbox)
	archive := f.mailbox(a.ID, store.Archive)
	u, err := f.s.Usage(ctx, a.ID)
	if err != nil || u != (store.Usage{Mailboxes: len(store.DefaultMailboxes)}) {
		t.Errorf("Usage of a new account = %+v, %v", u, err)
	}
	seen := delivery("Subject: seen\r\n\r\n12345\r\n", inbox(a.ID), inbox(b.ID), store.Target{AccountID: a.ID, Mailbox: store.Archive})
	seen.Flags = []string{store.FlagSeen}
	if _, err := f.s.Deliver(ctx, seen); err != nil {
		t.Fatal(err)
	}
	f.deliver(body1, inbox(a.ID))
	size := int64(len("Subject: seen\r\n\r\n12345\r\n"))
	want := store.Usage{Messages: 3, Size: 2*size + int64(len(body1)), Mailboxes: len(store.DefaultMailboxes)}
	if u, err := f.s.Usage(ctx, a.ID); err != nil || u != want {
		t.Errorf("Usage = %+v, %v; want %+v", u, err, want)
	}
	if got := f.mailbox(a.ID, store.Inbox); got.Messages != 2 || got.Unseen != 1 || got.Deleted != 0 || got.Size != size+int64(len(body1)) {
		t.Errorf("INBOX counts %+v", got)
	}
	f.checkCounts(a.ID)
	f.checkCounts(b.ID)

	steps := []struct {
		name string
		do   func() error
	}{
		{"flag deleted", func() error { f.setFlags(box.ID, []uint32{1, 2}, store.FlagsAdd, store.FlagDeleted); return nil }},
		{"unsee", func() error { f.setFlags(box.ID, []uint32{1}, store.FlagsRemove, store.FlagSeen); return nil }},
		{"replace", func() error { f.setFlags(box.ID, []uint32{2}, store.FlagsReplace, store.FlagSeen); return nil }},
		{"copy", func() error { _, err := f.s.Copy(ctx, box.ID, []uint32{1, 2}, archive.ID); return err }},
		{"move", func() error { _, err := f.s.Move(ctx, archive.ID, []uint32{1, 2}, box.ID); return err }},
		{"expunge", func() error { _, err := f.s.Expunge(ctx, box.ID, []uint32{1, 4}); return err }},
		{"append", func() error { _, err := f.s.Append(ctx, a.ID, store.Drafts, appendMessage(body1)); return err }},
		{"create and fill", func() error {
			f.create(a.ID, "Folder/Sub")
			_, err := f.s.Copy(ctx, box.ID, []uint32{2, 3}, f.mailbox(a.ID, "Folder/Sub").ID)
			return err
		}},
		{"rename", func() error { return f.s.RenameMailbox(ctx, a.ID, "Folder", "Other") }},
		{"rename INBOX", func() error { return f.s.RenameMailbox(ctx, a.ID, store.Inbox, "Old INBOX") }},
		{"delete", func() error { return f.s.DeleteMailbox(ctx, a.ID, "Other/Sub") }},
	}
	for _, st := range steps {
		if err := st.do(); err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		f.checkCounts(a.ID)
		if t.Failed() {
			t.Fatalf("counts wrong after %s", st.name)
		}
	}
	f.checkCounts(b.ID)
}
