package deliver

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"petrel/internal/lib/address"
	"petrel/internal/mail/srs"
)

func forwarder(fs *fakeStore, perAlias int) (*Deliverer, *srs.Rewriter) {
	d := New(fs, discardLog())
	rw := &srs.Rewriter{Key: []byte("test key, 32 bytes long........")}
	d.SetOutbound(&fakeSigner{}, nil)
	d.SetForwarding(Forwarding{SRS: rw, Hostname: "mx.example.test", PerAliasHour: perAlias})
	return d, rw
}

func mustParse(t *testing.T, s string) address.Address {
	t.Helper()
	a, err := address.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// TestRouteForwards: remote alias targets become forwards, with the alias that forwards; an
// alias with remote targets only routes to forwards alone, and Resolve (local mailboxes
// only) calls it unknown.
func TestRouteForwards(t *testing.T) {
	fs := newFakeStore()
	fs.aliases["out@example.test"] = []string{"x@remote.example", "Y@Other.Example"}
	fs.aliases["both@example.test"] = []string{"out@example.test", "carol@example.test"}
	d, _ := forwarder(fs, 0)
	ctx := context.Background()

	rt, err := d.Route(ctx, mustParse(t, "half@example.test"))
	if err != nil || len(rt.Targets) != 1 || len(rt.Forward) != 1 ||
		rt.Forward[0] != (Forward{Address: "someone@remote.example", Alias: "half@example.test"}) {
		t.Errorf("half: %+v, %v", rt, err)
	}
	rt, err = d.Route(ctx, mustParse(t, "both@example.test"))
	if err != nil || len(rt.Targets) != 1 || len(rt.Forward) != 2 || rt.Forward[1].Alias != "out@example.test" {
		t.Errorf("both: %+v, %v", rt, err)
	}
	if rt, err := d.Route(ctx, mustParse(t, "out@example.test")); err != nil || len(rt.Targets) != 0 || len(rt.Forward) != 2 {
		t.Errorf("out: %+v, %v", rt, err)
	}
	if _, err := d.Resolve(ctx, mustParse(t, "out@example.test")); !errors.Is(err, ErrUnknownUser) {
		t.Errorf("Resolve of a forward-only alias: %v", err)
	}
	// Without forwarding, remote targets are skipped as before.
	plain := New(fs, discardLog())
	if rt, err := plain.Route(ctx, mustParse(t, "half@example.test")); err != nil || len(rt.Forward) != 0 {
		t.Errorf("without forwarding: %+v, %v", rt, err)
	}
	if _, err := plain.Route(ctx, mustParse(t, "out@example.test")); !errors.Is(err, ErrUnknownUser) {
		t.Errorf("forward-only alias without forwarding: %v", err)
	}
}

// TestDeliverForward: mail from elsewhere to an alias is delivered locally and queued for
// the remote target in one commit, unchanged but for the Return-Path, from an SRS address
// of the alias's domain that reverses to the sender.
func TestDeliverForward(t *testing.T) {
	fs := newFakeStore()
	d, rw := forwarder(fs, 0)
	ctx := context.Background()
	rt, err := d.Route(ctx, mustParse(t, "half@example.test"))
	if err != nil {
		t.Fatal(err)
	}
	const msg = "Return-Path: <alice@sender.example>\r\nReceived: from a by mx.example.test; now\r\nSubject: hi\r\n\r\nbody\r\n"
	if _, err := d.Deliver(ctx, Envelope{MailFrom: "alice@sender.example", Targets: rt.Targets, Forward: rt.Forward},
		strings.NewReader(msg)); err != nil {
		t.Fatal(err)
	}
	got := fs.deliveries[0]
	if len(got.d.Targets) != 1 || string(got.body) != msg {
		t.Errorf("local part: %v %q", got.d.Targets, got.body)
	}
	out := got.d.Outbound
	if out == nil || len(out.Recipients) != 1 {
		t.Fatalf("outbound %+v", out)
	}
	if r := out.Recipients[0]; r.Address != "someone@remote.example" || r.Domain != "remote.example" ||
		r.ORcpt != "half@example.test" || r.ORcptType != "rfc822" {
		t.Errorf("recipient %+v", r)
	}
	if !strings.HasPrefix(out.MailFrom, "SRS0=") || !strings.HasSuffix(out.MailFrom, "@example.test") {
		t.Errorf("envelope sender %q", out.MailFrom)
	}
	if back, err := rw.Reverse(out.MailFrom); err != nil || back != "alice@sender.example" {
		t.Errorf("reverse %q: %q, %v", out.MailFrom, back, err)
	}
	if want := strings.TrimPrefix(msg, "Return-Path: <alice@sender.example>\r\n"); string(got.outBody) != want {
		t.Errorf("forwarded copy %q, want it unchanged (no signature, no added fields)", got.outBody)
	}

	// Our own user's submission keeps its sender and is signed like submitted mail.
	if _, err := d.Deliver(ctx, Envelope{MailFrom: "bob@example.test", Forward: rt.Forward, Submitted: true}, strings.NewReader(msg)); err != nil {
		t.Fatal(err)
	}
	if out := fs.deliveries[1].d.Outbound; out.MailFrom != "bob@example.test" ||
		!strings.HasPrefix(string(fs.deliveries[1].outBody), "DKIM-Signature:") {
		t.Errorf("own sender: from %q, copy %q", out.MailFrom, fs.deliveries[1].outBody)
	}
	// The same sender claimed by mail from the MX port is not signed by us.
	if _, err := d.Deliver(ctx, Envelope{MailFrom: "bob@example.test", Forward: rt.Forward}, strings.NewReader(msg)); err != nil {
		t.Fatal(err)
	}
	if got := fs.deliveries[2].outBody; strings.Contains(string(got), "DKIM-Signature:") {
		t.Errorf("unauthenticated mail claiming our domain was signed: %q", got)
	}
	// A bounce stays a bounce.
	if _, err := d.Deliver(ctx, Envelope{Forward: rt.Forward}, strings.NewReader(msg)); err != nil {
		t.Fatal(err)
	}
	if out := fs.deliveries[3].d.Outbound; out.MailFrom != "" {
		t.Errorf("null sender forwarded from %q", out.MailFrom)
	}
}

// TestRouteSRS: a bounce to an SRS address of ours routes to the original sender; one we did
// not make, or one that expired, is refused.
func TestRouteSRS(t *testing.T) {
	fs := newFakeStore()
	d, rw := forwarder(fs, 0)
	ctx := context.Background()
	for sender, want := range map[string]Route{
		"x@remote.example":   {Forward: []Forward{{Address: "x@remote.example"}}},
		"carol@example.test": {Targets: inbox(3)},
	} {
		a := rw.Forward(sender, "example.test")
		rt, err := d.Route(ctx, mustParse(t, a))
		if err != nil || len(rt.Targets) != len(want.Targets) || len(rt.Forward) != len(want.Forward) ||
			(len(want.Forward) > 0 && rt.Forward[0] != want.Forward[0]) {
			t.Errorf("Route(%s) = %+v, %v; want %+v", a, rt, err, want)
		}
	}
	// SRS1: forwarded twice, the second time by us; the bounce goes to the first forwarder.
	srs1 := rw.Forward("SRS0=abcd=AB=x.example=bob@first.example", "example.test")
	if rt, err := d.Route(ctx, mustParse(t, srs1)); err != nil || len(rt.Forward) != 1 ||
		rt.Forward[0].Address != "SRS0=abcd=AB=x.example=bob@first.example" {
		t.Errorf("Route(%s) = %+v, %v", srs1, rt, err)
	}
	good := rw.Forward("x@remote.example", "example.test")
	other := &srs.Rewriter{Key: []byte("another key")}
	old := &srs.Rewriter{Key: rw.Key, Now: func() time.Time { return time.Now().Add(-30 * 24 * time.Hour) }}
	for _, a := range []string{
		strings.Replace(good, "=x@", "=y@", 1),
		other.Forward("x@remote.example", "example.test"),
		old.Forward("x@remote.example", "example.test"),
		"SRS0=junk@example.test",
	} {
		if _, err := d.Route(ctx, mustParse(t, a)); !errors.Is(err, ErrForgedSRS) {
			t.Errorf("Route(%s): %v, want ErrForgedSRS", a, err)
		}
	}
	// An SRS-looking address at a domain that is not ours is not ours to judge.
	if _, err := d.Route(ctx, mustParse(t, rw.Forward("x@remote.example", "other.example"))); !errors.Is(err, ErrNotHosted) {
		t.Errorf("SRS address elsewhere: %v", err)
	}
}

// TestForwardLoop: a message that went round through us, or through too many hops, is not
// forwarded again.
func TestForwardLoop(t *testing.T) {
	fs := newFakeStore()
	d, _ := forwarder(fs, 0)
	ctx := context.Background()
	fw := []Forward{{Address: "x@remote.example", Alias: "half@example.test"}}
	ours := "Received: from a\r\n\tby MX.example.test with ESMTP; now\r\n"
	theirs := "Received: from b by mx.remote.example; now\r\n"
	for _, c := range []struct {
		header string
		loop   bool
	}{
		{ours + theirs + ours, false},
		{ours + theirs + ours + theirs + ours, true},
		{strings.Repeat(theirs, DefaultMaxHops), false},
		{strings.Repeat(theirs, DefaultMaxHops+1), true},
	} {
		_, err := d.Deliver(ctx, Envelope{MailFrom: "a@sender.example", Forward: fw}, strings.NewReader(c.header+"\r\nbody\r\n"))
		if errors.Is(err, ErrForwardLoop) != c.loop {
			t.Errorf("%d Received fields: %v, want loop=%v", strings.Count(c.header, "Received:"), err, c.loop)
		}
	}
}

// TestForwardRate: an alias forwards at most PerAliasHour messages an hour; others are not
// held back by it.
func TestForwardRate(t *testing.T) {
	fs := newFakeStore()
	d, _ := forwarder(fs, 2)
	ctx := context.Background()
	send := func(alias string) error {
		_, err := d.Deliver(ctx, Envelope{MailFrom: "a@sender.example",
			Forward: []Forward{{Address: "x@remote.example", Alias: alias}}}, strings.NewReader("Subject: x\r\n\r\nbody\r\n"))
		return err
	}
	for i := range 2 {
		if err := send("half@example.test"); err != nil {
			t.Fatalf("message %d: %v", i+1, err)
		}
	}
	if err := send("half@example.test"); !errors.Is(err, ErrForwardRate) {
		t.Errorf("third message: %v, want ErrForwardRate", err)
	}
	if err := send("out@example.test"); err != nil {
		t.Errorf("another alias: %v", err)
	}
	if len(fs.deliveries) != 3 {
		t.Errorf("%d commits, want 3", len(fs.deliveries))
	}
}
