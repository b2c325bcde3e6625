package storetest

import (
	"errors"

	"strings"
	"testing"
	"time"

	"petrel/internal/store"
)

func outbound(body string, rcpts ...string) *store.Outbound {
	o := &store.Outbound{MailFrom: "a@example.org", Ret: "HDRS", EnvID: "env1", EightBit: true,
		Body: strings.NewReader(body), Size: int64(len(body))}
	for _, r := range rcpts {
		_, domain, _ := strings.Cut(r, "@")
		o.Recipients = append(o.Recipients, store.OutboundRecipient{Address: r, Domain: domain, Notify: "FAILURE",
			ORcpt: r, ORcptType: "rfc822"})
	}
	return o
}

// testQueueWithDelivery: local and remote recipients are one commit, and a failing local
// target queues nothing.
func testQueueWithDelivery(t *testing.T, f *fixture) {
	ctx := f.ctx
	a := f.account("a@example.org")
	d := delivery(body1, inbox(a.ID))
	d.Outbound = outbound("Out: 1\r\n\r\nbody\r\n", "x@remote.test", "y@remote.test", "z@other.test")
	if _, err := f.s.Deliver(ctx, d); err != nil {
		t.Fatal(err)
	}
	if n := len(f.messages(f.mailbox(a.ID, store.Inbox).ID)); n != 1 {
		t.Fatalf("%d local messages", n)
	}
	es, err := f.s.Entries(ctx)
	if err != nil || len(es) != 1 {
		t.Fatalf("Entries = %+v, %v", es, err)
	}
	e := es[0]
	if e.MailFrom != "a@example.org" || e.Ret != "HDRS" || e.EnvID != "env1" || !e.EightBit || e.UTF8Headers || e.Held ||
		len(e.Recipients) != 3 || e.Size != int64(len("Out: 1\r\n\r\nbody\r\n")) {
		t.Errorf("entry %+v", e)
	}
	r := e.Recipients[0]
	if r.Address != "x@remote.test" || r.Domain != "remote.test" || r.Notify != "FAILURE" || r.ORcpt != "x@remote.test" ||
		r.ORcptType != "rfc822" || r.Attempts != 0 || r.LastError != "" || !r.LeaseUntil.IsZero() {
		t.Errorf("recipient %+v", r)
	}
	if b := f.blob(e.BlobID); b != "Out: 1\r\n\r\nbody\r\n" {
		t.Errorf("queued body %q", b)
	}

	// A delivery whose local part fails queues nothing either.
	bad := delivery(body1, inbox(a.ID), inbox(a.ID+1000))
	bad.Outbound = outbound("x", "x@remote.test")
	if _, err := f.s.Deliver(ctx, bad); err == nil {
		t.Fatal("delivery to a missing account succeeded")
	}
	if es, _ := f.s.Entries(ctx); len(es) != 1 {
		t.Errorf("after a failed delivery: %d entries", len(es))
	}

	// Remote recipients only.
	only := &store.Delivery{Outbound: outbound("y", "q@remote.test")}
	if _, err := f.s.Deliver(ctx, only); err != nil {
		t.Fatal(err)
	}
	if es, _ := f.s.Entries(ctx); len(es) != 2 {
		t.Errorf("after a remote-only delivery: %d entries", len(es))
	}
}

// testQueueClaim walks an entry through due, claim, deferral and completion.
func testQueueClaim(t *testing.T, f *fixture) {
	ctx := f.ctx
	now := time.Now()
	id, err := f.s.Enqueue(ctx, outbound("msg", "x@remote.test", "y@remote.test", "z@other.test"))
	if err != nil {
		t.Fatal(err)
	}
	e, err := f.s.Entry(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	due, err := f.s.Due(ctx, now.Add(time.Second), "", 10)
	if err != nil || len(due) != 2 {
		t.Fatalf("Due = %+v, %v", due, err)
	}
	if d, _ := f.s.Due(ctx, now.Add(time.Second), "REMOTE.test", 10); len(d) != 1 || d[0].Domain != "remote.test" || d[0].EntryID != id {
		t.Errorf("Due(remote.test) = %+v", d)
	}
	if d, _ := f.s.Due(ctx, e.Created.Add(-time.Hour), "", 10); len(d) != 0 {
		t.Errorf("due before it was queued: %+v", d)
	}

	g := store.QueueGroup{EntryID: id, Domain: "remote.test"}
	lease := now.Add(time.Minute)
	c, err := f.s.Claim(ctx, g, now.Add(time.Second), lease)
	if err != nil || len(c.Recipients) != 2 || c.Recipients[0].Address != "x@remote.test" || c.BlobID != e.BlobID {
		t.Fatalf("Claim = %+v, %v", c, err)
	}
	// Leased: not due, and a second claim gets nothing.
	if d, _ := f.s.Due(ctx, now.Add(time.Second), "remote.test", 10); len(d) != 0 {
		t.Errorf("leased recipients due: %+v", d)
	}
	_, err = f.s.Claim(ctx, g, now.Add(time.Second), lease)
	wantErr(t, "second Claim", err, store.ErrNotFound)
	// The lease runs out: due again (the crash case).
	if d, _ := f.s.Due(ctx, lease.Add(time.Second), "remote.test", 10); len(d) != 1 {
		t.Errorf("after the lease: Due = %+v", d)
	}
	if next, err := f.s.NextDue(ctx); err != nil || next.After(now.Add(time.Second)) {
		t.Errorf("NextDue = %v, %v", next, err)
	}

	// x delivered, y deferred.
	retryAt := now.Add(10 * time.Minute)
	err = f.s.Record(ctx, id, []store.QueueUpdate{
		{RecipientID: c.Recipients[0].ID, Done: true},
		{RecipientID: c.Recipients[1].ID, NextAttempt: retryAt, LastError: "451 4.3.0 later", Warned: true},
	})
	if err != nil {
		t.Fatal(err)
	}
	e, _ = f.s.Entry(ctx, id)
	if len(e.Recipients) != 2 {
		t.Fatalf("after Record: %+v", e.Recipients)
	}
	y := e.Recipients[0]
	if y.Address != "y@remote.test" || y.Attempts != 1 || !y.NextAttempt.Equal(retryAt) || y.LastError != "451 4.3.0 later" ||
		!y.Warned || !y.LeaseUntil.IsZero() {
		t.Errorf("deferred recipient %+v", y)
	}
	if d, _ := f.s.Due(ctx, now.Add(time.Second), "remote.test", 10); len(d) != 0 {
		t.Errorf("deferred recipient due early: %+v", d)
	}

	// Retry makes it due now; hold hides it; release shows it again.
	if err := f.s.Retry(ctx, id, now); err != nil {
		t.Fatal(err)
	}
	if d, _ := f.s.Due(ctx, now.Add(time.Second), "remote.test", 10); len(d) != 1 {
		t.Errorf("after Retry: Due = %+v", d)
	}
	if err := f.s.Hold(ctx, id, true); err != nil {
		t.Fatal(err)
	}
	if d, _ := f.s.Due(ctx, now.Add(time.Hour), "", 10); len(d) != 0 {
		t.Errorf("held entry due: %+v", d)
	}
	if _, err := f.s.Claim(ctx, store.QueueGroup{EntryID: id, Domain: "other.test"}, now.Add(time.Second), lease); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Claim of a held entry: %v", err)
	}
	if e, _ := f.s.Entry(ctx, id); !e.Held {
		t.Error("Held not shown")
	}
	if err := f.s.Hold(ctx, id, false); err != nil {
		t.Fatal(err)
	}
	// Bounce marks and makes due.
	if err := f.s.Bounce(ctx, id, now); err != nil {
		t.Fatal(err)
	}
	e, _ = f.s.Entry(ctx, id)
	for _, r := range e.Recipients {
		if !r.Bounce {
			t.Errorf("not marked for bounce: %+v", r)
		}
	}

	// The last recipients done: the entry and its body go.
	var updates []store.QueueUpdate
	for _, r := range e.Recipients {
		updates = append(updates, store.QueueUpdate{RecipientID: r.ID, Done: true})
	}
	if err := f.s.Record(ctx, id, updates); err != nil {
		t.Fatal(err)
	}
	_, err = f.s.Entry(ctx, id)
	wantErr(t, "Entry after completion", err, store.ErrNotFound)
	if _, err := f.s.OpenBlob(ctx, e.BlobID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("body of a finished entry: %v", err)
	}
	if next, err := f.s.NextDue(ctx); err != nil || !next.IsZero() {
		t.Errorf("NextDue of an empty queue = %v, %v", next, err)
	}

	// Operations on missing entries.
	wantErr(t, "Retry missing", f.s.Retry(ctx, id, now), store.ErrNotFound)
	wantErr(t, "Hold missing", f.s.Hold(ctx, id, true), store.ErrNotFound)
	wantErr(t, "Delete missing", f.s.Delete(ctx, id), store.ErrNotFound)
	wantErr(t, "Bounce missing", f.s.Bounce(ctx, id, now), store.ErrNotFound)
	if err := f.s.Retry(ctx, 0, now); err != nil {
		t.Errorf("Retry all of an empty queue: %v", err)
	}
}

// testQueueDelete removes an entry with its body; ReleaseLeases ends leases.
func testQueueDelete(t *testing.T, f *fixture) {
	ctx := f.ctx
	now := time.Now()
	id, err := f.s.Enqueue(ctx, outbound("msg", "x@remote.test"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.s.Claim(ctx, store.QueueGroup{EntryID: id, Domain: "remote.test"}, now.Add(time.Second), now.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := f.s.ReleaseLeases(ctx); err != nil {
		t.Fatal(err)
	}
	if d, _ := f.s.Due(ctx, now.Add(time.Second), "", 10); len(d) != 1 {
		t.Errorf("after ReleaseLeases: Due = %+v", d)
	}
	e, _ := f.s.Entry(ctx, id)
	if err := f.s.Delete(ctx, id); err != nil {
		t.Fatal(err)
	}
	if es, _ := f.s.Entries(ctx); len(es) != 0 {
		t.Errorf("after Delete: %+v", es)
	}
	if _, err := f.s.OpenBlob(ctx, e.BlobID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("body of a deleted entry: %v", err)
	}

	// Bad input.
	if _, err := f.s.Enqueue(ctx, outbound("msg")); err == nil {
		t.Error("Enqueue without recipients succeeded")
	}
	o := outbound("msg", "x@remote.test")
	o.Recipients[0].Domain = ""
	if _, err := f.s.Enqueue(ctx, o); err == nil {
		t.Error("Enqueue without a domain succeeded")
	}
}

// testMTASTSCache keeps policies by domain, case-insensitively.
func testMTASTSCache(t *testing.T, f *fixture) {
	ctx := f.ctx
	_, err := f.s.MTASTSPolicy(ctx, "example.net")
	wantErr(t, "missing policy", err, store.ErrNotFound)
	for _, p := range []string{"one", "two"} {
		if err := f.s.SetMTASTSPolicy(ctx, "Example.NET", []byte(p)); err != nil {
			t.Fatal(err)
		}
		got, err := f.s.MTASTSPolicy(ctx, "example.net")
		if err != nil || string(got) != p {
			t.Errorf("policy = %q, %v; want %q", got, err, p)
		}
	}
}
