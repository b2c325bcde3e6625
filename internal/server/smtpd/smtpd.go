// Package smtpd accepts mail over SMTP: the MX role on port 25 (mail for our domains from
// anywhere, RFC 5321) and the submission role on ports 587/465 (mail from our users,
// RFC 6409, authenticated with RFC 4954 AUTH).
//
// The wire protocol is emersion/go-smtp; its types stay inside this package. On top of it
// this package adds what go-smtp leaves to its user: recipient policy, strict line endings
// in message data, trace headers, deadlines for a whole message body, graceful shutdown with
// a 421 reply, and one log line per transaction.
//
// Invariants (do not break them):
//   - "250" after DATA/BDAT LAST means the store committed the message durably for every
//     accepted recipient: Data returns success only after deliver.Deliver returned nil.
//   - A body containing a bare CR or bare LF is never delivered (SMTP smuggling: only
//     CRLF.CRLF may end DATA, and no byte sequence may be read differently by another MTA).
//   - Every read has a deadline, and no client can hold a connection by sending slowly
//     (conn.go has the rules): go-smtp sets one deadline per command line (ReadTimeout, or
//     the shorter LoginIdleTimeout on submission before AUTH), so the whole line must arrive
//     in time, not just each read; a message body must keep up with DataMinRate; and on
//     submission, AUTH must succeed within LoginTimeout of connecting.
//   - conn.Read only hangs up (421 on shutdown) while no transaction is open; a transaction
//     in progress finishes, unless Shutdown's context ends first.
//   - AUTH data and message contents are never logged.
//   - On the MX port with Verify set, SPF/DKIM/DMARC run after the body is spooled and
//     before the commit (verify.go): a refusal stores nothing, and the stored message is the
//     spool with our Authentication-Results field added and forged ones removed.
//   - On submission with Sending set, a message is counted against its account's limits
//     before it is committed, never after (limits.go), so a crash cannot undercount.
//   - Lock order: Server.mu before conn.mu; session.mu is never held while taking either.
//
// What go-smtp decides for us (read its conn.go and data.go, in third_party/go-smtp, before
// changing this package):
//   - Source routes in paths ("<@a,@b:user@c>") are stripped before Rcpt sees the mailbox;
//     RFC 5321 §4.1.1.3 says to ignore them, so the mailbox alone is judged (and relay
//     tricks in it are refused by address.Parse).
//   - Its DATA reader drops a "." CR at the start of a line when no LF follows, so that one
//     bare CR cannot be seen and refused; it never ends DATA early, so it cannot smuggle.
//   - It does not tell HELO from EHLO, so the Received header always says ESMTP (RFC 3848).
//   - Replies to DATA/BDAT are the SMTPError that Data returns, even for success (250).
package smtpd

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/emersion/go-smtp"

	"petrel/internal/lib/address"
	"petrel/internal/mail/auth"
	"petrel/internal/mail/deliver"
	"petrel/internal/store"
)

// Role chooses what a listener is for.
type Role int

const (
	// RoleMX accepts mail for hosted domains from anyone, without authentication, and
	// relays nothing (port 25).
	RoleMX Role = iota
	// RoleSubmission accepts mail from authenticated users (ports 587 and 465).
	RoleSubmission
)

// SenderPolicy says which MAIL FROM addresses an authenticated user may use.
type SenderPolicy int

const (
	// SenderOwn allows the account's own address, an alias that delivers to it, or a
	// sub-address (+tag) of either.
	SenderOwn SenderPolicy = iota
	// SenderAny allows any address.
	SenderAny
)

// Config configures one listener. Zero values get the documented defaults.
type Config struct {
	Hostname          string        // our name in the greeting and Received headers
	Role              Role          // MX or submission
	TLS               *tls.Config   // nil: no STARTTLS (and no implicit TLS)
	ImplicitTLS       bool          // TLS from the first byte (port 465, RFC 8314 §3.3)
	AllowInsecureAuth bool          // allow AUTH without TLS; default false
	MaxMessageBytes   int64         // SIZE (RFC 1870); default 50 MiB
	MaxRecipients     int           // per transaction; default 100
	MaxLineLength     int           // command and text lines; default 2000 (RFC 5321 §4.5.3.1.6 wants ≥ 1000)
	ReadTimeout       time.Duration // one whole command line, waiting included; default 5m (RFC 5321 §4.5.3.2.7)
	DataTimeout       time.Duration // DATA/BDAT: the longest pause, and how far a body may fall behind DataMinRate; default 5m
	DataMinRate       int           // DATA/BDAT: bytes per second a body must average; default 500
	LoginIdleTimeout  time.Duration // submission before AUTH: ReadTimeout's value there; default 1m
	LoginTimeout      time.Duration // submission: AUTH must succeed this soon after connecting; default 3m
	WriteTimeout      time.Duration // per reply; default 1m
	SpoolDir          string        // temporary files for large bodies; "" is the system default
	SenderPolicy      SenderPolicy  // submission only; default SenderOwn
	MaxAuthFailures   int           // failed AUTH attempts before the connection is closed; default 3
	Metrics           Metrics       // counts logins and transaction outcomes; default: none

	// Verify checks SPF, DKIM and DMARC of inbound mail (RoleMX; verify.go); nil: no checks.
	Verify *Verification
	// Door runs the checks at the door and the external filters (RoleMX; door.go), or
	// only the filters (RoleSubmission: Door.Filters and SpamAccept); nil: none.
	Door *Door
	// Sending enforces per-account sending limits (RoleSubmission; limits.go); nil: none.
	Sending *SendingLimits
	// Relay (submission only): recipients at other domains are accepted and queued for
	// outbound delivery, with the DSN extension (RFC 3461) offered; without it they are
	// refused. The MX role never relays, whatever this says.
	Relay bool
}

// Metrics counts what sessions do; internal/app passes one per listener (labelled with its
// role), so nothing here knows how or where the counts are kept. nil counts nothing.
type Metrics interface {
	Auth(ok bool) // the outcome of an AUTH exchange
	// Message counts the reply to MAIL or RCPT when it refuses, and every reply to DATA/BDAT
	// (stage "mail", "rcpt", "data"): code is its enhanced status code ("2.0.0" accepted).
	Message(stage, code string)
}

type noMetrics struct{}

func (noMetrics) Auth(bool)              {}
func (noMetrics) Message(string, string) {}

// Defaults applied by New.
const (
	DefaultMaxMessageBytes = 50 << 20
	DefaultMaxRecipients   = 100
	DefaultMaxLineLength   = 2000
	DefaultReadTimeout     = 5 * time.Minute
	DefaultDataTimeout     = 5 * time.Minute
	DefaultDataMinRate     = 500
	DefaultWriteTimeout    = time.Minute
)

// Defaults for a submission connection that has not authenticated yet.
//
// RFC 5321 §4.5.3.2.7 asks a server to wait at least 5 minutes for the next command: that
// is for a client that is sending mail, and ReadTimeout keeps it for the MX port, where
// nobody authenticates and the peers are MTAs (Postfix's smtpd_timeout and Exim's
// smtp_receive_timeout are 5 minutes too). Before AUTH on submission a client is a program
// going through EHLO, STARTTLS and AUTH without pausing, so a much shorter wait loses
// nobody and stops a client that connects and trickles from holding a slot; a user typing
// a password in the middle of AUTH still has a minute per line. LoginTimeout caps the
// whole unauthenticated time, as Dovecot's login processes do ("no auth attempts in 180
// secs"), so even complete commands sent just in time cannot keep it going.
const (
	DefaultLoginIdleTimeout = time.Minute
	DefaultLoginTimeout     = 3 * time.Minute
)

// DefaultMaxAuthFailures is how many failed AUTH attempts a connection gets before it is closed.
const DefaultMaxAuthFailures = 3

// Deliverer resolves recipients and commits messages; *deliver.Deliverer implements it.
// Reaches is the SenderOwn policy's test: whether mail for an address reaches the account
// by name (its address, an alias of it, a +tag of either). Route gives local mailboxes and
// forwards to other domains (deliver.Route).
type Deliverer interface {
	Route(ctx context.Context, rcpt address.Address) (deliver.Route, error)
	Reaches(ctx context.Context, a address.Address, acct store.Account) (bool, error)
	Deliver(ctx context.Context, env deliver.Envelope, body deliver.Body) (store.Delivered, error)
	CheckQuota(ctx context.Context, targets []store.Target, size int64) error
}

// Authenticator runs SASL exchanges; *auth.Service implements it.
type Authenticator interface {
	Mechanisms() []string
	NewSASL(ctx context.Context, mech string, remote netip.Addr) (auth.SASL, error)
}

var (
	_ Deliverer     = (*deliver.Deliverer)(nil)
	_ Authenticator = (*auth.Service)(nil)
)

// policy holds the decisions that differ between MX and submission, chosen once per
// listener.
type policy struct {
	offerAuth   bool            // advertise and accept AUTH
	requireAuth bool            // MAIL needs AUTH first; until AUTH the login deadlines apply
	checkSender bool            // MAIL FROM must belong to the user (SenderOwn)
	notHosted   *smtp.SMTPError // RCPT reply for a domain that is not ours
	nullSender  bool            // MAIL FROM:<> accepted
	relay       bool            // recipients at other domains are queued (relay.go)
}

func policyFor(cfg Config) policy {
	if cfg.Role == RoleSubmission {
		if cfg.Relay {
			return relayPolicy(cfg)
		}
		return policy{
			offerAuth:   true,
			requireAuth: true,
			checkSender: cfg.SenderPolicy == SenderOwn,
			// Outbound delivery is switched off (Config.Relay): remote recipients are refused.
			notHosted:  reply(550, 5, 7, 1, "relaying to remote domains is not enabled here"),
			nullSender: cfg.SenderPolicy == SenderAny,
		}
	}
	return policy{
		// RFC 5321 §3.6.2: an MX that is not a relay refuses mail for other domains.
		notHosted:  reply(550, 5, 7, 1, "relaying denied"),
		nullSender: true, // RFC 5321 §4.5.5: bounces come from <>
	}
}

// reply builds a reply with an enhanced status code (RFC 3463).
func reply(code, class, subject, detail int, msg string) *smtp.SMTPError {
	return &smtp.SMTPError{Code: code, EnhancedCode: smtp.EnhancedCode{class, subject, detail}, Message: msg}
}

// Server is one SMTP listener's worth of sessions.
type Server struct {
	cfg    Config
	pol    policy
	d      Deliverer
	au     Authenticator
	log    *slog.Logger
	smtp   *smtp.Server
	spools *deliver.SpoolPool // message bodies while they are received
	ctx    context.Context    // parent of every session's work; cancelled when Shutdown gives up
	cancel context.CancelFunc // cancels ctx

	mu        sync.Mutex
	conns     map[*conn]struct{}        // open connections
	listeners map[net.Listener]struct{} // listeners Serve is accepting on
	draining  bool                      // Shutdown was called
}

// New returns a server. au may be nil for RoleMX.
func New(cfg Config, d Deliverer, au Authenticator, log *slog.Logger) *Server {
	if cfg.MaxMessageBytes <= 0 {
		cfg.MaxMessageBytes = DefaultMaxMessageBytes
	}
	if cfg.MaxRecipients <= 0 {
		cfg.MaxRecipients = DefaultMaxRecipients
	}
	if cfg.MaxLineLength <= 0 {
		cfg.MaxLineLength = DefaultMaxLineLength
	}
	if cfg.ReadTimeout <= 0 {
		cfg.ReadTimeout = DefaultReadTimeout
	}
	if cfg.DataTimeout <= 0 {
		cfg.DataTimeout = DefaultDataTimeout
	}
	if cfg.DataMinRate <= 0 {
		cfg.DataMinRate = DefaultDataMinRate
	}
	if cfg.LoginIdleTimeout <= 0 {
		cfg.LoginIdleTimeout = DefaultLoginIdleTimeout
	}
	if cfg.LoginTimeout <= 0 {
		cfg.LoginTimeout = DefaultLoginTimeout
	}
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = DefaultWriteTimeout
	}
	if cfg.MaxAuthFailures <= 0 {
		cfg.MaxAuthFailures = DefaultMaxAuthFailures
	}
	if cfg.Metrics == nil {
		cfg.Metrics = noMetrics{}
	}
	if cfg.Hostname == "" {
		cfg.Hostname = "localhost"
	}
	if cfg.Role != RoleMX || cfg.Verify != nil && cfg.Verify.Verifier == nil {
		cfg.Verify = nil // authenticated submission is not checked as inbound mail
	}
	if cfg.Role != RoleMX && cfg.Door != nil {
		// Submission: the filters alone (door.go); the client has logged in.
		d := *cfg.Door
		d.Checks, d.Greylist = nil, nil
		cfg.Door = &d
		if len(d.Filters) == 0 {
			cfg.Door = nil
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{
		cfg:       cfg,
		pol:       policyFor(cfg),
		d:         d,
		au:        au,
		log:       log,
		spools:    deliver.NewSpoolPool(cfg.SpoolDir, deliver.DefaultSpoolMemory),
		ctx:       ctx,
		cancel:    cancel,
		conns:     make(map[*conn]struct{}),
		listeners: make(map[net.Listener]struct{}),
	}
	if s.pol.offerAuth && au == nil {
		s.pol.offerAuth = false // nothing to authenticate against: nobody can submit
	}

	ss := smtp.NewServer(smtp.BackendFunc(s.newSession))
	ss.Domain = cfg.Hostname
	ss.TLSConfig = cfg.TLS
	ss.MaxMessageBytes = cfg.MaxMessageBytes
	ss.MaxRecipients = cfg.MaxRecipients
	ss.MaxLineLength = cfg.MaxLineLength
	ss.ReadTimeout = cfg.ReadTimeout
	ss.WriteTimeout = cfg.WriteTimeout
	ss.AllowInsecureAuth = cfg.AllowInsecureAuth
	ss.EnableSMTPUTF8 = true // RFC 6531; address.Parse accepts UTF-8
	ss.EnableDSN = s.pol.relay
	ss.ErrorLog = errorLog{log}
	s.smtp = ss
	return s
}

// errorLog sends go-smtp's internal messages (failed TLS handshakes, write errors, recovered
// panics) to slog.
type errorLog struct{ log *slog.Logger }

func (l errorLog) Printf(format string, v ...any) { l.log.Info("smtp: " + fmt.Sprintf(format, v...)) }
func (l errorLog) Println(v ...any)               { l.log.Info("smtp: " + fmt.Sprint(v...)) }

// ErrServerClosed is returned by Serve after Shutdown.
var ErrServerClosed = errors.New("smtpd: server closed")

// Serve accepts connections on l until Shutdown; it returns nil after Shutdown.
func (s *Server) Serve(l net.Listener) error {
	// The listener is recorded under the same lock Shutdown takes, so that a Shutdown that
	// comes before go-smtp has registered it (a stop right at start) still closes it;
	// otherwise go-smtp would accept on it for ever after its Shutdown returned.
	s.mu.Lock()
	if s.draining {
		s.mu.Unlock()
		l.Close()
		return ErrServerClosed
	}
	s.listeners[l] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.listeners, l)
		s.mu.Unlock()
	}()
	err := s.smtp.Serve(&listener{Listener: l, s: s})
	s.mu.Lock()
	draining := s.draining
	s.mu.Unlock()
	if draining && errors.Is(err, net.ErrClosed) {
		return nil // Shutdown closed l before go-smtp knew it was shutting down
	}
	return err
}

// listener wraps every accepted connection in a conn (and in TLS for implicit TLS) before
// go-smtp sees it.
type listener struct {
	net.Listener
	s *Server
}

func (l *listener) Accept() (net.Conn, error) {
	nc, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	c := l.s.track(nc)
	if l.s.cfg.ImplicitTLS {
		// go-smtp recognises a *tls.Conn and runs the handshake itself, under its read
		// and write deadlines, in the connection's goroutine.
		return tls.Server(c, l.s.cfg.TLS), nil
	}
	return c, nil
}

func (s *Server) track(nc net.Conn) *conn {
	c := newConn(nc, s)
	if !s.cfg.ImplicitTLS {
		c.replies = nc // plain text until STARTTLS
	}
	s.mu.Lock()
	s.conns[c] = struct{}{}
	if s.draining {
		c.drain()
	}
	s.mu.Unlock()
	return c
}

func (s *Server) untrack(c *conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
}

// Shutdown stops accepting connections and ends the open ones: idle sessions get
// "421 4.3.2" and are closed at once; a session inside a transaction finishes it (the
// message is delivered or refused as usual) and then gets the 421. When ctx ends first,
// the remaining connections are closed; their unfinished transactions are not committed.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.draining = true
	for l := range s.listeners {
		l.Close()
	}
	for c := range s.conns {
		c.drain()
	}
	s.mu.Unlock()

	err := s.smtp.Shutdown(ctx) // closes the listeners, waits for the connections
	if errors.Is(err, smtp.ErrServerClosed) || errors.Is(err, net.ErrClosed) {
		err = nil // the listeners were closed above
	}
	if ctx.Err() != nil {
		s.cancel()
		s.mu.Lock()
		for c := range s.conns {
			c.Conn.Close()
		}
		s.mu.Unlock()
		return ctx.Err()
	}
	s.cancel()
	return err
}
