package load

import (
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"time"

	"github.com/emersion/go-smtp"
)

// Sink is an SMTP server that accepts every message and counts it: the far
// side of a relay benchmark (scenario "sink"), standing in for the remote MX
// that Petrel's queue or Postfix delivers to. It offers PIPELINING, 8BITMIME
// and SMTPUTF8, no TLS (a relay falls back to plaintext on a loopback MX,
// which is what the benchmark compares), and keeps nothing but counts.
type Sink struct {
	srv *smtp.Server
	l   net.Listener

	mu       sync.Mutex
	messages int64
	bytes    int64
	first    time.Time // when the first message was accepted
	last     time.Time // when the latest one was
	arrived  chan struct{}
}

// StartSink listens on addr (host:port) and serves until Close.
func StartSink(addr string) (*Sink, error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	s := &Sink{l: l, arrived: make(chan struct{}, 1)}
	l = groupingListener{l}
	s.srv = smtp.NewServer(sinkBackend{s})
	s.srv.Domain = "sink.invalid"
	s.srv.ReadTimeout = time.Minute
	s.srv.WriteTimeout = time.Minute
	s.srv.MaxMessageBytes = 64 << 20
	s.srv.MaxRecipients = 1000
	s.srv.EnableSMTPUTF8 = true
	go s.srv.Serve(l)
	return s, nil
}

// groupingListener hands out connections that group the replies to pipelined commands:
// go-smtp writes every reply on its own (one write system call each), so a relay that
// pipelines MAIL, RCPT and DATA (RFC 2920) cost the sink three writes per message where
// one does. RFC 2920 §3.2 lets a server group replies so long as none is held while it
// waits for input: groupingConn holds what go-smtp writes and sends it before each read.
// The sink stands in for a remote MX, and its own CPU shares the machine with the
// servers it measures.
type groupingListener struct{ net.Listener }

func (l groupingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &groupingConn{Conn: c}, nil
}

type groupingConn struct {
	net.Conn
	mu      sync.Mutex
	pending []byte
}

func (c *groupingConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.pending = append(c.pending, p...)
	if len(c.pending) >= 4096 {
		return len(p), c.flushLocked()
	}
	return len(p), nil
}

func (c *groupingConn) flushLocked() error {
	if len(c.pending) == 0 {
		return nil
	}
	_, err := c.Conn.Write(c.pending)
	c.pending = c.pending[:0]
	return err
}

func (c *groupingConn) Read(p []byte) (int, error) {
	c.mu.Lock()
	err := c.flushLocked()
	c.mu.Unlock()
	if err != nil {
		return 0, err
	}
	return c.Conn.Read(p)
}

func (c *groupingConn) Close() error {
	c.mu.Lock()
	c.flushLocked() // the 221 to QUIT, or a 421
	c.mu.Unlock()
	return c.Conn.Close()
}

// Addr is the address the sink listens on.
func (s *Sink) Addr() string { return s.l.Addr().String() }

// Close stops the sink and its connections.
func (s *Sink) Close() error { return s.srv.Close() }

// Count returns the messages and bytes accepted so far.
func (s *Sink) Count() (messages, bytes int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.messages, s.bytes
}

// WaitFor waits until n messages have arrived, or ctx ends. It returns the
// Delivery figures: the rate is from the first message to the nth, so the
// time before the relay starts sending does not count.
func (s *Sink) WaitFor(ctx context.Context, n int64) *Delivery {
	for {
		s.mu.Lock()
		got, first, last := s.messages, s.first, s.last
		s.mu.Unlock()
		if got >= n {
			return delivery(n, got, first, last, false)
		}
		select {
		case <-s.arrived:
		case <-ctx.Done():
			return delivery(n, got, first, last, true)
		}
	}
}

func delivery(want, got int64, first, last time.Time, timedOut bool) *Delivery {
	d := &Delivery{Expected: want, Seen: got, TimedOut: timedOut}
	if got > 1 {
		d.ElapsedS = last.Sub(first).Seconds()
		d.PerSec = float64(got-1) / d.ElapsedS // n messages span n-1 intervals
	}
	return d
}

func (s *Sink) accepted(n int64) {
	now := time.Now()
	s.mu.Lock()
	s.messages++
	s.bytes += n
	if s.first.IsZero() {
		s.first = now
	}
	s.last = now
	s.mu.Unlock()
	select {
	case s.arrived <- struct{}{}:
	default:
	}
}

// SinkConfig configures RunSink.
type SinkConfig struct {
	Listen  string        // host:port to listen on
	Expect  int64         // messages to wait for
	Timeout time.Duration // give up after this long; 0: until interrupted
}

// RunSink listens on cfg.Listen until cfg.Expect messages have arrived and
// reports the delivery rate (Result.Delivery) from the first arrival to the
// last.
func RunSink(ctx context.Context, cfg SinkConfig) (*Result, error) {
	if cfg.Expect <= 0 {
		return nil, errors.New("sink: expected message count must be positive")
	}
	s, err := StartSink(cfg.Listen)
	if err != nil {
		return nil, err
	}
	defer s.Close()
	if cfg.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, cfg.Timeout)
		defer cancel()
	}
	d := s.WaitFor(ctx, cfg.Expect)
	msgs, bytes := s.Count()
	res := &Result{Scenario: "sink", Target: s.Addr(), Unit: "message", Ops: msgs, Bytes: bytes, Delivery: d}
	var errs errorLog
	if d.TimedOut {
		errs.add("timed out: %d of %d messages arrived", d.Seen, d.Expected)
	}
	errs.fill(res)
	res.finish(time.Duration(d.ElapsedS * float64(time.Second)))
	return res, nil
}

type sinkBackend struct{ s *Sink }

func (b sinkBackend) NewSession(*smtp.Conn) (smtp.Session, error) { return &sinkSession{s: b.s}, nil }

type sinkSession struct{ s *Sink }

func (*sinkSession) Reset()                               {}
func (*sinkSession) Logout() error                        { return nil }
func (*sinkSession) Mail(string, *smtp.MailOptions) error { return nil }
func (*sinkSession) Rcpt(string, *smtp.RcptOptions) error { return nil }

func (ss *sinkSession) Data(r io.Reader) error {
	n, err := io.Copy(io.Discard, r)
	if err != nil {
		return err
	}
	ss.s.accepted(n)
	return nil
}
