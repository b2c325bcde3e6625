package imapd

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"time"

	"petrel/internal/lib/connid"
	"petrel/internal/lib/netconn"
	"petrel/internal/mail/auth"
	"petrel/internal/store"
)

// state is an IMAP connection state (RFC 9051 §3). Logout is not a state commands run in:
// LOGOUT ends the session.
type state uint8

const (
	stateNotAuth state = 1 << iota
	stateAuth
	stateSelected

	anyState    = stateNotAuth | stateAuth | stateSelected
	loggedIn    = stateAuth | stateSelected
	notLoggedIn = stateNotAuth
)

// done is what a command that succeeded puts in its tagged OK: an optional response code
// and a text ("<NAME> completed" if empty).
type done struct{ code, text string }

// commands lists every command with the states it is legal in (RFC 9051 §6) and its handler.
var commands = map[string]struct {
	states state
	fn     func(s *session, c *Command) (done, error)
}{
	"CAPABILITY":   {anyState, (*session).cmdCapability},      // RFC 9051 §6.1.1
	"NOOP":         {anyState, (*session).cmdNoop},            // RFC 9051 §6.1.2
	"LOGOUT":       {anyState, (*session).cmdLogout},          // RFC 9051 §6.1.3
	"ID":           {anyState, (*session).cmdID},              // RFC 2971
	"STARTTLS":     {notLoggedIn, (*session).cmdStartTLS},     // RFC 9051 §6.2.1
	"LOGIN":        {notLoggedIn, (*session).cmdLogin},        // RFC 9051 §6.2.3
	"AUTHENTICATE": {notLoggedIn, (*session).cmdAuthenticate}, // RFC 9051 §6.2.2, RFC 4959
	"ENABLE":       {loggedIn, (*session).cmdEnable},          // RFC 5161
	"NAMESPACE":    {loggedIn, (*session).cmdNamespace},       // RFC 2342
	"SELECT":       {loggedIn, (*session).cmdSelect},          // RFC 9051 §6.3.2
	"EXAMINE":      {loggedIn, (*session).cmdSelect},          // RFC 9051 §6.3.3
	"CREATE":       {loggedIn, (*session).cmdCreate},          // RFC 9051 §6.3.4
	"DELETE":       {loggedIn, (*session).cmdDelete},          // RFC 9051 §6.3.5
	"RENAME":       {loggedIn, (*session).cmdRename},          // RFC 9051 §6.3.6
	"SUBSCRIBE":    {loggedIn, (*session).cmdSubscribe},       // RFC 9051 §6.3.7
	"UNSUBSCRIBE":  {loggedIn, (*session).cmdSubscribe},       // RFC 9051 §6.3.8
	"LIST":         {loggedIn, (*session).cmdList},            // RFC 9051 §6.3.9, RFC 6154
	"LSUB":         {loggedIn, (*session).cmdList},            // RFC 3501 §6.3.9
	"STATUS":       {loggedIn, (*session).cmdStatus},          // RFC 9051 §6.3.11
	"APPEND":       {loggedIn, (*session).cmdAppend},          // RFC 9051 §6.3.12, RFC 4315
	"IDLE":         {loggedIn, (*session).cmdIdle},            // RFC 2177
	"CHECK":        {stateSelected, (*session).cmdNoop},       // RFC 3501 §6.4.1
	"CLOSE":        {stateSelected, (*session).cmdClose},      // RFC 9051 §6.4.1
	"UNSELECT":     {stateSelected, (*session).cmdClose},      // RFC 3691
	"EXPUNGE":      {stateSelected, (*session).cmdExpunge},    // RFC 9051 §6.4.3, RFC 4315 §2.1
	"SEARCH":       {stateSelected, (*session).cmdSearch},     // RFC 9051 §6.4.4
	"SORT":         {stateSelected, (*session).cmdSort},       // RFC 5256, RFC 5267 (sort.go)
	"THREAD":       {stateSelected, (*session).cmdThread},     // RFC 5256 (sort.go)
	"FETCH":        {stateSelected, (*session).cmdFetch},      // RFC 9051 §6.4.5
	"STORE":        {stateSelected, (*session).cmdStore},      // RFC 9051 §6.4.6
	"COPY":         {stateSelected, (*session).cmdCopy},       // RFC 9051 §6.4.7, RFC 4315
	"MOVE":         {stateSelected, (*session).cmdCopy},       // RFC 6851
	"GETQUOTA":     {loggedIn, (*session).cmdGetQuota},        // RFC 9208 §3.1
	"GETQUOTAROOT": {loggedIn, (*session).cmdGetQuotaRoot},    // RFC 9208 §3.2
	"SETQUOTA":     {loggedIn, (*session).cmdSetQuota},        // RFC 9208 §3.3
	"COMPRESS":     {loggedIn, (*session).cmdCompress},        // RFC 4978 (compress.go)
	"NOTIFY":       {loggedIn, (*session).cmdNotify},          // RFC 5465 (notify.go)
}

// Errors that end a session.
var (
	errLogout       = errors.New("logout")
	errAuthFailures = errors.New("too many authentication failures")
	errShutdown     = errors.New("shutting down")
	errCmdTimeout   = errors.New("command too slow")
	errMailboxGone  = errors.New("selected mailbox deleted")

	// errMoveOn is not an end: the session continues on a fresh goroutine (see idle.go).
	errMoveOn = netconn.ErrMoveOn
)

// tlsError is a failed STARTTLS handshake, after which the connection is closed.
type tlsError struct{ err error }

func (e tlsError) Error() string { return "TLS handshake: " + e.err.Error() }
func (e tlsError) Unwrap() error { return e.err }

// session is one IMAP connection.
type session struct {
	srv    *Server
	log    *slog.Logger           // the server's, with the connection's id ("conn", lib/connid)
	raw    net.Conn               // the accepted connection; closing it ends everything
	conn   net.Conn               // raw, or the tls.Conn on top of it
	dw     netconn.DeadlineWriter // writes to conn with a deadline per write
	in     netconn.Input          // reads conn through a pooled buffer, held only while there is input (idle.go)
	r      reader                 // the command reader over in's buffer
	w      respWriter             // over a pooled bufio.Writer, non-nil only while answering
	remote netip.Addr
	ctx    context.Context
	start  time.Time // when the connection was accepted, for the log
	// loginDL ends the connection if it has not logged in by then (Config.LoginTimeout).
	loginDL time.Time

	// mu orders read deadlines against Shutdown: see setReadDeadline and Interrupt.
	mu sync.Mutex

	state    state
	greeted  bool   // the greeting has been sent
	tls      bool   // TLS is active (STARTTLS done or implicit)
	name     string // the last login name tried, for the log
	failures int    // failed logins

	account store.Account // set at login
	sel     *selected     // the selected mailbox in the selected state, else nil
	ext     extensions    // what ENABLE and CONDSTORE-enabling commands turned on (enable.go)
	idle    *idleState    // in IDLE, else nil (idle.go); set and cleared by the session, under mu
	z       *compression  // after COMPRESS DEFLATE (compress.go), else nil
	notify  *notifyState  // after NOTIFY SET (notify.go), else nil; set under mu

	// Counters for the session log line.
	commands int
}

func newSession(srv *Server, c net.Conn) *session {
	s := &session{
		srv:    srv,
		log:    srv.log.With("conn", connid.New()),
		raw:    c,
		remote: netconn.RemoteAddr(c),
		ctx:    srv.conns.Context(),
		start:  time.Now(),
		state:  stateNotAuth,
	}
	s.r = reader{lim: srv.cfg.Limits, cont: s.continuation}
	s.loginDL = s.start.Add(srv.cfg.LoginTimeout)
	s.in = netconn.NewInput(c, &srv.readers)
	s.setConn(c)
	return s
}

// setConn makes c the connection commands are read from and answered on, dropping whatever
// was buffered from the previous one.
func (s *session) setConn(c net.Conn) {
	s.conn = c
	s.dw = netconn.DeadlineWriter{Conn: c, Timeout: s.srv.cfg.CommandTimeout}
	s.releaseReader()
	s.in.SetConn(c)
}

// Serve runs the session to its end on the connection's goroutine, except that a session
// idle for a moment continues on a fresh goroutine (see idle.go).
func (s *session) Serve() {
	result := "closed"
	movedOn := false
	defer func() {
		if movedOn {
			return
		}
		if r := recover(); r != nil {
			s.log.Error("imap: panic", "remote", s.remote, "panic", r, "stack", string(debug.Stack()))
			s.w.bw = nil // may hold half a response; the pooled writer is simply not returned
			s.raw.SetWriteDeadline(time.Now().Add(time.Second))
			io.WriteString(s.conn, "* BYE [SERVERBUG] internal error\r\n")
			result = "panic"
		}
		s.endIdle()
		s.notifyOff()
		s.flush()
		s.releaseReader()
		if s.z != nil {
			s.z.close()
		}
		s.conn.Close()
		s.srv.untrackSession(s)
		s.log.Info("imap session",
			"remote", s.remote,
			"user", s.accountName(),
			"tls", s.tls,
			"compress", s.z != nil,
			"commands", s.commands,
			"duration", time.Since(s.start).Round(time.Millisecond),
			"result", result)
	}()
	result, movedOn = s.run()
	if movedOn {
		go s.Serve()
	}
}

func (s *session) accountName() string {
	if s.account.Address != "" {
		return s.account.Address
	}
	return s.name
}

// run greets and reads commands until the session ends, and returns the result to log; or
// it returns movedOn, and serve calls it again on a fresh goroutine.
func (s *session) run() (result string, movedOn bool) {
	if s.srv.cfg.ImplicitTLS && !s.tls {
		if err := s.startTLS(); err != nil {
			return "tls handshake failed: " + err.Error(), false
		}
	}
	if !s.greeted {
		s.greeted = true
		text := "Petrel IMAP server ready"
		if s.srv.cfg.Hostname != "" {
			text = s.srv.cfg.Hostname + " " + text
		}
		s.out().status("*", "OK", "CAPABILITY "+s.capabilities(), text)
	}
	for {
		var err error
		if s.idle != nil {
			err = s.idleWait()
		} else if err = s.waitCommand(); err == nil {
			err = s.command()
		}
		switch {
		case err == nil, errors.Is(err, errIdling), errors.Is(err, errCompressStarted), errors.Is(err, errNotified):
			continue
		case errors.Is(err, errMoveOn):
			return "", true
		default:
			return s.end(err), false
		}
	}
}

// waitCommand waits for the first byte of the next command, flushing the output first if no
// command is buffered, then gives the command CommandTimeout to arrive whole.
func (s *session) waitCommand() error {
	if !s.commandBuffered() {
		if s.notify != nil { // notify.go: what changed since the last command
			if err := s.deliver(true, ""); err != nil {
				return err
			}
		}
		// Compressed, octets may be buffered that decode to no command (a client's flush):
		// the answers go out before they are read.
		if err := s.flush(); err != nil {
			return err
		}
	}
	if !s.inputBuffered() {
		if !s.notifyArm() {
			return errNotified
		}
		wait := s.idleTimeout()
		if s.notify != nil {
			wait = time.Until(s.notify.autologout)
		}
		err := s.waitInput(wait, moveOnAfter)
		if errors.Is(err, errMoveOn) {
			return err // still armed: the fresh goroutine waits on
		}
		// Woken with a command there too: the command goes first, the changes after it.
		woken := s.notifyDisarm()
		if err != nil && woken && (errors.Is(err, errWoken) || isTimeout(err)) {
			return errNotified
		}
		if err != nil {
			return err
		}
	} else {
		s.reader()
	}
	return s.commandDeadline(s.idleTimeout())
}

// end says goodbye as the error requires and returns the result to log.
func (s *session) end(err error) string {
	var te tlsError
	var pe *Error
	switch {
	case errors.As(err, &te):
		return "tls handshake failed: " + te.err.Error()
	case errors.Is(err, errLogout), errors.Is(err, errAuthFailures):
		s.flush()
		return err.Error()
	case errors.As(err, &pe) && pe.Kind == BYE:
		s.out().errorReply("", pe)
		s.flush()
		return "bye: " + pe.Text
	case errors.Is(err, errShutdown) || s.srv.conns.Closing() && isTimeout(err):
		s.out().status("*", "BYE", "UNAVAILABLE", "Server shutting down")
		s.flush()
		return "shutdown"
	case errors.Is(err, errMailboxGone):
		s.out().status("*", "BYE", "", "The selected mailbox was deleted")
		s.flush()
		return err.Error()
	case s.state == stateNotAuth && !time.Now().Before(s.loginDL) && isTimeout(err):
		s.out().status("*", "BYE", "", "Login timeout")
		s.flush()
		return "login timeout"
	case errors.Is(err, errCmdTimeout):
		s.out().status("*", "BYE", "", "Command too slow")
		s.flush()
		return "command timeout"
	case isTimeout(err):
		s.out().status("*", "BYE", "", "Autologout; idle for too long") // RFC 9051 §5.4
		s.flush()
		return "timeout"
	case corruptInput(err):
		s.out().status("*", "BYE", "", "Corrupt compressed input") // RFC 4978
		s.flush()
		return "error: " + err.Error()
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
		return "closed by client"
	default:
		return "error: " + err.Error()
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// command reads and runs one command.
func (s *session) command() error {
	cmd, err := s.r.readCommand()
	if err != nil {
		return s.commandError(cmd, err)
	}
	s.commands++
	spec, ok := commands[cmd.Name]
	if !ok { // the parser knows no command the table lacks; this is a safety net
		return s.commandError(cmd, badf("Unknown command"))
	}
	s.srv.cfg.Metrics.Command(cmd.Name)
	if spec.states&s.state == 0 {
		if cmd.Name == "APPEND" {
			return s.commandError(cmd, badf("Command not valid in this state"))
		}
		s.out().errorReply(cmd.Tag, badf("Command not valid in this state"))
		return nil
	}
	d, err := spec.fn(s, cmd)
	if errors.Is(err, errTLSStarted) {
		return nil
	}
	var pe *Error
	if err != nil && !errors.As(err, &pe) {
		return err
	}
	if pe != nil && pe.Kind == BYE {
		return pe
	}
	if pe != nil && cmd.Name == "APPEND" {
		// An APPEND refused after its message may be followed by more of the command
		// (MULTIAPPEND's next literal): skip it, never run it.
		if err := s.skipRest(); err != nil {
			return err
		}
	}
	if s.sel != nil && cmd.Name != "SELECT" && cmd.Name != "EXAMINE" {
		// Changes by other sessions go out before the tagged reply (RFC 9051 §5.2), EXPUNGE
		// only where §7.5.1 allows it. Not after SELECT: its responses are the client's
		// starting point, and an EXPUNGE among them would be applied to the mailbox the
		// client has not entered yet; what changed meanwhile comes with the next command.
		if err := s.poll(expungeAllowed(cmd)); err != nil {
			return err
		}
	}
	if s.notify != nil {
		s.notify.autologout = time.Now().Add(s.srv.cfg.IdleTimeout)
		if err := s.deliver(false, cmd.Name); err != nil {
			return err
		}
	}
	if pe != nil {
		s.out().errorReply(cmd.Tag, pe)
		return nil
	}
	if d.text == "" {
		d.text = cmd.Name + " completed"
		if cmd.UID {
			d.text = "UID " + d.text
		}
	}
	s.out().status(cmd.Tag, "OK", d.code, d.text)
	return nil
}

// commandError answers a command that could not be read and skips what is left of it.
func (s *session) commandError(cmd *Command, err error) error {
	var pe *Error
	if !errors.As(err, &pe) {
		if isTimeout(err) && !s.awaitingCommand() {
			return errCmdTimeout
		}
		return err
	}
	if pe.Kind == BYE {
		return pe
	}
	tag := ""
	if cmd != nil {
		tag = cmd.Tag
	}
	s.out().errorReply(tag, pe)
	return s.skipRest()
}

// skipRest skips what is left of a command that was answered with an error. A line that
// ends in a bare LF or holds a NUL on the way is skipped too: the command is answered
// already.
func (s *session) skipRest() error {
	err := s.r.skipRest()
	var pe *Error
	if errors.As(err, &pe) && pe.Kind != BYE {
		return nil
	}
	return err
}

// expungeAllowed: EXPUNGE responses must not be sent while answering FETCH, STORE, SEARCH,
// SORT or THREAD, whose replies use message numbers (RFC 9051 §7.5.1); their UID forms may.
func expungeAllowed(c *Command) bool {
	switch c.Name {
	case "FETCH", "STORE", "SEARCH", "SORT", "THREAD":
		return c.UID
	}
	return true
}

// continuation asks the client for a synchronizing literal (RFC 9051 §7.5).
func (s *session) continuation() error {
	s.out().str("+ Ready for literal data\r\n")
	if err := s.flush(); err != nil {
		return err
	}
	return s.setReadDeadline(s.srv.cfg.CommandTimeout)
}

// setReadDeadline sets the read deadline to now+d, or to the login deadline if that comes
// first and the session has not logged in, unless the server is shutting down. Holding mu
// while checking closing and setting the deadline means a Shutdown either is seen here or
// its interrupt comes after this deadline and overrides it.
func (s *session) setReadDeadline(d time.Duration) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.srv.conns.Closing() {
		return errShutdown
	}
	if s.idle != nil && s.idle.woken || s.notify != nil && s.notify.woken {
		return errWoken // keep the expired deadline of wakeIdle until idleWait has seen it
	}
	dl := time.Now().Add(d)
	if s.state == stateNotAuth && s.loginDL.Before(dl) {
		dl = s.loginDL
	}
	return s.raw.SetReadDeadline(dl)
}

// SetReadTimeout is setReadDeadline for netconn.Input.
func (s *session) SetReadTimeout(d time.Duration) error { return s.setReadDeadline(d) }

// Close closes the connection at once.
func (s *session) Close() error { return s.raw.Close() }

// idleTimeout is how long to wait for the next command: the autologout timer once logged in,
// the shorter LoginIdleTimeout before.
func (s *session) idleTimeout() time.Duration {
	if s.state == stateNotAuth {
		return min(s.srv.cfg.LoginIdleTimeout, s.srv.cfg.IdleTimeout)
	}
	return s.srv.cfg.IdleTimeout
}

// Interrupt wakes a read the session is blocked in, so that it notices the shutdown.
func (s *session) Interrupt() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.raw.SetReadDeadline(time.Unix(1, 0))
}

// out returns the response writer, taking a buffer from the pool if the session has none.
func (s *session) out() *respWriter {
	if s.w.bw == nil {
		bw := s.srv.writers.Get().(*bufio.Writer)
		if s.z != nil {
			bw.Reset(s.z.writer(&s.dw))
		} else {
			bw.Reset(&s.dw)
		}
		s.w.bw = bw
	}
	return &s.w
}

// flush writes the pending output and gives the buffer back to the pool.
func (s *session) flush() error {
	if s.w.bw == nil {
		return nil
	}
	err := s.w.bw.Flush()
	s.w.bw.Reset(nil)
	s.srv.writers.Put(s.w.bw)
	s.w.bw = nil
	if s.z != nil {
		err = errors.Join(err, s.z.flush())
	}
	return err
}

// plaintextAllowed reports whether passwords may be sent now (RFC 9051 §6.2.3, RFC 8314:
// only under TLS unless the operator allows plaintext).
func (s *session) plaintextAllowed() bool {
	return s.tls || s.srv.cfg.AllowPlaintextAuth
}

// capabilities lists what the session can do now (RFC 9051 §7.2.2). Extensions are listed
// only once they work; docs/rfc-status.md says which are still to come.
func (s *session) capabilities() string {
	var b strings.Builder
	b.WriteString("IMAP4rev1 LITERAL+ SASL-IR ID ENABLE IDLE NAMESPACE UNSELECT UIDPLUS MOVE CHILDREN SPECIAL-USE")
	b.WriteString(extCapabilities) // enable.go
	if s.srv.cfg.Compress && s.state != stateNotAuth && s.z == nil {
		b.WriteString(" COMPRESS=DEFLATE") // RFC 4978; refused before login (compress.go)
	}
	if _, ok := s.srv.store.(store.MultiAppender); ok {
		b.WriteString(" MULTIAPPEND") // RFC 3502 (mailboxes.go)
	}
	b.WriteString(" NOTIFY") // RFC 5465 (notify.go)
	if s.sorter() != nil {
		b.WriteString(sortCapabilities) // RFC 5256, 5267, 5957 (sort.go)
	}
	b.WriteString(" APPENDLIMIT=")
	b.WriteString(strconv.FormatInt(s.srv.cfg.AppendLimit, 10))
	if s.state != stateNotAuth {
		b.WriteString(quotaCapabilities) // quota.go: only a user has a quota
	}
	if s.state == stateNotAuth {
		if s.srv.cfg.TLS != nil && !s.tls {
			b.WriteString(" STARTTLS")
		}
		if s.plaintextAllowed() {
			for _, m := range s.srv.auth.Mechanisms() {
				b.WriteString(" AUTH=")
				b.WriteString(m)
			}
		} else {
			b.WriteString(" LOGINDISABLED") // RFC 9051 §6.2.3
		}
	}
	return b.String()
}

func (s *session) cmdCapability(c *Command) (done, error) {
	w := s.out()
	w.str("* CAPABILITY ")
	w.str(s.capabilities())
	w.crlf()
	return done{}, nil
}

// cmdNoop does nothing: the updates every command ends with are its point (RFC 9051 §6.1.2).
func (s *session) cmdNoop(c *Command) (done, error) { return done{}, nil }

func (s *session) cmdLogout(c *Command) (done, error) {
	w := s.out()
	w.status("*", "BYE", "", "Logging out")
	w.status(c.Tag, "OK", "", "LOGOUT completed")
	return done{}, errLogout
}

// cmdID answers RFC 2971 ID with our name only: no version, which would help attackers more
// than clients.
func (s *session) cmdID(c *Command) (done, error) {
	s.out().str("* ID (\"name\" \"Petrel\")\r\n")
	return done{}, nil
}

// cmdNamespace: one personal namespace, no prefix, "/" as separator (RFC 2342 §5).
func (s *session) cmdNamespace(c *Command) (done, error) {
	s.out().str("* NAMESPACE ((\"\" \"/\")) NIL NIL\r\n")
	return done{}, nil
}

// cmdStartTLS starts TLS (RFC 9051 §6.2.1).
func (s *session) cmdStartTLS(c *Command) (done, error) {
	if s.srv.cfg.TLS == nil || s.tls {
		return done{}, badf("STARTTLS not available")
	}
	s.out().status(c.Tag, "OK", "", "Begin TLS negotiation now")
	if err := s.flush(); err != nil {
		return done{}, err
	}
	if err := s.startTLS(); err != nil {
		return done{}, tlsError{err}
	}
	return done{}, errTLSStarted
}

// errTLSStarted tells command that STARTTLS answered already. It is not an end.
var errTLSStarted = errors.New("tls started")

// startTLS runs the server side of a TLS handshake on the raw connection. The read buffer is
// reset, so whatever the client sent after STARTTLS in plaintext is dropped unread.
func (s *session) startTLS() error {
	tc := tls.Server(s.raw, s.srv.cfg.TLS)
	if err := s.setReadDeadline(s.srv.cfg.CommandTimeout); err != nil {
		return err
	}
	s.raw.SetWriteDeadline(time.Now().Add(s.srv.cfg.CommandTimeout))
	// Not HandshakeContext: it starts a goroutine per handshake. The deadlines bound the
	// handshake, Shutdown's interrupt ends it, and closing raw aborts it.
	if err := tc.Handshake(); err != nil {
		return err
	}
	s.setConn(tc)
	s.tls = true
	return nil
}

func (s *session) cmdLogin(c *Command) (done, error) {
	if !s.plaintextAllowed() {
		return done{}, &Error{Kind: NO, Code: "PRIVACYREQUIRED", Text: "Use STARTTLS first"} // RFC 9051 §6.2.3
	}
	s.name = c.User
	acct, err := s.srv.auth.CheckPassword(s.ctx, c.User, c.Password, s.remote)
	if err != nil {
		return done{}, s.authFailed(err)
	}
	return s.login(acct)
}

// authFailed answers a failed login (RFC 5530: AUTHENTICATIONFAILED for bad credentials,
// UNAVAILABLE for our own trouble) and ends the session after MaxAuthFailures.
func (s *session) authFailed(err error) error {
	s.srv.cfg.Metrics.Auth(false)
	s.failures++
	reply := &Error{Kind: NO, Code: "AUTHENTICATIONFAILED", Text: "Invalid credentials"}
	if !errors.Is(err, auth.ErrInvalid) {
		s.log.Warn("imap: authentication", "remote", s.remote, "err", err)
		reply = &Error{Kind: NO, Code: "UNAVAILABLE", Text: "Authentication failed, try again later"}
	}
	if s.failures >= s.srv.cfg.MaxAuthFailures {
		reply.Kind = BYE
		reply.Text = "Too many authentication failures"
	}
	return reply
}

func (s *session) login(acct store.Account) (done, error) {
	s.srv.cfg.Metrics.Auth(true)
	if !s.srv.admit(acct.ID) {
		return done{}, &Error{Kind: NO, Code: "LIMIT", Text: "Too many sessions for this account"} // RFC 5530
	}
	s.account = acct
	s.name = acct.Address
	s.state = stateAuth
	// RFC 9051 §6.2.3: a CAPABILITY code in the OK saves the client a round trip.
	return done{code: "CAPABILITY " + s.capabilities(), text: "Logged in"}, nil
}

// cmdAuthenticate runs a SASL exchange (RFC 9051 §6.2.2, with RFC 4959 SASL-IR).
func (s *session) cmdAuthenticate(c *Command) (done, error) {
	if !s.plaintextAllowed() {
		return done{}, &Error{Kind: NO, Code: "PRIVACYREQUIRED", Text: "Use STARTTLS first"}
	}
	exchange, err := s.srv.auth.NewSASL(s.ctx, c.Mechanism, s.remote)
	if err != nil {
		return done{}, &Error{Kind: NO, Code: "CANNOT", Text: "Unsupported authentication mechanism"}
	}
	var resp []byte
	if c.HasInitial {
		if c.InitialResponse != "=" { // RFC 4959 §3: "=" is an empty initial response
			if resp, err = base64.StdEncoding.DecodeString(c.InitialResponse); err != nil {
				return done{}, badf("Invalid base64 in initial response")
			}
		}
		if resp == nil {
			resp = []byte{}
		}
	}
	for {
		challenge, fin, err := exchange.Next(resp)
		if err != nil {
			return done{}, s.authFailed(err)
		}
		if fin && len(challenge) == 0 {
			return s.login(exchange.Account())
		}
		// RFC 9051 §6.2.2: final server data may go in a last challenge, answered with an
		// empty line.
		w := s.out()
		w.str("+ ")
		w.str(base64.StdEncoding.EncodeToString(challenge))
		w.crlf()
		line, err := s.saslLine()
		if err != nil {
			return done{}, err
		}
		if line == "*" {
			return done{}, badf("Authentication cancelled")
		}
		if resp, err = base64.StdEncoding.DecodeString(line); err != nil {
			return done{}, badf("Invalid base64 in response")
		}
		if fin {
			return s.login(exchange.Account())
		}
	}
}

// saslLine reads one line of a SASL exchange, within the command's limit.
func (s *session) saslLine() (string, error) {
	if err := s.flush(); err != nil {
		return "", err
	}
	if err := s.waitInput(s.srv.cfg.CommandTimeout, 0); err != nil {
		return "", err
	}
	if err := s.r.readLine(); err != nil {
		return "", err
	}
	return string(s.r.line), nil
}
