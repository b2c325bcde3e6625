// Package pop3d is Petrel's POP3 server (RFC 1939 with the RFC 2449 extension mechanism,
// RFC 2595 STLS, RFC 5034 SASL AUTH and RFC 3206 response codes).
//
// The maildrop is the account's INBOX. At login the session takes the store's exclusive
// maildrop lock and a snapshot of the INBOX; message numbers refer to that snapshot for the
// whole session. DELE only marks; the account's POP3Delete policy is applied at QUIT (the
// UPDATE state), and nothing else ever changes the store.
//
// Implementation notes (invariants a contributor must not break):
//   - The store is changed only in UPDATE, that is after QUIT in the TRANSACTION state. A
//     dropped connection, a timeout, a panic or a shutdown leaves the maildrop untouched.
//   - The maildrop lock is released when the session ends, whatever the reason.
//   - Every read and every write has a deadline. A read deadline is only ever set through
//     session.setReadDeadline, which holds session.mu and checks Server.conns.Closing, so that a
//     concurrent Shutdown cannot be overwritten by a later deadline (see Shutdown).
//   - No client holds a connection by sending slowly: a command line must be complete within
//     CommandTimeout of its first byte, however it drips; the wait for a command is
//     LoginIdleTimeout before login, IdleTimeout after; and before login no deadline goes
//     past LoginTimeout after connecting (setReadDeadline).
//   - Output is buffered and flushed only before the session would block on a read (no full
//     command line is buffered), so a pipelined batch (RFC 2449 §6.6) is answered in one write.
//   - An idle session holds no buffer and no goroutine besides its own: the write buffer
//     comes from a pool while a command runs and goes back before the next read; the read
//     buffer comes from a pool too and goes back once the session has waited moveOnAfter
//     for a command, when it also moves to a fresh goroutine with a small stack (idle.go).
//   - After STLS the read buffer is discarded (RFC 2595 §4, the CVE-2011-0411 family of
//     command injection bugs): nothing a client sent in plaintext is read as TLS-protected.
//   - One recover per connection: a panic closes that connection only.
package pop3d

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"petrel/internal/lib/netconn"
	"petrel/internal/mail/auth"
	"petrel/internal/store"
)

// Config tunes a POP3 listener. Zero values get the defaults named on each field.
type Config struct {
	Hostname           string        // named in the greeting; "" omits it
	TLS                *tls.Config   // nil: no STLS offered (and ImplicitTLS is an error)
	ImplicitTLS        bool          // port 995: Serve wraps each accepted conn in tls.Server itself
	AllowPlaintextAuth bool          // allow USER/PASS and AUTH before TLS (default false)
	IdleTimeout        time.Duration // RFC 1939 §3 autologout timer while waiting for a command (default 10m)
	CommandTimeout     time.Duration // time to receive the rest of a line once its first byte came, and per write (default 1m)
	LoginIdleTimeout   time.Duration // IdleTimeout before login (default 1m)
	LoginTimeout       time.Duration // a connection must log in this soon after connecting (default 3m)
	MaxLineLength      int           // longest command line in octets, CRLF included (default 512)
	Expire             string        // CAPA EXPIRE argument: "" not advertised, else "NEVER" or a number of days
	LoginDelay         int           // CAPA LOGIN-DELAY seconds, enforced per account; 0 = off
	MaxAuthFailures    int           // failed logins before the connection is closed (default 3)
	Metrics            Metrics       // counts logins and commands (default: none)
}

// Metrics counts what sessions do; internal/app passes one per listener (labelled with its
// protocol), so nothing here knows how or where the counts are kept. nil counts nothing.
type Metrics interface {
	Auth(ok bool)        // the outcome of a login attempt (USER/PASS, APOP or AUTH)
	Command(name string) // a command of the command table, about to run
}

type noMetrics struct{}

func (noMetrics) Auth(bool)      {}
func (noMetrics) Command(string) {}

// Defaults for the zero values of Config.
const (
	DefaultIdleTimeout     = 10 * time.Minute // RFC 1939 §3: at least 10 minutes
	DefaultCommandTimeout  = time.Minute
	DefaultMaxLineLength   = 512
	DefaultMaxAuthFailures = 3
)

// Defaults for a connection that has not logged in yet.
//
// RFC 1939 §3 asks for an autologout timer of at least 10 minutes: that protects a user who
// reads mail in a session and pauses. Before login there is no such user, only a client
// going through CAPA, STLS and USER/PASS or AUTH without pausing (a person typing a
// password has a minute), so a shorter wait loses nobody and stops a client that connects
// and says nothing from holding a slot for ten minutes. LoginTimeout caps the whole time
// before login, as Dovecot does ("no auth attempts in 180 secs"), so that commands sent
// just in time (CAPA every 59 seconds) cannot keep an anonymous connection either.
const (
	DefaultLoginIdleTimeout = time.Minute
	DefaultLoginTimeout     = 3 * time.Minute
)

// Store is the part of store.Store the POP3 server uses.
type Store interface {
	AccountByID(ctx context.Context, id int64) (store.Account, error)
	Mailbox(ctx context.Context, accountID int64, name string) (store.Mailbox, error)
	CreateMailbox(ctx context.Context, accountID int64, name string) (store.Mailbox, error)
	Messages(ctx context.Context, mailboxID int64, f store.Filter) ([]store.Message, error)
	OpenBlob(ctx context.Context, blobID int64) (io.ReadCloser, error)
	SetFlags(ctx context.Context, mailboxID int64, uids []uint32, c store.FlagChange) (store.FlagsUpdated, error)
	Expunge(ctx context.Context, mailboxID int64, uids []uint32) (store.Expunged, error)
	Move(ctx context.Context, from int64, uids []uint32, to int64) (store.Copied, error)
	LockMaildrop(ctx context.Context, accountID int64) (unlock func(), err error)
}

// Authenticator checks logins; *auth.Service implements it.
type Authenticator interface {
	CheckPassword(ctx context.Context, username, password string, remote netip.Addr) (store.Account, error)
	Mechanisms() []string
	NewSASL(ctx context.Context, mech string, remote netip.Addr) (auth.SASL, error)
}

var (
	_ Store         = (store.Store)(nil)
	_ Authenticator = (*auth.Service)(nil)
)

// Sizes of the buffers. All are pooled and held only while a command runs (and the read
// buffer while it holds pipelined input); the read buffer is small because a command line is.
const (
	readBufferSize  = 1024
	writeBufferSize = 16 << 10
	copyBufferSize  = 16 << 10
	maxSASLLine     = 8 << 10 // a SASL response line (RFC 5034 §4 lifts the command length limit)
)

// Server serves POP3 on any number of listeners.
type Server struct {
	cfg   Config
	store Store
	auth  Authenticator
	log   *slog.Logger

	readers  sync.Pool // *bufio.Reader of readBufferSize, lent to a session while it reads
	writers  sync.Pool // *bufio.Writer of writeBufferSize, lent to a session while it answers
	copyBufs sync.Pool // *[]byte of copyBufferSize, lent while a body is streamed

	conns *netconn.Server[*session] // listeners, sessions, Shutdown

	mu        sync.Mutex
	lastLogin map[int64]time.Time // account ID → last successful login, for LOGIN-DELAY
}

// New returns a server. It does not listen; call Serve.
func New(cfg Config, st Store, au Authenticator, log *slog.Logger) *Server {
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = DefaultIdleTimeout
	}
	if cfg.CommandTimeout <= 0 {
		cfg.CommandTimeout = DefaultCommandTimeout
	}
	if cfg.LoginIdleTimeout <= 0 {
		cfg.LoginIdleTimeout = DefaultLoginIdleTimeout
	}
	if cfg.LoginTimeout <= 0 {
		cfg.LoginTimeout = DefaultLoginTimeout
	}
	if cfg.MaxLineLength <= 0 {
		cfg.MaxLineLength = DefaultMaxLineLength
	}
	if cfg.MaxAuthFailures <= 0 {
		cfg.MaxAuthFailures = DefaultMaxAuthFailures
	}
	if cfg.Metrics == nil {
		cfg.Metrics = noMetrics{}
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if cfg.Expire != "" && !validExpire(cfg.Expire) {
		// RFC 2449 §6.7: the argument is "NEVER" or a number of days. A bad value is not
		// advertised rather than sent to clients that may misparse it.
		log.Warn("pop3: invalid EXPIRE value, not advertised", "expire", cfg.Expire)
		cfg.Expire = ""
	}
	s := &Server{
		cfg:       cfg,
		store:     st,
		auth:      au,
		log:       log,
		conns:     netconn.NewServer[*session]("pop3", log),
		lastLogin: make(map[int64]time.Time),
	}
	s.readers.New = func() any { return bufio.NewReaderSize(nil, readBufferSize) }
	s.writers.New = func() any { return bufio.NewWriterSize(nil, writeBufferSize) }
	s.copyBufs.New = func() any { b := make([]byte, copyBufferSize); return &b }
	return s
}

func validExpire(v string) bool {
	if v == "NEVER" {
		return true
	}
	n, err := strconv.Atoi(v)
	return err == nil && n >= 0 && strconv.Itoa(n) == v
}

// Serve accepts connections on l until Shutdown, then returns nil. Each connection is served
// by one goroutine. Serve closes l.
func (s *Server) Serve(l net.Listener) error {
	if s.cfg.ImplicitTLS && s.cfg.TLS == nil {
		l.Close()
		return errors.New("pop3: ImplicitTLS needs a TLS config")
	}
	return s.conns.Serve(l, func(c net.Conn) *session { return newSession(s, c) })
}

// Shutdown stops accepting and ends every session without entering UPDATE, so nothing is
// deleted. A session waiting for a command is told "-ERR [SYS/TEMP] shutting down" at once;
// a session running a command (say, writing a RETR) finishes it first. When ctx ends before
// all sessions are gone, the remaining connections are closed and ctx's error is returned.
func (s *Server) Shutdown(ctx context.Context) error {
	return s.conns.Shutdown(ctx)
}

// loginAllowed enforces LOGIN-DELAY (RFC 2449 §6.5, §8.1.1) and records the login if it is
// allowed. The map holds one entry per account that logged in within the delay.
func (s *Server) loginAllowed(accountID int64, now time.Time) bool {
	if s.cfg.LoginDelay <= 0 {
		return true
	}
	delay := time.Duration(s.cfg.LoginDelay) * time.Second
	s.mu.Lock()
	defer s.mu.Unlock()
	if last, ok := s.lastLogin[accountID]; ok && now.Sub(last) < delay {
		return false
	}
	if len(s.lastLogin) >= 1024 {
		for id, t := range s.lastLogin {
			if now.Sub(t) >= delay {
				delete(s.lastLogin, id)
			}
		}
	}
	s.lastLogin[accountID] = now
	return true
}

func (s *Server) getWriter(w io.Writer) *bufio.Writer {
	bw := s.writers.Get().(*bufio.Writer)
	bw.Reset(w)
	return bw
}

func (s *Server) putWriter(bw *bufio.Writer) {
	bw.Reset(nil) // drop the reference to the connection
	s.writers.Put(bw)
}
