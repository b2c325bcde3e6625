package pop3d

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"petrel/internal/lib/connid"
	"petrel/internal/lib/netconn"
	"petrel/internal/mail/auth"
	"petrel/internal/store"
)

// state is a POP3 session state (RFC 1939 §3). UPDATE is not a state a command can run in:
// it is the QUIT handler of TRANSACTION.
type state uint8

const (
	stateAuthorization state = 1 << iota
	stateTransaction
)

// commands lists every command with the states it is legal in and its handler. The handler
// gets the rest of the line after the keyword.
var commands = map[string]struct {
	states state
	fn     func(s *session, arg string) error
}{
	"CAPA": {stateAuthorization | stateTransaction, (*session).cmdCapa}, // RFC 2449 §5
	"QUIT": {stateAuthorization | stateTransaction, (*session).cmdQuit}, // RFC 1939 §6, §7
	"USER": {stateAuthorization, (*session).cmdUser},                    // RFC 1939 §7
	"PASS": {stateAuthorization, (*session).cmdPass},                    // RFC 1939 §7
	"AUTH": {stateAuthorization, (*session).cmdAuth},                    // RFC 5034 §4
	"STLS": {stateAuthorization, (*session).cmdStls},                    // RFC 2595 §4
	"STAT": {stateTransaction, (*session).cmdStat},                      // RFC 1939 §5
	"LIST": {stateTransaction, (*session).cmdList},                      // RFC 1939 §5
	"RETR": {stateTransaction, (*session).cmdRetr},                      // RFC 1939 §5
	"DELE": {stateTransaction, (*session).cmdDele},                      // RFC 1939 §5
	"NOOP": {stateTransaction, (*session).cmdNoop},                      // RFC 1939 §5
	"RSET": {stateTransaction, (*session).cmdRset},                      // RFC 1939 §5
	"TOP":  {stateTransaction, (*session).cmdTop},                       // RFC 1939 §7
	"UIDL": {stateTransaction, (*session).cmdUidl},                      // RFC 1939 §7
}

// Errors that end a session. Each carries the result logged for the session.
var (
	errQuit         = errors.New("quit")
	errUpdateFailed = errors.New("quit: update failed")
	errLineTooLong  = errors.New("line too long")
	errAuthFailures = errors.New("too many authentication failures")
	errShutdown     = errors.New("shutting down")
	errLineTimeout  = errors.New("command line too slow")

	// errMoveOn is not an end: the session continues on a fresh goroutine (see idle.go).
	errMoveOn = netconn.ErrMoveOn
)

// tlsError is a failed STLS handshake, after which the connection is closed without a word.
type tlsError struct{ err error }

func (e tlsError) Error() string { return "TLS handshake: " + e.err.Error() }
func (e tlsError) Unwrap() error { return e.err }

// session is one POP3 connection.
type session struct {
	srv    *Server
	log    *slog.Logger           // the server's, with the connection's id ("conn", lib/connid)
	raw    net.Conn               // the accepted connection; closing it ends everything
	conn   net.Conn               // raw, or the tls.Conn on top of it
	dw     netconn.DeadlineWriter // writes to conn with a deadline per write
	in     netconn.Input          // reads conn through a pooled buffer, held only while there is input (idle.go)
	bw     *bufio.Writer          // pooled, non-nil only between a command and the next blocking read
	remote netip.Addr
	ctx    context.Context
	start  time.Time // when the connection was accepted, for the log
	// loginDL ends the connection if it has not logged in by then (Config.LoginTimeout).
	loginDL time.Time

	// mu orders read deadlines against Shutdown: see setReadDeadline and Interrupt.
	mu sync.Mutex

	state    state
	greeted  bool   // the greeting has been sent
	tls      bool   // TLS is active (STLS done or implicit)
	user     string // name from USER, waiting for PASS
	name     string // the last login name tried, for the log
	failures int    // failed logins

	// TRANSACTION state, set at login.
	account store.Account
	unlock  func() // releases the maildrop lock
	inbox   store.Mailbox
	msgs    []store.Message // the snapshot; message n is msgs[n-1]
	deleted []bool          // marked by DELE, indexed like msgs

	// Counters for the session log line.
	retrieved      int
	retrievedBytes int64
	expunged       int // messages the UPDATE applied the delete policy to
}

func newSession(srv *Server, c net.Conn) *session {
	s := &session{
		srv:    srv,
		log:    srv.log.With("conn", connid.New()),
		raw:    c,
		remote: netconn.RemoteAddr(c),
		ctx:    srv.conns.Context(),
		start:  time.Now(),
		state:  stateAuthorization,
	}
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
	s.in.SetConn(c)
}

// Serve runs the session to its end on the connection's goroutine, except that a session that
// has been idle for a moment continues on a fresh goroutine, so that it does not keep a stack
// grown by a TLS handshake or a command while it waits (see idle.go).
func (s *session) Serve() {
	result := "closed"
	movedOn := false
	defer func() {
		if movedOn {
			return
		}
		if r := recover(); r != nil {
			s.log.Error("pop3: panic", "remote", s.remote, "panic", r, "stack", string(debug.Stack()))
			s.bw = nil // may hold half a response; the pooled writer is simply not returned
			s.raw.SetWriteDeadline(time.Now().Add(time.Second))
			io.WriteString(s.conn, "-ERR [SYS/TEMP] internal error\r\n")
			result = "panic"
		}
		s.releaseLock()
		if s.bw != nil {
			s.srv.putWriter(s.bw)
			s.bw = nil
		}
		s.in.Release()
		s.conn.Close()
		s.srv.conns.Done(s)
		s.log.Info("pop3 session",
			"remote", s.remote,
			"user", s.accountName(),
			"tls", s.tls,
			"retrieved", s.retrieved,
			"retrieved_bytes", s.retrievedBytes,
			"deleted", s.expunged,
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

// run greets and reads commands until the session ends, and returns the result to log; or it
// returns movedOn, and serve calls it again on a fresh goroutine.
func (s *session) run() (result string, movedOn bool) {
	if s.srv.cfg.ImplicitTLS && !s.tls {
		if err := s.startTLS(); err != nil {
			return "tls handshake failed: " + err.Error(), false
		}
	}
	if !s.greeted {
		s.greeted = true
		greeting := "Petrel POP3 server ready"
		if s.srv.cfg.Hostname != "" {
			greeting = s.srv.cfg.Hostname + " " + greeting
		}
		s.ok(greeting)
	}
	for {
		line, err := s.readLine(s.srv.cfg.MaxLineLength, s.idleTimeout(), moveOnAfter)
		if err == nil {
			err = s.dispatch(line)
		}
		switch {
		case err == nil:
			continue
		case errors.Is(err, errMoveOn):
			return "", true
		default:
			return s.end(err), false
		}
	}
}

// end says goodbye as the error requires and returns the result to log.
func (s *session) end(err error) string {
	var te tlsError
	switch {
	case errors.As(err, &te):
		// Nothing can be said: the client expects TLS and we have no TLS connection.
		return "tls handshake failed: " + te.err.Error()
	case errors.Is(err, errQuit), errors.Is(err, errUpdateFailed):
		s.flush()
		return err.Error()
	case errors.Is(err, errShutdown) || s.srv.conns.Closing() && isTimeout(err):
		s.err("[SYS/TEMP] shutting down")
		s.flush()
		return "shutdown"
	case errors.Is(err, errLineTooLong):
		s.err("line too long")
		s.flush()
		return "line too long"
	case errors.Is(err, errAuthFailures):
		s.flush()
		return err.Error()
	case s.state == stateAuthorization && !time.Now().Before(s.loginDL) && isTimeout(err):
		s.err("login timeout, closing connection")
		s.flush()
		return "login timeout"
	case errors.Is(err, errLineTimeout):
		s.err("command line too slow, closing connection")
		s.flush()
		return "command timeout"
	case isTimeout(err):
		// RFC 1939 §3: the autologout timer closes the connection without entering UPDATE,
		// and without a response.
		return "timeout"
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

// dispatch runs one command line.
func (s *session) dispatch(line []byte) error {
	kw, arg, err := parseCommand(line)
	if err != nil {
		return s.err("syntax error")
	}
	cmd, ok := commands[kw]
	if !ok {
		return s.err("unknown command")
	}
	s.srv.cfg.Metrics.Command(kw)
	if cmd.states&s.state == 0 {
		return s.err("command not valid in this state")
	}
	return cmd.fn(s, arg)
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
	dl := time.Now().Add(d)
	if s.state == stateAuthorization && s.loginDL.Before(dl) {
		dl = s.loginDL
	}
	return s.raw.SetReadDeadline(dl)
}

// SetReadTimeout is setReadDeadline for netconn.Input.
func (s *session) SetReadTimeout(d time.Duration) error { return s.setReadDeadline(d) }

// idleTimeout is how long to wait for the next command: the RFC 1939 §3 autologout timer
// once logged in, the shorter LoginIdleTimeout before (see its default for why).
func (s *session) idleTimeout() time.Duration {
	if s.state == stateAuthorization {
		return min(s.srv.cfg.LoginIdleTimeout, s.srv.cfg.IdleTimeout)
	}
	return s.srv.cfg.IdleTimeout
}

// Interrupt wakes a read the session is blocked in, so that it notices the shutdown. A
// command that is writing is not affected: only reads get the expired deadline.
func (s *session) Interrupt() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.raw.SetReadDeadline(time.Unix(1, 0))
}

// Close closes the connection at once.
func (s *session) Close() error { return s.raw.Close() }

// lineBuffered reports whether a whole line is already in the read buffer.
func (s *session) lineBuffered() bool {
	n := s.in.Buffered()
	if n == 0 {
		return false
	}
	buf, _ := s.in.Reader().Peek(n)
	return bytes.IndexByte(buf, '\n') >= 0
}

// readLine reads one line of at most limit octets, terminator included. Waiting for its first
// byte may take up to wait; the rest of the line must come within CommandTimeout, so a client
// sending a byte at a time cannot hold the connection. Before it could block, readLine flushes
// the pending output (RFC 2449 §6.6: pipelined responses go out together). The returned slice
// is valid until the next read. With moveAfter > 0, it returns errMoveOn if no input came within
// moveAfter (see netconn.Input.Wait).
func (s *session) readLine(limit int, wait, moveAfter time.Duration) ([]byte, error) {
	if !s.lineBuffered() {
		if err := s.flush(); err != nil {
			return nil, err
		}
	}
	if s.in.Buffered() == 0 {
		if err := s.in.Wait(wait, moveAfter, s); err != nil {
			return nil, err
		}
	}
	if err := s.setReadDeadline(s.srv.cfg.CommandTimeout); err != nil {
		return nil, err
	}
	var long []byte // only used for lines longer than the read buffer
	for {
		frag, err := s.in.Reader().ReadSlice('\n')
		if len(long)+len(frag) > limit {
			return nil, errLineTooLong
		}
		switch {
		case err == nil && long == nil:
			return frag, nil
		case err == nil:
			return append(long, frag...), nil
		case errors.Is(err, bufio.ErrBufferFull):
			long = append(long, frag...)
		case errors.Is(err, io.EOF) && len(frag)+len(long) > 0:
			return nil, io.ErrUnexpectedEOF
		case isTimeout(err):
			// The line began but did not end in time: a client dripping it, not an idle one.
			return nil, fmt.Errorf("%w: %w", errLineTimeout, err)
		default:
			return nil, err
		}
	}
}

// out returns the output buffer, taking one from the pool if the session has none.
func (s *session) out() *bufio.Writer {
	if s.bw == nil {
		s.bw = s.srv.getWriter(&s.dw)
	}
	return s.bw
}

// flush writes the pending output and gives the buffer back to the pool.
func (s *session) flush() error {
	if s.bw == nil {
		return nil
	}
	err := s.bw.Flush()
	s.srv.putWriter(s.bw)
	s.bw = nil
	return err
}

// ok and err write a single-line response (RFC 1939 §3). Write errors are not returned:
// they stick in the buffered writer and surface at the next flush.
func (s *session) ok(text string) error {
	w := s.out()
	w.WriteString("+OK")
	if text != "" {
		w.WriteString(" ")
		w.WriteString(text)
	}
	w.WriteString("\r\n")
	return nil
}

func (s *session) err(text string) error {
	w := s.out()
	w.WriteString("-ERR ")
	w.WriteString(text)
	w.WriteString("\r\n")
	return nil
}

// plaintextAllowed reports whether passwords may be sent now (RFC 2595 §2.1 and §4: only under
// TLS unless the operator allows plaintext).
func (s *session) plaintextAllowed() bool {
	return s.tls || s.srv.cfg.AllowPlaintextAuth
}

func (s *session) cmdCapa(arg string) error {
	if arg != "" {
		return s.err("CAPA takes no argument")
	}
	w := s.out()
	w.WriteString("+OK capability list follows\r\n")
	w.WriteString("TOP\r\nUIDL\r\nRESP-CODES\r\nAUTH-RESP-CODE\r\nPIPELINING\r\n")
	if s.state == stateAuthorization && s.plaintextAllowed() {
		w.WriteString("USER\r\n")
		if mechs := s.srv.auth.Mechanisms(); len(mechs) > 0 {
			w.WriteString("SASL " + strings.Join(mechs, " ") + "\r\n")
		}
	}
	if s.state == stateAuthorization && s.srv.cfg.TLS != nil && !s.tls {
		w.WriteString("STLS\r\n")
	}
	if s.srv.cfg.Expire != "" {
		w.WriteString("EXPIRE " + s.srv.cfg.Expire + "\r\n")
	}
	if s.srv.cfg.LoginDelay > 0 {
		fmt.Fprintf(w, "LOGIN-DELAY %d\r\n", s.srv.cfg.LoginDelay)
	}
	w.WriteString("IMPLEMENTATION Petrel\r\n.\r\n")
	return nil
}

func (s *session) cmdQuit(arg string) error {
	if s.state == stateTransaction {
		// RFC 1939 §6: QUIT in TRANSACTION enters UPDATE; the reply says whether it worked.
		err := s.update()
		// The maildrop is free before the client reads the reply: a client that reconnects
		// at once (fetchmail, mpop, scripts) must not find its own old session holding it.
		s.releaseLock()
		if err != nil {
			s.log.Error("pop3: update", "remote", s.remote, "user", s.account.Address, "err", err)
			s.err("[SYS/TEMP] some deleted messages not removed")
			return errUpdateFailed
		}
	}
	s.ok("bye")
	return errQuit
}

// update applies the account's POP3 delete policy to the messages marked deleted (RFC 1939
// §6). The policy is read now, not at login, so a change made meanwhile applies.
func (s *session) update() error {
	var uids []uint32
	for i, m := range s.msgs {
		if s.deleted[i] {
			uids = append(uids, m.UID)
		}
	}
	if len(uids) == 0 {
		return nil
	}
	acct, err := s.srv.store.AccountByID(s.ctx, s.account.ID)
	if err != nil {
		return err
	}
	switch acct.POP3Delete {
	case store.POP3Delete, "":
		_, err = s.srv.store.Expunge(s.ctx, s.inbox.ID, uids)
	case store.POP3Keep:
		_, err = s.srv.store.SetFlags(s.ctx, s.inbox.ID, uids, store.FlagChange{Mode: store.FlagsAdd, Flags: []string{store.FlagSeen}})
	case store.POP3Archive:
		var archive store.Mailbox
		archive, err = s.archive()
		if err == nil {
			_, err = s.srv.store.Move(s.ctx, s.inbox.ID, uids, archive.ID)
		}
	default:
		err = fmt.Errorf("unknown POP3 delete policy %q", acct.POP3Delete)
	}
	if err == nil {
		s.expunged = len(uids)
	}
	return err
}

// archive returns the account's Archive mailbox, creating it if someone deleted it.
func (s *session) archive() (store.Mailbox, error) {
	mb, err := s.srv.store.Mailbox(s.ctx, s.account.ID, store.Archive)
	if !errors.Is(err, store.ErrNotFound) {
		return mb, err
	}
	mb, err = s.srv.store.CreateMailbox(s.ctx, s.account.ID, store.Archive)
	if errors.Is(err, store.ErrExists) {
		return s.srv.store.Mailbox(s.ctx, s.account.ID, store.Archive)
	}
	return mb, err
}

func (s *session) cmdUser(arg string) error {
	if !s.plaintextAllowed() {
		return s.err("[AUTH] plaintext authentication needs TLS: use STLS first")
	}
	if arg == "" {
		return s.err("USER needs a name")
	}
	// RFC 1939 §7: the reply does not tell whether the name exists.
	s.user, s.name = arg, arg
	return s.ok("send PASS")
}

func (s *session) cmdPass(arg string) error {
	if !s.plaintextAllowed() {
		return s.err("[AUTH] plaintext authentication needs TLS: use STLS first")
	}
	if s.user == "" {
		return s.err("USER first")
	}
	user := s.user
	s.user = "" // RFC 1939 §7: after a failed PASS the client starts again with USER
	acct, err := s.srv.auth.CheckPassword(s.ctx, user, arg, s.remote)
	if err != nil {
		return s.authFailed(err)
	}
	return s.login(acct)
}

// authFailed answers a failed login (RFC 3206 §4: [AUTH] for bad credentials, [SYS/TEMP] for
// our own trouble) and ends the session after MaxAuthFailures.
func (s *session) authFailed(err error) error {
	s.srv.cfg.Metrics.Auth(false)
	s.failures++
	if errors.Is(err, auth.ErrInvalid) {
		s.err("[AUTH] invalid user name or password")
	} else {
		s.log.Warn("pop3: authentication", "remote", s.remote, "err", err)
		s.err("[SYS/TEMP] authentication failed, try again later")
	}
	if s.failures >= s.srv.cfg.MaxAuthFailures {
		return errAuthFailures
	}
	return nil
}

// login locks the maildrop and takes the snapshot message numbers refer to (RFC 1939 §4, §8).
func (s *session) login(acct store.Account) error {
	s.srv.cfg.Metrics.Auth(true)
	s.name = acct.Address
	unlock, err := s.srv.store.LockMaildrop(s.ctx, acct.ID)
	if errors.Is(err, store.ErrLocked) {
		return s.err("[IN-USE] maildrop already locked") // RFC 2449 §8.1.2
	}
	if err != nil {
		s.log.Error("pop3: lock maildrop", "account", acct.Address, "err", err)
		return s.err("[SYS/TEMP] cannot open maildrop")
	}
	s.unlock = unlock // from here on, the session's end releases it whatever happens
	if !s.srv.loginAllowed(acct.ID, time.Now()) {
		s.releaseLock()
		return s.err("[LOGIN-DELAY] logged in too recently, try again later") // RFC 2449 §8.1.1
	}
	inbox, err := s.srv.store.Mailbox(s.ctx, acct.ID, store.Inbox)
	var msgs []store.Message
	if err == nil {
		msgs, err = s.srv.store.Messages(s.ctx, inbox.ID, store.Filter{})
	}
	if err != nil {
		s.releaseLock()
		s.log.Error("pop3: open maildrop", "account", acct.Address, "err", err)
		return s.err("[SYS/TEMP] cannot open maildrop")
	}
	s.account, s.inbox, s.msgs = acct, inbox, msgs
	s.deleted = make([]bool, len(msgs))
	s.state = stateTransaction
	n, size := s.stat()
	return s.ok(fmt.Sprintf("maildrop has %d messages (%d octets)", n, size))
}

func (s *session) releaseLock() {
	if s.unlock != nil {
		s.unlock()
		s.unlock = nil
	}
}

// cmdAuth runs a SASL exchange (RFC 5034 §4).
func (s *session) cmdAuth(arg string) error {
	if !s.plaintextAllowed() {
		return s.err("[AUTH] authentication needs TLS: use STLS first")
	}
	if arg == "" {
		// Listing the mechanisms is the RFC 1734 behaviour many clients still probe for.
		w := s.out()
		w.WriteString("+OK\r\n")
		for _, m := range s.srv.auth.Mechanisms() {
			w.WriteString(m + "\r\n")
		}
		w.WriteString(".\r\n")
		return nil
	}
	mech, initial, hasInitial := strings.Cut(arg, " ")
	exchange, err := s.srv.auth.NewSASL(s.ctx, mech, s.remote)
	if err != nil {
		return s.err("unsupported authentication mechanism")
	}
	var resp []byte
	if hasInitial {
		// RFC 5034 §4: "=" is an empty initial response.
		if initial != "=" {
			if resp, err = base64.StdEncoding.DecodeString(initial); err != nil {
				return s.err("invalid base64 in initial response")
			}
		}
		if resp == nil {
			resp = []byte{}
		}
	}
	for {
		challenge, done, err := exchange.Next(resp)
		if err != nil {
			return s.authFailed(err)
		}
		if done && len(challenge) == 0 {
			return s.login(exchange.Account())
		}
		// RFC 5034 §4: POP3 has no room for data with +OK, so final server data goes out as
		// one more challenge, to which the client answers with an empty line.
		s.out().WriteString("+ " + base64.StdEncoding.EncodeToString(challenge) + "\r\n")
		line, err := s.readLine(maxSASLLine, s.srv.cfg.CommandTimeout, 0)
		if err != nil {
			return err
		}
		line = bytes.TrimSuffix(bytes.TrimSuffix(line, []byte("\n")), []byte("\r"))
		if string(line) == "*" {
			return s.err("authentication cancelled")
		}
		if resp, err = base64.StdEncoding.DecodeString(string(line)); err != nil {
			return s.err("invalid base64 in response")
		}
		if done {
			return s.login(exchange.Account())
		}
	}
}

// cmdStls starts TLS (RFC 2595 §4).
func (s *session) cmdStls(arg string) error {
	if s.srv.cfg.TLS == nil || s.tls {
		return s.err("STLS not available")
	}
	if arg != "" {
		return s.err("STLS takes no argument")
	}
	s.ok("begin TLS negotiation")
	if err := s.flush(); err != nil {
		return err
	}
	if err := s.startTLS(); err != nil {
		return tlsError{err}
	}
	s.user = "" // nothing from before TLS carries over
	return nil
}

// startTLS runs the server side of a TLS handshake on the raw connection. The read buffer is
// reset, so whatever the client sent after STLS in plaintext is dropped unread: it must not be
// taken for commands sent under TLS (CVE-2011-0411 and its many relatives).
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

// stat counts the messages not marked deleted and their size.
func (s *session) stat() (n int, size int64) {
	for i, m := range s.msgs {
		if !s.deleted[i] {
			n++
			size += m.Size
		}
	}
	return n, size
}

// message resolves a message-number argument (RFC 1939 §5: deleted messages cannot be
// referenced). It returns the index in msgs, or answers -ERR and returns false.
func (s *session) message(arg string) (int, bool) {
	n, ok := parseNumber(arg)
	if !ok {
		s.err("invalid message number")
		return 0, false
	}
	if n < 1 || n > len(s.msgs) {
		s.err("no such message")
		return 0, false
	}
	if s.deleted[n-1] {
		s.err("message already deleted")
		return 0, false
	}
	return n - 1, true
}

func (s *session) cmdStat(arg string) error {
	if arg != "" {
		return s.err("STAT takes no argument")
	}
	n, size := s.stat()
	return s.ok(fmt.Sprintf("%d %d", n, size))
}

func (s *session) cmdList(arg string) error {
	return s.listing(arg, func(i int) string { return fmt.Sprint(s.msgs[i].Size) })
}

// uidl derives a unique-id (RFC 1939 §7: 1 to 70 characters in 0x21-0x7E) that stays the
// same across sessions: UIDVALIDITY and UID identify a message in a mailbox for good.
func (s *session) uidl(i int) string {
	if s.account.POP3UIDL == store.UIDLDovecot {
		// Dovecot's default pop3_uidl_format %08Xu%08Xv, which Dovecot 2.3 writes in lower
		// case ("0000001a6b16989b", seen from the real server in internal/cli's import
		// test): an account moved from Dovecot with its UIDs keeps the unique-ids its
		// clients remember.
		return fmt.Sprintf("%08x%08x", s.msgs[i].UID, s.inbox.UIDValidity)
	}
	return fmt.Sprintf("%x.%x", s.inbox.UIDValidity, s.msgs[i].UID)
}

func (s *session) cmdUidl(arg string) error {
	return s.listing(arg, s.uidl)
}

// listing answers LIST and UIDL: one message with an argument, else a multi-line list of all
// messages not marked deleted.
func (s *session) listing(arg string, value func(i int) string) error {
	if arg != "" {
		i, ok := s.message(arg)
		if ok {
			s.ok(fmt.Sprintf("%d %s", i+1, value(i)))
		}
		return nil
	}
	w := s.out()
	w.WriteString("+OK\r\n")
	for i := range s.msgs {
		if !s.deleted[i] {
			fmt.Fprintf(w, "%d %s\r\n", i+1, value(i))
		}
	}
	w.WriteString(".\r\n")
	return nil
}

func (s *session) cmdRetr(arg string) error {
	i, ok := s.message(arg)
	if !ok {
		return nil
	}
	return s.sendBody(i, -1)
}

func (s *session) cmdTop(arg string) error {
	msg, lines, ok := strings.Cut(arg, " ")
	n, okLines := parseNumber(lines)
	if !ok || !okLines {
		return s.err("usage: TOP msg lines")
	}
	i, ok := s.message(msg)
	if !ok {
		return nil
	}
	return s.sendBody(i, n)
}

// sendBody streams message i as a multi-line response: whole (lines < 0, RETR) or its header
// and the first lines of its body (TOP).
func (s *session) sendBody(i, lines int) error {
	m := s.msgs[i]
	blob, err := s.srv.store.OpenBlob(s.ctx, m.BlobID)
	if err != nil {
		s.log.Warn("pop3: open message", "account", s.account.Address, "uid", m.UID, "err", err)
		if errors.Is(err, store.ErrNotFound) {
			return s.err("message is gone") // removed by another session since login
		}
		return s.err("[SYS/TEMP] cannot read message")
	}
	defer blob.Close()
	if lines < 0 {
		s.ok(fmt.Sprintf("%d octets", m.Size))
	} else {
		s.ok("top of message follows")
	}
	bufp := s.srv.copyBufs.Get().(*[]byte)
	defer s.srv.copyBufs.Put(bufp)
	dw := newDotWriter(s.out(), lines)
	// The struct hides blob's WriteTo, which could allocate its own copy buffer.
	if _, err := io.CopyBuffer(dw, struct{ io.Reader }{blob}, *bufp); err != nil {
		// Half a response is out; the client cannot resync, so the session ends.
		return fmt.Errorf("sending message %d: %w", i+1, err)
	}
	if err := dw.finish(); err != nil {
		return err
	}
	if lines < 0 {
		s.retrieved++
		s.retrievedBytes += m.Size
	}
	return nil
}

func (s *session) cmdDele(arg string) error {
	i, ok := s.message(arg)
	if !ok {
		return nil
	}
	s.deleted[i] = true
	return s.ok(fmt.Sprintf("message %d deleted", i+1))
}

func (s *session) cmdNoop(arg string) error {
	if arg != "" {
		return s.err("NOOP takes no argument")
	}
	return s.ok("")
}

func (s *session) cmdRset(arg string) error {
	if arg != "" {
		return s.err("RSET takes no argument")
	}
	clear(s.deleted)
	n, size := s.stat()
	return s.ok(fmt.Sprintf("maildrop has %d messages (%d octets)", n, size))
}
