// Package dialog is the client side of a line-based mail protocol dialogue (SMTP, POP3, and
// IMAP later) for tests: send a line, expect a reply, see the server hang up. The smtpd and
// pop3d tests and the end-to-end tests all talk to servers through it.
//
// Conn returns errors, so it can be used off the test goroutine (load and crash tests);
// Dialog binds a Conn to a test and fails it on the first surprise, and plays transcripts a
// reviewer can read without Go (see Dialog.Run).
//
// It imports nothing of ours: the server packages import it from their own tests, and the
// mailtest package, which imports the servers, could not be.
package dialog

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Proto says what one reply is.
type Proto int

const (
	// SMTP replies are one or more lines, all but the last with a '-' after the code
	// (RFC 5321 §4.2.1).
	SMTP Proto = iota
	// Lines protocols (POP3, IMAP) are read a line at a time.
	Lines
)

// DefaultTimeout bounds every read and write of a Conn unless Timeout says otherwise: long
// enough for a loaded machine (CI runs at a load average of 30, where a reply that a
// verifier or a filter delays by a bound of its own can take well over 10 s), short enough
// that a hung server fails the test.
const DefaultTimeout = time.Minute

// Conn is the client side of one connection.
type Conn struct {
	nc    net.Conn
	r     *bufio.Reader
	proto Proto
	// Timeout bounds each read and each write.
	Timeout time.Duration
}

// New wraps a connected net.Conn.
func New(nc net.Conn, p Proto) *Conn {
	return &Conn{nc: nc, r: bufio.NewReader(nc), proto: p, Timeout: DefaultTimeout}
}

// Dial connects to addr over TCP.
func Dial(addr string, p Proto) (*Conn, error) {
	nc, err := net.DialTimeout("tcp", addr, DefaultTimeout)
	if err != nil {
		return nil, err
	}
	return New(nc, p), nil
}

// DialTLS connects to addr with TLS from the first byte (SMTPS, POP3S).
func DialTLS(addr string, p Proto, cfg *tls.Config) (*Conn, error) {
	nc, err := tls.DialWithDialer(&net.Dialer{Timeout: DefaultTimeout}, "tcp", addr, cfg)
	if err != nil {
		return nil, err
	}
	return New(nc, p), nil
}

// NetConn returns the connection underneath (a *tls.Conn after StartTLS).
func (c *Conn) NetConn() net.Conn { return c.nc }

// Reader returns the buffered reader replies are read from, for multi-line bodies.
func (c *Conn) Reader() *bufio.Reader {
	c.nc.SetReadDeadline(time.Now().Add(c.Timeout))
	return c.r
}

// Close closes the connection.
func (c *Conn) Close() error { return c.nc.Close() }

// WriteString sends s as it is.
func (c *Conn) WriteString(s string) error {
	c.nc.SetWriteDeadline(time.Now().Add(c.Timeout))
	_, err := io.WriteString(c.nc, s)
	return err
}

// WriteLine sends line and CRLF.
func (c *Conn) WriteLine(line string) error { return c.WriteString(line + "\r\n") }

// ReadLine reads one line and returns it without its CRLF; any other line ending is an error.
func (c *Conn) ReadLine() (string, error) {
	c.nc.SetReadDeadline(time.Now().Add(c.Timeout))
	line, err := c.r.ReadString('\n')
	if err != nil {
		if line != "" {
			return line, fmt.Errorf("%w (after %q)", err, line)
		}
		return "", err
	}
	if !strings.HasSuffix(line, "\r\n") {
		// Every protocol here ends lines with CRLF (RFC 5321 §2.3.8, RFC 1939 §3).
		return line, fmt.Errorf("line %q does not end with CRLF", line)
	}
	return line[:len(line)-2], nil
}

// ReadReply reads one reply: for SMTP every line of it (RFC 5321 §4.2.1), for Lines one line.
func (c *Conn) ReadReply() ([]string, error) {
	var lines []string
	for {
		line, err := c.ReadLine()
		if err != nil {
			return lines, err
		}
		lines = append(lines, line)
		if c.proto != SMTP || len(line) < 4 || line[3] != '-' {
			return lines, nil
		}
	}
}

// Reply is an SMTP reply: its code and its text, the lines joined with "\n".
type Reply struct {
	Code int
	Text string
}

func (r Reply) String() string { return fmt.Sprintf("%d %s", r.Code, r.Text) }

// ReadSMTPReply reads one SMTP reply and parses its code.
func (c *Conn) ReadSMTPReply() (Reply, error) {
	lines, err := c.ReadReply()
	if err != nil {
		return Reply{}, fmt.Errorf("reading reply: %w (got %q)", err, lines)
	}
	var r Reply
	texts := make([]string, 0, len(lines))
	for _, l := range lines {
		if len(l) < 3 {
			return r, fmt.Errorf("malformed reply %q", lines)
		}
		code, err := strconv.Atoi(l[:3])
		if err != nil || (r.Code != 0 && code != r.Code) {
			return r, fmt.Errorf("malformed reply %q", lines)
		}
		r.Code = code
		if len(l) > 4 { // the text follows the code and a ' ' or '-'
			texts = append(texts, l[4:])
		}
	}
	r.Text = strings.Join(texts, "\n")
	return r, nil
}

// StartTLS runs the client side of a TLS handshake on the connection (after the server's
// go-ahead to STARTTLS or STLS). Whatever was buffered before is dropped, as a client must
// (RFC 3207 §4.2).
func (c *Conn) StartTLS(cfg *tls.Config) error {
	tc := tls.Client(c.nc, cfg)
	tc.SetDeadline(time.Now().Add(c.Timeout))
	if err := tc.Handshake(); err != nil {
		return fmt.Errorf("TLS handshake: %w", err)
	}
	c.nc, c.r = tc, bufio.NewReader(tc)
	return nil
}

// WaitClosed waits until the server closes the connection and returns nil if it sent
// nothing more before that.
func (c *Conn) WaitClosed() error {
	c.nc.SetReadDeadline(time.Now().Add(c.Timeout))
	rest, err := io.ReadAll(c.r)
	if err != nil && !errors.Is(err, syscall.ECONNRESET) {
		return fmt.Errorf("waiting for the server to close: %w (read %q)", err, rest)
	}
	if len(rest) > 0 {
		return fmt.Errorf("want the connection closed, got %q", rest)
	}
	return nil
}

// Drip writes data one byte at a time, a pause of every before each, over and over, until
// stop is closed or a write fails (the server closed the connection): a slow client whose
// every single write is quick. It returns the number of bytes written.
func (c *Conn) Drip(stop <-chan struct{}, every time.Duration, data string) int {
	n := 0
	for {
		for i := range len(data) {
			select {
			case <-stop:
				return n
			case <-time.After(every):
			}
			if err := c.WriteString(data[i : i+1]); err != nil {
				return n
			}
			n++
		}
	}
}

// Log collects what a process or server under test writes to its log; safe for concurrent
// use, so a test can read what the server said about a dialogue while it goes on writing.
type Log struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *Log) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *Log) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// Take returns what was written since the last Take and forgets it, so that a loop (a fuzz
// target) that checks the log after every run reads each line once instead of the whole,
// ever longer log each time.
func (l *Log) Take() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := l.b.String()
	l.b.Reset()
	return s
}

// Dialog is a Conn bound to a test: every method fails the test on an error or a reply it
// did not expect. The connection is closed when the test ends.
type Dialog struct {
	*Conn
	t testing.TB
	// TLS is the client config for StartTLS and the STARTTLS transcript line.
	TLS *tls.Config
}

// Start binds c to t.
func Start(t testing.TB, c *Conn) *Dialog {
	t.Helper()
	t.Cleanup(func() { c.Close() })
	return &Dialog{Conn: c, t: t}
}

// DialTest connects to addr for t.
func DialTest(t testing.TB, addr string, p Proto) *Dialog {
	t.Helper()
	c, err := Dial(addr, p)
	if err != nil {
		t.Fatal(err)
	}
	return Start(t, c)
}

// Send sends line and CRLF.
func (d *Dialog) Send(line string) {
	d.t.Helper()
	if err := d.WriteLine(line); err != nil {
		d.t.Fatalf("send %q: %v", short(line), err)
	}
}

// Raw sends s as it is.
func (d *Dialog) Raw(s string) {
	d.t.Helper()
	if err := d.WriteString(s); err != nil {
		d.t.Fatalf("send %q: %v", short(s), err)
	}
}

// short cuts s for an error message.
func short(s string) string {
	if len(s) > 60 {
		return s[:60] + "..."
	}
	return s
}

// Line reads one line, without its line ending.
func (d *Dialog) Line() string {
	d.t.Helper()
	l, err := d.ReadLine()
	if err != nil {
		d.t.Fatalf("read: %v", err)
	}
	return l
}

// Expect reads one reply and returns its lines. For SMTP the last line must start with
// want (a code, or more of the line); for Lines the line must be want exactly.
func (d *Dialog) Expect(want string) []string {
	d.t.Helper()
	lines, err := d.ReadReply()
	if err != nil {
		d.t.Fatalf("reading reply (want %q): %v (got %q)", want, err, lines)
	}
	if !d.matches(lines, want) {
		d.t.Fatalf("reply %q, want %q", lines, want)
	}
	return lines
}

// ExpectUntil reads replies that match repeated, as Expect checks them, until one does not;
// that one must match final. For a client that keeps sending the same command until the
// server has had enough; a server that never has enough fails the test after Timeout.
func (d *Dialog) ExpectUntil(repeated, final string) {
	d.t.Helper()
	for end := time.Now().Add(d.Timeout); ; {
		if time.Now().After(end) {
			d.t.Fatalf("still %q after %v, want %q", repeated, d.Timeout, final)
		}
		lines, err := d.ReadReply()
		if err != nil {
			d.t.Fatalf("reading reply (want %q, then %q): %v (got %q)", repeated, final, err, lines)
		}
		if d.matches(lines, repeated) {
			continue
		}
		if !d.matches(lines, final) {
			d.t.Fatalf("reply %q, want %q until %q", lines, repeated, final)
		}
		return
	}
}

// matches checks a reply as Expect does.
func (d *Dialog) matches(lines []string, want string) bool {
	last := lines[len(lines)-1]
	if d.proto == SMTP {
		return strings.HasPrefix(last, want)
	}
	return last == want
}

// ExpectClosed fails the test unless the server closes the connection without another word.
func (d *Dialog) ExpectClosed() {
	d.t.Helper()
	if err := d.WaitClosed(); err != nil {
		d.t.Fatal(err)
	}
}

// StartTLS runs the client side of TLS with d.TLS.
func (d *Dialog) StartTLS() {
	d.t.Helper()
	if d.TLS == nil {
		d.t.Fatal("StartTLS: Dialog.TLS is not set")
	}
	if err := d.Conn.StartTLS(d.TLS); err != nil {
		d.t.Fatal(err)
	}
}

// StartDrip drips data (see Conn.Drip) from another goroutine until the server closes the
// connection or the test ends, while the test reads the replies.
func (d *Dialog) StartDrip(every time.Duration, data string) {
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		d.Drip(stop, every, data)
	}()
	d.t.Cleanup(func() {
		close(stop)
		<-done
	})
}

// Run plays a transcript, one step per line (leading blanks and lines starting with # are
// ignored):
//
//	C: text      send text and CRLF ("C:" alone sends an empty line)
//	R: text      send text raw, Go escapes (\r \n \x00) interpreted, nothing appended
//	S: text      read one reply and check it as Expect does ("S:" alone: an empty line)
//	CLOSED       the server must close the connection without another word
//	STARTTLS     start the client side of TLS (d.TLS)
func (d *Dialog) Run(script string) {
	d.t.Helper()
	for _, line := range strings.Split(strings.TrimSpace(script), "\n") {
		line = strings.TrimLeft(line, " \t")
		switch {
		case line == "" || strings.HasPrefix(line, "#"):
		case line == "C:" || strings.HasPrefix(line, "C: "):
			d.Send(strings.TrimPrefix(line[2:], " "))
		case strings.HasPrefix(line, "R: "):
			s, err := strconv.Unquote(`"` + line[3:] + `"`)
			if err != nil {
				d.t.Fatalf("bad R: line %q: %v", line, err)
			}
			d.Raw(s)
		case line == "S:" || strings.HasPrefix(line, "S: "):
			d.Expect(strings.TrimPrefix(line[2:], " "))
		case line == "CLOSED":
			d.ExpectClosed()
		case line == "STARTTLS":
			d.StartTLS()
		default:
			d.t.Fatalf("bad transcript line %q", line)
		}
	}
}
