// Package netconn holds what the protocol servers (pop3d, imapd) do alike with an accepted
// connection: wait for input without holding a buffer, write with a deadline per write, and
// name the client's address.
package netconn

import (
	"errors"
	"net"
	"net/netip"
	"syscall"
	"time"
)

// RawConn returns the socket under c, unwrapping connections that wrap another through a
// NetConn method (tls.Conn, connlimit's conn), or nil if there is none: a session then waits
// in a blocking read, holding its buffer, as any Go server does.
func RawConn(c net.Conn) syscall.RawConn {
	for {
		switch v := c.(type) {
		case syscall.Conn:
			rc, err := v.SyscallConn()
			if err != nil {
				return nil
			}
			return rc
		case interface{ NetConn() net.Conn }:
			c = v.NetConn()
		default:
			return nil
		}
	}
}

// WaitReadable blocks until rc has input, has reached end of file or has failed, or until the
// read deadline set on its connection passes. It consumes nothing: a non-consuming MSG_PEEK,
// then the runtime's poller, so the waiting goroutine needs no buffer and few stack frames.
func WaitReadable(rc syscall.RawConn) error {
	return rc.Read(func(fd uintptr) bool {
		var b [1]byte
		_, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		// Anything but "no input yet" (data, EOF, an error) is for the real read to report.
		return !errors.Is(err, syscall.EAGAIN)
	})
}

// DeadlineWriter sets a write deadline of Timeout before every write to Conn (a buffered
// writer flushes through it, so a long response gets a fresh deadline per buffer).
type DeadlineWriter struct {
	Conn    net.Conn
	Timeout time.Duration
}

func (w *DeadlineWriter) Write(p []byte) (int, error) {
	if err := w.Conn.SetWriteDeadline(time.Now().Add(w.Timeout)); err != nil {
		return 0, err
	}
	return w.Conn.Write(p)
}

// RemoteAddr returns the client's IP address, unmapped, or the zero Addr if c has none.
func RemoteAddr(c net.Conn) netip.Addr {
	if ta, ok := c.RemoteAddr().(*net.TCPAddr); ok {
		return ta.AddrPort().Addr().Unmap()
	}
	if c.RemoteAddr() != nil {
		if ap, err := netip.ParseAddrPort(c.RemoteAddr().String()); err == nil {
			return ap.Addr().Unmap()
		}
	}
	return netip.Addr{}
}
