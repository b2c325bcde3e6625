package dialog

import (
	"fmt"
	"net"
	"testing"
)

// peer returns a Conn whose server side sends out and then hangs up.
func peer(t *testing.T, p Proto, out string) *Conn {
	client, server := net.Pipe()
	go func() {
		server.Write([]byte(out))
		server.Close()
	}()
	t.Cleanup(func() { client.Close() })
	return New(client, p)
}

func TestReadSMTPReply(t *testing.T) {
	r, err := peer(t, SMTP, "250-mx.example greets you\r\n250-SIZE 100\r\n250 HELP\r\n").ReadSMTPReply()
	if err != nil || r.Code != 250 || r.Text != "mx.example greets you\nSIZE 100\nHELP" {
		t.Errorf("reply = %+v, %v", r, err)
	}
	for _, bad := range []string{"250-a\r\n251 b\r\n", "25\r\n", "abc def\r\n", "250 no line end"} {
		if r, err := peer(t, SMTP, bad).ReadSMTPReply(); err == nil {
			t.Errorf("%q read as %+v", bad, r)
		}
	}
}

// Servers must end lines with CRLF: a bare LF is an error, not a line.
func TestReadLineWantsCRLF(t *testing.T) {
	c := peer(t, Lines, "+OK\r\n+OK\n")
	if l, err := c.ReadLine(); err != nil || l != "+OK" {
		t.Errorf("first line = %q, %v", l, err)
	}
	if l, err := c.ReadLine(); err == nil {
		t.Errorf("line with a bare LF read as %q", l)
	}
}

func TestWaitClosed(t *testing.T) {
	if err := peer(t, Lines, "").WaitClosed(); err != nil {
		t.Errorf("silent close: %v", err)
	}
	if err := peer(t, Lines, "-ERR bye\r\n").WaitClosed(); err == nil {
		t.Error("a last word before the close went unnoticed")
	}
}

func TestLogTake(t *testing.T) {
	var l Log
	fmt.Fprint(&l, "one ")
	fmt.Fprint(&l, "two")
	if got := l.Take(); got != "one two" {
		t.Fatalf("Take = %q", got)
	}
	fmt.Fprint(&l, "three")
	if got := l.Take(); got != "three" {
		t.Fatalf("second Take = %q, want only what came after the first", got)
	}
	if l.String() != "" {
		t.Fatalf("String after Take = %q", l.String())
	}
}
