package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"petrel/internal/mailtest"
	"petrel/internal/store"
)

// Tests of what only a shared database has: several Stores (nodes) on one database.

// twoNodes opens two Stores on one new database, with example.org and one account.
func twoNodes(t testing.TB) (a, b *Store, acct store.Account) {
	t.Helper()
	dsn := mailtest.PostgresDSN(t)
	a = openDSN(t, dsn, Options{})
	t.Cleanup(func() { a.Close() })
	b = openDSN(t, dsn, Options{})
	t.Cleanup(func() { b.Close() })
	ctx := context.Background()
	if err := a.AddDomain(ctx, "example.org"); err != nil {
		t.Fatal(err)
	}
	acct, err := a.AddAccount(ctx, "u@example.org", store.Credentials{})
	if err != nil {
		t.Fatal(err)
	}
	return a, b, acct
}

func deliverTo(t *testing.T, s *Store, accountID int64, body string) store.Delivered {
	t.Helper()
	d, err := s.Deliver(context.Background(), &store.Delivery{
		Targets: []store.Target{{AccountID: accountID, Mailbox: store.Inbox}},
		Body:    strings.NewReader(body), Size: int64(len(body)),
	})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// nextChange waits for a change on ch; ok is false if the store cut the subscriber off.
func nextChange(t *testing.T, ch <-chan store.Change) (store.Change, bool) {
	t.Helper()
	select {
	case c, ok := <-ch:
		return c, ok
	case <-time.After(30 * time.Second):
		t.Fatal("no change event within 30 s")
		return store.Change{}, false
	}
}

func TestChangesReachOtherNode(t *testing.T) {
	a, b, acct := twoNodes(t)
	ch, cancel := b.Subscribe(acct.ID)
	defer cancel()

	d := deliverTo(t, a, acct.ID, "Subject: x\r\n\r\nhello\r\n")
	m := d.Messages[0]
	c, ok := nextChange(t, ch)
	want := store.Change{Kind: store.ChangeAdd, AccountID: acct.ID, MailboxID: m.MailboxID, UIDs: []uint32{m.UID}, ModSeq: m.ModSeq}
	if !ok || c.Kind != want.Kind || c.MailboxID != want.MailboxID || c.ModSeq != want.ModSeq || fmt.Sprint(c.UIDs) != fmt.Sprint(want.UIDs) {
		t.Fatalf("node b got %+v (open %v), want %+v", c, ok, want)
	}

	up, err := a.SetFlags(context.Background(), m.MailboxID, []uint32{m.UID}, store.FlagChange{Mode: store.FlagsAdd, Flags: []string{store.FlagSeen}})
	if err != nil {
		t.Fatal(err)
	}
	c, ok = nextChange(t, ch)
	if !ok || c.Kind != store.ChangeFlags || c.ModSeq != up.ModSeq {
		t.Fatalf("node b got %+v (open %v) after SetFlags, want flags at MODSEQ %d", c, ok, up.ModSeq)
	}

	// A node does not hear its own changes twice: a's subscriber gets one event per commit.
	cha, cancelA := a.Subscribe(acct.ID)
	defer cancelA()
	ex, err := a.Expunge(context.Background(), m.MailboxID, []uint32{m.UID})
	if err != nil {
		t.Fatal(err)
	}
	if c, ok := nextChange(t, cha); !ok || c.Kind != store.ChangeExpunge || c.ModSeq != ex.ModSeq {
		t.Fatalf("node a got %+v (open %v) after Expunge", c, ok)
	}
	d = deliverTo(t, b, acct.ID, "Subject: y\r\n\r\nagain\r\n")
	if c, ok := nextChange(t, cha); !ok || c.Kind != store.ChangeAdd || c.ModSeq != d.Messages[0].ModSeq {
		t.Fatalf("node a got %+v (open %v) after b's delivery; its own expunge came twice?", c, ok)
	}
}

// A notification lost with the listening connection is made up for: after reconnecting,
// the node cuts off the subscribers of accounts that changed meanwhile, or (if the change
// committed before the connection went) they get the event itself.
func TestChangesCatchUpAfterReconnect(t *testing.T) {
	a, b, acct := twoNodes(t)
	ch, cancel := b.Subscribe(acct.ID)
	defer cancel()
	b.notifier.drop <- struct{}{}
	d := deliverTo(t, a, acct.ID, "Subject: x\r\n\r\nhello\r\n")
	c, ok := nextChange(t, ch)
	if ok && c.ModSeq != d.Messages[0].ModSeq {
		t.Fatalf("node b got %+v, want the delivery at MODSEQ %d or a cut-off", c, d.Messages[0].ModSeq)
	}
	// Service resumes: a new subscription hears the next change.
	ch2, cancel2 := b.Subscribe(acct.ID)
	defer cancel2()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		d := deliverTo(t, a, acct.ID, "Subject: y\r\n\r\nagain\r\n")
		select {
		case c, ok := <-ch2:
			if ok && c.ModSeq == d.Messages[0].ModSeq {
				return
			}
			if !ok {
				ch2, cancel2 = b.Subscribe(acct.ID) // cut off by the catch-up: subscribe again
				defer cancel2()
			}
		case <-time.After(time.Second):
			// The listener may still be reconnecting; deliver again.
		}
		if time.Now().After(deadline) {
			t.Fatal("node b hears no change 2 minutes after its listener reconnected")
		}
	}
}

func TestMaildropLockAcrossNodes(t *testing.T) {
	a, b, acct := twoNodes(t)
	ctx := context.Background()
	unlock, err := a.LockMaildrop(ctx, acct.ID)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.LockMaildrop(ctx, acct.ID); !errors.Is(err, store.ErrLocked) {
		t.Fatalf("second node's LockMaildrop = %v, want ErrLocked", err)
	}
	unlock()
	unlockB, err := b.LockMaildrop(ctx, acct.ID)
	if err != nil {
		t.Fatalf("LockMaildrop after the first node unlocked: %v", err)
	}
	unlock() // idempotent: must not release b's lock
	if _, err := a.LockMaildrop(ctx, acct.ID); !errors.Is(err, store.ErrLocked) {
		t.Fatalf("LockMaildrop while b holds it = %v, want ErrLocked", err)
	}
	// A node that goes away frees its locks with its database session, which the server
	// ends a moment after the connection closes.
	b.Close()
	unlockB()
	deadline := time.Now().Add(30 * time.Second)
	for {
		unlockA, err := a.LockMaildrop(ctx, acct.ID)
		if err == nil {
			unlockA()
			break
		}
		if !errors.Is(err, store.ErrLocked) || time.Now().After(deadline) {
			t.Fatalf("LockMaildrop after the holder closed: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Deliveries through two nodes at once share one sequence of UIDs and MODSEQs.
func TestConcurrentDeliveriesOnTwoNodes(t *testing.T) {
	a, b, acct := twoNodes(t)
	const writers, each = 8, 25
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		s := a
		if w%2 == 1 {
			s = b
		}
		wg.Go(func() {
			for i := range each {
				body := fmt.Sprintf("Subject: %d-%d\r\n\r\nbody\r\n", w, i)
				_, err := s.Deliver(context.Background(), &store.Delivery{
					Targets: []store.Target{{AccountID: acct.ID}}, Body: strings.NewReader(body), Size: int64(len(body))})
				if err != nil {
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
	ctx := context.Background()
	box, err := b.Mailbox(ctx, acct.ID, store.Inbox)
	if err != nil {
		t.Fatal(err)
	}
	ms, err := b.Messages(ctx, box.ID, store.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) != writers*each || box.Messages != writers*each || box.UIDNext != writers*each+1 {
		t.Fatalf("%d messages, mailbox %+v; want %d", len(ms), box, writers*each)
	}
	var last uint64
	for i, m := range ms {
		if m.UID != uint32(i+1) || m.ModSeq <= last {
			t.Fatalf("message %d: UID %d MODSEQ %d after MODSEQ %d", i, m.UID, m.ModSeq, last)
		}
		last = m.ModSeq
	}
	if u, err := a.Usage(ctx, acct.ID); err != nil || u.Messages != writers*each {
		t.Fatalf("usage %+v, %v; want %d messages", u, err, writers*each)
	}
}

// The same body delivered twice is stored once, and freed with its last message.
func TestBodiesDeduplicated(t *testing.T) {
	a, _, acct := twoNodes(t)
	ctx := context.Background()
	body := "Subject: same\r\n\r\nthe same bytes\r\n"
	d1 := deliverTo(t, a, acct.ID, body)
	d2 := deliverTo(t, a, acct.ID, body)
	if d1.BlobID == d2.BlobID {
		t.Fatal("two deliveries share a blob row: their metadata would be one")
	}
	count := func() (n int) {
		t.Helper()
		if err := a.pool.QueryRow(ctx, `SELECT count(*) FROM blob_data`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	if n := count(); n != 1 {
		t.Fatalf("%d stored bodies, want 1", n)
	}
	box := d1.Messages[0].MailboxID
	if _, err := a.Expunge(ctx, box, []uint32{d1.Messages[0].UID}); err != nil {
		t.Fatal(err)
	}
	if n := count(); n != 1 {
		t.Fatalf("%d stored bodies after one of two messages went, want 1", n)
	}
	r, err := a.OpenBlob(ctx, d2.BlobID)
	if err != nil {
		t.Fatal(err)
	}
	r.Close()
	if _, err := a.Expunge(ctx, box, []uint32{d2.Messages[0].UID}); err != nil {
		t.Fatal(err)
	}
	if n := count(); n != 0 {
		t.Fatalf("%d stored bodies after both messages went, want 0", n)
	}
}

func TestSchemaVersion(t *testing.T) {
	dsn := mailtest.PostgresDSN(t)
	ctx := context.Background()
	if _, err := Open(ctx, dsn, Options{NoMigrate: true}); err == nil {
		t.Fatal("Open with NoMigrate of an empty database succeeded")
	}
	from, to, err := Migrate(ctx, dsn, "")
	if err != nil || from != 0 || to != SchemaVersion() {
		t.Fatalf("Migrate = %d, %d, %v; want 0, %d", from, to, err, SchemaVersion())
	}
	if from, to, err := Migrate(ctx, dsn, ""); err != nil || from != to {
		t.Fatalf("Migrate of a current database = %d, %d, %v", from, to, err)
	}
	s := openDSN(t, dsn, Options{NoMigrate: true})
	if _, err := s.pool.Exec(ctx, `UPDATE schema_version SET version = version + 1`); err != nil {
		t.Fatal(err)
	}
	s.Close()
	for _, opts := range []Options{{}, {NoMigrate: true}} {
		if _, err := Open(ctx, dsn, opts); !errors.Is(err, store.ErrSchemaTooNew) {
			t.Errorf("Open(%+v) of a newer schema = %v, want ErrSchemaTooNew", opts, err)
		}
	}
}

// A subscription change on one node reaches the other's subscribers (IMAP NOTIFY's
// SubscriptionChange across nodes).
func TestSubscriptionChangeReachesOtherNode(t *testing.T) {
	a, b, acct := twoNodes(t)
	ch, cancel := b.Subscribe(acct.ID)
	defer cancel()
	changed, err := a.SetSubscribedNotify(context.Background(), acct.ID, "Lists/Go", true)
	if err != nil || !changed {
		t.Fatalf("SetSubscribedNotify = %v, %v", changed, err)
	}
	if c, ok := nextChange(t, ch); !ok || c.Kind != store.ChangeSubscription || c.AccountID != acct.ID || c.MailboxID != 0 {
		t.Fatalf("node b got %+v (open %v), want a subscription change", c, ok)
	}
}
