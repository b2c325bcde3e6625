package smtpd

import (
	"fmt"
	"net"
	"petrel/internal/mailtest/dialog"
	"strings"
	"sync"
	"testing"
)

// These tests hold the DATA reader (go-smtp's, patched in third_party/go-smtp to copy
// buffered runs instead of reading a byte at a time) to the rules of RFC 5321 §4.5.2 and
// §2.3.8 wherever the server's reads split the message: the body ends only at CRLF "." CRLF,
// one leading dot is removed from every other line, bare CR and LF are refused, and the bytes
// after the end marker are read as the next command.
//
// The server runs on net.Pipe connections: a client Write returns only once the server has
// read all of it, and no server read returns bytes of two writes. Each piece the client
// writes is therefore read apart from the next one (in smaller reads, when it is longer
// than the server's 4096-byte buffer), so a test chooses where the reads split.

// pipeListener hands the server ends of net.Pipe connections to Serve.
type pipeListener struct {
	conns  chan net.Conn
	closed chan struct{}
	once   sync.Once
}

func newPipeListener() *pipeListener {
	return &pipeListener{conns: make(chan net.Conn), closed: make(chan struct{})}
}

func (l *pipeListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.closed:
		return nil, net.ErrClosed
	}
}

func (l *pipeListener) Close() error {
	l.once.Do(func() { close(l.closed) })
	return nil
}

func (l *pipeListener) Addr() net.Addr { return pipeAddr{} }

type pipeAddr struct{}

func (pipeAddr) Network() string { return "pipe" }
func (pipeAddr) String() string  { return "pipe" }

// dial connects a client to the server behind l.
func (l *pipeListener) dial(t testing.TB) *dialog.Dialog {
	t.Helper()
	cc, sc := net.Pipe()
	select {
	case l.conns <- sc:
	case <-l.closed:
		t.Fatal("listener closed")
	}
	return dialog.Start(t, dialog.New(cc, dialog.SMTP))
}

// startPipeServer runs an MX server on net.Pipe connections and returns a connected client
// that has said EHLO.
func startPipeServer(t *testing.T, cfg Config) (*testServer, *dialog.Dialog) {
	l := newPipeListener()
	ts := serveOn(t, l, cfg, nil)
	c := l.dial(t)
	c.Run(`
		S: 220
		C: EHLO client.example.org
		S: 250
	`)
	return ts, c
}

// sendData starts a transaction and writes wire (the body with its end marker and anything
// after it) in pieces cut at the given offsets, each piece read by the server before the
// next is written. The pieces are written from another goroutine, since a pipe holds no
// bytes: the server answers the message before it reads the command after it, and that
// reply must be read while the rest is being written. The channel gives the first write
// error (or nil) once all pieces are written.
func sendData(c *dialog.Dialog, wire string, cuts ...int) <-chan error {
	c.Run(`
		C: MAIL FROM:<a@elsewhere.example>
		S: 250
		C: RCPT TO:<alice@example.test>
		S: 250
		C: DATA
		S: 354
	`)
	done := make(chan error, 1)
	go func() {
		prev := 0
		for _, cut := range append(cuts, len(wire)) {
			if cut > prev {
				if _, err := c.NetConn().Write([]byte(wire[prev:cut])); err != nil {
					done <- err
					return
				}
				prev = cut
			}
		}
		done <- nil
	}()
	return done
}

// unstuff is the message a well-formed DATA body carries (RFC 5321 §4.5.2): the text up to
// the line ".", with one leading dot removed from every line that has one. wire must end
// lines with CRLF only.
func unstuff(t *testing.T, wire string) string {
	t.Helper()
	var b strings.Builder
	for _, line := range strings.SplitAfter(wire, "\r\n") {
		if line == ".\r\n" {
			return b.String()
		}
		b.WriteString(strings.TrimPrefix(line, "."))
	}
	t.Fatalf("no end marker in %q", wire)
	return ""
}

// withoutTrace returns a stored body without the Return-Path and Received headers that
// the session writes ahead of the message (see writeTrace).
func withoutTrace(t *testing.T, body string) string {
	t.Helper()
	i := strings.Index(body, "\r\nReceived: ")
	if !strings.HasPrefix(body, "Return-Path: ") || i < 0 {
		t.Fatalf("no trace headers in %q", body)
	}
	rest := body[i+2:]
	for {
		j := strings.Index(rest, "\r\n")
		if j < 0 {
			t.Fatalf("trace headers do not end in %q", body)
		}
		rest = rest[j+2:]
		if !strings.HasPrefix(rest, "\t") { // the Received header's continuation lines
			return rest
		}
	}
}

// expectDelivered reads the 250 for a message sent by sendData and checks that the last
// delivery is the unstuffed wire, and that the bytes after the end marker (a NOOP) were
// read as a command.
func expectDelivered(t *testing.T, ts *testServer, c *dialog.Dialog, written <-chan error, wire, desc string) {
	t.Helper()
	c.Expect("250 2.0.0 OK")
	c.Expect("250 2.0.0 I have successfully done nothing")
	if err := <-written; err != nil {
		t.Fatalf("%s: %v", desc, err)
	}
	msgs := ts.fd.delivered()
	if len(msgs) == 0 {
		t.Fatalf("%s: nothing delivered", desc)
	}
	if got, want := withoutTrace(t, msgs[len(msgs)-1].body), unstuff(t, wire); got != want {
		t.Fatalf("%s: stored %q, want %q", desc, got, want)
	}
}

// dotBodies are well-formed bodies with dots in every place a line can have them.
var dotBodies = []string{
	"Subject: dots\r\n\r\n.leading\r\n..two\r\n...\r\n..\r\nend\r\n.\r\n",
	".\r\n", // the empty message
	"..\r\n.\r\n",
	"a\r\n.\r\n",
	"\r\n\r\n.\r\n",
	"x.\r\n.x\r\ny.z.\r\n\r\n.\r\n", // dots inside and at the end of lines
}

// TestDataSplitEverywhere splits each body, and the marker after it, at every offset and at
// every pair of offsets in the last 12 bytes: "\r\n.\r\n" and the NOOP behind it are cut in
// every way into three reads.
func TestDataSplitEverywhere(t *testing.T) {
	ts, c := startPipeServer(t, Config{})
	for _, body := range dotBodies {
		wire := body + "NOOP\r\n"
		for i := 0; i <= len(wire); i++ {
			w := sendData(c, wire, i)
			expectDelivered(t, ts, c, w, wire, fmt.Sprintf("%q cut at %d", wire, i))
		}
		tail := max(0, len(wire)-12)
		for i := tail; i <= len(wire); i++ {
			for j := i + 1; j <= len(wire); j++ {
				w := sendData(c, wire, i, j)
				expectDelivered(t, ts, c, w, wire, fmt.Sprintf("%q cut at %d and %d", wire, i, j))
			}
		}
	}
}

// TestDataDotsAtBufferEdges sends bodies longer than the server's 4096-byte read buffer, in
// one write, made of short lines that start with dots; shifting them by 0-5 bytes puts
// every byte of a line ("..", "...", CR, LF) at the buffer's edges.
func TestDataDotsAtBufferEdges(t *testing.T) {
	ts, c := startPipeServer(t, Config{})
	lines := strings.Repeat("..\r\n...\r\n.a\r\n\r\n", 700) // ~10 KB
	for shift := range 6 {
		wire := strings.Repeat("s", shift) + "\r\n" + lines + ".\r\nNOOP\r\n"
		w := sendData(c, wire)
		expectDelivered(t, ts, c, w, wire, fmt.Sprintf("shift %d", shift))
	}
}

// TestDataLongLines sends lines longer than the server's read buffer, split into pieces of
// several sizes, and checks the line limit exactly: a line of limit-2 bytes plus CRLF is the
// longest accepted (go-smtp counts the LF before a line as its first byte).
func TestDataLongLines(t *testing.T) {
	const limit = 12000
	ts, c := startPipeServer(t, Config{MaxLineLength: limit})
	long := strings.Repeat("0123456789", limit/10)
	wire := "." + long[:9000] + "\r\n" + long[:limit-2] + "\r\n..\r\n" + long[:5000] + ".\r\n.\r\nNOOP\r\n"
	for _, step := range []int{1000, 4095, 4096, 4097, 9999} {
		var cuts []int
		for i := step; i < len(wire); i += step {
			cuts = append(cuts, i)
		}
		w := sendData(c, wire, cuts...)
		expectDelivered(t, ts, c, w, wire, fmt.Sprintf("pieces of %d", step))
	}

	// One byte more and the line is refused; go-smtp then ends the session (so the client
	// may find the connection closed before it has written everything).
	n := len(ts.fd.delivered())
	w := sendData(c, long[:limit-1]+"\r\n.\r\n", 4096)
	c.Expect("500 5.5.2 line too long")
	c.Expect("500")
	c.ExpectClosed()
	<-w
	if len(ts.fd.delivered()) != n {
		t.Fatal("a message with an over-long line was delivered")
	}
}

// TestDataBareLineEndingsSplit cuts the smuggling shapes of TestBareLineEndings at every
// offset: wherever the reads split, a bare CR or LF never ends DATA, the message is refused,
// and the NOOP after the real end gets its own reply.
func TestDataBareLineEndingsSplit(t *testing.T) {
	ts, c := startPipeServer(t, Config{})
	smuggled := "MAIL FROM:<evil@elsewhere.example>\r\nRCPT TO:<bob@example.test>\r\nDATA\r\nx\r\n"
	for _, wire := range []string{
		"a\n.\r\n" + smuggled + ".\r\nNOOP\r\n",
		"a\r\n.\n" + smuggled + ".\r\nNOOP\r\n",
		"a\r.\r\n" + smuggled + ".\r\nNOOP\r\n",
		"a\n.\n" + smuggled + ".\r\nNOOP\r\n",
		"a\r\n\n.\r\n" + smuggled + ".\r\nNOOP\r\n",
		"cr\r\r\n.\r\n" + smuggled + ".\r\nNOOP\r\n",
	} {
		for i := 0; i <= len(wire); i++ {
			w := sendData(c, wire, i)
			c.Expect("554 5.6.0 bare LF/CR not allowed")
			c.Expect("250 2.0.0 I have successfully done nothing")
			if err := <-w; err != nil {
				t.Fatalf("%q cut at %d: %v", wire, i, err)
			}
		}
	}
	if msgs := ts.fd.delivered(); len(msgs) != 0 {
		t.Fatalf("%d messages with bare line endings delivered: %q", len(msgs), msgs[0].body)
	}
}
