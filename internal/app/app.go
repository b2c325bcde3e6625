// Package app is the composition root: it turns a config into running listeners. It is the
// only package that knows every concrete type (store implementation, protocol servers, auth).
//
// Lifecycle: New opens the store and prepares TLS and servers; Run binds every listener,
// serves until its context ends, then shuts the servers down gracefully: listeners close
// first, idle sessions are told to go away (SMTP 421, POP3 -ERR), transactions in flight
// finish within the grace period, and the store closes last so that nothing acknowledged is
// lost.
package app

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"petrel/internal/config"
	"petrel/internal/lib/address"
	"petrel/internal/lib/connlimit"
	"petrel/internal/mail/auth"
	"petrel/internal/mail/deliver"
	"petrel/internal/server/pop3d"
	"petrel/internal/server/smtpd"
	"petrel/internal/store"
	"petrel/internal/store/sqlite"
)

// OpenStore opens the embedded store of a data directory, creating the directory if needed.
// The server and every management command use it, so both work on the same data at once.
func OpenStore(dataDir string, log *slog.Logger) (*sqlite.Store, error) {
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, err
	}
	return sqlite.Open(filepath.Join(dataDir, "petrel.db"), sqlite.Options{Logger: log})
}

// EnsureDomains adds the configured domains that the store does not have yet.
func EnsureDomains(ctx context.Context, st store.Directory, domains []string) error {
	for _, d := range domains {
		a, err := address.Parse("postmaster@" + d)
		if err != nil {
			return fmt.Errorf("domain %q: not a valid domain name", d)
		}
		if _, err := st.Domain(ctx, a.Domain); err == nil {
			continue
		}
		if err := st.AddDomain(ctx, a.Domain); err != nil && !errors.Is(err, store.ErrExists) {
			return fmt.Errorf("domain %s: %w", d, err)
		}
	}
	return nil
}

// server is what every protocol server offers the app.
type server interface {
	Serve(net.Listener) error
	Shutdown(context.Context) error
}

// binding is one listener address served by one server.
type binding struct {
	name   string // for logs: "smtp", "submission", "pop3s", ...
	addr   string
	srv    server
	reject func(net.Conn) // answer for a connection over the limits; nil: close silently
}

// App is a configured Petrel instance.
type App struct {
	cfg      *config.Config
	log      *slog.Logger
	out      io.Writer // messages for the operator at start (paths, the dev password)
	store    *sqlite.Store
	certs    *certs
	bindings []binding

	// Grace bounds how long Run waits for transactions in flight at shutdown.
	Grace time.Duration
}

// New prepares an instance: data directory, store, TLS, domains, servers.
func New(ctx context.Context, cfg *config.Config, log *slog.Logger, out io.Writer) (*App, error) {
	a := &App{cfg: cfg, log: log, out: out, Grace: 30 * time.Second}
	st, err := OpenStore(cfg.Data, log)
	if err != nil {
		return nil, fmt.Errorf("open store in %s: %w", cfg.Data, err)
	}
	a.store = st
	if err := a.prepare(ctx); err != nil {
		st.Close()
		return nil, err
	}
	return a, nil
}

func (a *App) prepare(ctx context.Context) error {
	cfg := a.cfg
	certFile, keyFile := cfg.TLS.Cert, cfg.TLS.Key
	if cfg.Dev && certFile == "" {
		var err error
		certFile, keyFile, err = ensureSelfSigned(filepath.Join(cfg.Data, "tls"), cfg.Hostname)
		if err != nil {
			return fmt.Errorf("self-signed certificate: %w", err)
		}
		fmt.Fprintf(a.out, "petrel: TLS certificate %s (self-signed, development instance)\n", certFile)
	}
	c, err := loadCerts(certFile, keyFile)
	if err != nil {
		return err
	}
	a.certs = c

	if err := EnsureDomains(ctx, a.store, cfg.Domains); err != nil {
		return err
	}
	if cfg.Dev {
		if err := a.ensureDevAccount(ctx); err != nil {
			return err
		}
	}

	tlsConf := c.serverConfig()
	au := auth.New(a.store, auth.Config{
		FailureDelay:    cfg.Limits.AuthFailureDelay.Duration,
		MaxFailureDelay: cfg.Limits.AuthFailureMaxDelay.Duration,
	}, a.log)
	dl := deliver.New(a.store, a.log)
	spool := filepath.Join(cfg.Data, "spool")
	if err := os.MkdirAll(spool, 0o700); err != nil {
		return err
	}
	senders := smtpd.SenderOwn
	if cfg.SMTP.SenderPolicy == "any" {
		senders = smtpd.SenderAny
	}
	smtpConf := func(role smtpd.Role, implicit bool) smtpd.Config {
		return smtpd.Config{
			Hostname:          cfg.Hostname,
			Role:              role,
			TLS:               tlsConf,
			ImplicitTLS:       implicit,
			AllowInsecureAuth: cfg.SMTP.AllowInsecureAuth,
			MaxMessageBytes:   cfg.SMTP.MaxMessageBytes,
			MaxRecipients:     cfg.SMTP.MaxRecipients,
			MaxLineLength:     cfg.SMTP.MaxLineLength,
			ReadTimeout:       cfg.SMTP.ReadTimeout.Duration,
			DataTimeout:       cfg.SMTP.DataTimeout.Duration,
			DataMinRate:       cfg.SMTP.DataMinRate,
			LoginIdleTimeout:  cfg.Limits.LoginIdleTimeout.Duration,
			LoginTimeout:      cfg.Limits.LoginTimeout.Duration,
			SpoolDir:          spool,
			SenderPolicy:      senders,
			MaxAuthFailures:   cfg.Limits.MaxAuthFailures,
		}
	}
	pop3Conf := func(implicit bool) pop3d.Config {
		return pop3d.Config{
			Hostname:           cfg.Hostname,
			TLS:                tlsConf,
			ImplicitTLS:        implicit,
			AllowPlaintextAuth: cfg.POP3.AllowPlaintextAuth,
			IdleTimeout:        cfg.POP3.IdleTimeout.Duration,
			CommandTimeout:     cfg.POP3.CommandTimeout.Duration,
			LoginIdleTimeout:   cfg.Limits.LoginIdleTimeout.Duration,
			LoginTimeout:       cfg.Limits.LoginTimeout.Duration,
			MaxLineLength:      cfg.POP3.MaxLineLength,
			Expire:             cfg.POP3.Expire,
			LoginDelay:         cfg.POP3.LoginDelay,
			MaxAuthFailures:    cfg.Limits.MaxAuthFailures,
		}
	}
	smtpBusy := busyLine("421 4.7.0 Too many connections, try again later\r\n")
	pop3Busy := busyLine("-ERR [SYS/TEMP] Too many connections, try again later\r\n")
	add := func(name string, addrs []string, srv server, reject func(net.Conn)) {
		for _, addr := range addrs {
			a.bindings = append(a.bindings, binding{name: name, addr: addr, srv: srv, reject: reject})
		}
	}
	mx := smtpd.New(smtpConf(smtpd.RoleMX, false), dl, au, a.store, a.log.With("listener", "smtp"))
	sub := smtpd.New(smtpConf(smtpd.RoleSubmission, false), dl, au, a.store, a.log.With("listener", "submission"))
	subs := smtpd.New(smtpConf(smtpd.RoleSubmission, true), dl, au, a.store, a.log.With("listener", "submissions"))
	pop := pop3d.New(pop3Conf(false), a.store, au, a.log.With("listener", "pop3"))
	pops := pop3d.New(pop3Conf(true), a.store, au, a.log.With("listener", "pop3s"))
	add("smtp", cfg.SMTP.Listen, mx, smtpBusy)
	add("submission", cfg.SMTP.Submission, sub, smtpBusy)
	add("submissions", cfg.SMTP.Submissions, subs, nil)
	add("pop3", cfg.POP3.Listen, pop, pop3Busy)
	add("pop3s", cfg.POP3.ListenTLS, pops, nil)
	return nil
}

// busyLine answers a refused plaintext connection with one protocol line. Implicit-TLS
// listeners refuse silently: a plaintext line would be garbage inside a TLS handshake.
func busyLine(line string) func(net.Conn) {
	return func(c net.Conn) {
		c.SetWriteDeadline(time.Now().Add(5 * time.Second))
		io.WriteString(c, line)
	}
}

// ensureDevAccount creates dev@example.test on the first start of a development instance
// and prints its password once; later starts find it and print nothing.
func (a *App) ensureDevAccount(ctx context.Context) error {
	addr := "dev@" + config.DevDomain
	if _, err := a.store.AccountByAddress(ctx, addr); err == nil {
		return nil
	} else if !errors.Is(err, store.ErrNotFound) {
		return err
	}
	pw := randomPassword()
	cred, err := auth.NewCredentials(pw)
	if err != nil {
		return err
	}
	if _, err := a.store.AddAccount(ctx, addr, cred); err != nil {
		return fmt.Errorf("create %s: %w", addr, err)
	}
	fmt.Fprintf(a.out, "petrel: created account %s with password %s (shown once; change it with `petrel account passwd`)\n", addr, pw)
	return nil
}

func randomPassword() string {
	b := make([]byte, 15)
	rand.Read(b)
	return strings.ToLower(base32.StdEncoding.EncodeToString(b))
}

// Reload re-reads what can change without a restart: the TLS certificate.
func (a *App) Reload() error {
	if err := a.certs.Reload(); err != nil {
		a.log.Error("reload failed, keeping the current certificate", "err", err)
		return err
	}
	a.log.Info("reloaded TLS certificate", "file", a.certs.certFile)
	return nil
}

// Run binds every listener and serves until ctx ends; reload (may be nil) triggers Reload.
// Binding errors are returned before anything is served.
func (a *App) Run(ctx context.Context, reload <-chan struct{}) error {
	defer a.store.Close()
	listeners := make([]net.Listener, 0, len(a.bindings))
	limited := make([]*connlimit.Listener, 0, len(a.bindings))
	for _, b := range a.bindings {
		l, err := net.Listen("tcp", b.addr)
		if err != nil {
			for _, l := range listeners {
				l.Close()
			}
			return fmt.Errorf("%s: %w", b.name, err)
		}
		cl := connlimit.New(l, a.cfg.Limits.MaxConnections, a.cfg.Limits.MaxConnectionsPerIP, b.reject)
		listeners = append(listeners, cl)
		limited = append(limited, cl)
	}
	if a.cfg.User != "" {
		if err := dropPrivileges(a.cfg.User, a.cfg.Data); err != nil {
			for _, l := range listeners {
				l.Close()
			}
			return err
		}
		a.log.Info("running as an unprivileged user", "user", a.cfg.User, "uid", os.Getuid())
	} else if os.Geteuid() == 0 && !a.cfg.Dev {
		a.log.Warn("running as root: set `user` in the config to drop privileges after binding the ports")
	}
	var wg sync.WaitGroup
	errc := make(chan error, len(listeners))
	for i, b := range a.bindings {
		fmt.Fprintf(a.out, "petrel: %-11s listening on %s\n", b.name, listeners[i].Addr())
		wg.Add(1)
		go func(b binding, l net.Listener) {
			defer wg.Done()
			if err := b.srv.Serve(l); err != nil {
				errc <- fmt.Errorf("%s on %s: %w", b.name, l.Addr(), err)
			}
		}(b, listeners[i])
	}
	a.log.Info("petrel started", "hostname", a.cfg.Hostname, "data", a.cfg.Data)

	trimCtx, stopTrim := context.WithCancel(ctx)
	trimDone := make(chan struct{})
	go func() {
		defer close(trimDone)
		newTrimmer(func() uint64 {
			var n uint64
			for _, l := range limited {
				n += l.Accepted() + l.Closed()
			}
			return n
		}, a.log).run(trimCtx)
	}()

	var runErr error
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case <-reload:
			a.Reload()
		case err := <-errc:
			runErr = err
			break loop
		}
	}

	stopTrim()
	<-trimDone
	a.log.Info("shutting down", "grace", a.Grace)
	sctx, cancel := context.WithTimeout(context.Background(), a.Grace)
	defer cancel()
	var swg sync.WaitGroup
	seen := map[server]bool{}
	for _, b := range a.bindings {
		if seen[b.srv] {
			continue
		}
		seen[b.srv] = true
		swg.Add(1)
		go func(s server) {
			defer swg.Done()
			s.Shutdown(sctx)
		}(b.srv)
	}
	swg.Wait()
	wg.Wait()
	a.log.Info("stopped")
	return runErr
}
