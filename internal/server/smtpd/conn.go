package smtpd

import (
	"bytes"
	"errors"
	"io"
	"net"
	"sync"
	"time"
)

// conn is the accepted TCP connection as go-smtp sees it (under TLS when TLS is on). go-smtp
// has no hooks for a deadline on a whole message body or for a polite shutdown; conn
// provides both at the one place every read goes through.
//
// Deadlines: go-smtp calls SetReadDeadline(now+ReadTimeout) before each command line. While
// a body is being received, conn caps the deadline at the body's DataTimeout, so a client
// that drips one byte at a time (or sends endless small BDAT chunks) is cut off.
//
// Shutdown: drain marks the conn and wakes a blocked Read by moving the deadline to now.
// A Read that finds no transaction open writes "421 4.3.2" and reports EOF, which go-smtp
// takes as the client leaving; inside a transaction the Read goes on with its old deadline.
//
// Replies: go-smtp writes (and flushes) every reply line on its own, so a client that
// pipelines MAIL, RCPT and DATA (RFC 2920) would get three writes. Write holds replies and
// Read sends them all before it waits for the client: RFC 2920 lets a server group
// the responses to pipelined commands, as long as none is held while it waits for input.
// Close sends what is left (the 221 to QUIT).
type conn struct {
	net.Conn         // the accepted connection
	srv      *Server // for untracking at Close

	mu       sync.Mutex
	readDL   time.Time // the read deadline go-smtp asked for
	bodyDL   time.Time // cap on reads while a body is received; zero otherwise
	inTx     bool      // a transaction is open (MAIL accepted, not yet finished)
	draining bool      // the server is shutting down
	hangup   bool      // end the connection at the next read (the reply is already sent)
	// replies is where a 421 can be written from inside Read without corrupting the stream:
	// the raw connection while it carries plain text, the *tls.Conn once a session runs
	// over TLS, nil when unknown (during a TLS handshake). Writes happen only while go-smtp
	// is blocked reading, so they never interleave with its replies.
	replies  net.Conn
	greeted  bool // the 220 greeting went out
	failures int  // failed AUTH attempts, kept across STARTTLS

	wmu     sync.Mutex // guards the fields below; held while writing pending out
	pending []byte     // replies written by go-smtp, not sent yet
	werr    error      // the first failed write; later writes fail with it
	writeDL time.Time  // the write deadline last set

	closeOnce sync.Once
}

// maxPending is how many reply bytes Write holds before sending them anyway.
const maxPending = 4096

func newConn(nc net.Conn, s *Server) *conn {
	return &conn{Conn: nc, srv: s}
}

// errHangup is returned (as a timeout, so go-smtp answers "421 ... timeout" and closes)
// when the connection must end but no safe place to write our own 421 is known.
var errHangup = &timeoutError{}

type timeoutError struct{}

func (*timeoutError) Error() string   { return "smtpd: connection closing" }
func (*timeoutError) Timeout() bool   { return true }
func (*timeoutError) Temporary() bool { return false }

// Read reads from the connection, ending it when a shutdown or a fatal error asks for it.
func (c *conn) Read(b []byte) (int, error) {
	for {
		if err := c.flush(); err != nil {
			return 0, err
		}
		if err := c.checkHangup(); err != nil {
			c.flush() // the 421, when it went through Write
			return 0, err
		}
		n, err := c.Conn.Read(b)
		if n == 0 && isTimeout(err) && c.wokenByDrain() {
			continue
		}
		return n, err
	}
}

// checkHangup returns io.EOF (after writing 421) or errHangup when the connection must end
// now, nil to go on reading.
func (c *conn) checkHangup() error {
	c.mu.Lock()
	if c.hangup {
		c.mu.Unlock()
		return io.EOF
	}
	if !c.draining || c.inTx {
		c.mu.Unlock()
		return nil
	}
	c.hangup = true
	w := c.replies
	c.mu.Unlock()
	if w == nil {
		return errHangup
	}
	// RFC 5321 §3.8: the server may close with 421 when it must shut down.
	c.SetWriteDeadline(time.Now().Add(c.srv.cfg.WriteTimeout))
	w.Write([]byte("421 4.3.2 " + c.srv.cfg.Hostname + " shutting down\r\n"))
	return io.EOF
}

// wokenByDrain reports whether a read timeout was only drain's wake-up call; it then
// restores the real deadline.
func (c *conn) wokenByDrain() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.draining || c.hangup {
		return false
	}
	dl := c.deadline()
	if !dl.IsZero() && !time.Now().Before(dl) {
		return false // a real timeout
	}
	c.Conn.SetReadDeadline(dl)
	return true
}

// deadline is the effective read deadline: go-smtp's, capped by the body deadline.
// c.mu must be held.
func (c *conn) deadline() time.Time {
	if c.bodyDL.IsZero() || (!c.readDL.IsZero() && c.readDL.Before(c.bodyDL)) {
		return c.readDL
	}
	return c.bodyDL
}

// SetReadDeadline records the deadline go-smtp (or crypto/tls) wants and applies it, capped.
func (c *conn) SetReadDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.readDL = t
	return c.Conn.SetReadDeadline(c.deadline())
}

// SetDeadline sets both deadlines, the read one capped.
func (c *conn) SetDeadline(t time.Time) error {
	if err := c.SetReadDeadline(t); err != nil {
		return err
	}
	return c.SetWriteDeadline(t)
}

// SetWriteDeadline sets the deadline for later writes. Held replies were written under the
// deadline before: when t comes earlier than that one, they are sent first. (crypto/tls
// moves the deadline to now after close_notify so that later writes fail; the 421 or 221
// before it must still go out.)
func (c *conn) SetWriteDeadline(t time.Time) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if !t.IsZero() && (c.writeDL.IsZero() || t.Before(c.writeDL)) {
		c.flushLocked()
	}
	c.writeDL = t
	return c.Conn.SetWriteDeadline(t)
}

// Write holds b until the next Read or Close (see the type comment); a write error shows
// in a later Write, Read or Close.
//
// It also notices the STARTTLS go-ahead: "220" is sent twice at most, as the greeting
// (RFC 5321 §4.2) and before the TLS handshake (RFC 3207 §4); after the second the raw
// connection no longer carries plain text.
func (c *conn) Write(b []byte) (int, error) {
	if bytes.HasPrefix(b, []byte("220 ")) {
		c.mu.Lock()
		if c.greeted {
			c.replies = nil
		}
		c.greeted = true
		c.mu.Unlock()
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.werr != nil {
		return 0, c.werr
	}
	c.pending = append(c.pending, b...)
	if len(c.pending) >= maxPending {
		if err := c.flushLocked(); err != nil {
			return 0, err
		}
	}
	return len(b), nil
}

// flush sends the pending replies.
func (c *conn) flush() error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return c.flushLocked()
}

// flushLocked is flush with c.wmu held. The write deadline is the one go-smtp set before
// its last reply.
func (c *conn) flushLocked() error {
	if c.werr != nil || len(c.pending) == 0 {
		return c.werr
	}
	_, err := c.Conn.Write(c.pending)
	c.pending = c.pending[:0]
	if err != nil {
		c.werr = err
	}
	return err
}

// Close sends the pending replies, closes the connection and forgets it.
func (c *conn) Close() error {
	c.flush()
	err := c.Conn.Close()
	c.closeOnce.Do(func() { c.srv.untrack(c) })
	return err
}

// drain asks the connection to end as soon as it is idle. Called with srv.mu held.
func (c *conn) drain() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.draining = true
	// Wake a Read blocked waiting for a command; Read decides what to do.
	c.Conn.SetReadDeadline(time.Now())
}

// startBody caps reads at deadline while a message body is received.
func (c *conn) startBody(deadline time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.bodyDL = deadline
	c.Conn.SetReadDeadline(c.deadline())
}

// endBody lifts the cap. A body that overran its deadline ends the connection: the client
// is still sending it, and what it sends next cannot be read as commands.
func (c *conn) endBody() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.bodyDL.IsZero() && !time.Now().Before(c.bodyDL) {
		c.hangup = true
	}
	c.bodyDL = time.Time{}
	c.Conn.SetReadDeadline(c.deadline())
}

// setTx records whether a transaction is open.
func (c *conn) setTx(open bool) {
	c.mu.Lock()
	c.inTx = open
	c.mu.Unlock()
}

// isDraining reports whether Shutdown was called.
func (c *conn) isDraining() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.draining
}

// closeAfterReply makes the next read end the connection; used after a reply that says
// the connection is closing (421).
func (c *conn) closeAfterReply() {
	c.mu.Lock()
	c.hangup = true
	c.mu.Unlock()
}

// setReplies records where Read may write a 421 (see the field).
func (c *conn) setReplies(w net.Conn) {
	c.mu.Lock()
	c.replies = w
	c.mu.Unlock()
}

// authFailed counts a failed AUTH and reports whether the connection has had too many.
func (c *conn) authFailed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.failures++
	return c.failures >= c.srv.cfg.MaxAuthFailures
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// ourConn finds the conn under a connection go-smtp holds (which may be a *tls.Conn).
func ourConn(nc net.Conn) *conn {
	for nc != nil {
		switch x := nc.(type) {
		case *conn:
			return x
		case interface{ NetConn() net.Conn }:
			nc = x.NetConn()
		default:
			return nil
		}
	}
	return nil
}
