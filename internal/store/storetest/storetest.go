// Package storetest is the conformance suite every store.Store implementation must pass.
//
// An implementation's test calls Run with a function that opens a fresh, empty store; the
// suite closes it. The suite checks behaviour the rest of Petrel relies on, through the
// store.Store interface only: error values (errors.Is), UID and MODSEQ rules, shared bodies,
// the atomicity of a delivery, change events, the maildrop lock and concurrent writers.
// RunReopen adds the checks that need a store closed and opened again on the same data.
package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"petrel/internal/store"
)

// Run runs the suite. open must return a new, empty store for each call; Run closes it
// at the end of the subtest that opened it.
func Run(t *testing.T, open func(t *testing.T) store.Store) {
	tests := []struct {
		name string
		fn   func(*testing.T, *fixture)
	}{
		{"Domains", testDomains},
		{"Accounts", testAccounts},
		{"DeleteAccount", testDeleteAccount},
		{"Aliases", testAliases},
		{"CatchAll", testCatchAll},
		{"Mailboxes", testMailboxes},
		{"Deliver", testDeliver},
		{"DeliverSharedBlob", testDeliverSharedBlob},
		{"DeliverFallsBackToInbox", testDeliverFallback},
		{"DeliverAtomic", testDeliverAtomic},
		{"DeliverBadBody", testDeliverBadBody},
		{"DeliverCancelled", testDeliverCancelled},
		{"LargeBody", testLargeBody},
		{"Parsed", testParsed},
		{"SetFlags", testSetFlags},
		{"Expunge", testExpunge},
		{"Move", testMove},
		{"Changes", testChanges},
		{"SlowSubscriber", testSlowSubscriber},
		{"LockMaildrop", testLockMaildrop},
		{"ConcurrentDeliveries", testConcurrentDeliveries},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := open(t)
			t.Cleanup(func() {
				if err := s.Close(); err != nil {
					t.Errorf("Close: %v", err)
				}
			})
			tc.fn(t, &fixture{t: t, s: s, ctx: context.Background()})
		})
	}
}

// RunReopen runs the tests that close a store and open it again on the same data: open
// must return a store on the data kept in dir (a new, empty one the first time). The suite
// closes every store it opens.
func RunReopen(t *testing.T, open func(t *testing.T, dir string) store.Store) {
	tests := []struct {
		name string
		fn   func(*testing.T, func() *fixture)
	}{
		{"ExpungeDurable", testExpungeDurable},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			var last store.Store
			closeLast := func() {
				if last != nil {
					if err := last.Close(); err != nil {
						t.Errorf("Close: %v", err)
					}
					last = nil
				}
			}
			t.Cleanup(closeLast)
			reopen := func() *fixture {
				closeLast()
				last = open(t, dir)
				return &fixture{t: t, s: last, ctx: context.Background()}
			}
			tc.fn(t, reopen)
		})
	}
}

// fixture bundles the store under test with helpers that fail the test on error.
type fixture struct {
	t   *testing.T
	s   store.Store
	ctx context.Context
}

func (f *fixture) domain(name string) {
	f.t.Helper()
	if err := f.s.AddDomain(f.ctx, name); err != nil {
		f.t.Fatalf("AddDomain(%q): %v", name, err)
	}
}

// account creates an account, and its domain if needed.
func (f *fixture) account(address string) store.Account {
	f.t.Helper()
	domain := address[strings.LastIndexByte(address, '@')+1:]
	if err := f.s.AddDomain(f.ctx, domain); err != nil && !errors.Is(err, store.ErrExists) {
		f.t.Fatalf("AddDomain(%q): %v", domain, err)
	}
	a, err := f.s.AddAccount(f.ctx, address, store.Credentials{PasswordHash: "hash-" + address})
	if err != nil {
		f.t.Fatalf("AddAccount(%q): %v", address, err)
	}
	return a
}

func (f *fixture) mailbox(accountID int64, name string) store.Mailbox {
	f.t.Helper()
	m, err := f.s.Mailbox(f.ctx, accountID, name)
	if err != nil {
		f.t.Fatalf("Mailbox(%d, %q): %v", accountID, name, err)
	}
	return m
}

func delivery(body string, targets ...store.Target) *store.Delivery {
	return &store.Delivery{
		MailFrom:   "sender@remote.example",
		Targets:    targets,
		Body:       strings.NewReader(body),
		Size:       int64(len(body)),
		Parsed:     store.ParsedMessage{MessageID: "id@remote.example", Subject: "hello"},
		ReceivedAt: time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC),
	}
}

func (f *fixture) deliver(body string, targets ...store.Target) store.Delivered {
	f.t.Helper()
	d, err := f.s.Deliver(f.ctx, delivery(body, targets...))
	if err != nil {
		f.t.Fatalf("Deliver: %v", err)
	}
	if len(d.Messages) != len(targets) {
		f.t.Fatalf("Deliver returned %d messages for %d targets", len(d.Messages), len(targets))
	}
	return d
}

func (f *fixture) messages(mailboxID int64) []store.Message {
	f.t.Helper()
	ms, err := f.s.Messages(f.ctx, mailboxID)
	if err != nil {
		f.t.Fatalf("Messages(%d): %v", mailboxID, err)
	}
	return ms
}

func (f *fixture) blob(id int64) string {
	f.t.Helper()
	r, err := f.s.OpenBlob(f.ctx, id)
	if err != nil {
		f.t.Fatalf("OpenBlob(%d): %v", id, err)
	}
	defer r.Close()
	b, err := io.ReadAll(r)
	if err != nil {
		f.t.Fatalf("reading blob %d: %v", id, err)
	}
	return string(b)
}

func wantErr(t *testing.T, what string, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Errorf("%s: got error %v, want %v", what, err, want)
	}
}

func uids(ms []store.Message) []uint32 {
	var out []uint32
	for _, m := range ms {
		out = append(out, m.UID)
	}
	return out
}

func inbox(id int64) store.Target { return store.Target{AccountID: id, Mailbox: store.Inbox} }

const body1 = "From: a@remote.example\r\nSubject: hello\r\n\r\nHi there.\r\n"

func testDomains(t *testing.T, f *fixture) {
	ctx := f.ctx
	f.domain("b.example")
	f.domain("A.Example") // stored lower-case
	wantErr(t, "AddDomain duplicate", f.s.AddDomain(ctx, "a.example"), store.ErrExists)

	ds, err := f.s.Domains(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(ds) != 2 || ds[0].Name != "a.example" || ds[1].Name != "b.example" || ds[0].CatchAll != "" {
		t.Errorf("Domains = %+v, want a.example and b.example without catch-all", ds)
	}
	if d, err := f.s.Domain(ctx, "a.example"); err != nil || d.Name != "a.example" {
		t.Errorf("Domain(a.example) = %+v, %v", d, err)
	}
	_, err = f.s.Domain(ctx, "nowhere.example")
	wantErr(t, "Domain missing", err, store.ErrNotFound)
	wantErr(t, "DeleteDomain missing", f.s.DeleteDomain(ctx, "nowhere.example"), store.ErrNotFound)

	f.account("x@a.example")
	wantErr(t, "DeleteDomain with accounts", f.s.DeleteDomain(ctx, "a.example"), store.ErrExists)
	if err := f.s.DeleteAccount(ctx, "x@a.example"); err != nil {
		t.Fatal(err)
	}
	if err := f.s.DeleteDomain(ctx, "a.example"); err != nil {
		t.Fatalf("DeleteDomain after its account left: %v", err)
	}
	_, err = f.s.Domain(ctx, "a.example")
	wantErr(t, "Domain deleted", err, store.ErrNotFound)
}

func testAccounts(t *testing.T, f *fixture) {
	ctx := f.ctx
	cred := store.Credentials{PasswordHash: "$argon2id$x", SCRAMSHA256: "scram"}
	_, err := f.s.AddAccount(ctx, "bob@nowhere.example", cred)
	wantErr(t, "AddAccount without domain", err, store.ErrNotFound)

	f.domain("example.org")
	f.domain("example.net")
	before := time.Now().Add(-time.Second)
	a, err := f.s.AddAccount(ctx, "Bob@Example.ORG", cred)
	if err != nil {
		t.Fatal(err)
	}
	if a.ID == 0 || a.Address != "bob@example.org" || a.Credentials != cred || a.POP3Delete != store.POP3Delete ||
		a.Created.Before(before) || a.Created.After(time.Now().Add(time.Second)) {
		t.Errorf("AddAccount = %+v", a)
	}
	_, err = f.s.AddAccount(ctx, "bob@example.org", cred)
	wantErr(t, "AddAccount duplicate", err, store.ErrExists)
	c := f.account("carol@example.net")

	got, err := f.s.AccountByAddress(ctx, "BOB@example.org")
	if err != nil || got.ID != a.ID || got.Credentials != cred || !got.Created.Equal(a.Created) {
		t.Errorf("AccountByAddress = %+v, %v; want %+v", got, err, a)
	}
	if got, err := f.s.AccountByID(ctx, a.ID); err != nil || got.Address != a.Address {
		t.Errorf("AccountByID = %+v, %v", got, err)
	}
	_, err = f.s.AccountByAddress(ctx, "nobody@example.org")
	wantErr(t, "AccountByAddress missing", err, store.ErrNotFound)
	_, err = f.s.AccountByID(ctx, a.ID+c.ID+100)
	wantErr(t, "AccountByID missing", err, store.ErrNotFound)

	all, err := f.s.Accounts(ctx, "")
	if err != nil || len(all) != 2 || all[0].Address != "bob@example.org" || all[1].Address != "carol@example.net" {
		t.Errorf(`Accounts("") = %+v, %v`, all, err)
	}
	some, err := f.s.Accounts(ctx, "example.net")
	if err != nil || len(some) != 1 || some[0].ID != c.ID {
		t.Errorf("Accounts(example.net) = %+v, %v", some, err)
	}

	// Default mailboxes, in order, each with its own UIDVALIDITY.
	mbs, err := f.s.Mailboxes(ctx, a.ID)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	seen := map[uint32]bool{}
	for _, m := range mbs {
		names = append(names, m.Name)
		if m.UIDValidity == 0 || seen[m.UIDValidity] || m.UIDNext != 1 || m.Messages != 0 || m.AccountID != a.ID {
			t.Errorf("new mailbox %+v", m)
		}
		seen[m.UIDValidity] = true
	}
	if !slices.Equal(names, store.DefaultMailboxes) {
		t.Errorf("mailboxes %v, want %v", names, store.DefaultMailboxes)
	}

	cred2 := store.Credentials{PasswordHash: "new", SCRAMSHA256: "new-scram"}
	if err := f.s.SetCredentials(ctx, a.ID, cred2); err != nil {
		t.Fatal(err)
	}
	if err := f.s.SetPOP3Delete(ctx, a.ID, store.POP3Archive); err != nil {
		t.Fatal(err)
	}
	got, _ = f.s.AccountByID(ctx, a.ID)
	if got.Credentials != cred2 || got.POP3Delete != store.POP3Archive {
		t.Errorf("after updates: %+v", got)
	}
	if err := f.s.SetPOP3Delete(ctx, a.ID, "shred"); err == nil {
		t.Error("SetPOP3Delete accepted an unknown policy")
	}
	wantErr(t, "SetCredentials missing", f.s.SetCredentials(ctx, a.ID+c.ID+100, cred), store.ErrNotFound)
	wantErr(t, "SetPOP3Delete missing", f.s.SetPOP3Delete(ctx, a.ID+c.ID+100, store.POP3Keep), store.ErrNotFound)
}

func testDeleteAccount(t *testing.T, f *fixture) {
	ctx := f.ctx
	a := f.account("a@example.org")
	b := f.account("b@example.org")
	only := f.deliver(body1, inbox(a.ID))
	shared := f.deliver(body1, inbox(a.ID), inbox(b.ID))

	wantErr(t, "DeleteAccount missing", f.s.DeleteAccount(ctx, "nobody@example.org"), store.ErrNotFound)
	if err := f.s.DeleteAccount(ctx, "A@example.org"); err != nil {
		t.Fatal(err)
	}
	_, err := f.s.AccountByID(ctx, a.ID)
	wantErr(t, "AccountByID deleted", err, store.ErrNotFound)
	_, err = f.s.Mailboxes(ctx, a.ID)
	wantErr(t, "Mailboxes of deleted account", err, store.ErrNotFound)
	_, err = f.s.Messages(ctx, only.Messages[0].MailboxID)
	wantErr(t, "Messages of deleted mailbox", err, store.ErrNotFound)
	_, err = f.s.OpenBlob(ctx, only.BlobID)
	wantErr(t, "OpenBlob only a deleted account had", err, store.ErrNotFound)
	if got := f.blob(shared.BlobID); got != body1 {
		t.Errorf("shared blob after deleting one recipient = %q", got)
	}
	if ms := f.messages(f.mailbox(b.ID, store.Inbox).ID); len(ms) != 1 {
		t.Errorf("other account lost messages: %+v", ms)
	}
}

func testAliases(t *testing.T, f *fixture) {
	ctx := f.ctx
	wantErr(t, "AddAlias without domain", f.s.AddAlias(ctx, "x@nowhere.example", []string{"a@example.org"}), store.ErrNotFound)
	f.account("a@example.org")
	f.domain("example.net")
	if err := f.s.AddAlias(ctx, "Info@Example.org", []string{"a@example.org", "Someone@Remote.example"}); err != nil {
		t.Fatal(err)
	}
	if err := f.s.AddAlias(ctx, "sales@example.net", []string{"a@example.org"}); err != nil {
		t.Fatal(err)
	}
	wantErr(t, "AddAlias duplicate", f.s.AddAlias(ctx, "info@example.org", []string{"a@example.org"}), store.ErrExists)
	wantErr(t, "AddAlias over an account", f.s.AddAlias(ctx, "a@example.org", []string{"x@example.org"}), store.ErrExists)
	_, err := f.s.AddAccount(ctx, "info@example.org", store.Credentials{})
	wantErr(t, "AddAccount over an alias", err, store.ErrExists)
	if err := f.s.AddAlias(ctx, "empty@example.org", nil); err == nil {
		t.Error("AddAlias accepted no targets")
	}

	al, err := f.s.Alias(ctx, "INFO@example.org")
	if err != nil || al.Address != "info@example.org" || !slices.Equal(al.Targets, []string{"a@example.org", "someone@remote.example"}) {
		t.Errorf("Alias = %+v, %v", al, err)
	}
	all, err := f.s.Aliases(ctx, "")
	if err != nil || len(all) != 2 || all[0].Address != "info@example.org" || all[1].Address != "sales@example.net" {
		t.Errorf(`Aliases("") = %+v, %v`, all, err)
	}
	some, err := f.s.Aliases(ctx, "example.net")
	if err != nil || len(some) != 1 || some[0].Address != "sales@example.net" {
		t.Errorf("Aliases(example.net) = %+v, %v", some, err)
	}
	if err := f.s.DeleteAlias(ctx, "info@example.org"); err != nil {
		t.Fatal(err)
	}
	_, err = f.s.Alias(ctx, "info@example.org")
	wantErr(t, "Alias deleted", err, store.ErrNotFound)
	wantErr(t, "DeleteAlias missing", f.s.DeleteAlias(ctx, "info@example.org"), store.ErrNotFound)
}

func testCatchAll(t *testing.T, f *fixture) {
	ctx := f.ctx
	f.account("a@example.org")
	wantErr(t, "SetCatchAll missing domain", f.s.SetCatchAll(ctx, "nowhere.example", "a@example.org"), store.ErrNotFound)
	wantErr(t, "SetCatchAll missing account", f.s.SetCatchAll(ctx, "example.org", "nobody@example.org"), store.ErrNotFound)
	if err := f.s.SetCatchAll(ctx, "example.org", "a@example.org"); err != nil {
		t.Fatal(err)
	}
	if d, err := f.s.Domain(ctx, "example.org"); err != nil || d.CatchAll != "a@example.org" {
		t.Errorf("Domain after SetCatchAll = %+v, %v", d, err)
	}
	if err := f.s.SetCatchAll(ctx, "example.org", ""); err != nil {
		t.Fatal(err)
	}
	if d, _ := f.s.Domain(ctx, "example.org"); d.CatchAll != "" {
		t.Errorf("catch-all not cleared: %+v", d)
	}
	// Deleting the catch-all account clears the catch-all.
	if err := f.s.SetCatchAll(ctx, "example.org", "a@example.org"); err != nil {
		t.Fatal(err)
	}
	if err := f.s.DeleteAccount(ctx, "a@example.org"); err != nil {
		t.Fatal(err)
	}
	if d, _ := f.s.Domain(ctx, "example.org"); d.CatchAll != "" {
		t.Errorf("catch-all survives its account: %+v", d)
	}
}

func testMailboxes(t *testing.T, f *fixture) {
	ctx := f.ctx
	a := f.account("a@example.org")
	before := f.mailbox(a.ID, store.Inbox)
	m, err := f.s.CreateMailbox(ctx, a.ID, "Projects/Petrel")
	if err != nil {
		t.Fatal(err)
	}
	if m.ID == 0 || m.Name != "Projects/Petrel" || m.UIDValidity == 0 || m.UIDNext != 1 || m.AccountID != a.ID {
		t.Errorf("CreateMailbox = %+v", m)
	}
	if got := f.mailbox(a.ID, "Projects/Petrel"); got != m {
		t.Errorf("Mailbox = %+v, want %+v", got, m)
	}
	_, err = f.s.CreateMailbox(ctx, a.ID, "Projects/Petrel")
	wantErr(t, "CreateMailbox duplicate", err, store.ErrExists)
	_, err = f.s.CreateMailbox(ctx, a.ID, "inbox")
	wantErr(t, "CreateMailbox inbox", err, store.ErrExists)
	_, err = f.s.CreateMailbox(ctx, a.ID+1000, "X")
	wantErr(t, "CreateMailbox missing account", err, store.ErrNotFound)
	for _, bad := range []string{"", "/x", "x/", "a//b", "a\x00b"} {
		if _, err := f.s.CreateMailbox(ctx, a.ID, bad); err == nil {
			t.Errorf("CreateMailbox(%q) accepted", bad)
		}
	}
	if got := f.mailbox(a.ID, "inbox"); got.ID != before.ID {
		t.Errorf(`Mailbox("inbox") = %+v, want INBOX`, got)
	}
	_, err = f.s.Mailbox(ctx, a.ID, "Nope")
	wantErr(t, "Mailbox missing", err, store.ErrNotFound)
	_, err = f.s.Messages(ctx, m.ID+1000)
	wantErr(t, "Messages missing mailbox", err, store.ErrNotFound)
	if ms, err := f.s.Messages(ctx, m.ID); err != nil || len(ms) != 0 {
		t.Errorf("Messages(empty) = %v, %v", ms, err)
	}
	mbs, err := f.s.Mailboxes(ctx, a.ID)
	if err != nil || len(mbs) != len(store.DefaultMailboxes)+1 || mbs[len(mbs)-1].ID != m.ID {
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

func testDeliver(t *testing.T, f *fixture) {
	ctx := f.ctx
	a := f.account("a@example.org")
	box := f.mailbox(a.ID, store.Inbox)

	d := delivery(body1, inbox(a.ID))
	d.Flags = []string{`\seen`, "$Label", `\Seen`}
	got, err := f.s.Deliver(ctx, d)
	if err != nil {
		t.Fatal(err)
	}
	m := got.Messages[0]
	if m.MailboxID != box.ID || m.UID != 1 || m.BlobID != got.BlobID || m.Size != int64(len(body1)) ||
		!m.InternalDate.Equal(d.ReceivedAt) || !slices.Equal(m.Flags, []string{"$Label", `\Seen`}) || m.ModSeq <= box.HighestModSeq {
		t.Errorf("delivered %+v", m)
	}
	second := f.deliver("Subject: two\r\n\r\n2\r\n", inbox(a.ID))
	if second.Messages[0].UID != 2 || second.Messages[0].ModSeq <= m.ModSeq || second.BlobID == got.BlobID {
		t.Errorf("second delivery %+v after %+v", second.Messages[0], m)
	}

	ms := f.messages(box.ID)
	if len(ms) != 2 || ms[0].ID != m.ID || ms[0].UID != 1 || ms[1].UID != 2 {
		t.Fatalf("Messages = %+v", ms)
	}
	if !ms[0].InternalDate.Equal(m.InternalDate) || !slices.Equal(ms[0].Flags, m.Flags) || ms[0].ModSeq != m.ModSeq || ms[0].Size != m.Size {
		t.Errorf("listed %+v, delivered %+v", ms[0], m)
	}
	if len(ms[1].Flags) != 0 {
		t.Errorf("flags of a delivery without flags: %q", ms[1].Flags)
	}
	if b := f.blob(got.BlobID); b != body1 {
		t.Errorf("blob = %q", b)
	}
	after := f.mailbox(a.ID, store.Inbox)
	if after.UIDNext != 3 || after.Messages != 2 || after.UIDValidity != box.UIDValidity || after.HighestModSeq != second.Messages[0].ModSeq {
		t.Errorf("mailbox after deliveries %+v", after)
	}
	_, err = f.s.OpenBlob(ctx, second.BlobID+1000)
	wantErr(t, "OpenBlob missing", err, store.ErrNotFound)

	// Empty body: legal, if odd.
	empty := f.deliver("", inbox(a.ID))
	if b := f.blob(empty.BlobID); b != "" {
		t.Errorf("empty blob = %q", b)
	}
	if _, err := f.s.Deliver(ctx, delivery(body1)); err == nil {
		t.Error("Deliver without targets succeeded")
	}
}

func testDeliverSharedBlob(t *testing.T, f *fixture) {
	a := f.account("a@example.org")
	b := f.account("b@example.org")
	d := f.deliver(body1, inbox(a.ID), store.Target{AccountID: a.ID, Mailbox: store.Archive}, inbox(b.ID))
	seenIDs := map[int64]bool{}
	for i, want := range []int64{f.mailbox(a.ID, store.Inbox).ID, f.mailbox(a.ID, store.Archive).ID, f.mailbox(b.ID, store.Inbox).ID} {
		m := d.Messages[i]
		if m.MailboxID != want || m.BlobID != d.BlobID || m.UID != 1 || seenIDs[m.ID] {
			t.Errorf("target %d: %+v", i, m)
		}
		seenIDs[m.ID] = true
		if ms := f.messages(want); len(ms) != 1 || ms[0].BlobID != d.BlobID {
			t.Errorf("mailbox %d holds %+v", want, ms)
		}
	}
	// Expunging one copy keeps the body for the others.
	if err := f.s.Expunge(f.ctx, d.Messages[0].MailboxID, []uint32{1}); err != nil {
		t.Fatal(err)
	}
	if got := f.blob(d.BlobID); got != body1 {
		t.Errorf("shared blob after one expunge = %q", got)
	}
}

func testDeliverFallback(t *testing.T, f *fixture) {
	a := f.account("a@example.org")
	d := f.deliver(body1, store.Target{AccountID: a.ID, Mailbox: "No/Such/Box"}, store.Target{AccountID: a.ID}, store.Target{AccountID: a.ID, Mailbox: "inbox"})
	box := f.mailbox(a.ID, store.Inbox)
	for i, m := range d.Messages {
		if m.MailboxID != box.ID {
			t.Errorf("target %d went to mailbox %d, want INBOX %d", i, m.MailboxID, box.ID)
		}
	}
	if got := uids(f.messages(box.ID)); !slices.Equal(got, []uint32{1, 2, 3}) {
		t.Errorf("INBOX UIDs %v", got)
	}
}

func testDeliverAtomic(t *testing.T, f *fixture) {
	ctx := f.ctx
	a := f.account("a@example.org")
	before := f.mailbox(a.ID, store.Inbox)
	_, err := f.s.Deliver(ctx, delivery(body1, inbox(a.ID), inbox(a.ID+1000)))
	wantErr(t, "Deliver to a missing account", err, store.ErrNotFound)
	after := f.mailbox(a.ID, store.Inbox)
	if after != before {
		t.Errorf("failed delivery changed INBOX: %+v -> %+v", before, after)
	}
	if ms := f.messages(before.ID); len(ms) != 0 {
		t.Errorf("failed delivery left messages: %+v", ms)
	}
	// The store is still usable, and the failed delivery used no UID.
	d := f.deliver(body1, inbox(a.ID))
	if d.Messages[0].UID != 1 {
		t.Errorf("UID after failed delivery = %d, want 1", d.Messages[0].UID)
	}
}

type failingReader struct{}

func (failingReader) Read([]byte) (int, error) { return 0, errors.New("connection reset") }

func testDeliverBadBody(t *testing.T, f *fixture) {
	ctx := f.ctx
	a := f.account("a@example.org")
	short := delivery(body1, inbox(a.ID))
	short.Size++
	long := delivery(body1, inbox(a.ID))
	long.Size--
	broken := delivery(body1, inbox(a.ID))
	broken.Body = io.MultiReader(strings.NewReader("From: x\r\n"), failingReader{})
	for name, d := range map[string]*store.Delivery{"short": short, "long": long, "broken": broken} {
		if _, err := f.s.Deliver(ctx, d); err == nil {
			t.Errorf("%s body: Deliver succeeded", name)
		}
	}
	if box := f.mailbox(a.ID, store.Inbox); box.Messages != 0 || box.UIDNext != 1 {
		t.Errorf("bad bodies left %+v", box)
	}
}

func testDeliverCancelled(t *testing.T, f *fixture) {
	a := f.account("a@example.org")
	ctx, cancel := context.WithCancel(f.ctx)
	cancel()
	_, err := f.s.Deliver(ctx, delivery(body1, inbox(a.ID)))
	wantErr(t, "Deliver with a cancelled context", err, context.Canceled)
	if box := f.mailbox(a.ID, store.Inbox); box.Messages != 0 {
		t.Errorf("cancelled delivery stored: %+v", box)
	}
}

func testLargeBody(t *testing.T, f *fixture) {
	a := f.account("a@example.org")
	var buf bytes.Buffer
	for i := 0; buf.Len() < 3<<20; i++ {
		fmt.Fprintf(&buf, "line %d of a large message, padded to look like base64 text ABCDEFGHIJKLMNOP\r\n", i)
	}
	d := f.deliver(buf.String(), inbox(a.ID))
	if d.Messages[0].Size != int64(buf.Len()) {
		t.Errorf("size %d, want %d", d.Messages[0].Size, buf.Len())
	}
	r, err := f.s.OpenBlob(f.ctx, d.BlobID)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	// Read in odd-sized pieces to cross internal boundaries anywhere.
	var got bytes.Buffer
	p := make([]byte, 7777)
	for {
		n, err := r.Read(p)
		got.Write(p[:n])
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if !bytes.Equal(got.Bytes(), buf.Bytes()) {
		t.Errorf("large blob differs: got %d bytes, want %d", got.Len(), buf.Len())
	}
}

func testParsed(t *testing.T, f *fixture) {
	a := f.account("a@example.org")
	in := store.Target{AccountID: a.ID, Mailbox: store.Inbox}
	date := time.Date(2024, 5, 6, 7, 8, 9, 0, time.FixedZone("x", 3600))
	d := delivery("Subject: x\r\n\r\n", in)
	d.Parsed = store.ParsedMessage{MessageID: "m@x", Subject: "x", From: "Ann <ann@x>", Date: date,
		Envelope: []byte(`{"subject":"x"}`), Structure: []byte(`{"type":"text"}`)}
	got, err := f.s.Deliver(f.ctx, d)
	if err != nil {
		t.Fatal(err)
	}
	p, err := f.s.Parsed(f.ctx, got.BlobID)
	if err != nil {
		t.Fatal(err)
	}
	if p.MessageID != "m@x" || p.Subject != "x" || p.From != "Ann <ann@x>" || !p.Date.Equal(date) ||
		string(p.Envelope) != `{"subject":"x"}` || string(p.Structure) != `{"type":"text"}` {
		t.Errorf("Parsed = %+v", p)
	}
	bare := delivery("x\r\n", in)
	bare.Parsed = store.ParsedMessage{}
	noDate, err := f.s.Deliver(f.ctx, bare)
	if err != nil {
		t.Fatal(err)
	}
	if p, err := f.s.Parsed(f.ctx, noDate.BlobID); err != nil || !p.Date.IsZero() || p.Envelope != nil {
		t.Errorf("Parsed without data = %+v, %v", p, err)
	}
	if _, err := f.s.Parsed(f.ctx, noDate.BlobID+100); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Parsed of a missing blob: %v", err)
	}
}

func testSetFlags(t *testing.T, f *fixture) {
	ctx := f.ctx
	a := f.account("a@example.org")
	box := f.mailbox(a.ID, store.Inbox)
	for range 3 {
		f.deliver(body1, inbox(a.ID))
	}
	ch, cancel := f.s.Subscribe(a.ID)
	defer cancel()
	start := f.mailbox(a.ID, store.Inbox).HighestModSeq

	if err := f.s.SetFlags(ctx, box.ID, []uint32{1, 3, 99}, []string{`\seen`, "Work"}, true); err != nil {
		t.Fatal(err)
	}
	ms := f.messages(box.ID)
	if !slices.Equal(ms[0].Flags, []string{"Work", `\Seen`}) || len(ms[1].Flags) != 0 || !slices.Equal(ms[2].Flags, ms[0].Flags) {
		t.Errorf("flags after add: %q %q %q", ms[0].Flags, ms[1].Flags, ms[2].Flags)
	}
	m1 := f.mailbox(a.ID, store.Inbox).HighestModSeq
	if ms[0].ModSeq != m1 || ms[2].ModSeq != m1 || ms[1].ModSeq >= m1 || m1 <= start {
		t.Errorf("MODSEQs %d %d %d, mailbox %d (was %d)", ms[0].ModSeq, ms[1].ModSeq, ms[2].ModSeq, m1, start)
	}
	expectChange(t, ch, store.Change{Kind: store.ChangeFlags, AccountID: a.ID, MailboxID: box.ID, UIDs: []uint32{1, 3}, ModSeq: m1})

	// Setting flags a message already has changes nothing, not even MODSEQ (RFC 7162 §3.1.3).
	if err := f.s.SetFlags(ctx, box.ID, []uint32{1}, []string{`\Seen`}, true); err != nil {
		t.Fatal(err)
	}
	if got := f.mailbox(a.ID, store.Inbox).HighestModSeq; got != m1 {
		t.Errorf("no-op SetFlags moved MODSEQ %d -> %d", m1, got)
	}

	if err := f.s.SetFlags(ctx, box.ID, []uint32{1, 2, 3}, []string{"work"}, false); err != nil {
		t.Fatal(err)
	}
	ms = f.messages(box.ID)
	if !slices.Equal(ms[0].Flags, []string{`\Seen`}) || len(ms[1].Flags) != 0 || ms[1].ModSeq >= m1 || ms[0].ModSeq <= m1 {
		t.Errorf("after remove: %+v", ms)
	}
	expectChange(t, ch, store.Change{Kind: store.ChangeFlags, AccountID: a.ID, MailboxID: box.ID, UIDs: []uint32{1, 3}, ModSeq: ms[0].ModSeq})

	wantErr(t, "SetFlags missing mailbox", f.s.SetFlags(ctx, box.ID+1000, []uint32{1}, []string{`\Seen`}, true), store.ErrNotFound)
	if err := f.s.SetFlags(ctx, box.ID, []uint32{1}, []string{"bad flag"}, true); err == nil {
		t.Error("SetFlags accepted a flag with a space")
	}
}

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

	if err := f.s.Expunge(ctx, box.ID, []uint32{3, 1, 42}); err != nil {
		t.Fatal(err)
	}
	after := f.mailbox(a.ID, store.Inbox)
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
	// Nothing to expunge: no change.
	if err := f.s.Expunge(ctx, box.ID, []uint32{1}); err != nil {
		t.Fatal(err)
	}
	if got := f.mailbox(a.ID, store.Inbox); got != after {
		t.Errorf("empty expunge changed the mailbox: %+v -> %+v", after, got)
	}
	wantErr(t, "Expunge missing mailbox", f.s.Expunge(ctx, box.ID+1000, []uint32{1}), store.ErrNotFound)

	// UIDs are never reused.
	if d := f.deliver(body1, inbox(a.ID)); d.Messages[0].UID != 5 {
		t.Errorf("UID after expunge %d, want 5", d.Messages[0].UID)
	}
}

func testMove(t *testing.T, f *fixture) {
	ctx := f.ctx
	a := f.account("a@example.org")
	b := f.account("b@example.org")
	src := f.mailbox(a.ID, store.Inbox)
	dst := f.mailbox(a.ID, store.Archive)
	f.deliver("existing\r\n", store.Target{AccountID: a.ID, Mailbox: store.Archive})
	var ds []store.Delivered
	for range 3 {
		ds = append(ds, f.deliver(body1, inbox(a.ID)))
	}
	if err := f.s.SetFlags(ctx, src.ID, []uint32{3}, []string{`\Flagged`}, true); err != nil {
		t.Fatal(err)
	}
	ch, cancel := f.s.Subscribe(a.ID)
	defer cancel()
	before := f.mailbox(a.ID, store.Inbox)

	if err := f.s.Move(ctx, src.ID, []uint32{3, 1}, dst.ID); err != nil {
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
	if got := f.blob(moved[1].BlobID); got != body1 {
		t.Errorf("moved body %q", got)
	}
	got := collect(t, ch, 2)
	slices.SortFunc(got, func(x, y store.Change) int { return int(x.Kind - y.Kind) })
	wantAdd := store.Change{Kind: store.ChangeAdd, AccountID: a.ID, MailboxID: dst.ID, UIDs: []uint32{2, 3}, ModSeq: dstAfter.HighestModSeq}
	wantExp := store.Change{Kind: store.ChangeExpunge, AccountID: a.ID, MailboxID: src.ID, UIDs: []uint32{1, 3}, ModSeq: dstAfter.HighestModSeq}
	if !sameChange(got[0], wantAdd) || !sameChange(got[1], wantExp) {
		t.Errorf("move changes %+v, want %+v and %+v", got, wantAdd, wantExp)
	}

	if err := f.s.Move(ctx, src.ID, []uint32{2}, f.mailbox(b.ID, store.Inbox).ID); err == nil {
		t.Error("Move to another account's mailbox succeeded")
	}
	wantErr(t, "Move to a missing mailbox", f.s.Move(ctx, src.ID, []uint32{2}, dst.ID+1000), store.ErrNotFound)
	wantErr(t, "Move from a missing mailbox", f.s.Move(ctx, src.ID+1000, []uint32{2}, dst.ID), store.ErrNotFound)
	if got := uids(f.messages(src.ID)); !slices.Equal(got, []uint32{2}) {
		t.Errorf("failed moves changed the source: %v", got)
	}
}

func testChanges(t *testing.T, f *fixture) {
	a := f.account("a@example.org")
	b := f.account("b@example.org")
	chA, cancelA := f.s.Subscribe(a.ID)
	chA2, cancelA2 := f.s.Subscribe(a.ID) // a second session of the same account
	defer cancelA2()
	chB, cancelB := f.s.Subscribe(b.ID)
	defer cancelB()

	d := f.deliver(body1, inbox(a.ID), store.Target{AccountID: a.ID, Mailbox: store.Sent})
	inboxID := f.mailbox(a.ID, store.Inbox).ID
	sentID := f.mailbox(a.ID, store.Sent).ID
	modseq := d.Messages[0].ModSeq
	got := collect(t, chA, 2)
	slices.SortFunc(got, func(x, y store.Change) int { return int(x.MailboxID - y.MailboxID) })
	if !sameChange(got[0], store.Change{Kind: store.ChangeAdd, AccountID: a.ID, MailboxID: inboxID, UIDs: []uint32{1}, ModSeq: modseq}) ||
		!sameChange(got[1], store.Change{Kind: store.ChangeAdd, AccountID: a.ID, MailboxID: sentID, UIDs: []uint32{1}, ModSeq: modseq}) {
		t.Errorf("delivery changes %+v", got)
	}
	if got2 := collect(t, chA2, 2); len(got2) != 2 {
		t.Errorf("second subscriber got %+v", got2)
	}

	m, err := f.s.CreateMailbox(f.ctx, a.ID, "New")
	if err != nil {
		t.Fatal(err)
	}
	expectChange(t, chA, store.Change{Kind: store.ChangeMailbox, AccountID: a.ID, MailboxID: m.ID, ModSeq: m.HighestModSeq})

	select {
	case c := <-chB:
		t.Errorf("account b got a change of account a: %+v", c)
	default:
	}

	cancelA()
	cancelA() // idempotent
	f.deliver(body1, inbox(a.ID))
	if c, ok := <-chA; ok {
		t.Errorf("change after cancel: %+v", c)
	}
}

// testSlowSubscriber checks that a subscriber that does not read is cut off (its channel
// closed) instead of blocking writers.
func testSlowSubscriber(t *testing.T, f *fixture) {
	a := f.account("a@example.org")
	ch, cancel := f.s.Subscribe(a.ID)
	defer cancel()
	n := cap(ch) + 1
	var wg sync.WaitGroup
	errs := make(chan error, n)
	work := make(chan int, n)
	for i := range n {
		work <- i
	}
	close(work)
	for range 16 {
		wg.Go(func() {
			for range work {
				if _, err := f.s.Deliver(f.ctx, delivery(body1, inbox(a.ID))); err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	got := 0
	for range ch {
		got++
		if got > n {
			t.Fatalf("got more than %d changes for %d deliveries", got, n)
		}
	}
	if got >= n {
		t.Errorf("subscriber with a buffer of %d received all %d changes; want it cut off", cap(ch), n)
	}
}

func testLockMaildrop(t *testing.T, f *fixture) {
	ctx := f.ctx
	a := f.account("a@example.org")
	b := f.account("b@example.org")
	unlock, err := f.s.LockMaildrop(ctx, a.ID)
	if err != nil {
		t.Fatal(err)
	}
	_, err = f.s.LockMaildrop(ctx, a.ID)
	wantErr(t, "second LockMaildrop", err, store.ErrLocked)
	unlockB, err := f.s.LockMaildrop(ctx, b.ID)
	if err != nil {
		t.Fatalf("lock of another account: %v", err)
	}
	unlockB()
	unlock()
	unlock() // idempotent
	unlock2, err := f.s.LockMaildrop(ctx, a.ID)
	if err != nil {
		t.Fatalf("LockMaildrop after unlock: %v", err)
	}
	unlock() // a stale unlock must not release the new holder's lock
	_, err = f.s.LockMaildrop(ctx, a.ID)
	wantErr(t, "LockMaildrop after stale unlock", err, store.ErrLocked)
	unlock2()
}

// testConcurrentDeliveries: many writers into one mailbox get distinct UIDs 1..N and every
// message reads back.
func testConcurrentDeliveries(t *testing.T, f *fixture) {
	const writers, each = 16, 50
	a := f.account("a@example.org")
	b := f.account("b@example.org")
	var wg sync.WaitGroup
	errs := make(chan error, writers*each)
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				body := fmt.Sprintf("Subject: %d-%d\r\n\r\nbody\r\n", w, i)
				targets := []store.Target{inbox(a.ID)}
				if i%5 == 0 {
					targets = append(targets, inbox(b.ID))
				}
				if _, err := f.s.Deliver(f.ctx, delivery(body, targets...)); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	box := f.mailbox(a.ID, store.Inbox)
	ms := f.messages(box.ID)
	if len(ms) != writers*each || box.Messages != writers*each || box.UIDNext != writers*each+1 {
		t.Fatalf("%d messages, mailbox %+v; want %d", len(ms), box, writers*each)
	}
	bodies := map[string]bool{}
	var last uint64
	for i, m := range ms {
		if m.UID != uint32(i+1) {
			t.Fatalf("message %d has UID %d", i, m.UID)
		}
		// Writes to one account are ordered, so MODSEQ grows with UID.
		if m.ModSeq <= last {
			t.Fatalf("UID %d has MODSEQ %d, not above the previous %d", m.UID, m.ModSeq, last)
		}
		last = m.ModSeq
		bodies[f.blob(m.BlobID)] = true
	}
	if len(bodies) != writers*each {
		t.Errorf("%d distinct bodies, want %d", len(bodies), writers*each)
	}
	if box.HighestModSeq != last {
		t.Errorf("mailbox MODSEQ %d, highest message MODSEQ %d", box.HighestModSeq, last)
	}
	if n := len(f.messages(f.mailbox(b.ID, store.Inbox).ID)); n != writers*each/5 {
		t.Errorf("second account has %d messages, want %d", n, writers*each/5)
	}
}

func sameChange(a, b store.Change) bool {
	return a.Kind == b.Kind && a.AccountID == b.AccountID && a.MailboxID == b.MailboxID && a.ModSeq == b.ModSeq &&
		slices.Equal(a.UIDs, b.UIDs)
}

// collect receives n changes. Changes are published before the write returns, so they are
// already there; the timeout only keeps a broken store from hanging the suite.
func collect(t *testing.T, ch <-chan store.Change, n int) []store.Change {
	t.Helper()
	var out []store.Change
	for len(out) < n {
		select {
		case c, ok := <-ch:
			if !ok {
				t.Fatalf("change channel closed after %d of %d changes", len(out), n)
			}
			out = append(out, c)
		case <-time.After(5 * time.Second):
			t.Fatalf("got %d of %d changes", len(out), n)
		}
	}
	return out
}

func expectChange(t *testing.T, ch <-chan store.Change, want store.Change) {
	t.Helper()
	if got := collect(t, ch, 1)[0]; !sameChange(got, want) {
		t.Errorf("change %+v, want %+v", got, want)
	}
}

// testExpungeDurable: once Expunge returned, the messages and the bodies only they had are
// gone for good, through any number of restarts, whatever the store still does with their
// space in the background; kept messages and shared bodies are intact, UIDs not reused.
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
	if err := f.s.Expunge(ctx, box.ID, []uint32{1, 2, 3, 7}); err != nil {
		t.Fatal(err)
	}

	check := func(f *fixture, round string, uidNext uint32) {
		t.Helper()
		if got := uids(f.messages(box.ID)); !slices.Equal(got, []uint32{4, 5, 6}) {
			t.Errorf("%s: UIDs %v, want [4 5 6]", round, got)
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
	if err := f.s.Expunge(ctx, box.ID, []uint32{8}); err != nil {
		t.Fatal(err)
	}
	f = reopen()
	check(f, "after a second reopen", 9)
}
