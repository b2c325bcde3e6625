// Package storetest is the conformance suite every store.Store implementation must pass.
//
// An implementation's test calls Run with a function that opens a fresh, empty store; the
// suite closes it. The suite checks behaviour the rest of Petrel relies on, through the
// store.Store interface only: error values (errors.Is), UID and MODSEQ rules, shared bodies,
// the atomicity of a delivery, the mailbox hierarchy, flags with UNCHANGEDSINCE, tombstones,
// counts and usage, change events, the maildrop lock and concurrent writers. RunReopen adds
// the checks that need a store closed and opened again on the same data.
//
// The tests are grouped by topic, one file each (directory, mailboxes, delivery, flags,
// expunge, changes); this file holds the fixture and the helpers they share. Most tests end
// with checkCounts, which recomputes every count and the usage from the messages, so that
// no operation can leave them behind.
package storetest

import (
	"context"
	"errors"
	"io"
	"reflect"
	"slices"
	"strings"
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
		// directory.go
		{"Domains", testDomains},
		{"Accounts", testAccounts},
		{"DeleteAccount", testDeleteAccount},
		{"Aliases", testAliases},
		{"CatchAll", testCatchAll},
		// mailboxes.go
		{"Mailboxes", testMailboxes},
		{"MailboxNames", testMailboxNames},
		{"MailboxesStayInTheirAccount", testMailboxesStayInTheirAccount},
		{"RenameMailbox", testRenameMailbox},
		{"RenameInbox", testRenameInbox},
		{"DeleteMailbox", testDeleteMailbox},
		{"SpecialUse", testSpecialUse},
		{"Subscriptions", testSubscriptions},
		// adopt.go
		{"AdoptUIDs", testAdoptUIDs},
		{"POP3UIDL", testPOP3UIDL},
		// delivery.go
		{"Deliver", testDeliver},
		{"DeliverSharedBlob", testDeliverSharedBlob},
		{"DeliverInboxFallback", testDeliverInboxFallback},
		{"DeliverAtomic", testDeliverAtomic},
		{"DeliverBadBody", testDeliverBadBody},
		{"DeliverCancelled", testDeliverCancelled},
		{"Append", testAppend},
		{"LargeBody", testLargeBody},
		{"Parsed", testParsed},
		{"ConcurrentDeliveries", testConcurrentDeliveries},
		// flags.go
		{"SetFlags", testSetFlags},
		{"SetFlagsReplace", testSetFlagsReplace},
		{"SetFlagsUnchangedSince", testSetFlagsUnchangedSince},
		{"Keywords", testKeywords},
		{"Counts", testCounts},
		// expunge.go
		{"Expunge", testExpunge},
		{"Vanished", testVanished},
		{"MessagesFilter", testMessagesFilter},
		{"Copy", testCopy},
		{"Move", testMove},
		// changes.go
		{"Changes", testChanges},
		{"SlowSubscriber", testSlowSubscriber},
		{"LockMaildrop", testLockMaildrop},
		// quota.go
		{"Quota", testQuota},
		{"QuotaConcurrent", testQuotaConcurrent},
		{"Search", testSearch},
		{"SearchRightAfterCommit", testSearchRightAfterCommit},
		// sending.go
		{"SendingOverride", testSendingOverride},
		{"ChargeSending", testChargeSending},
		{"DeliveryCharge", testDeliveryCharge},
		{"ChargeSendingConcurrent", testChargeSendingConcurrent},
		// queue.go
		{"QueueWithDelivery", testQueueWithDelivery},
		{"QueueClaim", testQueueClaim},
		{"QueueDelete", testQueueDelete},
		{"MTASTSCache", testMTASTSCache},
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
		{"SendingDurable", testSendingDurable},
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

// openSuite opens the store of a suite function and closes it when the test ends.
func openSuite[S store.Store](t *testing.T, open func(t *testing.T) S) (S, *fixture) {
	s := open(t)
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s, &fixture{t: t, s: s, ctx: context.Background()}
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
	ms, err := f.s.Messages(f.ctx, mailboxID, store.Filter{})
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

// setFlags runs SetFlags without a condition.
func (f *fixture) setFlags(mailboxID int64, uids []uint32, mode store.FlagMode, flags ...string) store.FlagsUpdated {
	f.t.Helper()
	u, err := f.s.SetFlags(f.ctx, mailboxID, uids, store.FlagChange{Mode: mode, Flags: flags})
	if err != nil {
		f.t.Fatalf("SetFlags(%d, %v, %d, %q): %v", mailboxID, uids, mode, flags, err)
	}
	return u
}

func (f *fixture) expunge(mailboxID int64, uids ...uint32) store.Expunged {
	f.t.Helper()
	e, err := f.s.Expunge(f.ctx, mailboxID, uids)
	if err != nil {
		f.t.Fatalf("Expunge(%d, %v): %v", mailboxID, uids, err)
	}
	return e
}

func (f *fixture) vanished(mailboxID int64, filter store.Filter) []uint32 {
	f.t.Helper()
	v, err := f.s.Vanished(f.ctx, mailboxID, filter)
	if err != nil {
		f.t.Fatalf("Vanished(%d, %+v): %v", mailboxID, filter, err)
	}
	return v
}

func (f *fixture) create(accountID int64, name string) store.Mailbox {
	f.t.Helper()
	m, err := f.s.CreateMailbox(f.ctx, accountID, name)
	if err != nil {
		f.t.Fatalf("CreateMailbox(%q): %v", name, err)
	}
	return m
}

// names lists an account's mailbox names, sorted.
func (f *fixture) names(accountID int64) []string {
	f.t.Helper()
	mbs, err := f.s.Mailboxes(f.ctx, accountID)
	if err != nil {
		f.t.Fatalf("Mailboxes(%d): %v", accountID, err)
	}
	var out []string
	for _, m := range mbs {
		out = append(out, m.Name)
	}
	slices.Sort(out)
	return out
}

// checkCounts recomputes the counts of every mailbox of the account and its usage from the
// messages and compares them with what the store keeps.
func (f *fixture) checkCounts(accountID int64) {
	f.t.Helper()
	mbs, err := f.s.Mailboxes(f.ctx, accountID)
	if err != nil {
		f.t.Fatalf("Mailboxes(%d): %v", accountID, err)
	}
	var want store.Usage
	for _, mb := range mbs {
		var got store.Mailbox
		keywords := map[string]bool{}
		for _, m := range f.messages(mb.ID) {
			got.Messages++
			got.Size += m.Size
			if !slices.Contains(m.Flags, store.FlagSeen) {
				got.Unseen++
			}
			if slices.Contains(m.Flags, store.FlagDeleted) {
				got.Deleted++
			}
			for _, fl := range m.Flags {
				if !strings.HasPrefix(fl, `\`) {
					keywords[fl] = true
				}
			}
			if m.ModSeq > mb.HighestModSeq || m.UID >= mb.UIDNext {
				f.t.Errorf("mailbox %q: message UID %d MODSEQ %d beyond UIDNEXT %d HIGHESTMODSEQ %d",
					mb.Name, m.UID, m.ModSeq, mb.UIDNext, mb.HighestModSeq)
			}
		}
		if got.Messages != mb.Messages || got.Unseen != mb.Unseen || got.Deleted != mb.Deleted || got.Size != mb.Size {
			f.t.Errorf("mailbox %q keeps messages/unseen/deleted/size %d/%d/%d/%d, its messages make %d/%d/%d/%d",
				mb.Name, mb.Messages, mb.Unseen, mb.Deleted, mb.Size, got.Messages, got.Unseen, got.Deleted, got.Size)
		}
		for k := range keywords {
			if !slices.ContainsFunc(mb.Keywords, func(m string) bool { return strings.EqualFold(m, k) }) {
				f.t.Errorf("mailbox %q: keyword %q in use but not in Keywords %q", mb.Name, k, mb.Keywords)
			}
		}
		if !slices.IsSorted(mb.Keywords) {
			f.t.Errorf("mailbox %q: Keywords %q not sorted", mb.Name, mb.Keywords)
		}
		want.Messages += int64(got.Messages)
		want.Size += got.Size
		want.Mailboxes++
	}
	u, err := f.s.Usage(f.ctx, accountID)
	if err != nil {
		f.t.Fatalf("Usage(%d): %v", accountID, err)
	}
	if u != want {
		f.t.Errorf("Usage = %+v, the mailboxes make %+v", u, want)
	}
}

// sameMailbox compares two mailboxes field by field.
func sameMailbox(a, b store.Mailbox) bool {
	ka, kb := a.Keywords, b.Keywords
	a.Keywords, b.Keywords = nil, nil
	return reflect.DeepEqual(a, b) && slices.Equal(ka, kb)
}

// span is the UID range first:last.
func span(first, last uint32) store.UIDRange { return store.UIDRange{First: first, Last: last} }

// inboxWith creates the account a@example.org and delivers n messages (UIDs 1..n) to its
// INBOX, which it returns as it was before the deliveries.
func (f *fixture) inboxWith(n int) (store.Account, store.Mailbox) {
	f.t.Helper()
	a := f.account("a@example.org")
	box := f.mailbox(a.ID, store.Inbox)
	for range n {
		f.deliver(body1, inbox(a.ID))
	}
	return a, box
}
