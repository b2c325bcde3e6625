package deadline

import (
	"errors"
	"net"
	"os"
	"testing"
	"time"
)

func TestReadTimesOut(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		c, err := l.Accept()
		if err == nil {
			time.Sleep(2 * time.Second) // a server that never answers
			c.Close()
		}
	}()
	raw, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	c := Conn{Conn: raw, Timeout: 50 * time.Millisecond}
	if _, err := c.Write([]byte("hello\r\n")); err != nil {
		t.Fatal(err)
	}
	_, err = c.Read(make([]byte, 10))
	// Without the deadline the read would end in EOF when the server closes: the error
	// itself says the deadline ended it, however slow the machine is.
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read: %v, want a deadline error", err)
	}
}
