package smtpd

// The submission role: STARTTLS or implicit TLS, AUTH, and the sender policy (RFC 6409,
// RFC 4954), with our transcripts and with real clients (net/smtp, python's smtplib).

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"net/smtp"
	"os/exec"
	"strings"
	"testing"
	"time"

	"petrel/internal/mail/auth"
	"petrel/internal/store"
)

func TestSubmission(t *testing.T) {
	ts := startServer(t, Config{Role: RoleSubmission, TLS: serverTLS(t)}, nil)
	c := dial(t, ts.addr)
	c.Run(`
		S: 220
		C: EHLO laptop
		S: 250
		# No AUTH before TLS (RFC 4954 §4: we do not allow plain-text passwords).
		C: AUTH PLAIN AGFsaWNlQGV4YW1wbGUudGVzdABzZWNyZXQ=
		S: 523
		C: MAIL FROM:<alice@example.test>
		S: 530 5.7.0 authentication required
		C: STARTTLS
		S: 220
		STARTTLS
		C: EHLO laptop
	`)
	if ehlo := strings.Join(c.Expect("250 "), "\n"); !strings.Contains(ehlo, "AUTH PLAIN") || strings.Contains(ehlo, "STARTTLS") {
		t.Errorf("EHLO after STARTTLS:\n%s", ehlo)
	}
	c.Run(`
		C: MAIL FROM:<alice@example.test>
		S: 530 5.7.0
		C: AUTH PLAIN AGFsaWNlQGV4YW1wbGUudGVzdAB3cm9uZw==
		S: 535 5.7.8
		C: AUTH PLAIN AGFsaWNlQGV4YW1wbGUudGVzdABzZWNyZXQ=
		S: 235
		C: MAIL FROM:<bob@example.test>
		S: 553 5.7.1 not allowed to send as <bob@example.test>
		C: MAIL FROM:<>
		S: 553 5.7.1
		C: MAIL FROM:<ALICE+tag@example.test>
		S: 250
		C: RSET
		S: 250
		# team → info → Alice+x: an alias that delivers to alice, through an alias.
		C: MAIL FROM:<team@example.test>
		S: 250
		C: RCPT TO:<friend@remote.example>
		S: 550 5.7.1 relaying to remote domains is not enabled here
		C: RCPT TO:<bob@example.test>
		S: 250
		C: DATA
		S: 354
		C: Subject: local
		C:
		C: hi bob
		C: .
		S: 250
	`)
	msgs := ts.fd.delivered()
	if len(msgs) != 1 || msgs[0].env.MailFrom != "team@example.test" {
		t.Fatalf("deliveries = %+v", msgs)
	}
	if !strings.Contains(msgs[0].body, "with ESMTPSA (TLS1.3 ") {
		t.Errorf("Received header lacks ESMTPSA and TLS details:\n%s", msgs[0].body)
	}
	if strings.Contains(ts.logs.String(), "c2VjcmV0") {
		t.Error("AUTH data in the log")
	}
}

func TestSubmissionNetSMTP(t *testing.T) {
	ts := startServer(t, Config{Role: RoleSubmission, TLS: serverTLS(t)}, nil)
	c, err := smtp.Dial(ts.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.StartTLS(clientTLS()); err != nil {
		t.Fatal(err)
	}
	host, _, _ := net.SplitHostPort(ts.addr)
	if err := c.Auth(smtp.PlainAuth("", "alice@example.test", "secret", host)); err != nil {
		t.Fatal(err)
	}
	if err := c.Mail("alice@example.test"); err != nil {
		t.Fatal(err)
	}
	if err := c.Rcpt("bob@example.test"); err != nil {
		t.Fatal(err)
	}
	w, err := c.Data()
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprint(w, "Subject: via net/smtp\r\n\r\nbody\r\n")
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.Quit(); err != nil {
		t.Fatal(err)
	}
	if msgs := ts.fd.delivered(); len(msgs) != 1 || !strings.HasSuffix(msgs[0].body, "\r\nSubject: via net/smtp\r\n\r\nbody\r\n") {
		t.Fatalf("deliveries = %+v", msgs)
	}
}

func TestAuthFailuresClose(t *testing.T) {
	ts := startServer(t, Config{Role: RoleSubmission, AllowInsecureAuth: true}, nil)
	c := dial(t, ts.addr)
	c.Run(`
		S: 220
		C: EHLO laptop
		S: 250
		C: AUTH PLAIN AGFsaWNlQGV4YW1wbGUudGVzdAB3cm9uZw==
		S: 535 5.7.8
		C: AUTH PLAIN
		S: 334
		C: AGFsaWNlQGV4YW1wbGUudGVzdAB3cm9uZw==
		S: 535 5.7.8
		C: AUTH PLAIN AGFsaWNlQGV4YW1wbGUudGVzdAB3cm9uZw==
		S: 421 4.7.0
		CLOSED
	`)
}

// TestSASLFinalData checks that data sent with a mechanism's success (SCRAM's server
// signature) reaches the client as a last 334 challenge (RFC 4954 §4).
func TestSASLFinalData(t *testing.T) {
	ts := startServer(t, Config{Role: RoleSubmission, AllowInsecureAuth: true}, nil)
	c := dial(t, ts.addr)
	c.Run(`
		S: 220
		C: EHLO laptop
		S: 250
		C: AUTH X-FINAL
		S: 334 Y2hhbGxlbmdl
		C: aGVsbG8=
		S: 334 c2VydmVyLWZpbmFs
		C:
		S: 235
		C: MAIL FROM:<alice@example.test>
		S: 250
	`)
}

func TestImplicitTLS(t *testing.T) {
	ts := startServer(t, Config{Role: RoleSubmission, TLS: serverTLS(t), ImplicitTLS: true}, nil)
	nc, err := tls.Dial("tcp", ts.addr, clientTLS())
	if err != nil {
		t.Fatal(err)
	}
	c, err := smtp.NewClient(nc, "mx.example.test")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if ok, _ := c.Extension("STARTTLS"); ok {
		t.Error("STARTTLS offered inside TLS")
	}
	if ok, mechs := c.Extension("AUTH"); !ok || !strings.Contains(mechs, "PLAIN") {
		t.Errorf("AUTH = %v %q", ok, mechs)
	}
	if err := c.Auth(smtp.PlainAuth("", "alice@example.test", "secret", "mx.example.test")); err != nil {
		t.Fatal(err)
	}
	if err := c.Mail("alice@example.test"); err != nil {
		t.Fatal(err)
	}
	if err := c.Rcpt("alice@example.test"); err != nil {
		t.Fatal(err)
	}
	w, err := c.Data()
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprint(w, "Subject: 465\r\n\r\nx\r\n")
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	msgs := ts.fd.delivered()
	if len(msgs) != 1 || !strings.Contains(msgs[0].body, "with ESMTPSA") || !strings.Contains(msgs[0].body, "for <alice@example.test>") {
		t.Fatalf("deliveries = %+v", msgs)
	}
}

// lookup serves one account to the real auth service.
type lookup struct{ acct store.Account }

func (l lookup) AccountByAddress(_ context.Context, addr string) (store.Account, error) {
	if addr != l.acct.Address {
		return store.Account{}, store.ErrNotFound
	}
	return l.acct, nil
}

// TestRealAuthService runs submission with the real auth.Service behind the Authenticator
// interface.
func TestRealAuthService(t *testing.T) {
	cred, err := auth.NewCredentials("secret")
	if err != nil {
		t.Fatal(err)
	}
	au := auth.New(lookup{store.Account{ID: 1, Address: "alice@example.test", Credentials: cred}},
		auth.Config{FailureDelay: time.Millisecond, MaxFailureDelay: time.Millisecond}, slog.New(slog.DiscardHandler))
	fd := newFakeDeliverer()
	srv := New(Config{Hostname: "mx.example.test", Role: RoleSubmission, AllowInsecureAuth: true}, fd, au, slog.New(slog.DiscardHandler))
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(l)
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
	}()

	c := dial(t, l.Addr().String())
	c.Expect("220")
	c.Raw("EHLO laptop\r\n")
	if ehlo := strings.Join(c.Expect("250 "), "\n"); !strings.Contains(ehlo, "AUTH SCRAM-SHA-256 PLAIN LOGIN") {
		t.Errorf("EHLO:\n%s", ehlo)
	}
	c.Run(`
		C: AUTH LOGIN
		S: 334
		C: YWxpY2VAZXhhbXBsZS50ZXN0
		S: 334
		C: d3Jvbmc=
		S: 535 5.7.8
		C: AUTH PLAIN AGFsaWNlQGV4YW1wbGUudGVzdABzZWNyZXQ=
		S: 235
		C: MAIL FROM:<alice@example.test>
		S: 250
		C: QUIT
		S: 221
		CLOSED
	`)
}

func TestPythonSmtplib(t *testing.T) {
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Fatal("python3 is required for this interoperability test")
	}
	ts := startServer(t, Config{Role: RoleSubmission, TLS: serverTLS(t)}, nil)
	host, port, _ := net.SplitHostPort(ts.addr)
	script := `
import smtplib, ssl, sys
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
with smtplib.SMTP(sys.argv[1], int(sys.argv[2]), timeout=10) as s:
    s.ehlo("python.example")
    s.starttls(context=ctx)
    s.ehlo("python.example")
    s.login("alice@example.test", "secret")
    refused = s.sendmail("alice@example.test", ["bob@example.test"],
                         "Subject: from python\r\n\r\nhello from smtplib\r\n")
    assert refused == {}, refused
    try:
        s.sendmail("alice@example.test", ["x@remote.example"], "Subject: no\r\n\r\nno\r\n")
        sys.exit("relay accepted")
    except smtplib.SMTPRecipientsRefused as e:
        assert e.recipients["x@remote.example"][0] == 550, e
print("ok")
`
	cmd := exec.Command(py, "-c", script, host, port)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil || strings.TrimSpace(string(out)) != "ok" {
		t.Fatalf("python smtplib: %v\n%s%s", err, out, stderr.String())
	}
	msgs := ts.fd.delivered()
	if len(msgs) != 1 || !strings.Contains(msgs[0].body, "hello from smtplib") {
		t.Fatalf("deliveries = %+v", msgs)
	}
}
