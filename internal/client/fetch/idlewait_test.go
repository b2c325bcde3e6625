package fetch

import (
	"bufio"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
)

// TestLineModeHandover: in line mode a reader above imapConn (go-imap's bufio) is given at
// most one line per read, so when it has taken a line it holds nothing after it: what the
// server sent after that line is still in imapConn's buffer for the wait, and what the wait
// did not read goes to the next client after its greeting.
func TestLineModeHandover(t *testing.T) {
	client, server := net.Pipe()
	defer client.Close()
	go func() {
		// One write: a client reading 4 KB at a time would take all of it at once.
		io.WriteString(server, "* 3 EXISTS\r\nA1 OK NOOP done\r\n* 4 EXISTS\r\n* 5 EXI")
		io.WriteString(server, "STS\r\n")
	}()
	c := &imapConn{Conn: client}
	c.lineMode.Store(true)
	above := bufio.NewReaderSize(c, 4096)
	for _, want := range []string{"* 3 EXISTS\r\n", "A1 OK NOOP done\r\n"} {
		line, err := above.ReadString('\n')
		if err != nil || line != want {
			t.Fatalf("client read %q, %v; want %q", line, err, want)
		}
	}
	if above.Buffered() != 0 {
		t.Fatalf("the client holds %d bytes past its last line", above.Buffered())
	}
	c.detached.Store(true)
	if _, err := above.ReadByte(); !errors.Is(err, errDetached) {
		t.Fatalf("read after detach: %v, want errDetached", err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	line, err := readResponse(c.lr)
	if err != nil || line != "* 4 EXISTS" {
		t.Fatalf("wait read %q, %v", line, err)
	}
	// The next client: the greeting first, then the rest of what was buffered, then the wire.
	c.prefix = []byte("* PREAUTH hi\r\n")
	c.lineMode.Store(false)
	c.detached.Store(false)
	next := bufio.NewReader(c)
	for _, want := range []string{"* PREAUTH hi\r\n", "* 5 EXISTS\r\n"} {
		line, err := next.ReadString('\n')
		if err != nil || line != want {
			t.Fatalf("next client read %q, %v; want %q", line, err, want)
		}
	}
}

func TestReadResponse(t *testing.T) {
	in := "* 2 FETCH (BODY[HEADER] {12}\r\nSubject: x\r\n FLAGS (\\Seen))\r\n" +
		"* 7 EXISTS\r\n" + "* OK " + strings.Repeat("x", 3000) + "\r\n" + "PI1 OK done\r\n"
	br := bufio.NewReaderSize(strings.NewReader(in), 16)
	want := []string{"* 2 FETCH (BODY[HEADER] {12}{…} FLAGS (\\Seen))", "* 7 EXISTS", "* OK " + strings.Repeat("x", 3000), "PI1 OK done"}
	for _, w := range want {
		got, err := readResponse(br)
		if err != nil || got != w {
			t.Fatalf("readResponse = %.60q, %v; want %.60q", got, err, w)
		}
	}
	if _, err := readResponse(br); err != io.EOF {
		t.Fatalf("at the end: %v", err)
	}
	long := bufio.NewReaderSize(strings.NewReader(strings.Repeat("x", maxIdleLine+1)+"\r\n"), 16)
	if _, err := readResponse(long); err == nil {
		t.Fatal("an over-long line was accepted")
	}
}

func TestClassify(t *testing.T) {
	for _, c := range []struct {
		line string
		kind int
		ok   bool
	}{
		{"+ idling", respContinue, false},
		{"+", respContinue, false},
		{"* 12 EXISTS", respExists, false},
		{"* 12 exists", respExists, false},
		{"* x EXISTS", respOther, false},
		{"* 3 EXPUNGE", respOther, false},
		{"* OK Still here", respOther, false},
		{"* BYE shutting down", respBye, false},
		{"PI2 OK IDLE terminated", respTagged, true},
		{"PI2 ok", respTagged, true},
		{"PI2 BAD no", respTagged, false},
		{"PI20 OK other tag", respOther, false},
		{"STS", respOther, false},
	} {
		kind, ok := classify(c.line, "PI2")
		if kind != c.kind || ok != c.ok {
			t.Errorf("classify(%q) = %d, %v; want %d, %v", c.line, kind, ok, c.kind, c.ok)
		}
	}
}

func TestLiteralSize(t *testing.T) {
	for in, want := range map[string]int64{"a {5}": 5, "a {5+}": 5, "{0}": 0, "a {x}": -1, "a }": -1, "a {-1}": -1, "a {5} b": -1} {
		n, ok := literalSize([]byte(in))
		if !ok {
			n = -1
		}
		if n != want {
			t.Errorf("literalSize(%q) = %d, want %d", in, n, want)
		}
	}
}
