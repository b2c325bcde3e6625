package postgres

import (
	"context"
	"slices"
	"testing"

	"petrel/internal/store"
)

// A subscription change made while a node's listening connection is down is not lost: it
// raises the account's MODSEQ, so the node's catch-up after reconnecting either cuts its
// subscribers off (they reread the subscriptions) or, if the notification came before the
// connection went, they get the change itself. Before subscription changes took a MODSEQ,
// the catch-up saw nothing new and the subscribers never heard of the change.
func TestSubscriptionChangeCaughtUpAfterReconnect(t *testing.T) {
	a, b, acct := twoNodes(t)
	ctx := context.Background()
	ch, cancel := b.Subscribe(acct.ID)
	defer cancel()
	// Node b has published the account's latest MODSEQ: its catch-up has nothing to cut
	// off for what came before.
	d := deliverTo(t, a, acct.ID, "Subject: x\r\n\r\nhello\r\n")
	if c, ok := nextChange(t, ch); !ok || c.ModSeq != d.Messages[0].ModSeq {
		t.Fatalf("node b got %+v (open %v), want the delivery at MODSEQ %d", c, ok, d.Messages[0].ModSeq)
	}

	b.notifier.drop <- struct{}{}
	if changed, err := a.SetSubscribedNotify(ctx, acct.ID, "Lists/Go", true); err != nil || !changed {
		t.Fatalf("SetSubscribedNotify = %v, %v", changed, err)
	}
	c, ok := nextChange(t, ch)
	if ok && (c.Kind != store.ChangeSubscription || c.ModSeq <= d.Messages[0].ModSeq) {
		t.Fatalf("node b got %+v, want the subscription change above MODSEQ %d or a cut-off", c, d.Messages[0].ModSeq)
	}
	subs, err := b.Subscriptions(ctx, acct.ID)
	if err != nil || !slices.Contains(subs, "Lists/Go") {
		t.Fatalf("node b's subscriptions after the catch-up: %v, %v", subs, err)
	}
}
