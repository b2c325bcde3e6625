package storetest

import (
	"context"
	"testing"
	"time"

	"petrel/internal/store"
)

// RunSubscriptionChanges tests a store.SubscriptionChanges: SetSubscribedNotify (and
// SetSubscribed) publish a ChangeSubscription to the account's subscribers exactly when the
// subscriptions change. open returns a new, empty store, which the test closes.
func RunSubscriptionChanges(t *testing.T, open func(t *testing.T) store.Store) {
	s := open(t)
	defer s.Close()
	sc, ok := s.(store.SubscriptionChanges)
	if !ok {
		t.Fatalf("%T is not a store.SubscriptionChanges", s)
	}
	f := &fixture{t: t, s: s, ctx: context.Background()}
	a := f.account("a@example.org")
	b := f.account("b@example.org")
	chA, cancelA := s.Subscribe(a.ID)
	defer cancelA()
	chB, cancelB := s.Subscribe(b.ID)
	defer cancelB()

	// A subscription change raises the account's MODSEQ (so that a catch-up by MODSEQ
	// finds it): each has a higher one than the change before.
	want := store.Change{Kind: store.ChangeSubscription, AccountID: a.ID}
	var last uint64
	next := func(what string) {
		t.Helper()
		select {
		case c, ok := <-chA:
			if !ok {
				t.Fatalf("%s: change channel closed", what)
			}
			if want.Kind == store.ChangeSubscription {
				if c.ModSeq <= last {
					t.Errorf("%s: MODSEQ %d, want above %d", what, c.ModSeq, last)
				}
				want.ModSeq = c.ModSeq
			}
			if !sameChange(c, want) {
				t.Errorf("%s: change %+v, want %+v", what, c, want)
			}
			last = c.ModSeq
		case <-time.After(30 * time.Second):
			t.Fatalf("%s: no change published", what)
		}
	}
	set := func(name string, on, wantChanged bool) {
		t.Helper()
		changed, err := sc.SetSubscribedNotify(f.ctx, a.ID, name, on)
		if err != nil || changed != wantChanged {
			t.Fatalf("SetSubscribedNotify(%q, %v) = %v, %v; want %v", name, on, changed, err, wantChanged)
		}
	}

	set("Lists/Go", true, true)
	next("subscribe")
	set("Lists/Go", true, false) // idempotent: nothing changes, nothing is published
	set("Never/There", false, false)
	set("Lists/Go", false, true)
	next("unsubscribe")
	// SetSubscribed publishes too: every way of subscribing is seen by other sessions.
	if err := s.SetSubscribed(f.ctx, a.ID, "Lists/Rust", true); err != nil {
		t.Fatal(err)
	}
	next("SetSubscribed")
	if _, err := sc.SetSubscribedNotify(f.ctx, a.ID+b.ID+1000, "X", true); err == nil {
		t.Error("SetSubscribedNotify of a missing account succeeded")
	}
	if _, err := sc.SetSubscribedNotify(f.ctx, a.ID, "a//b", true); err == nil {
		t.Error("SetSubscribedNotify of an invalid name succeeded")
	}

	// The idempotent calls above published nothing, and b heard nothing of a's changes: a
	// delivery to each is the next change each sees.
	d := f.deliver(body1, inbox(a.ID), inbox(b.ID))
	inboxA := f.mailbox(a.ID, store.Inbox).ID
	inboxB := f.mailbox(b.ID, store.Inbox).ID
	want = store.Change{Kind: store.ChangeAdd, AccountID: a.ID, MailboxID: inboxA, UIDs: []uint32{1}, ModSeq: d.Messages[0].ModSeq}
	next("delivery after the no-op calls")
	select {
	case c := <-chB:
		if c.Kind != store.ChangeAdd || c.MailboxID != inboxB {
			t.Errorf("b got %+v before its delivery", c)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("b: no change for its delivery")
	}
}
