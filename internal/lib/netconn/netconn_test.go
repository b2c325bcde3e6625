package netconn

import (
	"errors"
	"net"
	"os"
	"testing"
	"time"
)

func TestWaitReadable(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	client, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	server, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer server.Close()
	rc := RawConn(server)
	if rc == nil {
		t.Fatal("no raw conn under a TCP conn")
	}
	if got := RemoteAddr(server); got != client.LocalAddr().(*net.TCPAddr).AddrPort().Addr() {
		t.Errorf("RemoteAddr = %v", got)
	}
	// Nothing sent: the wait ends with the deadline.
	server.SetReadDeadline(time.Now().Add(10 * time.Millisecond))
	if err := WaitReadable(rc); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("wait without input: %v", err)
	}
	// Input: the wait ends, and the input is still there to read.
	server.SetReadDeadline(time.Time{})
	if _, err := (&DeadlineWriter{Conn: client, Timeout: time.Second}).Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	if err := WaitReadable(rc); err != nil {
		t.Fatal(err)
	}
	var b [1]byte
	if n, err := server.Read(b[:]); n != 1 || b[0] != 'x' || err != nil {
		t.Fatalf("read after wait: %d %q %v", n, b[:n], err)
	}
}
