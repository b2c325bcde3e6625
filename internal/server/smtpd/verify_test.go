package smtpd_test

// Inbound verification on the MX port: SPF, DKIM and DMARC through a real DNS server
// (mailtest.DNS), asked by Go's resolver (server/ may not import outbound/, where the
// production resolver, mx.NetResolver, lives: its answers to broken DNS are tested there,
// and the whole path in internal/app). An external test package, since mailtest imports
// smtpd.

import (
	"context"
	"crypto/rand"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"petrel/internal/lib/address"
	"petrel/internal/mail/deliver"
	"petrel/internal/mail/msgauth"
	"petrel/internal/mailtest"
	"petrel/internal/mailtest/dialog"
	"petrel/internal/server/smtpd"
	"petrel/internal/store"
)

// recorder is a Deliverer with one user, alice@example.test (account 1), that keeps what
// it is given.
type recorder struct {
	mu   sync.Mutex
	msgs []delivered
}

type delivered struct {
	env  deliver.Envelope
	body string
}

func (r *recorder) CheckQuota(context.Context, []store.Target, int64) error { return nil }

func (r *recorder) Route(ctx context.Context, a address.Address) (deliver.Route, error) {
	t, err := r.Resolve(ctx, a)
	return deliver.Route{Targets: t}, err
}

func (r *recorder) Resolve(_ context.Context, a address.Address) ([]store.Target, error) {
	if a.Domain != "example.test" {
		return nil, deliver.ErrNotHosted
	}
	if a.Key() != "alice@example.test" {
		return nil, deliver.ErrUnknownUser
	}
	return []store.Target{{AccountID: 1, Mailbox: store.Inbox}}, nil
}

func (r *recorder) Reaches(context.Context, address.Address, store.Account) (bool, error) {
	return true, nil
}

func (r *recorder) Deliver(_ context.Context, env deliver.Envelope, body deliver.Body) (store.Delivered, error) {
	b, err := io.ReadAll(io.NewSectionReader(body, 0, body.Size()))
	if err != nil {
		return store.Delivered{}, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.msgs = append(r.msgs, delivered{env: env, body: string(b)})
	return store.Delivered{BlobID: int64(len(r.msgs))}, nil
}

func (r *recorder) delivered() []delivered {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]delivered(nil), r.msgs...)
}

type testServer struct {
	addr string
	fd   *recorder
	logs *dialog.Log
}

// startServer runs a server with cfg on 127.0.0.1:0 until the test ends.
func startServer(t testing.TB, cfg smtpd.Config, au smtpd.Authenticator) *testServer {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg.Hostname = "mx.example.test"
	ts := &testServer{addr: l.Addr().String(), fd: &recorder{}, logs: &dialog.Log{}}
	srv := smtpd.New(cfg, ts.fd, au, slog.New(slog.NewTextHandler(ts.logs, nil)))
	done := make(chan error, 1)
	go func() { done <- srv.Serve(l) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		srv.Shutdown(ctx)
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return ts
}

func dial(t testing.TB, addr string) *dialog.Dialog {
	t.Helper()
	return dialog.DialTest(t, addr, dialog.SMTP)
}

// verifyWorld is a DNS zone for the tests: domains whose SPF record passes, fails or
// soft-fails 127.0.0.1 (where the test client connects from), DMARC policies, DKIM keys of
// good.test, and domains whose DNS breaks in each way.
func verifyWorld(t testing.TB) (*mailtest.DNS, *msgauth.Signer) {
	t.Helper()
	key, err := msgauth.GenerateKey("good.test", "sel", msgauth.Ed25519, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	rec, err := key.Record()
	if err != nil {
		t.Fatal(err)
	}
	d := mailtest.StartDNS(t, mailtest.Zone{
		TXT: map[string][]string{
			"good.test":               {"v=spf1 ip4:127.0.0.1 -all"},
			"_dmarc.good.test":        {"v=DMARC1; p=reject"},
			key.RecordName():          {rec},
			"forged.test":             {"v=spf1 ip4:192.0.2.1 -all"},
			"_dmarc.forged.test":      {"v=DMARC1; p=reject"},
			"quarantine.test":         {"v=spf1 ip4:192.0.2.1 -all"},
			"_dmarc.quarantine.test":  {"v=DMARC1; p=quarantine"},
			"soft.test":               {"v=spf1 ~all"},
			"nospf.test":              {"some other record"},
			"tempspf.test":            {"v=spf1 ip4:127.0.0.1 -all"},
			"_dmarc.tempreject.test":  {"v=DMARC1; p=reject"},
			"tempreject.test":         {"v=spf1 ip4:127.0.0.1 -all"},
			"_dmarc.timeout.test":     {"v=DMARC1; p=reject"},
			"_dmarc.huge.test":        {"v=DMARC1; p=reject"},
			"_dmarc.loop.test":        {"v=DMARC1; p=reject"},
			"_dmarc.nodmarcfail.test": {"v=DMARC1; p=none"},
		},
		CNAME: map[string]string{"loop.test": "loop2.test", "loop2.test": "loop.test"},
		Fail: map[string]mailtest.Failure{
			"TXT tempspf.test":    mailtest.ServFail,
			"TXT tempreject.test": mailtest.ServFail,
			"TXT timeout.test":    mailtest.Timeout,
			"TXT huge.test":       mailtest.Huge,
		},
	})
	return d, &msgauth.Signer{Keys: msgauth.StaticKeys{"good.test": {key}}}
}

// verifyingServer runs an MX whose verifier asks d, bounded by a minute: d answers at once,
// so the bound only has to outlast a loaded machine, where a late answer that the bound cut
// off would be a temperror and another verdict.
func verifyingServer(t testing.TB, d *mailtest.DNS, deferTemp bool) *testServer {
	return verifyingServerWithin(t, d, deferTemp, time.Minute)
}

// verifyingServerWithin is verifyingServer with the verifier's bound, for the test of a DNS
// server that never answers.
func verifyingServerWithin(t testing.TB, d *mailtest.DNS, deferTemp bool, timeout time.Duration) *testServer {
	t.Helper()
	res := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var dialer net.Dialer
		return dialer.DialContext(ctx, network, d.Addr)
	}}
	v := &msgauth.Verifier{Resolver: res, AuthServID: "mx.example.test", Timeout: timeout}
	return startServer(t, smtpd.Config{Verify: &smtpd.Verification{Verifier: v, AuthServID: "mx.example.test", DeferTempError: deferTemp}}, nil)
}

// sendMX sends one message on the MX port and returns the reply to its end of data.
func sendMX(t *testing.T, ts *testServer, mailFrom, msg string) string {
	t.Helper()
	c := dial(t, ts.addr)
	c.Run(`
		S: 220
		C: EHLO client.example.org
		S: 250
		C: MAIL FROM:<` + mailFrom + `>
		S: 250
		C: RCPT TO:<alice@example.test>
		S: 250
		C: DATA
		S: 354
	`)
	c.Raw(msg + ".\r\n")
	lines, err := c.ReadReply()
	if err != nil {
		t.Fatalf("reply to the end of data: %v", err)
	}
	c.Run(`
		C: QUIT
		S: 221
	`)
	return lines[len(lines)-1]
}

func message(from string, extra ...string) string {
	return strings.Join(extra, "") + "From: <" + from + ">\r\nTo: <alice@example.test>\r\nSubject: test\r\n" +
		"Date: Mon, 07 Dec 2026 11:00:00 +0000\r\nMessage-ID: <1@test>\r\n\r\nHello.\r\n"
}

// authResults returns the Authentication-Results fields of a stored message, unfolded.
func authResults(body string) []string {
	hdr, _, _ := strings.Cut(body, "\r\n\r\n")
	hdr = strings.NewReplacer("\r\n\t", " ", "\r\n ", " ").Replace(hdr)
	var out []string
	for _, l := range strings.Split(hdr, "\r\n") {
		if strings.HasPrefix(strings.ToLower(l), "authentication-results:") {
			out = append(out, l)
		}
	}
	return out
}

// lastDelivery returns the only delivery so far, failing unless there is exactly one
// more than before.
func lastDelivery(t *testing.T, ts *testServer, before int) delivered {
	t.Helper()
	msgs := ts.fd.delivered()
	if len(msgs) != before+1 {
		t.Fatalf("%d deliveries, want %d", len(msgs), before+1)
	}
	return msgs[len(msgs)-1]
}

func TestVerifyDMARCReject(t *testing.T) {
	d, _ := verifyWorld(t)
	ts := verifyingServer(t, d, true)
	got := sendMX(t, ts, "ceo@forged.test", message("ceo@forged.test"))
	if !strings.HasPrefix(got, "550 5.7.1 ") || !strings.Contains(got, "forged.test") {
		t.Errorf("forged sender with p=reject: %q, want 550 5.7.1", got)
	}
	if n := len(ts.fd.delivered()); n != 0 {
		t.Errorf("%d deliveries of a refused message", n)
	}
	if logs := ts.logs.String(); !strings.Contains(logs, "dmarc=fail") || !strings.Contains(logs, "result=rejected") {
		t.Errorf("log:\n%s", logs)
	}
}

func TestVerifyDMARCQuarantine(t *testing.T) {
	d, _ := verifyWorld(t)
	ts := verifyingServer(t, d, true)
	got := sendMX(t, ts, "x@quarantine.test", message("x@quarantine.test"))
	if !strings.HasPrefix(got, "250 ") {
		t.Fatalf("p=quarantine: %q, want 250", got)
	}
	m := lastDelivery(t, ts, 0)
	if len(m.env.Targets) != 1 || m.env.Targets[0] != (store.Target{AccountID: 1, Mailbox: store.Junk}) {
		t.Errorf("targets %+v, want alice's Junk", m.env.Targets)
	}
	ar := authResults(m.body)
	if len(ar) != 1 || !strings.Contains(ar[0], "dmarc=fail") || !strings.Contains(ar[0], "spf=fail") {
		t.Errorf("Authentication-Results %q", ar)
	}
}

func TestVerifyGoodSignature(t *testing.T) {
	d, signer := verifyWorld(t)
	ts := verifyingServer(t, d, true)
	// Signed, and sent with a MAIL FROM of another domain whose SPF fails: DMARC passes on
	// the aligned signature alone. Forged Authentication-Results claiming our name must go;
	// another host's stays.
	msg := message("news@good.test",
		"Authentication-Results: mx.example.test; dkim=pass header.d=forged.test\r\n",
		"Authentication-Results: (a comment)\r\n MX.Example.Test; spf=pass\r\n",
		"Authentication-Results: other.example; spf=pass\r\n")
	sig, err := signer.Sign(context.Background(), "good.test", strings.NewReader(msg))
	if err != nil {
		t.Fatal(err)
	}
	got := sendMX(t, ts, "bounce@soft.test", sig+msg)
	if !strings.HasPrefix(got, "250 ") {
		t.Fatalf("signed message: %q", got)
	}
	m := lastDelivery(t, ts, 0)
	if m.env.Targets[0].Mailbox != store.Inbox {
		t.Errorf("delivered to %q", m.env.Targets[0].Mailbox)
	}
	ar := authResults(m.body)
	if len(ar) != 2 || !strings.HasPrefix(ar[0], "Authentication-Results: mx.example.test;") || !strings.Contains(ar[1], "other.example") {
		t.Fatalf("Authentication-Results fields %q, want ours and other.example's", ar)
	}
	for _, want := range []string{"dkim=pass", "header.d=good.test", "header.s=sel", "spf=softfail", "dmarc=pass header.from=good.test"} {
		if !strings.Contains(ar[0], want) {
			t.Errorf("%q lacks %q", ar[0], want)
		}
	}
	// Order: Return-Path, our Authentication-Results, Received, then the message with the
	// signature intact.
	if !strings.HasPrefix(m.body, "Return-Path: <bounce@soft.test>\r\nAuthentication-Results: mx.example.test;") ||
		!strings.Contains(m.body, "\r\nReceived: from client.example.org") || !strings.Contains(m.body, sig+"Authentication-Results: other.example") {
		t.Errorf("stored message:\n%s", m.body)
	}
}

func TestVerifySPFResults(t *testing.T) {
	d, _ := verifyWorld(t)
	ts := verifyingServer(t, d, true)
	for i, tc := range []struct {
		from, spf, dmarc string
	}{
		{"a@good.test", "spf=pass", "dmarc=pass"},
		{"a@nodmarcfail.test", "spf=none", "dmarc=fail"}, // p=none: delivered
		{"a@soft.test", "spf=softfail", "dmarc=none"},
		{"a@nospf.test", "spf=none", "dmarc=none"},
		{"a@tempspf.test", "spf=temperror", "dmarc=none"}, // no policy to apply: accepted
	} {
		got := sendMX(t, ts, tc.from, message(tc.from))
		if !strings.HasPrefix(got, "250 ") {
			t.Errorf("%s: %q, want 250", tc.from, got)
			continue
		}
		ar := authResults(lastDelivery(t, ts, i).body)
		if len(ar) != 1 || !strings.Contains(ar[0], tc.spf+" ") || !strings.Contains(ar[0], "smtp.mailfrom="+tc.from) || !strings.Contains(ar[0], tc.dmarc) {
			t.Errorf("%s: Authentication-Results %q, want %s and %s", tc.from, ar, tc.spf, tc.dmarc)
		}
	}
}

// TestVerifyDNSFailures: a DNS failure where the sender's policy could ask for a refusal
// is a temperror and a 451, not a hang (a server that never answers is bounded by the
// Verifier's timeout). Huge and looping answers: internal/app's TestInboundVerification.
func TestVerifyDNSFailures(t *testing.T) {
	d, _ := verifyWorld(t)
	// timeout.test never answers: the bound is what is tested, and sendMX must outlast it.
	ts := verifyingServerWithin(t, d, true, 3*time.Second)
	for _, domain := range []string{"tempreject.test", "timeout.test"} {
		from := "a@" + domain
		got := sendMX(t, ts, from, message(from))
		if !strings.HasPrefix(got, "451 4.4.3 ") {
			t.Errorf("%s: %q, want 451 4.4.3", domain, got)
		}
	}
	if n := len(ts.fd.delivered()); n != 0 {
		t.Errorf("%d deliveries", n)
	}
	if logs := ts.logs.String(); strings.Count(logs, "spf=temperror") != 2 || strings.Count(logs, "dmarc=temperror") != 2 {
		t.Errorf("log:\n%s", logs)
	}

	// With deferral off, the same message is accepted and says temperror.
	ts = verifyingServer(t, d, false)
	if got := sendMX(t, ts, "a@tempreject.test", message("a@tempreject.test")); !strings.HasPrefix(got, "250 ") {
		t.Fatalf("without deferral: %q", got)
	}
	if ar := authResults(lastDelivery(t, ts, 0).body); len(ar) != 1 || !strings.Contains(ar[0], "spf=temperror") || !strings.Contains(ar[0], "dmarc=temperror") {
		t.Errorf("Authentication-Results %q", ar)
	}
}
