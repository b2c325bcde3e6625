package managesieve

import (
	"bufio"
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
	"strconv"
	"strings"
	"sync"
	"time"

	"petrel/internal/lib/connid"
	"petrel/internal/lib/netconn"
	"petrel/internal/mail/auth"
	"petrel/internal/mail/sieve"
	"petrel/internal/store"
)

// commands lists every command: whether it needs a login, and its handler (RFC 5804 §2).
var commands = map[string]struct {
	authed bool
	fn     func(s *session, args []argument) error
}{
	"CAPABILITY":     {false, (*session).cmdCapability},    // §2.4
	"STARTTLS":       {false, (*session).cmdStartTLS},      // §2.2
	"AUTHENTICATE":   {false, (*session).cmdAuthenticate},  // §2.1
	"LOGOUT":         {false, (*session).cmdLogout},        // §2.3
	"NOOP":           {false, (*session).cmdNoop},          // §2.13
	"UNAUTHENTICATE": {true, (*session).cmdUnauthenticate}, // §2.14
	"HAVESPACE":      {true, (*session).cmdHaveSpace},      // §2.5
	"PUTSCRIPT":      {true, (*session).cmdPutScript},      // §2.6
	"LISTSCRIPTS":    {true, (*session).cmdListScripts},    // §2.7
	"SETACTIVE":      {true, (*session).cmdSetActive},      // §2.8
	"GETSCRIPT":      {true, (*session).cmdGetScript},      // §2.9
	"DELETESCRIPT":   {true, (*session).cmdDeleteScript},   // §2.10
	"RENAMESCRIPT":   {true, (*session).cmdRenameScript},   // §2.11
	"CHECKSCRIPT":    {true, (*session).cmdCheckScript},    // §2.12
}

var (
	errLogout       = errors.New("logout")
	errAuthFailures = errors.New("too many authentication failures")
)

// session is one ManageSieve connection.
type session struct {
	srv    *Server
	log    *slog.Logger // the server's, with the connection's id ("conn", lib/connid)
	raw    net.Conn     // the accepted connection
	conn   net.Conn     // raw, or the tls.Conn over it
	br     *bufio.Reader
	bw     *bufio.Writer
	remote netip.Addr
	ctx    context.Context
	start  time.Time
	// loginDL ends the connection if it has not logged in by then.
	loginDL time.Time

	mu sync.Mutex // orders read deadlines against Shutdown (setReadDeadline, Interrupt)

	tls      bool
	authed   bool
	account  store.Account
	failures int
	puts     int // scripts stored, for the log
}

func newSession(srv *Server, c net.Conn) *session {
	s := &session{srv: srv, log: srv.log.With("conn", connid.New()), raw: c, remote: netconn.RemoteAddr(c), ctx: srv.conns.Context(), start: time.Now()}
	s.loginDL = s.start.Add(srv.cfg.LoginTimeout)
	s.setConn(c)
	return s
}

func (s *session) setConn(c net.Conn) {
	s.conn = c
	s.br = bufio.NewReaderSize(c, 4096) // a fresh buffer: nothing read before TLS survives
	s.bw = bufio.NewWriterSize(&netconn.DeadlineWriter{Conn: c, Timeout: s.srv.cfg.CommandTimeout}, 4096)
}

// Interrupt wakes a session waiting for a command so that it notices Shutdown.
func (s *session) Interrupt() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.raw.SetReadDeadline(time.Now())
}

// Close closes the connection at once.
func (s *session) Close() error { return s.raw.Close() }

// setReadDeadline sets the read deadline unless Shutdown was called (then it is now), and
// never past the login deadline before login.
func (s *session) setReadDeadline(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := time.Now().Add(d)
	if !s.authed && t.After(s.loginDL) {
		t = s.loginDL
	}
	if s.srv.conns.Closing() {
		t = time.Now()
	}
	s.raw.SetReadDeadline(t)
}

// Serve runs the session to its end.
func (s *session) Serve() {
	result := "closed"
	defer func() {
		if r := recover(); r != nil {
			s.log.Error("managesieve: panic", "remote", s.remote, "panic", r, "stack", string(debug.Stack()))
			s.raw.SetWriteDeadline(time.Now().Add(time.Second))
			io.WriteString(s.conn, "BYE \"internal error\"\r\n")
			result = "panic"
		}
		s.conn.Close()
		s.srv.conns.Done(s)
		s.log.Info("managesieve session", "remote", s.remote, "user", s.account.Address, "tls", s.tls,
			"scripts_stored", s.puts, "duration", time.Since(s.start).Round(time.Millisecond), "result", result)
	}()
	result = s.run()
}

func (s *session) run() string {
	s.writeCapabilities()
	s.ok("", "Petrel ManageSieve ready")
	for {
		if err := s.bw.Flush(); err != nil {
			return "write: " + err.Error()
		}
		idle := s.srv.cfg.LoginIdleTimeout
		if s.authed {
			idle = s.srv.cfg.IdleTimeout
		}
		s.setReadDeadline(idle)
		if _, err := s.br.Peek(1); err != nil {
			return s.readEnd(err)
		}
		s.setReadDeadline(s.srv.cfg.CommandTimeout)
		name, args, err := readCommand(s.br, s.srv.cfg.MaxLineLength, s.srv.cfg.Limits.MaxScriptSize)
		var se syntaxError
		switch {
		case errors.As(err, &se):
			s.no("", se.msg)
			continue
		case errors.Is(err, errTooLong):
			s.bye("", "command too long")
			s.bw.Flush()
			return "command too long"
		case err != nil:
			return s.readEnd(err)
		}
		cmd, ok := commands[name]
		switch {
		case !ok:
			s.no("", "unknown command")
			continue
		case cmd.authed && !s.authed:
			s.no("", "log in first")
			continue
		}
		if err := cmd.fn(s, args); err != nil {
			s.bw.Flush()
			switch {
			case errors.Is(err, errLogout):
				return "logout"
			case errors.Is(err, errAuthFailures):
				return "too many authentication failures"
			}
			return err.Error()
		}
	}
}

// readEnd says goodbye when a read ended because of a shutdown or a timeout.
func (s *session) readEnd(err error) string {
	if s.srv.conns.Closing() {
		s.bye("TRYLATER", "server shutting down")
		s.bw.Flush()
		return "shutdown"
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		s.bye("", "timed out")
		s.bw.Flush()
		return "timeout"
	}
	if errors.Is(err, io.EOF) {
		return "closed"
	}
	return "read: " + err.Error()
}

// Responses (RFC 5804 §1.3): OK, NO or BYE, an optional code in parentheses and a text.
func (s *session) respond(kind, code, text string) {
	s.bw.WriteString(kind)
	if code != "" {
		s.bw.WriteString(" (" + code + ")")
	}
	if text != "" {
		s.bw.WriteString(" " + quote(text))
	}
	s.bw.WriteString("\r\n")
}

func (s *session) ok(code, text string)  { s.respond("OK", code, text) }
func (s *session) no(code, text string)  { s.respond("NO", code, text) }
func (s *session) bye(code, text string) { s.respond("BYE", code, text) }

// mechanisms are the SASL mechanisms offered now: none before TLS unless allowed.
func (s *session) mechanisms() []string {
	if !s.tls && !s.srv.cfg.AllowPlaintextAuth {
		return nil
	}
	var out []string
	for _, m := range s.srv.auth.Mechanisms() {
		if m == "PLAIN" || m == "SCRAM-SHA-256" {
			out = append(out, m)
		}
	}
	return out
}

func (s *session) writeCapabilities() {
	line := func(name, value string) {
		s.bw.WriteString(quote(name))
		if value != "" || name == "SASL" {
			s.bw.WriteString(" " + quote(value))
		}
		s.bw.WriteString("\r\n")
	}
	line("IMPLEMENTATION", "Petrel")
	if !s.authed {
		line("SASL", strings.Join(s.mechanisms(), " "))
	}
	line("SIEVE", strings.Join(sieve.Capabilities, " "))
	if s.srv.cfg.TLS != nil && !s.tls {
		line("STARTTLS", "")
	}
	line("MAXREDIRECTS", strconv.Itoa(s.srv.cfg.Limits.MaxRedirects))
	if s.authed {
		line("OWNER", s.account.Address)
	}
	line("UNAUTHENTICATE", "")
	line("VERSION", "1.0")
}

func (s *session) cmdCapability(args []argument) error {
	if len(args) != 0 {
		s.no("", "CAPABILITY takes no arguments")
		return nil
	}
	s.writeCapabilities()
	s.ok("", "Capability completed")
	return nil
}

func (s *session) cmdNoop(args []argument) error {
	if len(args) > 1 || len(args) == 1 && args[0].number {
		s.no("", "NOOP takes at most one string")
		return nil
	}
	if len(args) == 1 {
		s.ok("TAG "+quote(args[0].s), "Done") // §2.13
		return nil
	}
	s.ok("", "Done")
	return nil
}

func (s *session) cmdLogout(args []argument) error {
	s.ok("", "Logout completed")
	return errLogout
}

func (s *session) cmdStartTLS(args []argument) error {
	switch {
	case s.srv.cfg.TLS == nil:
		s.no("", "TLS is not available")
		return nil
	case s.tls:
		s.no("", "TLS is active already")
		return nil
	case s.authed:
		s.no("", "STARTTLS only before login")
		return nil
	case s.br.Buffered() > 0:
		// Anything pipelined after STARTTLS would be read as if it came over TLS.
		s.bye("", "data after STARTTLS")
		return errors.New("data after STARTTLS")
	}
	s.ok("", "Begin TLS negotiation now")
	if err := s.bw.Flush(); err != nil {
		return err
	}
	tc := tls.Server(s.raw, s.srv.cfg.TLS)
	s.raw.SetDeadline(time.Now().Add(s.srv.cfg.CommandTimeout))
	if err := tc.HandshakeContext(s.ctx); err != nil {
		return fmt.Errorf("tls handshake: %w", err)
	}
	s.raw.SetDeadline(time.Time{})
	s.tls = true
	s.setConn(tc)
	// §2.2: the capabilities again, over TLS.
	s.writeCapabilities()
	s.ok("", "TLS negotiation successful")
	return nil
}

func (s *session) cmdAuthenticate(args []argument) error {
	if s.authed {
		s.no("", "already logged in")
		return nil
	}
	if len(s.mechanisms()) == 0 {
		s.no("ENCRYPT-NEEDED", "use STARTTLS first")
		return nil
	}
	if len(args) < 1 || len(args) > 2 || args[0].number {
		s.no("", "AUTHENTICATE needs a mechanism and an optional initial response")
		return nil
	}
	mech := strings.ToUpper(args[0].s)
	offered := false
	for _, m := range s.mechanisms() {
		offered = offered || m == mech
	}
	if !offered {
		s.no("", "unsupported mechanism")
		return nil
	}
	exchange, err := s.srv.auth.NewSASL(s.ctx, mech, s.remote)
	if err != nil {
		s.no("", "unsupported mechanism")
		return nil
	}
	var resp []byte
	if len(args) == 2 {
		if resp, err = base64.StdEncoding.DecodeString(args[1].s); err != nil {
			s.no("", "invalid base64 in initial response")
			return nil
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
		// A challenge is a string on its own line (§2.1); the answer too, "*" cancels.
		s.bw.WriteString(quote(base64.StdEncoding.EncodeToString(challenge)) + "\r\n")
		if err := s.bw.Flush(); err != nil {
			return err
		}
		s.setReadDeadline(s.srv.cfg.CommandTimeout)
		got, err := readResponse(s.br, s.srv.cfg.MaxLineLength, s.srv.cfg.MaxLineLength)
		var se syntaxError
		if errors.As(err, &se) || err == nil && len(got) != 1 {
			s.no("", "expected a string")
			return nil
		}
		if err != nil {
			return err
		}
		if got[0].s == "*" {
			s.no("", "authentication cancelled")
			return nil
		}
		if resp, err = base64.StdEncoding.DecodeString(got[0].s); err != nil {
			s.no("", "invalid base64 in response")
			return nil
		}
		if resp == nil {
			resp = []byte{}
		}
		if done {
			return s.login(exchange.Account())
		}
	}
}

func (s *session) authFailed(err error) error {
	s.failures++
	if errors.Is(err, auth.ErrInvalid) {
		s.no("", "invalid user name or password")
	} else {
		s.log.Warn("managesieve: authentication", "remote", s.remote, "err", err)
		s.no("TRYLATER", "authentication failed, try again later")
	}
	if s.failures >= s.srv.cfg.MaxAuthFailures {
		s.bye("", "too many authentication failures")
		return errAuthFailures
	}
	return nil
}

func (s *session) login(acct store.Account) error {
	s.authed, s.account = true, acct
	s.ok("", "Logged in")
	return nil
}

func (s *session) cmdUnauthenticate(args []argument) error {
	s.authed, s.account = false, store.Account{}
	s.loginDL = time.Now().Add(s.srv.cfg.LoginTimeout)
	s.ok("", "Unauthenticate completed")
	return nil
}

// strArgs checks that args are n strings (not numbers) and returns them.
func (s *session) strArgs(cmd string, args []argument, n int) ([]string, bool) {
	if len(args) != n {
		s.no("", fmt.Sprintf("%s takes %d arguments", cmd, n))
		return nil, false
	}
	out := make([]string, n)
	for i, a := range args {
		if a.number {
			s.no("", fmt.Sprintf("%s: argument %d must be a string", cmd, i+1))
			return nil, false
		}
		out[i] = a.s
	}
	return out, true
}

// storeError answers a store failure.
func (s *session) storeError(err error) error {
	switch {
	case errors.Is(err, store.ErrNotFound):
		s.no("NONEXISTENT", "no such script")
	case errors.Is(err, store.ErrExists):
		s.no("ALREADYEXISTS", "a script of that name exists")
	case errors.Is(err, store.ErrInvalid):
		s.no("", "invalid script name")
	default:
		s.log.Error("managesieve: store", "user", s.account.Address, "err", err)
		s.no("TRYLATER", "internal error, try again later")
	}
	return nil
}

func (s *session) cmdHaveSpace(args []argument) error {
	if len(args) != 2 || args[0].number || !args[1].number {
		s.no("", "HAVESPACE takes a script name and a size")
		return nil
	}
	size, _ := strconv.ParseUint(args[1].s, 10, 32)
	if size > uint64(s.srv.cfg.Limits.MaxScriptSize) {
		s.no("QUOTA/MAXSIZE", fmt.Sprintf("a script may have %d octets", s.srv.cfg.Limits.MaxScriptSize))
		return nil
	}
	if full, err := s.full(args[0].s); err != nil || full {
		return err
	}
	s.ok("", "Putscript would succeed")
	return nil
}

// full answers NO (QUOTA/MAXSCRIPTS) and reports true when a new script called name would
// be one too many.
func (s *session) full(name string) (bool, error) {
	list, err := s.srv.store.SieveScripts(s.ctx, s.account.ID)
	if err != nil {
		return true, s.storeError(err)
	}
	for _, sc := range list {
		if sc.Name == name {
			return false, nil
		}
	}
	if len(list) >= s.srv.cfg.MaxScripts {
		s.no("QUOTA/MAXSCRIPTS", fmt.Sprintf("an account may have %d scripts", s.srv.cfg.MaxScripts))
		return true, nil
	}
	return false, nil
}

// check parses a script and answers NO with the line and reason if it does not parse.
func (s *session) check(content string) bool {
	if _, err := sieve.Parse(content, s.srv.cfg.Limits); err != nil {
		s.no("", err.Error())
		return false
	}
	return true
}

func (s *session) cmdPutScript(args []argument) error {
	a, ok := s.strArgs("PUTSCRIPT", args, 2)
	if !ok {
		return nil
	}
	if !store.ValidSieveName(a[0]) {
		s.no("", "invalid script name")
		return nil
	}
	if !s.check(a[1]) {
		return nil
	}
	if full, err := s.full(a[0]); err != nil || full {
		return err
	}
	if err := s.srv.store.PutSieveScript(s.ctx, s.account.ID, a[0], a[1]); err != nil {
		return s.storeError(err)
	}
	s.puts++
	s.ok("", "Putscript completed")
	return nil
}

func (s *session) cmdCheckScript(args []argument) error {
	a, ok := s.strArgs("CHECKSCRIPT", args, 1)
	if ok && s.check(a[0]) {
		s.ok("", "Script is valid")
	}
	return nil
}

func (s *session) cmdListScripts(args []argument) error {
	if _, ok := s.strArgs("LISTSCRIPTS", args, 0); !ok {
		return nil
	}
	list, err := s.srv.store.SieveScripts(s.ctx, s.account.ID)
	if err != nil {
		return s.storeError(err)
	}
	for _, sc := range list {
		s.bw.WriteString(quote(sc.Name))
		if sc.Active {
			s.bw.WriteString(" ACTIVE")
		}
		s.bw.WriteString("\r\n")
	}
	s.ok("", "Listscripts completed")
	return nil
}

func (s *session) cmdSetActive(args []argument) error {
	a, ok := s.strArgs("SETACTIVE", args, 1)
	if !ok {
		return nil
	}
	if err := s.srv.store.SetActiveSieveScript(s.ctx, s.account.ID, a[0]); err != nil {
		return s.storeError(err)
	}
	s.ok("", "Setactive completed")
	return nil
}

func (s *session) cmdGetScript(args []argument) error {
	a, ok := s.strArgs("GETSCRIPT", args, 1)
	if !ok {
		return nil
	}
	sc, err := s.srv.store.SieveScript(s.ctx, s.account.ID, a[0])
	if err != nil {
		return s.storeError(err)
	}
	s.bw.WriteString("{" + strconv.Itoa(len(sc.Content)) + "}\r\n" + sc.Content + "\r\n")
	s.ok("", "Getscript completed")
	return nil
}

func (s *session) cmdDeleteScript(args []argument) error {
	a, ok := s.strArgs("DELETESCRIPT", args, 1)
	if !ok {
		return nil
	}
	err := s.srv.store.DeleteSieveScript(s.ctx, s.account.ID, a[0])
	if errors.Is(err, store.ErrInvalid) {
		s.no("ACTIVE", "the active script cannot be deleted") // §2.10
		return nil
	}
	if err != nil {
		return s.storeError(err)
	}
	s.ok("", "Deletescript completed")
	return nil
}

func (s *session) cmdRenameScript(args []argument) error {
	a, ok := s.strArgs("RENAMESCRIPT", args, 2)
	if !ok {
		return nil
	}
	if err := s.srv.store.RenameSieveScript(s.ctx, s.account.ID, a[0], a[1]); err != nil {
		return s.storeError(err)
	}
	s.ok("", "Renamescript completed")
	return nil
}
