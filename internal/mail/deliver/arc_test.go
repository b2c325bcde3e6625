package deliver

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"petrel/internal/mail/arc"
	"petrel/internal/mail/srs"
	"petrel/internal/store"
)

// fakeSealer records what it was asked to seal and returns a set naming the domain.
type fakeSealer struct {
	domain, msg, results string
	chain                arc.Result
	err                  error
}

func (s *fakeSealer) Seal(_ context.Context, domain string, r io.Reader, results string, chain arc.Result) (string, error) {
	b, _ := io.ReadAll(r)
	s.domain, s.msg, s.results, s.chain = domain, string(b), results, chain
	return "ARC-Seal: i=1; d=" + domain + "\r\n", s.err
}

var verifiedIn = &Verified{Results: "spf=pass smtp.mailfrom=alice@sender.example;\r\n\tdkim=pass header.d=sender.example",
	Chain: arc.Result{Status: arc.None}}

// TestForwardSealed: a verified message forwarded by an alias leaves with an ARC set of the
// alias's domain over the copy exactly as it leaves (without the Return-Path), carrying
// the inbound results and chain; unverified mail and our own users' submissions get none;
// a sealer that fails leaves the copy unsealed but still queued.
func TestForwardSealed(t *testing.T) {
	fs := newFakeStore()
	d, _ := forwarder(fs, 0)
	sealer := &fakeSealer{}
	d.SetSealer(sealer)
	ctx := context.Background()
	rt, err := d.Route(ctx, mustParse(t, "half@example.test"))
	if err != nil {
		t.Fatal(err)
	}
	const msg = "Return-Path: <alice@sender.example>\r\nReceived: from a by mx.example.test; now\r\nSubject: hi\r\n\r\nbody\r\n"
	leaves := strings.TrimPrefix(msg, "Return-Path: <alice@sender.example>\r\n")
	deliver := func(env Envelope) *fakeDelivery {
		t.Helper()
		env.Targets, env.Forward = rt.Targets, rt.Forward
		if _, err := d.Deliver(ctx, env, strings.NewReader(msg)); err != nil {
			t.Fatal(err)
		}
		return &fs.deliveries[len(fs.deliveries)-1]
	}

	got := deliver(Envelope{MailFrom: "alice@sender.example", Verified: verifiedIn})
	if want := "ARC-Seal: i=1; d=example.test\r\n" + leaves; string(got.outBody) != want || got.d.Outbound.Size != int64(len(want)) {
		t.Errorf("forwarded copy %q (size %d), want %q", got.outBody, got.d.Outbound.Size, want)
	}
	if sealer.domain != "example.test" || sealer.msg != leaves || sealer.results != verifiedIn.Results || sealer.chain != verifiedIn.Chain {
		t.Errorf("sealer asked %+v", sealer)
	}

	sealer.domain = ""
	if got := deliver(Envelope{MailFrom: "alice@sender.example"}); string(got.outBody) != leaves || sealer.domain != "" {
		t.Errorf("unverified mail sealed: %q", got.outBody)
	}
	if got := deliver(Envelope{MailFrom: "bob@example.test", Submitted: true, Verified: verifiedIn}); bytes.Contains(got.outBody, []byte("ARC-Seal")) {
		t.Errorf("own submission sealed: %q", got.outBody)
	}

	sealer.err = errors.New("no key")
	if got := deliver(Envelope{MailFrom: "alice@sender.example", Verified: verifiedIn}); string(got.outBody) != leaves {
		t.Errorf("copy after a sealing failure %q, want it unsealed", got.outBody)
	}
}

// TestSieveRedirectSealed: a Sieve redirect of verified mail from outside leaves from an SRS
// address of the account's domain (reversing to the sender) with an ARC set of that domain
// over the copy with its Delivered-To; without forwarding on it keeps the sender.
func TestSieveRedirectSealed(t *testing.T) {
	w := newSieveWorld(t, store.SendingLimits{})
	rw := &srs.Rewriter{Key: []byte("test key, 32 bytes long........")}
	w.d.SetForwarding(Forwarding{SRS: rw, Hostname: "mx.example.test", Now: func() time.Time { return w.now }})
	sealer := &fakeSealer{}
	w.d.SetSealer(sealer)
	w.script("ann@example.test", `redirect "ann@elsewhere.example";`)
	msg := strings.ReplaceAll(plainMsg, "\n", "\r\n")
	_, err := w.d.Deliver(w.ctx, Envelope{MailFrom: "carl@remote.example", ReceivedAt: w.now, Verified: verifiedIn,
		Targets: []store.Target{{AccountID: w.accs["ann@example.test"].ID, Mailbox: store.Inbox}}}, memBody{bytes.NewReader([]byte(msg))})
	if err != nil {
		t.Fatal(err)
	}
	envs, bodies := w.queue()
	if len(envs) != 1 {
		t.Fatalf("queued %v", envs)
	}
	from, _, _ := strings.Cut(envs[0], " -> ")
	if back, err := rw.Reverse(from); !strings.HasSuffix(from, "@example.test") || err != nil || back != "carl@remote.example" {
		t.Errorf("redirect sender %q (reverses to %q, %v)", from, back, err)
	}
	copyOut := "Delivered-To: ann@example.test\r\n" + msg
	if bodies[0] != "ARC-Seal: i=1; d=example.test\r\n"+copyOut || sealer.msg != copyOut {
		t.Errorf("redirected copy %q; sealed %q", bodies[0], sealer.msg)
	}
}
