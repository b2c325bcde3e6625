package smtpd

// The MX role: mail for hosted domains from anyone, recipients checked at RCPT (RFC 5321).

import (
	"context"
	"io"
	"log/slog"
	"net"
	"regexp"
	"strings"
	"sync"
	"testing"

	"petrel/internal/mail/deliver"
	"petrel/internal/store"
)

func TestMXDelivery(t *testing.T) {
	ts := startServer(t, Config{TLS: serverTLS(t)}, nil)
	c := dial(t, ts.addr)
	c.Expect("220 mx.example.test ESMTP")
	c.Raw("EHLO client.example.org\r\n")
	ehlo := strings.Join(c.Expect("250 "), "\n")
	for _, ext := range []string{"PIPELINING", "8BITMIME", "SMTPUTF8", "SIZE 52428800", "ENHANCEDSTATUSCODES", "CHUNKING", "STARTTLS"} {
		if !strings.Contains(ehlo, ext) {
			t.Errorf("EHLO lacks %s:\n%s", ext, ehlo)
		}
	}
	if strings.Contains(ehlo, "AUTH") {
		t.Errorf("MX offers AUTH:\n%s", ehlo)
	}
	c.Run(`
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
	last := c.Expect("250 2.0.0 OK id=")
	c.Run(`
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
			c.Run(`
				S: 220
				C: EHLO client.example.org
				S: 250
				C: MAIL FROM:<someone@elsewhere.example>
				S: 250
			`)
			c.Raw("RCPT TO:" + tc.rcpt + "\r\n")
			c.Expect(tc.want)
		})
	}
}

// memStore is the store behind a real deliver.Deliverer: two accounts, one alias.
type memStore struct {
	mu         sync.Mutex
	deliveries []*store.Delivery
	bodies     []string
}

func (*memStore) Quota(context.Context, int64) (store.Quota, error) { return store.Quota{}, nil }

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
	c.Run(`
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

// TestMXEnvelopeTo: the delivery learns, per account, the recipient address that reached
// it (the alias, the +tag), which Sieve's envelope "to" tests (RFC 5228 §5.4).
func TestMXEnvelopeTo(t *testing.T) {
	ts := startServer(t, Config{}, nil)
	c := dial(t, ts.addr)
	c.Run(`
		S: 220
		C: EHLO client.example.org
		S: 250
		C: MAIL FROM:<carl@remote.example>
		S: 250
		C: RCPT TO:<Team@example.test>
		S: 250
		C: RCPT TO:<bob+lists@example.test>
		S: 250
		C: RCPT TO:<alice@example.test>
		S: 250
		C: DATA
		S: 354
		C: Subject: hello
		C:
		C: hi
		C: .
		S: 250
		C: QUIT
		S: 221
	`)
	msgs := ts.fd.delivered()
	if len(msgs) != 1 {
		t.Fatalf("%d deliveries, want 1", len(msgs))
	}
	want := map[int64]string{1: "Team@example.test", 2: "bob+lists@example.test"}
	if got := msgs[0].env.To; len(got) != 2 || got[1] != want[1] || got[2] != want[2] {
		t.Errorf("Envelope.To = %v, want %v (the first recipient that reached each account)", got, want)
	}
}

// TestMXStripsSpamFields: a sender's own X-Spam verdict never reaches the mailbox from the
// MX port (folded or not, any case); other fields and the body stay byte for byte.
func TestMXStripsSpamFields(t *testing.T) {
	ts := startServer(t, Config{}, nil)
	c := dial(t, ts.addr)
	c.Run(`
		S: 220
		C: EHLO client.example.org
		S: 250
		C: MAIL FROM:<carl@remote.example>
		S: 250
		C: RCPT TO:<alice@example.test>
		S: 250
		C: DATA
		S: 354
		C: X-Spam-Flag: NO
		C: Subject: cheap
		C: x-spam-status: No, score=-100
		C:   required=5.0
		C: X-Spam: No
		C: X-Spammy-Name: kept
		C:
		C: X-Spam-Flag: NO in the body stays
		C: .
		S: 250
		C: QUIT
		S: 221
	`)
	msgs := ts.fd.delivered()
	if len(msgs) != 1 {
		t.Fatalf("%d deliveries, want 1", len(msgs))
	}
	_, msg, _ := strings.Cut(msgs[0].body, "\r\nSubject: ")
	want := "cheap\r\nX-Spammy-Name: kept\r\n\r\nX-Spam-Flag: NO in the body stays\r\n"
	if msg != want {
		t.Errorf("stored message after the trace:\n%q\nwant\n%q", msg, want)
	}
	if strings.Contains(strings.ToLower(msgs[0].body), "x-spam-flag: no\r\nsubject") {
		t.Errorf("forged field kept:\n%s", msgs[0].body)
	}
}
