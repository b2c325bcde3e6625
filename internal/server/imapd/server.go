package imapd

// The server: listeners, connection tracking and Shutdown, after net/http's skeleton and
// pop3d's.
//
// Implementation notes (invariants a contributor must not break):
//   - Every read and every write has a deadline. A read deadline is only ever set through
//     session.setReadDeadline, which holds session.mu and checks Server.conns.Closing, so that a
//     concurrent Shutdown cannot be overwritten by a later deadline (see Shutdown).
//   - A command must arrive whole within CommandTimeout of its first byte (literals
//     included, APPEND's message aside, which gets CommandTimeout per read); the wait for a
//     command is LoginIdleTimeout before login and IdleTimeout after (RFC 9051 §5.4: at
//     least 30 minutes), IDLE included; before login nothing goes past LoginTimeout after
//     connecting.
//   - Every limit of a command is checked before its octets are read (reader.go), and an
//     error leaves the reader at a command boundary or ends the connection: literal octets
//     are never run as commands.
//   - Output is buffered and flushed before the session would block on a read, so a FETCH
//     of many messages leaves in few TLS records. The write buffer comes from a pool while a
//     command runs; the read buffer comes from a pool too and goes back once the session has
//     waited moveOnAfter for a command (or in IDLE), when it also moves to a fresh goroutine
//     (idle.go). A wake-up in IDLE expires the read deadline; see wakeIdle.
//   - Message sequence numbers are the session's own (RFC 9051 §2.3.1.2): they change only
//     when this session announces EXISTS or EXPUNGE. Changes by others are read from the
//     store by MODSEQ (selected.go) and announced before a command's tagged reply, never
//     EXPUNGE during FETCH, STORE or SEARCH (RFC 9051 §7.5.1), and at once in IDLE.
//   - After STARTTLS the read buffer is discarded (RFC 9051 §6.2.1, the CVE-2011-0411
//     family): nothing sent in plaintext is read as TLS-protected.
//   - One recover per connection: a panic closes that connection only.

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"

	"petrel/internal/lib/netconn"
	"petrel/internal/mail/auth"
	"petrel/internal/store"
)

// Config tunes an IMAP listener. Zero values get the defaults named on each field.
type Config struct {
	Hostname           string        // named in the greeting; "" omits it
	TLS                *tls.Config   // nil: no STARTTLS offered (and ImplicitTLS is an error)
	ImplicitTLS        bool          // port 993: Serve wraps each accepted conn in tls.Server itself
	AllowPlaintextAuth bool          // allow LOGIN and AUTHENTICATE before TLS (default false, RFC 9051 §6.2.3)
	IdleTimeout        time.Duration // autologout timer after login, IDLE included (default 30m, RFC 9051 §5.4)
	CommandTimeout     time.Duration // time to receive the rest of a command once its first byte came, and per write (default 1m)
	LoginIdleTimeout   time.Duration // the wait for a command before login (default 1m)
	LoginTimeout       time.Duration // a connection must log in this soon after connecting (default 3m)
	MaxAuthFailures    int           // failed logins before the connection is closed (default 3)
	AppendLimit        int64         // largest APPEND message in octets (APPENDLIMIT, RFC 7889; default 64 MiB)
	SpoolDir           string        // where APPEND bodies above 1 MiB wait while they are parsed; "" is the system's
	MaxAccountSessions int           // logged-in sessions per account, all listeners of this server together (default 100)
	Compress           bool          // offer COMPRESS=DEFLATE (RFC 4978) after login (compress.go)
	MaxNotifyPending   int           // mailboxes with unreported changes a NOTIFY session may hold before NOTIFICATIONOVERFLOW (default 1000, notify.go)
	Limits             Limits        // what one command may hold (reader.go)
	Metrics            Metrics       // counts logins and commands (default: none)
	Junk               JunkTrainer   // learns from messages filed into and out of Junk (junk.go); nil: none
}

// Metrics counts what sessions do; internal/app passes one per listener (labelled with its
// protocol), so nothing here knows how or where the counts are kept. nil counts nothing.
type Metrics interface {
	Auth(ok bool)        // the outcome of a login attempt (LOGIN or AUTHENTICATE)
	Command(name string) // a command of the command table, about to run
}

type noMetrics struct{}

func (noMetrics) Auth(bool)      {}
func (noMetrics) Command(string) {}

// Defaults for the zero values of Config.
const (
	DefaultIdleTimeout      = 30 * time.Minute // RFC 9051 §5.4: at least 30 minutes
	DefaultCommandTimeout   = time.Minute
	DefaultLoginIdleTimeout = time.Minute
	DefaultLoginTimeout     = 3 * time.Minute
	DefaultMaxAuthFailures  = 3
	DefaultAppendLimit      = 64 << 20
	// A person's devices each open a few connections (Thunderbird up to 5 per account); 100
	// leaves room for many devices and stops a leaked password from exhausting the server.
	DefaultMaxAccountSessions = 100
	// A NOTIFY session's record of changed mailboxes: one entry per mailbox, so an account
	// with fewer mailboxes never overflows; more would be a client not reading.
	DefaultMaxNotifyPending = 1000
)

// Store is the part of store.Store the IMAP server uses.
type Store interface {
	store.Mailboxes
	Messages(ctx context.Context, mailboxID int64, f store.Filter) ([]store.Message, error)
	Vanished(ctx context.Context, mailboxID int64, f store.Filter) ([]uint32, error)
	OpenBlob(ctx context.Context, blobID int64) (io.ReadCloser, error)
	Parsed(ctx context.Context, blobID int64) (store.ParsedMessage, error)
	Append(ctx context.Context, accountID int64, mailbox string, m *store.AppendMessage) (store.Appended, error)
	SetFlags(ctx context.Context, mailboxID int64, uids []uint32, c store.FlagChange) (store.FlagsUpdated, error)
	Expunge(ctx context.Context, mailboxID int64, uids []uint32) (store.Expunged, error)
	Copy(ctx context.Context, from int64, uids []uint32, to int64) (store.Copied, error)
	Move(ctx context.Context, from int64, uids []uint32, to int64) (store.Copied, error)
	Subscribe(accountID int64) (changes <-chan store.Change, cancel func())
	Quota(ctx context.Context, accountID int64) (store.Quota, error)                                     // quota.go
	Search(ctx context.Context, mailboxID int64, field store.SearchField, text string) ([]uint32, error) // searcheval.go
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

// Sizes of the pooled buffers, held only while a command runs (and the read buffer while it
// holds pipelined input).
const (
	readBufferSize  = 4 << 10
	writeBufferSize = 16 << 10
)

// Server serves IMAP on any number of listeners.
type Server struct {
	cfg   Config
	store Store
	auth  Authenticator
	log   *slog.Logger

	readers   sync.Pool // *bufio.Reader of readBufferSize, lent to a session while it reads
	writers   sync.Pool // *bufio.Writer of writeBufferSize, lent to a session while it answers
	deflaters sync.Pool // *flate.Writer, lent to a COMPRESS session while it answers (compress.go)

	conns *netconn.Server[*session] // listeners, sessions, Shutdown

	mu       sync.Mutex
	perAcct  map[int64]int      // logged-in sessions per account ID
	watchers map[int64]*watcher // by account: the IDLE sessions and their shared subscription (idle.go)
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
	if cfg.MaxAuthFailures <= 0 {
		cfg.MaxAuthFailures = DefaultMaxAuthFailures
	}
	if cfg.Metrics == nil {
		cfg.Metrics = noMetrics{}
	}
	if cfg.AppendLimit <= 0 {
		cfg.AppendLimit = DefaultAppendLimit
	}
	if cfg.MaxAccountSessions <= 0 {
		cfg.MaxAccountSessions = DefaultMaxAccountSessions
	}
	if cfg.MaxNotifyPending <= 0 {
		cfg.MaxNotifyPending = DefaultMaxNotifyPending
	}
	cfg.Limits = cfg.Limits.withDefaults()
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Server{
		cfg:      cfg,
		store:    st,
		auth:     au,
		log:      log,
		conns:    netconn.NewServer[*session]("imap", log),
		perAcct:  make(map[int64]int),
		watchers: make(map[int64]*watcher),
	}
	s.readers.New = func() any { return bufio.NewReaderSize(nil, readBufferSize) }
	s.writers.New = func() any { return bufio.NewWriterSize(nil, writeBufferSize) }
	return s
}

// Serve accepts connections on l until Shutdown, then returns nil. Each connection is served
// by one goroutine. Serve closes l.
func (s *Server) Serve(l net.Listener) error {
	if s.cfg.ImplicitTLS && s.cfg.TLS == nil {
		l.Close()
		return errors.New("imap: ImplicitTLS needs a TLS config")
	}
	return s.conns.Serve(l, func(c net.Conn) *session { return newSession(s, c) })
}

// Shutdown stops accepting and ends every session. A session waiting for a command (or in
// IDLE) is told "* BYE" at once; a session running a command finishes it first. When ctx
// ends before all sessions are gone, the remaining connections are closed and ctx's error
// is returned.
func (s *Server) Shutdown(ctx context.Context) error {
	return s.conns.Shutdown(ctx)
}

// untrackSession forgets a session that has ended.
func (s *Server) untrackSession(sess *session) {
	if sess.state != stateNotAuth {
		s.mu.Lock()
		if s.perAcct[sess.account.ID]--; s.perAcct[sess.account.ID] <= 0 {
			delete(s.perAcct, sess.account.ID)
		}
		s.mu.Unlock()
	}
	s.conns.Done(sess)
}

// admit counts a login to an account, or reports false when the account has
// MaxAccountSessions sessions already.
func (s *Server) admit(accountID int64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.perAcct[accountID] >= s.cfg.MaxAccountSessions {
		return false
	}
	s.perAcct[accountID]++
	return true
}
