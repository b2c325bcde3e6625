package smtpclient

import (
	"bytes"
	"context"
	"crypto/x509"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"strings"
	"testing"

	"petrel/internal/mailtest"
)

func TestSmartHostPlain(t *testing.T) {
	ca := mailtest.NewCA(t)
	good := tlsFake(ca.Issue(t, "127.0.0.2"), "AUTH PLAIN LOGIN")
	noTLS := &fake{ext: []string{"AUTH PLAIN"}}
	port := startFakes(t, good, noTLS)
	newClient := func(host, pass string) *Client {
		c := testClient(nil, 0)
		c.cfg.Router = nil
		c.cfg.RootCAs = ca.Pool
		c.cfg.SmartHost = &SmartHost{Host: host, Port: port, Username: "u", Password: pass}
		return c
	}
	var transcript bytes.Buffer
	c := newClient("127.0.0.2", "p")
	c.cfg.Log = slog.New(slog.NewTextHandler(&transcript, &slog.HandlerOptions{Level: slog.LevelDebug}))
	res := c.Deliver(context.Background(), "anywhere.test", message(body7, "a@anywhere.test"))
	wantReplies(t, res, "250 2.0.0")
	// The debug transcript shows the dialogue but not the credentials or the message.
	if tr := transcript.String(); !strings.Contains(tr, `line="AUTH ..."`) || strings.Contains(tr, "AHUAcA") ||
		!strings.Contains(tr, "MAIL FROM:<sender@origin.test>") || strings.Contains(tr, "leading dot") {
		t.Fatalf("transcript:\n%s", tr)
	}
	log := good.log()
	if i := slices.Index(log, "AUTH PLAIN AHUAcA=="); i < 0 || slices.Index(log, "STARTTLS") > i || !strings.HasSuffix(res.TLS, "verified (pkix)") {
		t.Fatalf("log %q, TLS %q", log, res.TLS)
	}
	// A wrong password keeps the mail (the operator fixes the config).
	res = newClient("127.0.0.2", "wrong").Deliver(context.Background(), "anywhere.test", message(body7, "a@anywhere.test"))
	wantReplies(t, res, "451 4.7.8 AUTH refused by the smart host: 535 5.7.8 no")
	// No STARTTLS: no password in the clear.
	res = newClient("127.0.0.3", "p").Deliver(context.Background(), "anywhere.test", message(body7, "a@anywhere.test"))
	wantReplies(t, res, "451 4.7.4")
	if slices.ContainsFunc(noTLS.log(), func(l string) bool { return strings.HasPrefix(l, "AUTH") }) {
		t.Fatal("AUTH sent without TLS")
	}
}

// TestSmartHostSCRAM relays through Petrel's own submission server (STARTTLS, then AUTH
// SCRAM-SHA-256 with the server's proof checked).
func TestSmartHostSCRAM(t *testing.T) {
	srv := mailtest.Start(t)
	acct := srv.AddAccount(t, "dev@example.test", "secret-password")
	sub := srv.StartSubmission(t, mailtest.SubmissionOptions{})
	host, portStr, _ := net.SplitHostPort(sub.Addr)
	port, _ := strconv.Atoi(portStr)
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(srv.CertPEM)
	c := New(Config{
		Hostname:  "client.test",
		RootCAs:   roots,
		SmartHost: &SmartHost{Host: "localhost", Port: port, Username: "dev@example.test", Password: "secret-password"},
		// "localhost" is the certificate's name; the listener is on 127.0.0.1.
		Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, net.JoinHostPort(host, portStr))
		},
	})
	msg := message("From: dev@example.test\r\nTo: dev@example.test\r\nSubject: relayed\r\n\r\nhello\r\n", "dev@example.test")
	msg.From = "dev@example.test"
	res := c.Deliver(context.Background(), "example.test", msg)
	wantReplies(t, res, "250")
	if inbox := srv.Inbox(t, acct); len(inbox) != 1 || !strings.Contains(inbox[0], "Subject: relayed") {
		t.Fatalf("inbox %q", inbox)
	}
	c.cfg.SmartHost.Password = "wrong"
	wantReplies(t, c.Deliver(context.Background(), "example.test", msg), "451 4.7.8")
}
