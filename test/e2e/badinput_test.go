package e2e

import (
	"bytes"
	"net"
	"strings"
	"testing"
	"time"
)

// TestBadInput sends what a broken or hostile client sends, over the real binary, and checks
// both the reply and that nothing was delivered.
func TestBadInput(t *testing.T) {
	t.Parallel()
	in := startInstance(t, options{"smtp": {"max_recipients = 5", "max_message_bytes = 10000"}})
	const eve, pass = "eve@example.test", "eve-secret-1"
	in.addAccount(eve, pass)

	// Each subtest runs alone on the shared instance; the last one checks the maildrop.
	t.Run("bare LF and CR in DATA", func(t *testing.T) {
		// RFC 5321 §2.3.8: CR and LF only ever occur together as the line ending. Accepting
		// bare ones invites SMTP smuggling.
		for _, body := range []string{
			"Subject: bare LF\r\nMessage-ID: <bad-lf@e2e.example>\r\n\r\nline one\nline two\r\n",
			"Subject: bare CR\r\nMessage-ID: <bad-cr@e2e.example>\r\n\r\nline one\rline two\r\n",
			// The smuggling shape: a bare-LF "end of data" followed by a second transaction.
			"Subject: smuggle\r\nMessage-ID: <bad-smuggle@e2e.example>\r\n\r\nhello\n.\nMAIL FROM:<x@remote.example>\r\n",
		} {
			s := session(t, in.SMTP)
			mailTo(t, s, eve)
			if _, err := s.expect(354, "DATA"); err != nil {
				t.Fatal(err)
			}
			if err := s.write([]byte(body + ".\r\n")); err != nil {
				t.Fatal(err)
			}
			if rp, err := s.reply(); err != nil || rp.Code/100 != 5 {
				t.Errorf("message with %q: reply %v %v, want 5xx", body[:14], rp, err)
			}
		}
	})

	t.Run("long lines", func(t *testing.T) {
		s := session(t, in.SMTP)
		long := "MAIL FROM:<" + strings.Repeat("a", 5000) + "@remote.example>"
		if rp, err := s.cmd("%s", long); err != nil || rp.Code != 500 {
			t.Errorf("5000-octet command: %v %v, want 500 (RFC 5321 §4.5.3.1.4)", rp, err)
		}
		// A text line over max_line_length in DATA is refused too.
		s = session(t, in.SMTP)
		mailTo(t, s, eve)
		body := "Subject: long\r\nMessage-ID: <bad-long@e2e.example>\r\n\r\n" + strings.Repeat("x", 3000) + "\r\n"
		if rp, err := s.data([]byte(body)); err != nil || rp.Code/100 != 5 {
			t.Errorf("3000-octet text line: %v %v, want 5xx", rp, err)
		}
		// The server still serves.
		mustDeliver(t, in, []string{eve}, testMessage("after-long", "sender@remote.example", eve))
	})

	t.Run("too many recipients", func(t *testing.T) {
		s := session(t, in.SMTP)
		if _, err := s.expect(250, "MAIL FROM:<sender@remote.example>"); err != nil {
			t.Fatal(err)
		}
		for _, tag := range []string{"1", "2", "3", "4", "5"} {
			if _, err := s.expect(250, "RCPT TO:<eve+%s@example.test>", tag); err != nil {
				t.Fatal(err)
			}
		}
		// RFC 5321 §4.5.3.1.10: 452 for too many recipients; the transaction goes on.
		if rp, err := s.cmd("RCPT TO:<eve+6@example.test>"); err != nil || rp.Code != 452 {
			t.Errorf("sixth RCPT with max_recipients = 5: %v %v, want 452", rp, err)
		}
		if rp, err := s.data(testMessage("five-rcpts", "sender@remote.example", eve)); err != nil || rp.Code != 250 {
			t.Errorf("DATA after a refused recipient: %v %v, want 250", rp, err)
		}
	})

	t.Run("SIZE", func(t *testing.T) {
		s, _, err := dialSMTP(in.SMTP)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		ehlo, err := s.expect(250, "EHLO client.example")
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(ehlo.Text, "SIZE 10000") {
			t.Errorf("EHLO does not advertise SIZE 10000:\n%s", ehlo.Text)
		}
		// RFC 1870 §6.1: a declared size over the limit is refused at MAIL with 552.
		if rp, err := s.cmd("MAIL FROM:<sender@remote.example> SIZE=20000"); err != nil || rp.Code != 552 {
			t.Errorf("MAIL with SIZE=20000: %v %v, want 552", rp, err)
		}
		// An undeclared message over the limit is refused after the data.
		s = session(t, in.SMTP)
		mailTo(t, s, eve)
		big := "Subject: big\r\nMessage-ID: <bad-big@e2e.example>\r\n\r\n" + strings.Repeat(strings.Repeat("y", 98)+"\r\n", 120)
		if rp, err := s.data([]byte(big)); err != nil || rp.Code != 552 {
			t.Errorf("12000-octet message: %v %v, want 552", rp, err)
		}
	})

	t.Run("MX recipients", func(t *testing.T) {
		if rp := rcptReply(t, in, "someone@elsewhere.example"); rp.Code/100 != 5 {
			t.Errorf("relay attempt: %v, want 5xx", rp)
		}
		if rp := rcptReply(t, in, "nobody@example.test"); rp.Code != 550 || !strings.HasPrefix(rp.Text, "5.1.1") {
			t.Errorf("unknown user: %v, want 550 5.1.1", rp)
		}
	})

	t.Run("submission before STARTTLS", func(t *testing.T) {
		s, _, err := dialSMTP(in.Submission)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		ehlo, err := s.expect(250, "EHLO client.example")
		if err != nil {
			t.Fatal(err)
		}
		// RFC 4954 §4 and RFC 8314: no plaintext credentials on the wire.
		if strings.Contains(ehlo.Text, "AUTH") {
			t.Errorf("AUTH advertised before STARTTLS:\n%s", ehlo.Text)
		}
		if !strings.Contains(ehlo.Text, "STARTTLS") {
			t.Errorf("STARTTLS not advertised:\n%s", ehlo.Text)
		}
		if rp, err := s.authPlain(eve, pass); err != nil || rp.Code/100 != 5 {
			t.Errorf("AUTH PLAIN before STARTTLS: %v %v, want 5xx", rp, err)
		}
		if rp, err := s.cmd("MAIL FROM:<%s>", eve); err != nil || rp.Code != 530 {
			t.Errorf("MAIL without AUTH on submission: %v %v, want 530", rp, err)
		}
	})

	t.Run("STARTTLS injection", func(t *testing.T) {
		// CVE-2011-0411: commands pipelined after STARTTLS in plaintext must not be executed
		// inside the TLS session (RFC 3207 §4.2).
		s, _, err := dialSMTP(in.SMTP)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		if _, err := s.expect(250, "EHLO client.example"); err != nil {
			t.Fatal(err)
		}
		if err := s.write([]byte("STARTTLS\r\nMAIL FROM:<injected@remote.example>\r\n")); err != nil {
			t.Fatal(err)
		}
		rp, err := s.reply()
		if err != nil || rp.Code != 220 {
			t.Fatalf("STARTTLS: %v %v", rp, err)
		}
		if err := s.StartTLS(ca.tlsConfig()); err != nil {
			t.Fatalf("after STARTTLS with injected data: %v", err)
		}
		if rp, err := s.cmd("EHLO client.example"); err != nil || rp.Code != 250 || !strings.Contains(rp.Text, "SIZE") {
			t.Errorf("EHLO after STARTTLS: %v %v, want the EHLO reply", rp, err)
		}
		// RFC 5321 §4.1.4 wants 503 here; go-smtp answers 502. Either shows the injected MAIL
		// was not executed.
		if rp, err := s.cmd("RCPT TO:<%s>", eve); err != nil || (rp.Code != 503 && rp.Code != 502) {
			t.Errorf("RCPT after STARTTLS with an injected MAIL: %v %v, want 503 (no MAIL in this session)", rp, err)
		}

		p, _, err := dialPOP3(in.POP3)
		if err != nil {
			t.Fatal(err)
		}
		defer p.Close()
		if err := p.WriteString("STLS\r\nUSER " + eve + "\r\n"); err != nil {
			t.Fatal(err)
		}
		if l, err := p.line(); err != nil || !strings.HasPrefix(l, "+OK") {
			t.Fatalf("STLS: %q %v", l, err)
		}
		if err := p.StartTLS(ca.tlsConfig()); err != nil {
			t.Fatalf("after STLS with injected data: %v", err)
		}
		if l, err := p.cmd("PASS %s", pass); err != nil || !strings.HasPrefix(l, "-ERR") {
			t.Errorf("PASS after STLS with an injected USER: %q %v, want -ERR", l, err)
		}
	})

	t.Run("POP3 USER before STLS", func(t *testing.T) {
		p, _, err := dialPOP3(in.POP3)
		if err != nil {
			t.Fatal(err)
		}
		defer p.Close()
		if l, err := p.cmd("USER %s", eve); err != nil || !strings.HasPrefix(l, "-ERR") {
			t.Errorf("USER before STLS: %q %v, want -ERR", l, err)
		}
		if err := p.stls(); err != nil {
			t.Fatal(err)
		}
		if err := p.login(eve, pass); err != nil {
			t.Errorf("login after STLS: %v", err)
		}
		p.ok("QUIT")
	})

	t.Run("POP3 IN-USE", func(t *testing.T) {
		first, _, err := dialPOP3S(in.POP3S)
		if err != nil {
			t.Fatal(err)
		}
		defer first.Close()
		if err := first.login(eve, pass); err != nil {
			t.Fatal(err)
		}
		second, _, err := dialPOP3S(in.POP3S)
		if err != nil {
			t.Fatal(err)
		}
		defer second.Close()
		if _, err := second.ok("USER %s", eve); err != nil {
			t.Fatal(err)
		}
		// RFC 2449 §8.1.2: the maildrop is locked by another session.
		if l, err := second.cmd("PASS %s", pass); err != nil || !strings.HasPrefix(l, "-ERR [IN-USE]") {
			t.Errorf("second session: %q %v, want -ERR [IN-USE]", l, err)
		}
		if _, err := first.ok("QUIT"); err != nil {
			t.Fatal(err)
		}
		if _, err := fetchAll(in.POP3S, eve, pass, false); err != nil {
			t.Errorf("login after the first session quit: %v", err)
		}
	})

	// Only the good messages arrived.
	msgs := mustFetchAll(t, in, eve, pass, false)
	for _, m := range msgs {
		for _, bad := range []string{"bad-lf", "bad-cr", "bad-smuggle", "bad-long", "bad-big", "injected"} {
			if bytes.Contains(m, []byte(bad)) {
				t.Errorf("refused message %s was delivered", bad)
			}
		}
	}
	count := map[string]int{}
	for _, m := range msgs {
		count[tokenOf(m)]++
	}
	if count["after-long"] != 1 {
		t.Errorf("message after-long delivered %d times, want 1", count["after-long"])
	}
	// Five recipient addresses that resolve to one mailbox give one copy.
	if count["five-rcpts"] != 1 {
		t.Errorf("message to eve+1..eve+5 delivered %d times, want 1", count["five-rcpts"])
	}
}

// session dials addr, checks the greeting and says EHLO; the connection closes with the test.
func session(t *testing.T, addr string) *smtpConn {
	t.Helper()
	s, greet, err := dialSMTP(addr)
	if err != nil || greet.Code != 220 {
		t.Fatalf("connect to %s: %v %v", addr, greet, err)
	}
	t.Cleanup(func() { s.Close() })
	if _, err := s.expect(250, "EHLO client.example"); err != nil {
		t.Fatal(err)
	}
	return s
}

// mailTo starts a transaction from a remote sender to rcpt.
func mailTo(t *testing.T, s *smtpConn, rcpt string) {
	t.Helper()
	if _, err := s.expect(250, "MAIL FROM:<sender@remote.example>"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.expect(250, "RCPT TO:<%s>", rcpt); err != nil {
		t.Fatal(err)
	}
}

// TestConnectionLimits: with max_connections_per_ip = 3 the fourth connection from one
// address is told 421 while another address is still served.
func TestConnectionLimits(t *testing.T) {
	t.Parallel()
	in := startInstance(t, options{"limits": {"max_connections_per_ip = 3"}})

	var open []*smtpConn
	for i := range 3 {
		s, greet, err := dialSMTP(in.SMTP)
		if err != nil || greet.Code != 220 {
			t.Fatalf("connection %d: %v %v", i+1, greet, err)
		}
		open = append(open, s)
	}
	defer func() {
		for _, s := range open {
			s.Close()
		}
	}()
	if s, greet, err := dialSMTP(in.SMTP); err == nil {
		s.Close()
		if greet.Code != 421 {
			t.Errorf("fourth connection from 127.0.0.1: %v, want 421", greet)
		}
	} else if !strings.Contains(err.Error(), "421") {
		t.Errorf("fourth connection from 127.0.0.1: %v, want 421", err)
	}

	// Another address is served meanwhile.
	d := net.Dialer{Timeout: ioTimeout, LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}}
	c, err := d.Dial("tcp", in.SMTP)
	if err != nil {
		t.Fatalf("dial from 127.0.0.2: %v", err)
	}
	other, greet, err := newSMTPConn(c)
	if err != nil || greet.Code != 220 {
		t.Fatalf("connection from 127.0.0.2: %v %v, want 220", greet, err)
	}
	other.Close()

	// A slot freed by QUIT is available again.
	if _, err := open[0].expect(221, "QUIT"); err != nil {
		t.Fatal(err)
	}
	drain(open[0].NetConn(), time.Minute)
	ok := waitFor(time.Minute, func() bool {
		s, greet, err := dialSMTP(in.SMTP)
		if err != nil {
			return false
		}
		defer s.Close()
		return greet.Code == 220
	})
	if !ok {
		t.Errorf("no connection accepted after one of three quit")
	}
}
