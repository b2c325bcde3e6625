package fetch

import (
	"fmt"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"petrel/internal/client/clientconf"
	"petrel/internal/config"
	"petrel/internal/mailtest"
)

// dovecotAccount points an account at the test's Dovecot; "localhost" matches its certificate.
func dovecotAccount(t *testing.T, d *mailtest.Dovecot, addr, archive, extra string) *clientconf.Account {
	_, port, _ := net.SplitHostPort(addr)
	src := fmt.Sprintf(`
[accounts.dc]
user = %q
password_command = "echo %s"
timeout = "10s"
[accounts.dc.pop3]
host = "localhost"
port = %s
ca_file = %q
archive = %q
%s
`, d.User, d.Pass, port, d.CertFile, archive, extra)
	c, err := clientconf.Parse(filepath.Join(t.TempDir(), "client.toml"), []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	return c.Accounts["dc"]
}

// TestDovecot runs keep then delete against a real Dovecot POP3 server, over implicit TLS
// and STLS, with each login method Dovecot offers.
func TestDovecot(t *testing.T) {
	d := mailtest.StartDovecot(t)
	for i := 0; i < 5; i++ {
		d.Deliver(t, i, body(i))
	}
	dir := t.TempDir()
	archive := filepath.Join(dir, "Mail")

	a := dovecotAccount(t, d, d.POP3SAddr, archive, "mode = \"keep\"\nauth = \"scram-sha-256\"")
	if res := fetch(t, a, Options{}); res.Downloaded != 5 || res.Kept != 5 {
		t.Fatalf("keep: %+v", res)
	}
	if res := fetch(t, a, Options{}); res.Downloaded != 0 || res.New != 0 {
		t.Fatalf("keep, second run: %+v", res)
	}
	if n := d.Count(t); n != 5 {
		t.Fatalf("dovecot has %d", n)
	}
	for _, mech := range []string{"plain", "user", "apop", ""} {
		a := dovecotAccount(t, d, d.POP3Addr, archive, "tls = \"starttls\"\nmode = \"keep\"\nauth = \""+mech+"\"")
		if mech == "apop" {
			// Dovecot offers APOP only with a timestamp in its greeting, which it sends
			// only when the APOP mechanism is usable; accept either outcome but no panic.
			if _, err := Account(t.Context(), a, Options{}); err != nil {
				t.Logf("apop: %v", err)
			}
			continue
		}
		if res := fetch(t, a, Options{}); res.Downloaded != 0 {
			t.Fatalf("%s: %+v", mech, res)
		}
	}
	d.Deliver(t, 5, body(5))
	a = dovecotAccount(t, d, d.POP3Addr, archive, "tls = \"starttls\"")
	if res := fetch(t, a, Options{}); res.Downloaded != 1 || res.Deleted != 6 {
		t.Fatalf("delete: %+v", res)
	}
	if n := d.Count(t); n != 0 {
		t.Fatalf("dovecot still has %d", n)
	}
	got := subjects(t, archive, "maildir")
	if fmt.Sprint(got) != fmt.Sprint(want(0, 6)) {
		t.Fatalf("archive %v", got)
	}
}

// Source.Headers reads the header blocks of scattered messages from Dovecot's IMAP, in
// more than one command (a thousand messages each): every one asked for, none other, each
// the message's header block with the empty line after it.
func TestDovecotSourceHeaders(t *testing.T) {
	mailtest.RequireBinary(t, mailtest.IMAPBinary)
	d := mailtest.StartDovecot(t)
	bodies := make([]string, 2300)
	for i := range bodies {
		bodies[i] = body(i)
	}
	d.DeliverAll(t, bodies)
	_, port, _ := net.SplitHostPort(d.IMAPSAddr)
	p, _ := strconv.Atoi(port)
	a := &clientconf.Account{Name: "dc", User: d.User, Timeout: config.Duration{Duration: time.Minute}, IMAP: &clientconf.IMAP{
		Endpoint: clientconf.Endpoint{Host: "localhost", Port: p, TLS: "tls", CAFile: d.CertFile}}}
	s, err := OpenSource(t.Context(), a, d.Pass)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	f, err := s.Folder("")
	if err != nil || len(f.Messages) != len(bodies) {
		t.Fatalf("folder: %d messages, %v", len(f.Messages), err)
	}
	var ask []uint32
	for i, m := range f.Messages {
		if i%2 == 1 {
			ask = append(ask, m.UID)
		}
	}
	heads, err := s.Headers(&f, ask)
	if err != nil {
		t.Fatal(err)
	}
	if len(heads) != len(ask) {
		t.Fatalf("%d headers for %d messages", len(heads), len(ask))
	}
	for _, uid := range ask {
		b, err := s.Body(&f, uid)
		if err != nil {
			t.Fatal(err)
		}
		head, _, _ := strings.Cut(string(b), "\r\n\r\n")
		if got := string(heads[uid]); got != head+"\r\n\r\n" {
			t.Fatalf("UID %d: header %q, message %q", uid, got, b)
		}
	}
}
