package storetest

import (
	"strings"
	"testing"

	"petrel/internal/store"
)

// testAdoptUIDs: a mailbox takes another server's UIDVALIDITY and UIDNEXT before its first
// message; afterwards UIDNEXT may only grow, gaps stay gaps, and deliveries continue above.
func testAdoptUIDs(t *testing.T, f *fixture) {
	a := f.account("alice@example.org")
	box, err := f.s.CreateMailbox(f.ctx, a.ID, "Moved")
	if err != nil {
		t.Fatal(err)
	}
	// The UIDVALIDITY of another mailbox of the account that has held mail is refused; one
	// of a mailbox that never held mail is taken, and that mailbox gets a fresh one.
	f.deliver("Subject: x\r\n\r\nx\r\n", store.Target{AccountID: a.ID})
	inbox := f.mailbox(a.ID, store.Inbox)
	wantErr(t, "AdoptUIDs with INBOX's UIDVALIDITY", f.s.AdoptUIDs(f.ctx, box.ID, inbox.UIDValidity, 1), store.ErrExists)
	other, err := f.s.CreateMailbox(f.ctx, a.ID, "Other")
	if err != nil {
		t.Fatal(err)
	}
	junk := f.mailbox(a.ID, store.Junk)
	if err := f.s.AdoptUIDs(f.ctx, other.ID, junk.UIDValidity, 1); err != nil {
		t.Fatalf("AdoptUIDs with the UIDVALIDITY of the empty Junk: %v", err)
	}
	if got := f.mailbox(a.ID, store.Junk); got.UIDValidity == junk.UIDValidity || got.UIDValidity == 0 {
		t.Errorf("Junk kept UIDVALIDITY %d, given to Other", got.UIDValidity)
	}
	// Another account's mailbox may have the same value: they are unique per account.
	b := f.account("bob@example.org")
	bInbox := f.mailbox(b.ID, store.Inbox)
	if err := f.s.AdoptUIDs(f.ctx, bInbox.ID, inbox.UIDValidity, 1); err != nil {
		t.Errorf("AdoptUIDs with another account's UIDVALIDITY: %v", err)
	}
	const validity = 1234567
	if err := f.s.AdoptUIDs(f.ctx, box.ID, validity, 5); err != nil {
		t.Fatal(err)
	}
	appendUID := func(want uint32) {
		t.Helper()
		body := "Subject: moved\r\n\r\nbody\r\n"
		ap, err := f.s.Append(f.ctx, a.ID, "Moved", &store.AppendMessage{Body: strings.NewReader(body), Size: int64(len(body)),
			Flags: []string{store.FlagSeen, "$Label1"}})
		if err != nil {
			t.Fatal(err)
		}
		if ap.UIDValidity != validity || ap.Message.UID != want {
			t.Errorf("Append: UIDVALIDITY %d UID %d, want %d %d", ap.UIDValidity, ap.Message.UID, validity, want)
		}
	}
	appendUID(5)
	if err := f.s.AdoptUIDs(f.ctx, box.ID, 0, 9); err != nil { // a gap, as an expunge left it
		t.Fatal(err)
	}
	appendUID(9)
	wantErr(t, "AdoptUIDs lowering UIDNEXT", f.s.AdoptUIDs(f.ctx, box.ID, 0, 3), store.ErrInvalid)
	wantErr(t, "AdoptUIDs changing UIDVALIDITY after messages", f.s.AdoptUIDs(f.ctx, box.ID, validity+1, 20), store.ErrInvalid)
	before := f.mailbox(a.ID, "Moved")
	if err := f.s.AdoptUIDs(f.ctx, box.ID, validity, before.UIDNext); err != nil {
		t.Errorf("AdoptUIDs changing nothing: %v", err)
	}
	if got := f.mailbox(a.ID, "Moved"); got.HighestModSeq != before.HighestModSeq {
		t.Errorf("AdoptUIDs changing nothing raised HIGHESTMODSEQ %d to %d", before.HighestModSeq, got.HighestModSeq)
	}
	if err := f.s.AdoptUIDs(f.ctx, box.ID, 0, 12); err != nil {
		t.Fatal(err)
	}
	got := f.mailbox(a.ID, "Moved")
	if got.UIDNext != 12 || got.HighestModSeq <= before.HighestModSeq || got.Messages != 2 {
		t.Errorf("after AdoptUIDs: %+v", got)
	}
	uids := []uint32{}
	for _, m := range f.messages(box.ID) {
		uids = append(uids, m.UID)
	}
	if len(uids) != 2 || uids[0] != 5 || uids[1] != 9 {
		t.Errorf("UIDs %v, want [5 9]", uids)
	}
	// A new mailbox never gets the adopted UIDVALIDITY.
	nb, err := f.s.CreateMailbox(f.ctx, a.ID, "New")
	if err != nil || nb.UIDValidity == validity {
		t.Errorf("new mailbox %+v, %v", nb, err)
	}
	wantErr(t, "AdoptUIDs of a missing mailbox", f.s.AdoptUIDs(f.ctx, -1, 0, 3), store.ErrNotFound)
}

// testPOP3UIDL: the format is kept per account; unknown formats are refused.
func testPOP3UIDL(t *testing.T, f *fixture) {
	a := f.account("alice@example.org")
	if a.POP3UIDL != store.UIDLPetrel {
		t.Errorf("new account's UIDL format %q", a.POP3UIDL)
	}
	if err := f.s.SetPOP3UIDL(f.ctx, a.ID, store.UIDLDovecot); err != nil {
		t.Fatal(err)
	}
	if got, err := f.s.AccountByID(f.ctx, a.ID); err != nil || got.POP3UIDL != store.UIDLDovecot {
		t.Errorf("after SetPOP3UIDL: %+v, %v", got, err)
	}
	wantErr(t, "SetPOP3UIDL unknown", f.s.SetPOP3UIDL(f.ctx, a.ID, "bogus"), store.ErrInvalid)
	wantErr(t, "SetPOP3UIDL missing account", f.s.SetPOP3UIDL(f.ctx, -1, store.UIDLDovecot), store.ErrNotFound)
}
