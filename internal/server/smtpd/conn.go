package smtpd

import (
	"bytes"
	"errors"
	"io"
	"net"
	"petrel/internal/lib/connid"
	"sync"
	"time"
)

// conn is the accepted TCP connection as go-smtp sees it (under TLS when TLS is on). go-smtp
// has no hooks for a deadline on a whole message body or for a polite shutdown; conn
// provides both at the one place every read goes through.
//
// Deadlines: a client must not hold a connection by sending slowly. So every deadline here
// bounds a whole unit of input, and running out of one ends the connection:
//   - A command line: go-smtp calls SetReadDeadline(now+ReadTimeout) once before each line
//     and never during it, so the whole line, waiting included, must be in by then. On
//     submission before AUTH the line gets LoginIdleTimeout instead, when that is shorter.
//     A line that runs out gets 421 4.4.2 from conn (see timedOut for why not from go-smtp).
//   - Login: on submission, AUTH must succeed by loginDL (LoginTimeout after connecting); no
//     deadline go-smtp asks for goes past it, so commands sent just in time cannot keep an
//     unauthenticated connection going either.
//   - A message body (DATA, or the BDAT chunks with the commands between them): go-smtp sets
//     no deadline inside one, so conn replaces go-smtp's with a budget that starts at
//     DataTimeout, shrinks as time passes and grows by n/DataMinRate seconds for every n bytes
//     that arrive, never above DataTimeout (Postfix's smtpd_min_data_rate works the same way).
//     A body must therefore average DataMinRate, may pause at most DataTimeout, and takes at
//     most DataTimeout + size/DataMinRate in all; no announced size is needed, so DATA
//     without SIZE is bounded too. A body that runs out gets 421 4.4.2 (errBodyTimeout).
//
// Shutdown: drain marks the conn and wakes a blocked Read by moving the deadline to now.
// A Read that finds no transaction open writes "421 4.3.2" and reports EOF, which go-smtp
// takes as the client leaving; inside a transaction the Read goes on with its old deadline.
// A 421 that conn writes itself (goodbye) is the last thing sent: Write drops the rest.
//
// Replies: go-smtp writes (and flushes) every reply line on its own, so a client that
// pipelines MAIL, RCPT and DATA (RFC 2920) would get three writes. Write holds replies and
// Read sends them all before it waits for the client: RFC 2920 lets a server group
// the responses to pipelined commands, as long as none is held while it waits for input.
// Close sends what is left (the 221 to QUIT).
type conn struct {
	net.Conn         // the accepted connection
	srv      *Server // for untracking at Close
	id       string  // the connection's id in the logs (lib/connid)

	mu        sync.Mutex
	readDL    time.Time     // the read deadline go-smtp asked for, capped by lineLimit
	lineLimit time.Duration // submission before AUTH: the longest a command line may take; 0 otherwise
	loginDL   time.Time     // submission before AUTH: the end of the connection; zero otherwise
	inBody    bool          // a message body is being received: bodyDL replaces readDL
	bodyDL    time.Time     // the body's deadline, moved by every read (see the type comment)
	inTx      bool          // a transaction is open (MAIL accepted, not yet finished)
	draining  bool          // the server is shutting down
	hangup    bool          // end the connection at the next read (the reply is already sent)
	// replies is where a 421 can be written from inside Read without corrupting the stream:
	// the raw connection while it carries plain text, the *tls.Conn once a session runs
	// over TLS, nil when unknown (during a TLS handshake). Writes happen only while go-smtp
	// is blocked reading, so they never interleave with its replies.
	replies  net.Conn
	greeted  bool // the 220 greeting went out
	failures int  // failed AUTH attempts, kept across STARTTLS

	wmu      sync.Mutex // guards the fields below; held while writing pending out
	pending  []byte     // replies written by go-smtp, not sent yet
	silenced bool       // the last reply went out (goodbye): later writes are dropped
	werr     error      // the first failed write; later writes fail with it
	writeDL  time.Time  // the write deadline last set

	closeOnce sync.Once
}

// maxPending is how many reply bytes Write holds before sending them anyway.
const maxPending = 4096

func newConn(nc net.Conn, s *Server) *conn {
	c := &conn{Conn: nc, srv: s, id: connid.New()}
	if s.pol.requireAuth {
		c.lineLimit = s.cfg.LoginIdleTimeout
		c.loginDL = time.Now().Add(s.cfg.LoginTimeout)
	}
	return c
}

// errHangup is returned (as a timeout, so go-smtp answers "421 ... timeout" and closes)
// when the connection must end but no safe place to write our own 421 is known.
var errHangup = &timeoutError{}

type timeoutError struct{}

func (*timeoutError) Error() string   { return "smtpd: connection closing" }
func (*timeoutError) Timeout() bool   { return true }
func (*timeoutError) Temporary() bool { return false }

// errBodyTimeout is what Read returns when a message body fell too far behind: an SMTPError,
// because go-smtp sends a BDAT chunk's read error as the reply when it is one (and a 554
// with the error text when it is not), and Data's reply for DATA is made from it too. A body
// that times out between BDAT chunks, while go-smtp reads a command line, gets go-smtp's
// own "421 4.4.0" instead; either way the connection ends (Read sets hangup).
var errBodyTimeout = reply(421, 4, 4, 2, "timeout receiving message data, closing connection")

// Read reads from the connection, ending it when a shutdown or a fatal error asks for it.
func (c *conn) Read(b []byte) (int, error) {
	for {
		if err := c.flush(); err != nil {
			return 0, err
		}
		if err := c.checkHangup(); err != nil {
			return 0, err
		}
		n, err := c.Conn.Read(b)
		if n > 0 {
			c.received(n)
		}
		if n == 0 && isTimeout(err) {
			if c.wokenByDrain() {
				continue
			}
			if c.bodyTimedOut() {
				return 0, errBodyTimeout
			}
			c.timedOut()
		}
		return n, err
	}
}

// checkHangup returns io.EOF (after writing 421) or errHangup when the connection must end
// now, nil to go on reading.
func (c *conn) checkHangup() error {
	c.mu.Lock()
	hangup, drain := c.hangup, c.draining && !c.inTx
	c.mu.Unlock()
	switch {
	case hangup:
		return io.EOF
	case !drain:
		return nil
	}
	// RFC 5321 §3.8: the server may close with 421 when it must shut down.
	if !c.goodbye("421 4.3.2 " + c.srv.cfg.Hostname + " shutting down") {
		return errHangup
	}
	return io.EOF
}

// timedOut ends the connection after a command line ran out of time (ReadTimeout, or a
// login deadline). go-smtp answers a timeout itself only when no byte of the line came:
// otherwise bufio's ReadLine hands it the partial line as a whole one, which it runs before
// reading on under a fresh deadline, so a client dripping bytes would get an error reply
// every ReadTimeout and keep the connection for ever. So conn says 421 4.4.2 at once, drops
// whatever go-smtp answers after that, and ends the connection at the next read. (Nothing
// the partial line starts can commit a message: that needs more input.)
func (c *conn) timedOut() {
	c.mu.Lock()
	what := "timeout"
	if !c.loginDL.IsZero() && !time.Now().Before(c.loginDL) {
		what = "login timeout"
	}
	c.mu.Unlock()
	c.goodbye("421 4.4.2 " + c.srv.cfg.Hostname + " " + what + ", closing connection")
}

// goodbye writes a last reply (a 421) and makes the connection end: later writes are
// dropped and the next read ends it. It reports false when no reply could be written
// (during a TLS handshake) or the connection was already ending.
func (c *conn) goodbye(line string) bool {
	c.mu.Lock()
	if c.hangup {
		c.mu.Unlock()
		return false
	}
	c.hangup = true
	w := c.replies
	c.mu.Unlock()
	if w == nil {
		return false
	}
	c.SetWriteDeadline(time.Now().Add(c.srv.cfg.WriteTimeout))
	w.Write([]byte(line + "\r\n"))
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.flushLocked()
	c.silenced = true
	return true
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

// deadline is the effective read deadline (see the type comment). c.mu must be held.
func (c *conn) deadline() time.Time {
	dl := c.readDL
	if c.inBody {
		dl = c.bodyDL
	}
	return earliest(dl, c.loginDL)
}

// earliest returns the earlier of two deadlines, where zero means none.
func earliest(a, b time.Time) time.Time {
	if a.IsZero() || (!b.IsZero() && b.Before(a)) {
		return b
	}
	return a
}

// SetReadDeadline records the deadline go-smtp (or crypto/tls) wants and applies it, capped.
func (c *conn) SetReadDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.lineLimit > 0 && !t.IsZero() {
		t = earliest(t, time.Now().Add(c.lineLimit))
	}
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
	if c.silenced {
		return len(b), nil
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

// startBody gives reads the deadline of a message body (see the type comment) until endBody.
func (c *conn) startBody() {
	if c == nil { // a submission without a connection (Server.Submit)
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.inBody = true
	c.bodyDL = time.Now().Add(c.srv.cfg.DataTimeout)
	c.Conn.SetReadDeadline(c.deadline())
}

// received moves the body's deadline for n bytes that just arrived.
func (c *conn) received(n int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.inBody {
		return
	}
	c.bodyDL = bodyDeadline(c.bodyDL, time.Now(), n, c.srv.cfg.DataMinRate, c.srv.cfg.DataTimeout)
	c.Conn.SetReadDeadline(c.deadline())
}

// bodyDeadline is a body's deadline dl after n more bytes arrived at now: n/rate seconds
// later, but never more than budget ahead of now, so that time earned by a fast start
// cannot be spent on a long stall.
func bodyDeadline(dl, now time.Time, n, rate int, budget time.Duration) time.Time {
	dl = dl.Add(time.Duration(n) * time.Second / time.Duration(rate))
	if limit := now.Add(budget); dl.After(limit) {
		return limit
	}
	return dl
}

// bodyTimedOut reports whether a read timed out because the body ran out of time; the
// connection then ends at the next read (the client is still sending the body, and what
// it sends next cannot be read as commands).
func (c *conn) bodyTimedOut() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.inBody || time.Now().Before(c.bodyDL) {
		return false
	}
	c.hangup = true
	return true
}

// endBody gives reads go-smtp's deadline back.
func (c *conn) endBody() {
	if c == nil { // a submission without a connection (Server.Submit)
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.inBody = false
	c.Conn.SetReadDeadline(c.deadline())
}

// loggedIn lifts the login deadlines once AUTH succeeded.
func (c *conn) loggedIn() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.lineLimit = 0
	c.loginDL = time.Time{}
}

// setTx records whether a transaction is open.
func (c *conn) setTx(open bool) {
	if c == nil { // a submission without a connection (Server.Submit)
		return
	}
	c.mu.Lock()
	c.inTx = open
	c.mu.Unlock()
}

// isDraining reports whether Shutdown was called.
func (c *conn) isDraining() bool {
	if c == nil { // a submission without a connection (Server.Submit)
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.draining
}

// closeAfterReply makes the next read end the connection; used after a reply that says
// the connection is closing (421).
func (c *conn) closeAfterReply() {
	if c == nil { // a submission without a connection (Server.Submit)
		return
	}
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
