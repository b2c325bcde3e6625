package deliver

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"

	"petrel/internal/store"
)

type fakeSigner struct {
	domain string
	signed string
	err    error
}

func (s *fakeSigner) Sign(_ context.Context, domain string, r io.Reader) (string, error) {
	b, _ := io.ReadAll(r)
	s.domain, s.signed = domain, string(b)
	return "DKIM-Signature: v=1; d=" + domain + "\r\n", s.err
}

// TestDeliverRemote: local and remote recipients go to the store in one Delivery; the queued
// copy has no Return-Path and carries the signature over what goes out.
func TestDeliverRemote(t *testing.T) {
	fs := newFakeStore()
	d := New(fs, discardLog())
	sig := &fakeSigner{}
	queued := 0
	d.SetOutbound(sig, func() { queued++ })
	const msg = "Return-Path: <alice@example.test>\r\nReceived: from x\r\n\tby y; now\r\nSubject: hi\r\n" +
		"Date: Mon, 07 Dec 2026 12:00:00 +0000\r\nMessage-ID: <1@example.test>\r\n\r\nbody\r\n"
	remote := []store.OutboundRecipient{{Address: "x@remote.test", Domain: "remote.test", Notify: "FAILURE"}}
	_, err := d.Deliver(context.Background(), Envelope{MailFrom: "alice@Example.TEST", Targets: inbox(2), Remote: remote,
		Ret: "HDRS", EnvID: "e1"}, strings.NewReader(msg))
	if err != nil {
		t.Fatal(err)
	}
	if len(fs.deliveries) != 1 || queued != 1 {
		t.Fatalf("%d deliveries, %d wake-ups", len(fs.deliveries), queued)
	}
	got := fs.deliveries[0]
	if string(got.body) != msg || len(got.d.Targets) != 1 {
		t.Errorf("local copy %q to %v", got.body, got.d.Targets)
	}
	out := got.d.Outbound
	if out == nil || out.MailFrom != "alice@Example.TEST" || out.Ret != "HDRS" || out.EnvID != "e1" || len(out.Recipients) != 1 {
		t.Fatalf("outbound %+v", out)
	}
	want := strings.TrimPrefix(msg, "Return-Path: <alice@example.test>\r\n")
	if sig.domain != "example.test" || sig.signed != want {
		t.Errorf("signed %q for %q", sig.signed, sig.domain)
	}
	if string(got.outBody) != "DKIM-Signature: v=1; d=example.test\r\n"+want {
		t.Errorf("queued copy %q", got.outBody)
	}

	// Remote recipients only; a message without Return-Path keeps its first line.
	if _, err := d.Deliver(context.Background(), Envelope{MailFrom: "alice@example.test", Remote: remote},
		strings.NewReader("Subject: x\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	// It lacks Date and Message-ID: the queued copy gets them, under the signature.
	if got := fs.deliveries[1]; len(got.d.Targets) != 0 || !strings.HasSuffix(string(got.outBody), "\r\nSubject: x\r\n\r\n") ||
		!strings.Contains(string(got.outBody), "\r\nDate: ") || !strings.Contains(string(got.outBody), "\r\nMessage-ID: <") ||
		!strings.HasPrefix(sig.signed, "Date: ") || !strings.Contains(sig.signed, "@example.test>\r\nSubject: x\r\n") {
		t.Errorf("remote-only delivery %+v %q, signed %q", got.d, got.outBody, sig.signed)
	}

	// A signing failure refuses the message: nothing is stored.
	sig.err = errors.New("no key")
	if _, err := d.Deliver(context.Background(), Envelope{MailFrom: "alice@example.test", Remote: remote},
		strings.NewReader(msg)); err == nil {
		t.Error("delivered although signing failed")
	}
	if len(fs.deliveries) != 2 {
		t.Errorf("%d deliveries", len(fs.deliveries))
	}
}
