// Package connlimit bounds how many connections a listener serves, in total and per client
// address, so that a flood from one address leaves the others served.
//
// A connection over a limit is handed to the listener's Reject function (which may write a
// protocol-specific "try later" line) and closed; Accept never returns it, so protocol servers
// never see it.
package connlimit

import (
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
)

// Listener wraps a net.Listener with connection limits.
type Listener struct {
	net.Listener
	max, maxPerIP int
	// reject answers a refused connection before it is closed; nil closes silently.
	reject func(net.Conn)
	rate   *rateLimiter // new connections per client address; nil: no limit (rate.go)

	accepted atomic.Uint64 // connections returned by Accept, ever
	closed   atomic.Uint64 // of those, connections closed

	mu    sync.Mutex
	total int
	perIP map[netip.Addr]int
}

// New limits l to max connections in total and maxPerIP per client IP address (IPv6 clients
// are grouped by /64, since one host usually owns a whole /64).
func New(l net.Listener, max, maxPerIP int, reject func(net.Conn)) *Listener {
	return &Listener{Listener: l, max: max, maxPerIP: maxPerIP, reject: reject, perIP: map[netip.Addr]int{}}
}

// LimitRate adds a limit on how often one client address may connect (see Rate). Call it
// before the first Accept.
func (l *Listener) LimitRate(r Rate) {
	if r.N > 0 {
		l.rate = newRateLimiter(r)
	}
}

// Accept returns the next connection within the limits.
func (l *Listener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		key := clientKey(c.RemoteAddr())
		if (l.rate == nil || l.rate.allow(key)) && l.acquire(key) {
			l.accepted.Add(1)
			return &conn{Conn: c, release: func() { l.release(key) }}, nil
		}
		// Refusing must not block Accept: a slow refused client would stall everyone else.
		go func() {
			if l.reject != nil {
				l.reject(c)
			}
			c.Close()
		}()
	}
}

// Counts reports the open connections in total and for one client address.
func (l *Listener) Counts(addr net.Addr) (total, fromAddr int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.total, l.perIP[clientKey(addr)]
}

// Accepted reports how many connections Accept has returned so far.
func (l *Listener) Accepted() uint64 {
	return l.accepted.Load()
}

// Closed reports how many of the connections Accept returned have been closed so far.
func (l *Listener) Closed() uint64 {
	return l.closed.Load()
}

func (l *Listener) acquire(key netip.Addr) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.total >= l.max || l.perIP[key] >= l.maxPerIP {
		return false
	}
	l.total++
	l.perIP[key]++
	return true
}

func (l *Listener) release(key netip.Addr) {
	l.closed.Add(1)
	l.mu.Lock()
	defer l.mu.Unlock()
	l.total--
	if l.perIP[key]--; l.perIP[key] <= 0 {
		delete(l.perIP, key)
	}
}

func clientKey(a net.Addr) netip.Addr {
	ap, err := netip.ParseAddrPort(a.String())
	if err != nil {
		return netip.Addr{}
	}
	ip := ap.Addr().Unmap()
	if ip.Is6() {
		p, _ := ip.Prefix(64)
		return p.Addr()
	}
	return ip
}

// conn releases its slot exactly once, on the first Close.
type conn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *conn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}

// NetConn returns the wrapped connection, as tls.Conn's method of that name does, so that a
// server can reach the socket underneath (pop3d waits for input on it without a buffer). Close
// this conn, not the one returned, or the slot is never released.
func (c *conn) NetConn() net.Conn {
	return c.Conn
}
