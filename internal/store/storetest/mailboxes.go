package storetest

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"petrel/internal/store"
)

func testMailboxes(t *testing.T, f *fixture) {
	ctx := f.ctx
	a := f.account("a@example.org")
	before := f.mailbox(a.ID, store.Inbox)
	m := f.create(a.ID, "Projects/Petrel")
	if m.ID == 0 || m.Name != "Projects/Petrel" || m.UIDValidity == 0 || m.UIDNext != 1 || m.AccountID != a.ID ||
		m.Messages != 0 || m.Size != 0 || m.SpecialUse != "" || len(m.Keywords) != 0 {
		t.Errorf("CreateMailbox = %+v", m)
	}
	if got := f.mailbox(a.ID, "Projects/Petrel"); !sameMailbox(got, m) {
		t.Errorf("Mailbox = %+v, want %+v", got, m)
	}
	// The superior was created too (RFC 9051 §6.3.4), before its inferior.
	parent := f.mailbox(a.ID, "Projects")
	if parent.UIDValidity == m.UIDValidity || parent.ID == m.ID {
		t.Errorf("superior %+v shares identity with %+v", parent, m)
	}
	_, err := f.s.CreateMailbox(ctx, a.ID, "Projects/Petrel")
	wantErr(t, "CreateMailbox duplicate", err, store.ErrExists)
	_, err = f.s.CreateMailbox(ctx, a.ID, "Projects")
	wantErr(t, "CreateMailbox of a created superior", err, store.ErrExists)
	_, err = f.s.CreateMailbox(ctx, a.ID, "inbox")
	wantErr(t, "CreateMailbox inbox", err, store.ErrExists)
	_, err = f.s.CreateMailbox(ctx, a.ID+1000, "X")
	wantErr(t, "CreateMailbox missing account", err, store.ErrNotFound)
	if got := f.mailbox(a.ID, "inbox"); got.ID != before.ID {
		t.Errorf(`Mailbox("inbox") = %+v, want INBOX`, got)
	}
	_, err = f.s.Mailbox(ctx, a.ID, "Nope")
	wantErr(t, "Mailbox missing", err, store.ErrNotFound)
	_, err = f.s.Messages(ctx, m.ID+1000, store.Filter{})
	wantErr(t, "Messages missing mailbox", err, store.ErrNotFound)
	if ms, err := f.s.Messages(ctx, m.ID, store.Filter{}); err != nil || len(ms) != 0 {
		t.Errorf("Messages(empty) = %v, %v", ms, err)
	}
	mbs, err := f.s.Mailboxes(ctx, a.ID)
	if err != nil || len(mbs) != len(store.DefaultMailboxes)+2 || mbs[len(mbs)-2].ID != parent.ID || mbs[len(mbs)-1].ID != m.ID {
		t.Errorf("Mailboxes = %+v, %v", mbs, err)
	}
	// Creating a mailbox changes the account: its MODSEQ is above the older ones'.
	if m.HighestModSeq <= before.HighestModSeq {
		t.Errorf("new mailbox MODSEQ %d not above INBOX's %d", m.HighestModSeq, before.HighestModSeq)
	}

	// A mailbox created again after its account was deleted gets a new UIDVALIDITY
	// (RFC 9051 §2.3.1.1), whatever IDs the new account gets.
	if err := f.s.DeleteAccount(ctx, "a@example.org"); err != nil {
		t.Fatal(err)
	}
	a2 := f.account("a@example.org")
	again := f.mailbox(a2.ID, store.Inbox)
	if again.UIDValidity == before.UIDValidity {
		t.Errorf("re-created INBOX reuses UIDVALIDITY %d", before.UIDValidity)
	}
}

// testMailboxNames checks the name rules every backend shares: INBOX is case-insensitive
// (also as a first level), other names are not, and names that IMAP cannot carry or that
// read like paths are ErrInvalid wherever a name is given.
func testMailboxNames(t *testing.T, f *fixture) {
	ctx := f.ctx
	a := f.account("a@example.org")
	sub := f.create(a.ID, "inbox/Sub")
	if sub.Name != "INBOX/Sub" {
		t.Errorf(`CreateMailbox("inbox/Sub") named %q, want "INBOX/Sub"`, sub.Name)
	}
	if got := f.mailbox(a.ID, "Inbox/Sub"); got.ID != sub.ID {
		t.Errorf(`Mailbox("Inbox/Sub") = %+v`, got)
	}
	work := f.create(a.ID, "Work")
	lower := f.create(a.ID, "work") // other names are case-sensitive
	inbox2 := f.create(a.ID, "Inbox2")
	if work.ID == lower.ID || inbox2.Name != "Inbox2" {
		t.Errorf("Work %+v, work %+v, Inbox2 %+v", work, lower, inbox2)
	}
	f.create(a.ID, "Ünïcode/日本")

	bad := []string{"", "/x", "x/", "a//b", "a\x00b", "a\tb", "a\x7fb", ".", "..", "a/../b", "../x", "a/.", "#news",
		"a*", "a%b", "\xff", strings.Repeat("x", 2000)}
	for _, name := range bad {
		_, err := f.s.CreateMailbox(ctx, a.ID, name)
		wantErr(t, "CreateMailbox("+strconvQuote(name)+")", err, store.ErrInvalid)
		wantErr(t, "RenameMailbox to "+strconvQuote(name), f.s.RenameMailbox(ctx, a.ID, "Work", name), store.ErrInvalid)
		wantErr(t, "SetSubscribed("+strconvQuote(name)+")", f.s.SetSubscribed(ctx, a.ID, name, true), store.ErrInvalid)
	}
	want := []string{"Archive", "Drafts", "INBOX", "INBOX/Sub", "Inbox2", "Junk", "Sent", "Trash", "Work", "work", "Ünïcode", "Ünïcode/日本"}
	slices.Sort(want)
	if got := f.names(a.ID); !slices.Equal(got, want) {
		t.Errorf("mailboxes %q, want %q", got, want)
	}
}

func strconvQuote(s string) string {
	if len(s) > 20 {
		s = s[:20] + "..."
	}
	return `"` + strings.ToValidUTF8(s, "?") + `"`
}

// testMailboxesStayInTheirAccount: names are scoped to an account, and no operation given
// one account's names or mailboxes reaches another's.
func testMailboxesStayInTheirAccount(t *testing.T, f *fixture) {
	ctx := f.ctx
	a := f.account("a@example.org")
	b := f.account("b@example.org")
	f.create(b.ID, "Shared")
	f.deliver(body1, store.Target{AccountID: b.ID, Mailbox: "Shared"})
	bShared := f.mailbox(b.ID, "Shared")
	bInbox := f.mailbox(b.ID, store.Inbox)

	_, err := f.s.Mailbox(ctx, a.ID, "Shared")
	wantErr(t, "Mailbox of another account's name", err, store.ErrNotFound)
	wantErr(t, "RenameMailbox of another account's name", f.s.RenameMailbox(ctx, a.ID, "Shared", "Mine"), store.ErrNotFound)
	wantErr(t, "DeleteMailbox of another account's name", f.s.DeleteMailbox(ctx, a.ID, "Shared"), store.ErrNotFound)
	wantErr(t, "SetSpecialUse of another account's name", f.s.SetSpecialUse(ctx, a.ID, "Shared", store.UseJunk), store.ErrNotFound)
	_, err = f.s.Append(ctx, a.ID, "Shared", appendMessage(body1))
	wantErr(t, "Append to another account's name", err, store.ErrNotFound)

	// The same name in a is another mailbox.
	mine := f.create(a.ID, "Shared")
	if mine.ID == bShared.ID || mine.UIDValidity == bShared.UIDValidity {
		t.Errorf("a's Shared %+v is b's %+v", mine, bShared)
	}
	f.deliver(body1, inbox(a.ID))
	aInbox := f.mailbox(a.ID, store.Inbox)
	_, err = f.s.Copy(ctx, aInbox.ID, []uint32{1}, bShared.ID)
	wantErr(t, "Copy into another account", err, store.ErrNotFound)
	_, err = f.s.Move(ctx, aInbox.ID, []uint32{1}, bInbox.ID)
	wantErr(t, "Move into another account", err, store.ErrNotFound)
	_, err = f.s.Move(ctx, bShared.ID, []uint32{1}, aInbox.ID)
	wantErr(t, "Move out of another account", err, store.ErrNotFound)
	if err := f.s.RenameMailbox(ctx, a.ID, "Shared", "Renamed"); err != nil {
		t.Fatal(err)
	}
	if err := f.s.DeleteMailbox(ctx, a.ID, "Renamed"); err != nil {
		t.Fatal(err)
	}
	if got := f.mailbox(b.ID, "Shared"); !sameMailbox(got, bShared) {
		t.Errorf("b's Shared changed by a's operations: %+v -> %+v", bShared, got)
	}
	if got := f.mailbox(a.ID, store.Inbox); got.Messages != 1 {
		t.Errorf("a's INBOX after refused moves: %+v", got)
	}
	f.checkCounts(a.ID)
	f.checkCounts(b.ID)
}

// waitMailboxChanges receives changes until it has seen a ChangeMailbox for every ID.
func waitMailboxChanges(t *testing.T, ch <-chan store.Change, ids ...int64) {
	t.Helper()
	left := map[int64]bool{}
	for _, id := range ids {
		left[id] = true
	}
	for len(left) > 0 {
		c := collect(t, ch, 1)[0]
		if c.Kind == store.ChangeMailbox {
			delete(left, c.MailboxID)
		}
	}
}

func testRenameMailbox(t *testing.T, f *fixture) {
	ctx := f.ctx
	a := f.account("a@example.org")
	f.create(a.ID, "Projects/Petrel/Docs")
	d := f.deliver(body1, store.Target{AccountID: a.ID, Mailbox: "Projects/Petrel"}, store.Target{AccountID: a.ID, Mailbox: "Projects/Petrel"})
	if err := f.s.SetSpecialUse(ctx, a.ID, "Projects/Petrel", store.UseArchive); err != nil {
		t.Fatal(err)
	}
	if err := f.s.SetSubscribed(ctx, a.ID, "Projects/Petrel", true); err != nil {
		t.Fatal(err)
	}
	old := map[string]store.Mailbox{}
	for _, name := range []string{"Projects", "Projects/Petrel", "Projects/Petrel/Docs"} {
		old[name] = f.mailbox(a.ID, name)
	}
	ch, cancel := f.s.Subscribe(a.ID)
	defer cancel()

	wantErr(t, "RenameMailbox to an existing name", f.s.RenameMailbox(ctx, a.ID, "Projects", "Sent"), store.ErrExists)
	wantErr(t, "RenameMailbox to itself", f.s.RenameMailbox(ctx, a.ID, "Projects", "Projects"), store.ErrExists)
	wantErr(t, "RenameMailbox into its own hierarchy", f.s.RenameMailbox(ctx, a.ID, "Projects", "Projects/Petrel/Docs/X"), store.ErrInvalid)
	wantErr(t, "RenameMailbox to INBOX", f.s.RenameMailbox(ctx, a.ID, "Projects", "inbox"), store.ErrExists)
	wantErr(t, "RenameMailbox of a missing mailbox", f.s.RenameMailbox(ctx, a.ID, "Nope", "Other"), store.ErrNotFound)
	wantErr(t, "RenameMailbox of a missing account", f.s.RenameMailbox(ctx, a.ID+1000, "Projects", "Other"), store.ErrNotFound)
	for name, m := range old {
		if got := f.mailbox(a.ID, name); !sameMailbox(got, m) {
			t.Errorf("refused renames changed %q: %+v -> %+v", name, m, got)
		}
	}

	if err := f.s.RenameMailbox(ctx, a.ID, "Projects", "Work/Old"); err != nil {
		t.Fatal(err)
	}
	want := []string{"Archive", "Drafts", "INBOX", "Junk", "Sent", "Trash", "Work", "Work/Old", "Work/Old/Petrel", "Work/Old/Petrel/Docs"}
	if got := f.names(a.ID); !slices.Equal(got, want) {
		t.Errorf("after rename: %q, want %q", got, want)
	}
	var ids []int64
	for oldName, m := range old {
		got := f.mailbox(a.ID, "Work/Old"+strings.TrimPrefix(oldName, "Projects"))
		ids = append(ids, got.ID)
		if got.ID != m.ID || got.UIDValidity != m.UIDValidity || got.UIDNext != m.UIDNext || got.Messages != m.Messages ||
			got.SpecialUse != m.SpecialUse || got.HighestModSeq <= m.HighestModSeq {
			t.Errorf("%q renamed: %+v, was %+v", oldName, got, m)
		}
	}
	ids = append(ids, f.mailbox(a.ID, "Work").ID)
	waitMailboxChanges(t, ch, ids...)
	// A session that selected it follows it by ID.
	if got, err := f.s.MailboxByID(ctx, old["Projects/Petrel"].ID); err != nil || got.Name != "Work/Old/Petrel" ||
		!sameMailbox(got, f.mailbox(a.ID, "Work/Old/Petrel")) {
		t.Errorf("MailboxByID after the rename = %+v, %v", got, err)
	}
	if ms := f.messages(old["Projects/Petrel"].ID); len(ms) != 2 || ms[0].BlobID != d.BlobID || ms[1].UID != 2 {
		t.Errorf("messages of the renamed mailbox: %+v", ms)
	}
	subs, err := f.s.Subscriptions(ctx, a.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(subs, "Work/Old/Petrel") || slices.Contains(subs, "Projects/Petrel") {
		t.Errorf("subscriptions after rename: %q", subs)
	}
	// Delivery by the old name no longer finds it.
	_, err = f.s.Deliver(ctx, delivery(body1, store.Target{AccountID: a.ID, Mailbox: "Projects/Petrel"}))
	wantErr(t, "Deliver to the old name", err, store.ErrNotFound)
	f.deliver(body1, store.Target{AccountID: a.ID, Mailbox: "Work/Old/Petrel"})
	if got := f.mailbox(a.ID, "Work/Old/Petrel"); got.Messages != 3 || got.UIDNext != 4 {
		t.Errorf("delivery after rename: %+v", got)
	}

	// A rename of an inferior alone leaves its superior.
	if err := f.s.RenameMailbox(ctx, a.ID, "Work/Old/Petrel/Docs", "Docs"); err != nil {
		t.Fatal(err)
	}
	if got := f.mailbox(a.ID, "Docs"); got.ID != old["Projects/Petrel/Docs"].ID {
		t.Errorf("Docs = %+v", got)
	}
	f.mailbox(a.ID, "Work/Old/Petrel")
	f.checkCounts(a.ID)
}

// testRenameInbox: RENAME INBOX moves its messages into a new mailbox and leaves INBOX,
// empty, with its inferiors (RFC 9051 §6.3.6).
func testRenameInbox(t *testing.T, f *fixture) {
	ctx := f.ctx
	a := f.account("a@example.org")
	var ds []store.Delivered
	for i := range 3 {
		d := delivery(body1+strings.Repeat("x", i)+"\r\n", inbox(a.ID))
		if i == 1 {
			d.Flags = []string{store.FlagFlagged, "$Work"}
		}
		got, err := f.s.Deliver(ctx, d)
		if err != nil {
			t.Fatal(err)
		}
		ds = append(ds, got)
	}
	child := f.create(a.ID, "INBOX/Child")
	before := f.mailbox(a.ID, store.Inbox)
	wantErr(t, "RenameMailbox INBOX to an existing name", f.s.RenameMailbox(ctx, a.ID, store.Inbox, "Sent"), store.ErrExists)
	if got := f.mailbox(a.ID, store.Inbox); !sameMailbox(got, before) {
		t.Errorf("refused INBOX rename changed INBOX: %+v -> %+v", before, got)
	}

	if err := f.s.RenameMailbox(ctx, a.ID, "inbox", "Old/Mail"); err != nil {
		t.Fatal(err)
	}
	after := f.mailbox(a.ID, store.Inbox)
	if after.ID != before.ID || after.UIDValidity != before.UIDValidity || after.UIDNext != before.UIDNext ||
		after.Messages != 0 || after.Size != 0 || after.HighestModSeq <= before.HighestModSeq {
		t.Errorf("INBOX after its rename: %+v, was %+v", after, before)
	}
	if got := f.mailbox(a.ID, "INBOX/Child"); got.ID != child.ID {
		t.Errorf("INBOX/Child = %+v, want it left in place", got)
	}
	if got := f.vanished(before.ID, store.Filter{ChangedSince: before.HighestModSeq}); !slices.Equal(got, []uint32{1, 2, 3}) {
		t.Errorf("INBOX tombstones after its rename: %v", got)
	}
	moved := f.mailbox(a.ID, "Old/Mail")
	f.mailbox(a.ID, "Old")
	if moved.UIDValidity == before.UIDValidity || moved.ID == before.ID || moved.Messages != 3 || moved.UIDNext != 4 ||
		!slices.Equal(moved.Keywords, []string{"$Work"}) {
		t.Errorf("renamed INBOX: %+v", moved)
	}
	ms := f.messages(moved.ID)
	for i, m := range ms {
		if m.UID != uint32(i+1) || m.BlobID != ds[i].BlobID || !m.InternalDate.Equal(ds[i].Messages[0].InternalDate) ||
			!slices.Equal(m.Flags, ds[i].Messages[0].Flags) {
			t.Errorf("moved message %d: %+v, delivered %+v", i, m, ds[i].Messages[0])
		}
	}
	// INBOX goes on with its UIDs.
	if d := f.deliver(body1, inbox(a.ID)); d.Messages[0].UID != before.UIDNext || d.Messages[0].MailboxID != before.ID {
		t.Errorf("delivery after INBOX rename: %+v", d.Messages[0])
	}
	f.checkCounts(a.ID)
}

func testDeleteMailbox(t *testing.T, f *fixture) {
	ctx := f.ctx
	a := f.account("a@example.org")
	lists := f.create(a.ID, "Lists/Go")
	shared := f.deliver(body1, inbox(a.ID), store.Target{AccountID: a.ID, Mailbox: "Lists/Go"})
	only := f.deliver("Subject: only\r\n\r\nthere\r\n", store.Target{AccountID: a.ID, Mailbox: "Lists/Go"})
	f.expunge(lists.ID, 1) // a tombstone goes with the mailbox too
	if err := f.s.SetSubscribed(ctx, a.ID, "Lists/Go", true); err != nil {
		t.Fatal(err)
	}
	usage, err := f.s.Usage(ctx, a.ID)
	if err != nil {
		t.Fatal(err)
	}

	wantErr(t, "DeleteMailbox with inferiors", f.s.DeleteMailbox(ctx, a.ID, "Lists"), store.ErrHasChildren)
	wantErr(t, "DeleteMailbox INBOX", f.s.DeleteMailbox(ctx, a.ID, "inbox"), store.ErrInvalid)
	wantErr(t, "DeleteMailbox missing", f.s.DeleteMailbox(ctx, a.ID, "Nope"), store.ErrNotFound)
	wantErr(t, "DeleteMailbox missing account", f.s.DeleteMailbox(ctx, a.ID+1000, "Lists/Go"), store.ErrNotFound)
	ch, cancel := f.s.Subscribe(a.ID)
	defer cancel()

	if err := f.s.DeleteMailbox(ctx, a.ID, "Lists/Go"); err != nil {
		t.Fatal(err)
	}
	waitMailboxChanges(t, ch, lists.ID)
	_, err = f.s.Mailbox(ctx, a.ID, "Lists/Go")
	wantErr(t, "Mailbox deleted", err, store.ErrNotFound)
	_, err = f.s.MailboxByID(ctx, lists.ID)
	wantErr(t, "MailboxByID deleted", err, store.ErrNotFound)
	_, err = f.s.Messages(ctx, lists.ID, store.Filter{})
	wantErr(t, "Messages of a deleted mailbox", err, store.ErrNotFound)
	_, err = f.s.Vanished(ctx, lists.ID, store.Filter{})
	wantErr(t, "Vanished of a deleted mailbox", err, store.ErrNotFound)
	_, err = f.s.OpenBlob(ctx, only.BlobID)
	wantErr(t, "OpenBlob of a body only the deleted mailbox had", err, store.ErrNotFound)
	if got := f.blob(shared.BlobID); got != body1 {
		t.Errorf("body shared with INBOX after the delete: %q", got)
	}
	if got, err := f.s.Usage(ctx, a.ID); err != nil || got.Messages != usage.Messages-1 || got.Mailboxes != usage.Mailboxes-1 ||
		got.Size != usage.Size-only.Messages[0].Size {
		t.Errorf("Usage after delete %+v, %v; was %+v", got, err, usage)
	}
	subs, err := f.s.Subscriptions(ctx, a.ID)
	if err != nil || !slices.Contains(subs, "Lists/Go") {
		t.Errorf("subscriptions after delete %q, %v: RFC 9051 §6.3.9 keeps them", subs, err)
	}

	// Now the superior can go, and a new mailbox of the old name is a new mailbox.
	if err := f.s.DeleteMailbox(ctx, a.ID, "Lists"); err != nil {
		t.Fatal(err)
	}
	again := f.create(a.ID, "Lists/Go")
	if again.UIDValidity == lists.UIDValidity || again.UIDNext != 1 || again.Messages != 0 {
		t.Errorf("re-created mailbox %+v, deleted one %+v", again, lists)
	}
	if got := f.vanished(again.ID, store.Filter{}); len(got) != 0 {
		t.Errorf("re-created mailbox has tombstones %v", got)
	}
	// Special-use mailboxes can go.
	if err := f.s.DeleteMailbox(ctx, a.ID, store.Junk); err != nil {
		t.Fatal(err)
	}
	f.checkCounts(a.ID)
}

func testSpecialUse(t *testing.T, f *fixture) {
	ctx := f.ctx
	a := f.account("a@example.org")
	mbs, err := f.s.Mailboxes(ctx, a.ID)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range mbs {
		if m.SpecialUse != store.DefaultSpecialUse(m.Name) {
			t.Errorf("new account's %q has special use %q", m.Name, m.SpecialUse)
		}
	}
	if f.mailbox(a.ID, store.Sent).SpecialUse != store.UseSent || f.mailbox(a.ID, store.Inbox).SpecialUse != "" {
		t.Error("Sent or INBOX have the wrong attribute")
	}
	box := f.create(a.ID, "Old Sent")
	ch, cancel := f.s.Subscribe(a.ID)
	defer cancel()
	if err := f.s.SetSpecialUse(ctx, a.ID, "Old Sent", store.UseSent); err != nil {
		t.Fatal(err)
	}
	got := f.mailbox(a.ID, "Old Sent")
	if got.SpecialUse != store.UseSent || got.HighestModSeq <= box.HighestModSeq {
		t.Errorf("after SetSpecialUse: %+v", got)
	}
	expectChange(t, ch, store.Change{Kind: store.ChangeMailbox, AccountID: a.ID, MailboxID: box.ID, ModSeq: got.HighestModSeq})
	if err := f.s.SetSpecialUse(ctx, a.ID, "old sent", store.UseSent); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("SetSpecialUse by another case of the name: %v", err)
	}
	if err := f.s.SetSpecialUse(ctx, a.ID, "Old Sent", store.UseSent); err != nil {
		t.Fatal(err)
	}
	if again := f.mailbox(a.ID, "Old Sent"); again.HighestModSeq != got.HighestModSeq {
		t.Errorf("setting the same attribute again moved MODSEQ %d -> %d", got.HighestModSeq, again.HighestModSeq)
	}
	if err := f.s.SetSpecialUse(ctx, a.ID, "Old Sent", ""); err != nil {
		t.Fatal(err)
	}
	if got := f.mailbox(a.ID, "Old Sent"); got.SpecialUse != "" {
		t.Errorf("after clearing: %+v", got)
	}
	for _, bad := range []store.SpecialUse{`\All`, `\Flagged`, `\Bogus`, "Sent"} {
		wantErr(t, "SetSpecialUse "+string(bad), f.s.SetSpecialUse(ctx, a.ID, "Old Sent", bad), store.ErrInvalid)
	}
	wantErr(t, "SetSpecialUse missing mailbox", f.s.SetSpecialUse(ctx, a.ID, "Nope", store.UseJunk), store.ErrNotFound)
}

func testSubscriptions(t *testing.T, f *fixture) {
	ctx := f.ctx
	a := f.account("a@example.org")
	b := f.account("b@example.org")
	subs := func(id int64) []string {
		t.Helper()
		s, err := f.s.Subscriptions(ctx, id)
		if err != nil {
			t.Fatalf("Subscriptions(%d): %v", id, err)
		}
		return s
	}
	want := slices.Sorted(slices.Values(store.DefaultMailboxes))
	if got := subs(a.ID); !slices.Equal(got, want) {
		t.Errorf("new account subscribes %q, want %q", got, want)
	}
	for range 2 { // idempotent
		if err := f.s.SetSubscribed(ctx, a.ID, "Lists/Go", true); err != nil {
			t.Fatal(err)
		}
		if err := f.s.SetSubscribed(ctx, a.ID, "inbox", true); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.s.SetSubscribed(ctx, a.ID, store.Junk, false); err != nil {
		t.Fatal(err)
	}
	if err := f.s.SetSubscribed(ctx, a.ID, "Never/Subscribed", false); err != nil {
		t.Errorf("unsubscribing a name that was not subscribed: %v", err)
	}
	want = []string{"Archive", "Drafts", "INBOX", "Lists/Go", "Sent", "Trash"}
	if got := subs(a.ID); !slices.Equal(got, want) {
		t.Errorf("subscriptions %q, want %q", got, want)
	}
	if got := subs(b.ID); len(got) != len(store.DefaultMailboxes) {
		t.Errorf("b's subscriptions changed with a's: %q", got)
	}
	// An account without subscriptions is not a missing account.
	for _, name := range subs(b.ID) {
		if err := f.s.SetSubscribed(ctx, b.ID, name, false); err != nil {
			t.Fatal(err)
		}
	}
	if got, err := f.s.Subscriptions(ctx, b.ID); err != nil || len(got) != 0 {
		t.Errorf("Subscriptions after unsubscribing everything: %q, %v", got, err)
	}
	_, err := f.s.Subscriptions(ctx, a.ID+b.ID+1000)
	wantErr(t, "Subscriptions of a missing account", err, store.ErrNotFound)
	err = f.s.SetSubscribed(ctx, a.ID+b.ID+1000, "X", true)
	if !errors.Is(err, store.ErrNotFound) {
		t.Errorf("SetSubscribed of a missing account: %v", err)
	}
}
