package smtpd

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/smtp"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"petrel/internal/mail/auth"
	"petrel/internal/mail/deliver"
	"petrel/internal/store"
)

func TestMXDelivery(t *testing.T) {
	ts := startServer(t, Config{TLS: serverTLS(t)}, nil)
	c := dial(t, ts.addr)
	c.expect("220 mx.example.test ESMTP")
	c.send("EHLO client.example.org\r\n")
	ehlo := strings.Join(c.expect("250 "), "\n")
	for _, ext := range []string{"PIPELINING", "8BITMIME", "SMTPUTF8", "SIZE 52428800", "ENHANCEDSTATUSCODES", "CHUNKING", "STARTTLS"} {
		if !strings.Contains(ehlo, ext) {
			t.Errorf("EHLO lacks %s:\n%s", ext, ehlo)
		}
	}
	if strings.Contains(ehlo, "AUTH") {
		t.Errorf("MX offers AUTH:\n%s", ehlo)
	}
	c.run(`
		C: VRFY alice
		S: 252
		C: AUTH PLAIN AGFsaWNlQGV4YW1wbGUudGVzdABzZWNyZXQ=
		S: 5
		C: MAIL FROM:<>
		S: 250
		C: RCPT TO:<Alice@Example.TEST>
		S: 250
		C: DATA
		S: 354
		C: Subject: hello
		C:
		C: ..dot-stuffed line
		C: .
	`)
	last := c.expect("250 2.0.0 OK id=")
	c.run(`
		C: QUIT
		S: 221
	`)

	msgs := ts.fd.delivered()
	if len(msgs) != 1 {
		t.Fatalf("%d deliveries, want 1", len(msgs))
	}
	m := msgs[0]
	id := strings.TrimPrefix(last[0], "250 2.0.0 OK id=")
	traceRE := regexp.MustCompile(`^Return-Path: <>\r\n` +
		`Received: from client\.example\.org \(\[127\.0\.0\.1\]\)\r\n` +
		`\tby mx\.example\.test with ESMTP\r\n` +
		`\tid ` + id + `\r\n` +
		`\tfor <Alice@example\.test>;\r\n` +
		`\t\w{3}, \d\d \w{3} \d{4} \d\d:\d\d:\d\d [+-]\d{4}\r\n` +
		`Subject: hello\r\n\r\n\.dot-stuffed line\r\n$`)
	if !traceRE.MatchString(m.body) {
		t.Errorf("stored body:\n%q", m.body)
	}
	if m.env.MailFrom != "" || len(m.env.Targets) != 1 || m.env.Targets[0].AccountID != 1 {
		t.Errorf("envelope = %+v", m.env)
	}
	if n := strings.Count(ts.logs.String(), "smtp transaction"); n != 1 {
		t.Errorf("%d transaction log lines, want 1:\n%s", n, ts.logs)
	}
	if logs := ts.logs.String(); strings.Contains(logs, "dot-stuffed") || !strings.Contains(logs, "result=delivered") || !strings.Contains(logs, "msgid="+id) {
		t.Errorf("transaction log:\n%s", logs)
	}
}

func TestMXRecipients(t *testing.T) {
	ts := startServer(t, Config{}, nil)
	cases := []struct {
		rcpt, want string
	}{
		{"<alice@example.test>", "250"},
		{"<alice+tag@example.test>", "250"},
		{"<nobody@example.test>", "550 5.1.1 no such user"},
		{"<user@other.com>", "550 5.7.1 relaying denied"},
		{"<alice@EXAMPLE.test.>", "5"},
		// Relay tricks: routing syntax in the local part is refused outright.
		{"<user%other.com@example.test>", "553 5.1.3"},
		{"<other.com!user@example.test>", "553 5.1.3"},
		{`<"user@other.com"@example.test>`, "553 5.1.3"},
		{"<alice@[127.0.0.1]>", "553 5.1.3"},
		// Source routes are ignored (RFC 5321 §4.1.1.3): only the mailbox counts, so a
		// route can neither reach another host nor dodge the relay check.
		{"<@a.com:alice@example.test>", "250"},
		{"<@example.test:user@other.com>", "550 5.7.1 relaying denied"},
		{"<@example.test,@b.com:user%other.com@example.test>", "553 5.1.3"},
		{"<>", "501"},
		{"alice@example.test", "250"}, // no brackets: accepted as Postel would
	}
	for _, tc := range cases {
		t.Run(tc.rcpt, func(t *testing.T) {
			c := dial(t, ts.addr)
			c.run(`
				S: 220
				C: EHLO client.example.org
				S: 250
				C: MAIL FROM:<someone@elsewhere.example>
				S: 250
			`)
			c.send("RCPT TO:" + tc.rcpt + "\r\n")
			c.expect(tc.want)
		})
	}
}

func TestSubmission(t *testing.T) {
	ts := startServer(t, Config{Role: RoleSubmission, TLS: serverTLS(t)}, nil)
	c := dial(t, ts.addr)
	c.run(`
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
	if ehlo := strings.Join(c.expect("250 "), "\n"); !strings.Contains(ehlo, "AUTH PLAIN") || strings.Contains(ehlo, "STARTTLS") {
		t.Errorf("EHLO after STARTTLS:\n%s", ehlo)
	}
	c.run(`
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
		S: 550 5.7.1 relaying to remote domains is not available yet
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
	c.run(`
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
	c.run(`
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

func TestBDAT(t *testing.T) {
	ts := startServer(t, Config{}, nil)
	c := dial(t, ts.addr)
	c.run(`
		S: 220
		C: EHLO client
		S: 250
		C: MAIL FROM:<a@elsewhere.example>
		S: 250
		C: RCPT TO:<alice@example.test>
		S: 250
		C: RCPT TO:<bob@example.test>
		S: 250
		R: BDAT 15\r\nSubject: bdat\r\n
		S: 250 2.0.0
		R: BDAT 13 LAST\r\n\r\n.\r\nbinary\r\n
		S: 250 2.0.0 OK id=
		# Bare LF in a chunk is refused like in DATA.
		C: MAIL FROM:<a@elsewhere.example>
		S: 250
		C: RCPT TO:<alice@example.test>
		S: 250
		R: BDAT 8 LAST\r\nbare\nLF\n
		S: 554 5.6.0
		C: NOOP
		S: 250
	`)
	msgs := ts.fd.delivered()
	if len(msgs) != 1 {
		t.Fatalf("%d deliveries, want 1", len(msgs))
	}
	if !strings.HasSuffix(msgs[0].body, "\r\nSubject: bdat\r\n\r\n.\r\nbinary\r\n") || strings.Contains(msgs[0].body, "\tfor <") {
		t.Errorf("body = %q", msgs[0].body)
	}
}

func TestPipelining(t *testing.T) {
	ts := startServer(t, Config{}, nil)
	c := dial(t, ts.addr)
	c.expect("220")
	// RFC 2920 §3.1: the whole group in one write, replies in order.
	c.send("EHLO client\r\nMAIL FROM:<a@elsewhere.example>\r\nRCPT TO:<alice@example.test>\r\nRCPT TO:<nobody@example.test>\r\nRCPT TO:<bob@example.test>\r\nDATA\r\n")
	c.run(`
		S: 250
		S: 250
		S: 250
		S: 550 5.1.1
		S: 250
		S: 354
	`)
	c.send("Subject: p\r\n\r\nx\r\n.\r\nMAIL FROM:<b@elsewhere.example>\r\nRCPT TO:<alice@example.test>\r\nDATA\r\n")
	c.run(`
		S: 250 2.0.0 OK
		S: 250
		S: 250
		S: 354
		C: y
		C: .
		S: 250 2.0.0 OK
	`)
	msgs := ts.fd.delivered()
	if len(msgs) != 2 || len(msgs[0].env.Targets) != 2 {
		t.Fatalf("deliveries = %+v", msgs)
	}
}

func TestLimits(t *testing.T) {
	ts := startServer(t, Config{MaxMessageBytes: 1000, MaxRecipients: 2, MaxLineLength: 1000}, nil)
	c := dial(t, ts.addr)
	big := strings.Repeat("x", 990)
	c.run(`
		S: 220
		C: EHLO client
		S: 250
		C: MAIL FROM:<a@elsewhere.example> SIZE=1001
		S: 552 5.3.4
		C: MAIL FROM:<a@elsewhere.example> SIZE=1000
		S: 250
		C: RCPT TO:<alice@example.test>
		S: 250
		C: RCPT TO:<bob@example.test>
		S: 250
		C: RCPT TO:<alice+2@example.test>
		S: 452 4.5.3
		C: DATA
		S: 354
		C: ` + big + `
		C: ` + big + `
		C: .
		S: 552 5.3.4
		C: NOOP
		S: 250
	`)
	if msgs := ts.fd.delivered(); len(msgs) != 0 {
		t.Fatalf("over-size message delivered")
	}
	// A command line over the limit ends the session.
	c.send("NOOP " + strings.Repeat("y", 1200) + "\r\n")
	c.expect("500")
	c.expectClosed()

	// So does a text line over the limit; nothing is delivered. (go-smtp adds its own
	// "500 5.4.0" before closing.)
	c = dial(t, ts.addr)
	c.run(`
		S: 220
		C: EHLO client
		S: 250
		C: MAIL FROM:<a@elsewhere.example>
		S: 250
		C: RCPT TO:<alice@example.test>
		S: 250
		C: DATA
		S: 354
	`)
	c.send(strings.Repeat("z", 1001) + "\r\n.\r\n")
	c.expect("500 5.5.2 line too long")
	c.expect("500")
	c.expectClosed()
	if msgs := ts.fd.delivered(); len(msgs) != 0 {
		t.Fatalf("message with an over-long line delivered")
	}
}

// TestBareLineEndings sends bodies with bare CR/LF around the end-of-data marker and
// smuggled commands after it. None may end DATA early (the smuggled MAIL would get its own
// reply) and none may be delivered.
func TestBareLineEndings(t *testing.T) {
	ts := startServer(t, Config{}, nil)
	smuggled := "MAIL FROM:<evil@elsewhere.example>\r\nRCPT TO:<bob@example.test>\r\nDATA\r\nsmuggled\r\n"
	cases := []struct{ body, end string }{
		{"a\n.\r\n" + smuggled, "\r\n.\r\n"},
		{"a\r\n.\n" + smuggled, "\r\n.\r\n"},
		{"a\r.\r\n" + smuggled, "\r\n.\r\n"},
		{"a\n.\n" + smuggled, "\r\n.\r\n"},
		{"a\r\n\n.\r\n" + smuggled, "\r\n.\r\n"},
		{"bare\nlf", "\r\n.\r\n"},
		{"bare\rcr", "\r\n.\r\n"},
		// go-smtp does not take the CRLF of CR CR LF as a line end, so the marker after it
		// does not end DATA either; only a later one does.
		{"ends with cr\r", "\r\n.\r\n.\r\n"},
	}
	for i, tc := range cases {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			c := dial(t, ts.addr)
			c.run(`
				S: 220
				C: EHLO client
				S: 250
				C: MAIL FROM:<a@elsewhere.example>
				S: 250
				C: RCPT TO:<alice@example.test>
				S: 250
				C: DATA
				S: 354
			`)
			c.send(tc.body + tc.end)
			c.expect("554 5.6.0 bare LF/CR not allowed")
			c.send("NOOP\r\n")
			c.expect("250 2.0.0 I have successfully done nothing")
		})
	}
	if msgs := ts.fd.delivered(); len(msgs) != 0 {
		t.Fatalf("%d messages with bare line endings delivered: %q", len(msgs), msgs[0].body)
	}
}

// TestDotCR documents a quirk of go-smtp's DATA reader: at the start of a line, "." CR
// followed by anything but LF is dropped whole, so the bare CR never reaches us and cannot
// be refused. It still does not end DATA: the text after it stays message text.
func TestDotCR(t *testing.T) {
	ts := startServer(t, Config{}, nil)
	c := dial(t, ts.addr)
	c.run(`
		S: 220
		C: EHLO client
		S: 250
		C: MAIL FROM:<a@elsewhere.example>
		S: 250
		C: RCPT TO:<alice@example.test>
		S: 250
		C: DATA
		S: 354
		R: a\r\n.\rMAIL FROM:<evil@elsewhere.example>\r\n.\r\n
		S: 250 2.0.0 OK
		C: NOOP
		S: 250 2.0.0 I have successfully done nothing
	`)
	msgs := ts.fd.delivered()
	if len(msgs) != 1 || !strings.HasSuffix(msgs[0].body, "\r\na\r\nMAIL FROM:<evil@elsewhere.example>\r\n") {
		t.Fatalf("deliveries = %+v", msgs)
	}
}

func TestDataTimeout(t *testing.T) {
	ts := startServer(t, Config{DataTimeout: 300 * time.Millisecond, ReadTimeout: 5 * time.Second}, nil)
	c := dial(t, ts.addr)
	c.run(`
		S: 220
		C: EHLO client
		S: 250
		C: MAIL FROM:<a@elsewhere.example>
		S: 250
		C: RCPT TO:<alice@example.test>
		S: 250
		C: DATA
		S: 354
	`)
	start := time.Now()
	stop := make(chan struct{})
	defer close(stop)
	go func() { // one byte every 20ms: each read is quick, the whole is too slow
		for {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
				if _, err := c.nc.Write([]byte("x")); err != nil {
					return
				}
			}
		}
	}()
	c.expect("421 4.4.2")
	c.expectClosed()
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("cut off after %v, DataTimeout is 300ms", d)
	}
	if len(ts.fd.delivered()) != 0 {
		t.Error("dripped message delivered")
	}
}

func TestStoreFailure(t *testing.T) {
	fd := newFakeDeliverer()
	fd.fail = errors.New("disk full")
	ts := startServer(t, Config{}, fd)
	c := dial(t, ts.addr)
	c.run(`
		S: 220
		C: HELO client
		S: 250
		C: MAIL FROM:<a@elsewhere.example>
		S: 250
		C: RCPT TO:<alice@example.test>
		S: 250
		C: DATA
		S: 354
		C: x
		C: .
		S: 451 4.3.0
	`)
	if !strings.Contains(ts.logs.String(), "result=failed") {
		t.Errorf("log:\n%s", ts.logs)
	}
}

func TestPanicRecovered(t *testing.T) {
	fd := newFakeDeliverer()
	fd.panicOn = "boom@example.test"
	ts := startServer(t, Config{}, fd)
	c := dial(t, ts.addr)
	c.run(`
		S: 220
		C: EHLO client
		S: 250
		C: MAIL FROM:<a@elsewhere.example>
		S: 250
		C: RCPT TO:<boom@example.test>
		S: 421
		CLOSED
	`)
	// The server still works.
	c = dial(t, ts.addr)
	c.run(`
		S: 220
		C: EHLO client
		S: 250
		C: QUIT
		S: 221
	`)
	if !strings.Contains(ts.logs.String(), "resolve exploded") {
		t.Errorf("panic not logged:\n%s", ts.logs)
	}
}

func TestShutdown(t *testing.T) {
	fd := newFakeDeliverer()
	ts := startServer(t, Config{}, fd)

	idle := dial(t, ts.addr)
	idle.run(`
		S: 220
		C: EHLO idle
		S: 250
	`)
	busy := dial(t, ts.addr)
	busy.run(`
		S: 220
		C: EHLO busy
		S: 250
		C: MAIL FROM:<a@elsewhere.example>
		S: 250
		C: RCPT TO:<alice@example.test>
		S: 250
	`)
	greeted := dial(t, ts.addr) // no EHLO yet
	greeted.expect("220")

	done := make(chan error, 1)
	go func() { done <- ts.Shutdown(context.Background()) }()

	idle.expect("421 4.3.2")
	idle.expectClosed()
	greeted.expect("421 4.3.2")
	greeted.expectClosed()

	// The transaction in progress finishes, then the session is told to go.
	busy.run(`
		C: DATA
		S: 354
		C: finishing
		C: .
		S: 250 2.0.0 OK
		S: 421 4.3.2
		CLOSED
	`)
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Shutdown: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Shutdown did not return")
	}
	if len(fd.delivered()) != 1 {
		t.Error("transaction in progress was not delivered")
	}
	if _, err := net.Dial("tcp", ts.addr); err == nil {
		t.Error("still accepting connections")
	}
}

func TestShutdownTLS(t *testing.T) {
	ts := startServer(t, Config{TLS: serverTLS(t)}, nil)
	session := dial(t, ts.addr)
	session.run(`
		S: 220
		C: EHLO client
		S: 250
		C: STARTTLS
		S: 220
		STARTTLS
		C: EHLO client
		S: 250
	`)
	handshaken := dial(t, ts.addr) // TLS is up, but no session yet
	handshaken.run(`
		S: 220
		C: EHLO client
		S: 250
		C: STARTTLS
		S: 220
		STARTTLS
		C: NOOP
		S: 250
	`)
	if err := ts.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	// Inside TLS our 421 goes through the TLS connection...
	session.expect("421 4.3.2")
	session.expectClosed()
	// ...and where that is not known to be safe, go-smtp's own 421 closes the session.
	handshaken.expect("421 4.4.2")
	handshaken.expectClosed()
}

func TestShutdownDeadline(t *testing.T) {
	fd := newFakeDeliverer()
	fd.block = make(chan struct{})
	fd.entered = make(chan struct{}, 1)
	ts := startServer(t, Config{}, fd)
	c := dial(t, ts.addr)
	c.run(`
		S: 220
		C: EHLO busy
		S: 250
		C: MAIL FROM:<a@elsewhere.example>
		S: 250
		C: RCPT TO:<alice@example.test>
		S: 250
		C: DATA
		S: 354
		C: stuck
		C: .
	`)
	<-fd.entered
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if err := ts.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Shutdown = %v, want deadline exceeded", err)
	}
	// The connection is closed, maybe after a last reply; nothing was committed.
	for {
		if _, err := c.reply(); err != nil {
			break
		}
	}
	if len(fd.delivered()) != 0 {
		t.Error("unfinished transaction committed")
	}
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

func TestCRLFReader(t *testing.T) {
	cases := map[string]bool{
		"":               true,
		"a\r\nb\r\n":     true,
		"a\r\nb":         true,
		"a\nb":           false,
		"a\rb":           false,
		"a\r":            false,
		"\n":             false,
		"\r\r\n":         false,
		"a\r\n\r\n.\r\n": true,
	}
	for in, ok := range cases {
		var sb strings.Builder
		_, err := copyByteWise(&sb, &crlfReader{r: strings.NewReader(in)})
		if (err == nil) != ok {
			t.Errorf("%q: err = %v, want ok=%v", in, err, ok)
		}
	}
}

// copyByteWise copies one byte per read, so that a CR and its LF arrive in different reads.
func copyByteWise(w *strings.Builder, r *crlfReader) (int, error) {
	src := r.r
	r.r = oneByteReader{src}
	var buf [16]byte
	n := 0
	for {
		m, err := r.Read(buf[:])
		w.Write(buf[:m])
		n += m
		if err != nil {
			if err.Error() == "EOF" {
				return n, nil
			}
			return n, err
		}
	}
}

type oneByteReader struct {
	r interface{ Read([]byte) (int, error) }
}

func (o oneByteReader) Read(p []byte) (int, error) {
	if len(p) > 1 {
		p = p[:1]
	}
	return o.r.Read(p)
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
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
	}()

	c := dial(t, l.Addr().String())
	c.expect("220")
	c.send("EHLO laptop\r\n")
	if ehlo := strings.Join(c.expect("250 "), "\n"); !strings.Contains(ehlo, "AUTH SCRAM-SHA-256 PLAIN LOGIN") {
		t.Errorf("EHLO:\n%s", ehlo)
	}
	c.run(`
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

// memStore is the store behind a real deliver.Deliverer: two accounts, one alias.
type memStore struct {
	mu         sync.Mutex
	deliveries []*store.Delivery
	bodies     []string
}

func (m *memStore) Domain(_ context.Context, name string) (store.Domain, error) {
	if name != "example.test" {
		return store.Domain{}, store.ErrNotFound
	}
	return store.Domain{Name: name}, nil
}

func (m *memStore) AccountByAddress(_ context.Context, addr string) (store.Account, error) {
	switch addr {
	case "alice@example.test":
		return store.Account{ID: 1, Address: addr}, nil
	case "bob@example.test":
		return store.Account{ID: 2, Address: addr}, nil
	}
	return store.Account{}, store.ErrNotFound
}

func (m *memStore) Alias(_ context.Context, addr string) (store.Alias, error) {
	if addr == "team@example.test" {
		return store.Alias{Address: addr, Targets: []string{"alice@example.test", "bob@example.test"}}, nil
	}
	return store.Alias{}, store.ErrNotFound
}

func (m *memStore) Deliver(_ context.Context, d *store.Delivery) (store.Delivered, error) {
	b, err := io.ReadAll(d.Body)
	if err != nil {
		return store.Delivered{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.deliveries = append(m.deliveries, d)
	m.bodies = append(m.bodies, string(b))
	return store.Delivered{BlobID: 1}, nil
}

// TestWithDeliver runs the real deliver package behind the server: an alias and a direct
// recipient of the same account become one commit with each mailbox once.
func TestWithDeliver(t *testing.T) {
	ms := &memStore{}
	d := deliver.New(ms, slog.New(slog.DiscardHandler))
	srv := New(Config{Hostname: "mx.example.test"}, d, nil, slog.New(slog.DiscardHandler))
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(l)
	defer srv.Shutdown(context.Background())

	c := dial(t, l.Addr().String())
	c.run(`
		S: 220
		C: EHLO client
		S: 250
		C: MAIL FROM:<x@elsewhere.example>
		S: 250
		C: RCPT TO:<team@example.test>
		S: 250
		C: RCPT TO:<bob+news@example.test>
		S: 250
		C: RCPT TO:<carol@example.test>
		S: 550 5.1.1
		C: DATA
		S: 354
		C: Subject: =?utf-8?q?gr=C3=BC=C3=9Fe?=
		C: Message-ID: <id1@elsewhere.example>
		C:
		C: hello
		C: .
		S: 250
		C: QUIT
		S: 221
	`)
	ms.mu.Lock()
	defer ms.mu.Unlock()
	if len(ms.deliveries) != 1 {
		t.Fatalf("%d commits, want 1", len(ms.deliveries))
	}
	got := ms.deliveries[0]
	if len(got.Targets) != 2 || got.Parsed.Subject != "grüße" || got.Parsed.MessageID != "id1@elsewhere.example" {
		t.Errorf("delivery = %+v", got)
	}
	if !strings.HasPrefix(ms.bodies[0], "Return-Path: <x@elsewhere.example>\r\nReceived: ") || strings.Contains(ms.bodies[0], "\tfor <") {
		t.Errorf("body = %q", ms.bodies[0])
	}
}
