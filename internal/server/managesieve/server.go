// Package managesieve is Petrel's ManageSieve server (RFC 5804): users upload, check,
// list, activate, rename and delete their Sieve scripts (internal/mail/sieve) over port
// 4190, with STARTTLS and SASL authentication shared with the other protocols.
//
// Implementation notes (invariants a contributor must not break):
//   - Authentication needs TLS unless AllowPlaintextAuth: before STARTTLS the SASL
//     capability is empty and AUTHENTICATE answers NO (ENCRYPT-NEEDED). The SASL exchange
//     is the shared auth.Service, so failures are throttled like IMAP's and POP3's.
//   - After STARTTLS the read buffer is discarded (nothing sent in plaintext is read as
//     protected) and the capabilities are sent again (RFC 5804 §2.2).
//   - Every read and write has a deadline; a command line and each literal are bounded
//     (MaxLineLength, the Sieve script size limit), so a client cannot make the server
//     hold more than one script in memory. A read deadline is only ever set through
//     session.setReadDeadline, which checks Shutdown under session.mu.
//   - A script is stored only if it parses (sieve.Parse); a refusal names the line and
//     the reason.
//   - One recover per connection: a panic closes that connection only.
package managesieve

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"time"

	"petrel/internal/lib/netconn"
	"petrel/internal/mail/auth"
	"petrel/internal/mail/sieve"
	"petrel/internal/store"
)

// Config tunes a ManageSieve listener. Zero values get the defaults named on each field.
type Config struct {
	Hostname           string
	TLS                *tls.Config   // nil: no STARTTLS offered
	AllowPlaintextAuth bool          // allow AUTHENTICATE before TLS (default false)
	IdleTimeout        time.Duration // wait for a command once logged in (default 10m)
	CommandTimeout     time.Duration // rest of a command once it started, and each write (default 1m)
	LoginIdleTimeout   time.Duration // wait for a command before login (default 1m)
	LoginTimeout       time.Duration // log in this soon after connecting (default 3m)
	MaxLineLength      int           // a command outside its literals (default 8 KiB)
	MaxScripts         int           // scripts per account (default 32)
	MaxAuthFailures    int           // failed logins before the connection is closed (default 3)
	Limits             sieve.Limits  // the parser's limits; zero: sieve.DefaultLimits
}

// Store is what ManageSieve needs of the store.
type Store interface {
	store.Sieve
}

// Authenticator checks logins; *auth.Service implements it.
type Authenticator interface {
	Mechanisms() []string
	NewSASL(ctx context.Context, mech string, remote netip.Addr) (auth.SASL, error)
}

var _ Authenticator = (*auth.Service)(nil)

// Server serves ManageSieve on any number of listeners.
type Server struct {
	cfg   Config
	store Store
	auth  Authenticator
	log   *slog.Logger
	conns *netconn.Server[*session]
}

// New returns a server; call Serve.
func New(cfg Config, st Store, au Authenticator, log *slog.Logger) *Server {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&cfg.IdleTimeout, 10*time.Minute)
	def(&cfg.CommandTimeout, time.Minute)
	def(&cfg.LoginIdleTimeout, time.Minute)
	def(&cfg.LoginTimeout, 3*time.Minute)
	if cfg.MaxLineLength <= 0 {
		cfg.MaxLineLength = 8 << 10
	}
	if cfg.MaxScripts <= 0 {
		cfg.MaxScripts = 32
	}
	if cfg.MaxAuthFailures <= 0 {
		cfg.MaxAuthFailures = 3
	}
	if cfg.Limits == (sieve.Limits{}) {
		cfg.Limits = sieve.DefaultLimits()
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Server{cfg: cfg, store: st, auth: au, log: log, conns: netconn.NewServer[*session]("managesieve", log)}
}

// Serve accepts connections on l until Shutdown, then returns nil. Serve closes l.
func (s *Server) Serve(l net.Listener) error {
	if s.store == nil {
		l.Close()
		return errors.New("managesieve: the store keeps no Sieve scripts")
	}
	return s.conns.Serve(l, func(c net.Conn) *session { return newSession(s, c) })
}

// Shutdown stops accepting and ends every session after its command (BYE). When ctx ends
// first, the remaining connections are closed and ctx's error is returned.
func (s *Server) Shutdown(ctx context.Context) error { return s.conns.Shutdown(ctx) }
