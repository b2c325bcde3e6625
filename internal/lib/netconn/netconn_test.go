package netconn

import (
	"bufio"
	"errors"
	"net"
	"os"
	"sync"
	"testing"
	"time"
)

func TestWaitReadable(t *testing.T) {
	client, server := tcpPair(t)
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

type deadlineFunc func(time.Duration) error

func (f deadlineFunc) SetReadTimeout(d time.Duration) error { return f(d) }

// Input.Wait waits in a read first, then gives its buffer back (ErrMoveOn) and waits on the
// socket; input that comes then is in a fresh buffer.
func TestInputWait(t *testing.T) {
	client, server := tcpPair(t)
	pool := &sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 16) }}
	in := NewInput(server, pool)
	dl := deadlineFunc(func(d time.Duration) error { return server.SetReadDeadline(time.Now().Add(d)) })
	if err := in.Wait(time.Minute, 10*time.Millisecond, dl); !errors.Is(err, ErrMoveOn) {
		t.Fatalf("first wait: %v", err)
	}
	if in.rd != nil {
		t.Error("the buffer is still held after ErrMoveOn")
	}
	client.Write([]byte("x\n"))
	if err := in.Wait(time.Minute, 10*time.Millisecond, dl); err != nil {
		t.Fatal(err)
	}
	if line, err := in.Reader().ReadString('\n'); line != "x\n" || err != nil {
		t.Fatalf("read after wait: %q %v", line, err)
	}
	// Input buffered already: no wait.
	client.Write([]byte("y\n"))
	if err := in.Wait(time.Minute, 10*time.Millisecond, dl); err != nil || in.Buffered() == 0 {
		t.Fatalf("wait with input: %v, %d buffered", err, in.Buffered())
	}
	in.SetConn(server) // drops what was buffered
	if in.Buffered() != 0 {
		t.Error("SetConn kept the buffer")
	}
}

// tcpPair returns both ends of a TCP connection on loopback, closed when the test ends.
func tcpPair(t *testing.T) (client, server net.Conn) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	client, err = net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	server, err = l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { server.Close() })
	return client, server
}
