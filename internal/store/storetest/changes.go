package storetest

import (
	"petrel/internal/store"
	"slices"
	"sync"
	"testing"
)

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
