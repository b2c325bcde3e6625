package e2e

// Small SMTP and POP3 clients for the tests that need exact control over the wire (bad input,
// the crash test) or must run in goroutines. Every method returns errors instead of failing
// the test, so they can be used off the test goroutine; the must* helpers wrap them.

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"petrel/internal/mailtest/dialog"
)

const ioTimeout = time.Minute

// smtpConn is one SMTP client connection.
type smtpConn struct{ *dialog.Conn }

// reply is one SMTP reply; Text holds every line's text joined with "\n".
type reply = dialog.Reply

// dialSMTP connects and reads the greeting.
func dialSMTP(addr string) (*smtpConn, reply, error) {
	c, err := net.DialTimeout("tcp", addr, ioTimeout)
	if err != nil {
		return nil, reply{}, err
	}
	return newSMTPConn(c)
}

// dialSMTPS connects with implicit TLS (port 465) and reads the greeting.
func dialSMTPS(addr string) (*smtpConn, reply, error) {
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: ioTimeout}, "tcp", addr, ca.tlsConfig())
	if err != nil {
		return nil, reply{}, err
	}
	return newSMTPConn(c)
}

func newSMTPConn(c net.Conn) (*smtpConn, reply, error) {
	s := &smtpConn{dialog.New(c, dialog.SMTP)}
	s.Timeout = ioTimeout
	rp, err := s.reply()
	if err != nil {
		c.Close()
		return nil, rp, err
	}
	return s, rp, nil
}

// reply reads one (possibly multi-line) reply.
func (s *smtpConn) reply() (reply, error) { return s.ReadSMTPReply() }

// write sends raw bytes.
func (s *smtpConn) write(b []byte) error { return s.WriteString(string(b)) }

// cmd sends one command line and reads the reply.
func (s *smtpConn) cmd(format string, args ...any) (reply, error) {
	if err := s.write([]byte(fmt.Sprintf(format, args...) + "\r\n")); err != nil {
		return reply{}, err
	}
	return s.reply()
}

// expect runs a command and checks the reply code.
func (s *smtpConn) expect(code int, format string, args ...any) (reply, error) {
	rp, err := s.cmd(format, args...)
	if err != nil {
		return rp, fmt.Errorf("%s: %w", fmt.Sprintf(format, args...), err)
	}
	if rp.Code != code {
		return rp, fmt.Errorf("%s: got %v, want %d", fmt.Sprintf(format, args...), rp, code)
	}
	return rp, nil
}

// starttls upgrades the connection; the caller sends EHLO again.
func (s *smtpConn) starttls() error {
	if _, err := s.expect(220, "STARTTLS"); err != nil {
		return err
	}
	return s.StartTLS(ca.tlsConfig())
}

// authPlain authenticates with AUTH PLAIN and an initial response (RFC 4954, RFC 4616).
func (s *smtpConn) authPlain(user, pass string) (reply, error) {
	return s.cmd("AUTH PLAIN %s", base64.StdEncoding.EncodeToString([]byte("\x00"+user+"\x00"+pass)))
}

// data sends DATA, the dot-stuffed message and the terminating dot, and returns the reply
// to the message (the 354 is checked).
func (s *smtpConn) data(msg []byte) (reply, error) {
	rp, err := s.cmd("DATA")
	if err != nil {
		return rp, err
	}
	if rp.Code != 354 {
		return rp, fmt.Errorf("DATA: got %v, want 354", rp)
	}
	return s.dataBody(msg)
}

// dataBody sends the body after a 354. msg must end with CRLF.
func (s *smtpConn) dataBody(msg []byte) (reply, error) {
	if err := s.write(append(dotStuff(msg), ".\r\n"...)); err != nil {
		return reply{}, err
	}
	return s.reply()
}

// dotStuff doubles a dot at the start of a line (RFC 5321 §4.5.2).
func dotStuff(msg []byte) []byte {
	var b bytes.Buffer
	for _, line := range bytes.SplitAfter(msg, []byte("\n")) {
		if bytes.HasPrefix(line, []byte(".")) {
			b.WriteByte('.')
		}
		b.Write(line)
	}
	return b.Bytes()
}

// sendMail delivers one message in a fresh session: EHLO, MAIL, RCPT..., DATA, QUIT. For
// submission ports give user and pass: it does STARTTLS (unless already TLS) and AUTH PLAIN.
func sendMail(addr string, implicitTLS bool, user, pass, from string, to []string, msg []byte) error {
	dial := dialSMTP
	if implicitTLS {
		dial = dialSMTPS
	}
	s, greet, err := dial(addr)
	if err != nil {
		return err
	}
	defer s.Close()
	if greet.Code != 220 {
		return fmt.Errorf("greeting %v", greet)
	}
	if _, err := s.expect(250, "EHLO client.example"); err != nil {
		return err
	}
	if user != "" {
		if !implicitTLS {
			if err := s.starttls(); err != nil {
				return err
			}
			if _, err := s.expect(250, "EHLO client.example"); err != nil {
				return err
			}
		}
		if rp, err := s.authPlain(user, pass); err != nil || rp.Code != 235 {
			return fmt.Errorf("AUTH PLAIN: %v %v", rp, err)
		}
	}
	if _, err := s.expect(250, "MAIL FROM:<%s>", from); err != nil {
		return err
	}
	for _, rcpt := range to {
		if _, err := s.expect(250, "RCPT TO:<%s>", rcpt); err != nil {
			return err
		}
	}
	rp, err := s.data(msg)
	if err != nil {
		return err
	}
	if rp.Code != 250 {
		return fmt.Errorf("after DATA: %v", rp)
	}
	_, err = s.expect(221, "QUIT")
	return err
}

// mustDeliver sends msg to the MX port from a remote sender.
func mustDeliver(t *testing.T, in *instance, to []string, msg []byte) {
	t.Helper()
	if err := sendMail(in.SMTP, false, "", "", "sender@remote.example", to, msg); err != nil {
		t.Fatalf("deliver to %v: %v", to, err)
	}
}

// pop3Conn is one POP3 client connection.
type pop3Conn struct{ *dialog.Conn }

// dialPOP3S connects with implicit TLS and reads the greeting.
func dialPOP3S(addr string) (*pop3Conn, string, error) {
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: ioTimeout}, "tcp", addr, ca.tlsConfig())
	if err != nil {
		return nil, "", err
	}
	return newPOP3Conn(c)
}

// dialPOP3 connects without TLS and reads the greeting.
func dialPOP3(addr string) (*pop3Conn, string, error) {
	c, err := net.DialTimeout("tcp", addr, ioTimeout)
	if err != nil {
		return nil, "", err
	}
	return newPOP3Conn(c)
}

func newPOP3Conn(c net.Conn) (*pop3Conn, string, error) {
	p := &pop3Conn{dialog.New(c, dialog.Lines)}
	p.Timeout = ioTimeout
	greet, err := p.line()
	if err != nil {
		c.Close()
		return nil, greet, err
	}
	if !strings.HasPrefix(greet, "+OK") {
		c.Close()
		return nil, greet, fmt.Errorf("greeting %q", greet)
	}
	return p, greet, nil
}

func (p *pop3Conn) line() (string, error) { return p.ReadLine() }

// cmd sends a command and returns the status line ("+OK ..." or "-ERR ...").
func (p *pop3Conn) cmd(format string, args ...any) (string, error) {
	if err := p.WriteLine(fmt.Sprintf(format, args...)); err != nil {
		return "", err
	}
	return p.line()
}

// ok runs a command that must succeed.
func (p *pop3Conn) ok(format string, args ...any) (string, error) {
	l, err := p.cmd(format, args...)
	if err != nil {
		return l, err
	}
	if !strings.HasPrefix(l, "+OK") {
		cmd := fmt.Sprintf(format, args...)
		if strings.HasPrefix(cmd, "PASS ") {
			cmd = "PASS ..."
		}
		return l, fmt.Errorf("%s: %s", cmd, l)
	}
	return l, nil
}

// multiline reads a multi-line response body up to the terminating dot, un-stuffed, with
// CRLF line endings as sent.
func (p *pop3Conn) multiline() ([]byte, error) {
	var b bytes.Buffer
	lineStart := true
	for {
		line, err := p.Reader().ReadSlice('\n')
		if err != nil && !errors.Is(err, bufio.ErrBufferFull) {
			return b.Bytes(), err
		}
		if lineStart && string(line) == ".\r\n" {
			return b.Bytes(), nil
		}
		if lineStart && line[0] == '.' {
			line = line[1:]
		}
		b.Write(line)
		lineStart = err == nil
	}
}

// login does USER/PASS.
func (p *pop3Conn) login(user, pass string) error {
	if _, err := p.ok("USER %s", user); err != nil {
		return err
	}
	_, err := p.ok("PASS %s", pass)
	return err
}

// stls upgrades a plain connection (RFC 2595 §4).
func (p *pop3Conn) stls() error {
	if _, err := p.ok("STLS"); err != nil {
		return err
	}
	return p.StartTLS(ca.tlsConfig())
}

// stat returns the message count.
func (p *pop3Conn) stat() (int, error) {
	l, err := p.ok("STAT")
	if err != nil {
		return 0, err
	}
	var n, size int
	if _, err := fmt.Sscanf(l, "+OK %d %d", &n, &size); err != nil {
		return 0, fmt.Errorf("STAT reply %q", l)
	}
	return n, nil
}

// retrAll retrieves every message of the maildrop.
func (p *pop3Conn) retrAll() ([][]byte, error) {
	n, err := p.stat()
	if err != nil {
		return nil, err
	}
	var msgs [][]byte
	for i := 1; i <= n; i++ {
		if _, err := p.ok("RETR %d", i); err != nil {
			return msgs, err
		}
		m, err := p.multiline()
		if err != nil {
			return msgs, err
		}
		msgs = append(msgs, m)
	}
	return msgs, nil
}

// fetchAll logs in over POP3S, retrieves every message, DELEs them all if dele, and QUITs.
func fetchAll(addr, user, pass string, dele bool) ([][]byte, error) {
	p, _, err := dialPOP3S(addr)
	if err != nil {
		return nil, err
	}
	defer p.Close()
	if err := p.login(user, pass); err != nil {
		return nil, err
	}
	msgs, err := p.retrAll()
	if err != nil {
		return msgs, err
	}
	if dele {
		for i := range msgs {
			if _, err := p.ok("DELE %d", i+1); err != nil {
				return msgs, err
			}
		}
	}
	_, err = p.ok("QUIT")
	return msgs, err
}

func mustFetchAll(t *testing.T, in *instance, user, pass string, dele bool) [][]byte {
	t.Helper()
	msgs, err := fetchAll(in.POP3S, user, pass, dele)
	if err != nil {
		t.Fatalf("POP3 fetch for %s: %v", user, err)
	}
	return msgs
}

// drain reads until EOF or the deadline; for checking that the server closed a connection.
func drain(c net.Conn, d time.Duration) ([]byte, error) {
	c.SetReadDeadline(time.Now().Add(d))
	return io.ReadAll(c)
}
