package connlimit

import (
	"bufio"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"
)

func TestPerIPAndTotal(t *testing.T) {
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := New(raw, 3, 2, func(c net.Conn) { c.Write([]byte("busy\r\n")) })
	defer l.Close()
	accepted := make(chan net.Conn, 10)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			accepted <- c
		}
	}()
	dial := func(src string) net.Conn {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 2 * time.Second}
		c, err := d.Dial("tcp", raw.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	expectServed := func() net.Conn {
		select {
		case c := <-accepted:
			return c
		case <-time.After(2 * time.Second):
			t.Fatal("connection within limits was not accepted")
		}
		return nil
	}
	expectRefused := func(c net.Conn) {
		c.SetReadDeadline(time.Now().Add(2 * time.Second))
		line, err := bufio.NewReader(c).ReadString('\n')
		if err != nil || !strings.HasPrefix(line, "busy") {
			t.Fatalf("refused connection got %q, %v", line, err)
		}
	}
	a1, a2 := dial("127.0.0.1"), dial("127.0.0.1")
	s1, _ := expectServed(), expectServed()
	expectRefused(dial("127.0.0.1")) // third from the same address
	dial("127.0.0.2")                // another address is still served
	expectServed()
	expectRefused(dial("127.0.0.3")) // total limit reached
	// Closing a served connection frees its slot.
	s1.Close()
	a1.Close()
	time.Sleep(50 * time.Millisecond)
	dial("127.0.0.1")
	expectServed()
	_ = a2
}

func TestCountersAndNetConn(t *testing.T) {
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := New(raw, 10, 10, nil)
	defer l.Close()
	for i := range 3 {
		c, err := net.Dial("tcp", raw.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		s, err := l.Accept()
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		if got := l.Accepted(); got != uint64(i+1) {
			t.Errorf("Accepted() = %d after %d connections", got, i+1)
		}
		u, ok := s.(interface{ NetConn() net.Conn })
		if !ok {
			t.Fatal("accepted conn has no NetConn method")
		}
		if _, ok := u.NetConn().(*net.TCPConn); !ok {
			t.Errorf("NetConn() = %T, want *net.TCPConn", u.NetConn())
		}
		s.Close()
		s.Close() // counted once
		if got := l.Closed(); got != uint64(i+1) {
			t.Errorf("Closed() = %d after closing %d connections", got, i+1)
		}
	}
}

func TestRate(t *testing.T) {
	now := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	r := newRateLimiter(Rate{N: 3, Per: time.Minute, Now: func() time.Time { return now }})
	a, b := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.2")
	for i := range 3 {
		if !r.allow(a) {
			t.Fatalf("connection %d of a burst of 3 refused", i+1)
		}
	}
	if r.allow(a) {
		t.Error("fourth connection in the same instant allowed")
	}
	if !r.allow(b) {
		t.Error("another address refused")
	}
	now = now.Add(20 * time.Second) // one token back
	if !r.allow(a) || r.allow(a) {
		t.Error("after 20 s exactly one more connection should be allowed")
	}
}

func TestRateOnListener(t *testing.T) {
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := New(raw, 100, 100, func(c net.Conn) { c.Write([]byte("slow down\r\n")) })
	l.LimitRate(Rate{N: 2, Per: time.Hour})
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Write([]byte("hello\r\n"))
			c.Close()
		}
	}()
	for i, want := range []string{"hello", "hello", "slow down"} {
		c, err := net.Dial("tcp", raw.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(10 * time.Second))
		line, err := bufio.NewReader(c).ReadString('\n')
		c.Close()
		if strings.TrimSpace(line) != want {
			t.Errorf("connection %d: %q, %v; want %q", i+1, line, err, want)
		}
	}
}
