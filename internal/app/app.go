// Package app is the composition root: it turns a config into running listeners. It is the
// only package that knows every concrete type (store implementation, protocol servers, auth).
//
// Lifecycle: New checks what can fail (user, data directory lock, certificate) and binds
// every listener before it creates anything on disk, then opens the store and prepares the
// servers; Run drops privileges, serves until its context ends, then shuts the servers down
// gracefully: listeners close first, idle sessions are told to go away (SMTP 421, POP3 -ERR,
// IMAP BYE), transactions in flight finish within the grace period, and the store closes last
// so that nothing acknowledged is lost.
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
	"sync/atomic"
	"time"

	"petrel/internal/config"
	"petrel/internal/lib/address"
	"petrel/internal/lib/connlimit"
	"petrel/internal/mail/auth"
	"petrel/internal/mail/deliver"
	"petrel/internal/mail/sieve"
	"petrel/internal/outbound/queue"
	"petrel/internal/pull"
	"petrel/internal/server/acme"
	"petrel/internal/server/httpd"
	"petrel/internal/server/httpd/webmail"
	"petrel/internal/server/imapd"
	"petrel/internal/server/managesieve"
	"petrel/internal/server/pop3d"
	"petrel/internal/server/smtpd"
	"petrel/internal/store"
	"petrel/internal/store/sqlite"
)

// OpenStore opens the embedded store of a data directory, creating the directory if needed.
// The server and every management command use it, so both work on the same data at once.
// It and OpenConfiguredStore (pgstore.go) are the one place that knows which backend
// runs; everything else sees store.Store.
// The quota is the default of accounts without their own (config [quota]); the store
// enforces it at every commit, so the management commands pass it too.
func OpenStore(dataDir string, quota config.Quota, log *slog.Logger) (store.Store, error) {
	return openStore(dataDir, sqlite.Options{Logger: log, DefaultQuota: quotaLimits(quota)})
}

func quotaLimits(q config.Quota) store.QuotaLimits {
	return store.QuotaLimits{Storage: q.Storage, Messages: q.Messages}
}

func openStore(dataDir string, opts sqlite.Options) (store.Store, error) {
	if err := checkDataDir(dataDir); err != nil {
		return nil, err
	}
	st, err := sqlite.Open(filepath.Join(dataDir, "petrel.db"), opts)
	if err != nil {
		return nil, err // not a typed nil inside the interface
	}
	return st, nil
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
	l      net.Listener // bound by New
	srv    server
	reject func(net.Conn) // answer for a connection over the limits; nil: close silently
}

// App is a configured Petrel instance.
type App struct {
	cfg      *config.Config
	log      *slog.Logger
	out      io.Writer // messages for the operator at start (paths, the dev password)
	store    store.Store
	dkim     *DKIMStore // the domains' DKIM keys, kept by the store (dkim.go)
	certs    *certs
	acme     *acme.Manager // keeps certs current from an ACME CA; nil: files or self-signed
	bound    []bound       // every listener, bound by New before anything is written
	bindings []binding
	user     *runAs      // switch to this user in Run; nil: stay
	lock     *os.File    // holds the data directory's lock until Run ends
	ready    atomic.Bool // every listener is served and no shutdown has begun (/readyz)
	metrics  *httpd.Metrics
	queue    *queue.Queue // the outbound queue; nil when outbound.enabled is false
	pull     *pull.Poller // polls outside mailboxes into accounts; nil when off or the store has no Pulls
	webmail  *webmail.Webmail

	// Grace bounds how long Run waits for transactions in flight at shutdown.
	Grace time.Duration
}

// New prepares an instance. What can fail without touching the disk comes first: the user
// to switch to, the lock of an existing data directory, the certificate, and every listener,
// which New binds. So a start that fails (a port taken, a bad key) leaves no data directory,
// account or printed password behind. Then it creates the data directory, the store, the
// domains and the development account, and the servers.
func New(ctx context.Context, cfg *config.Config, log *slog.Logger, out io.Writer) (*App, error) {
	a := &App{cfg: cfg, log: log, out: out, Grace: 30 * time.Second, metrics: httpd.NewMetrics()}
	writeDevCert, err := a.preflight()
	if err != nil {
		a.release()
		return nil, err
	}
	if err := a.create(ctx, writeDevCert); err != nil {
		a.release()
		return nil, err
	}
	return a, nil
}

// preflight checks and reserves everything New needs before it writes anything. For a
// development instance without a certificate yet it makes one in memory and returns the
// function that writes it into the data directory.
func (a *App) preflight() (writeDevCert func() error, err error) {
	cfg := a.cfg
	if cfg.User != "" {
		if a.user, err = lookupUser(cfg.User); err != nil {
			return nil, err
		}
	}
	// A second server on the same data is told so before it competes for the ports.
	if _, err := os.Stat(cfg.Data); err == nil {
		if a.lock, err = lockDataDir(cfg.Data); err != nil {
			return nil, err
		}
	}
	switch {
	case cfg.ACME.Enabled:
		if a.certs, a.acme, err = a.acmeCerts(); err != nil { // acme.go
			return nil, err
		}
	case cfg.Dev && cfg.TLS.Cert == "":
		a.certs, writeDevCert, err = devCerts(filepath.Join(cfg.Data, "tls"), cfg.Hostname)
		if err != nil {
			return nil, fmt.Errorf("self-signed certificate: %w", err)
		}
	default:
		if a.certs, err = loadCerts(cfg.TLS.Cert, cfg.TLS.Key); err != nil {
			return nil, err
		}
	}
	if a.bound, err = bindAll(cfg); err != nil {
		return nil, err
	}
	return writeDevCert, nil
}

// create makes what the checks allowed: data directory (locked), development certificate,
// store, domains, development account, servers.
func (a *App) create(ctx context.Context, writeDevCert func() error) error {
	cfg := a.cfg
	if a.lock == nil {
		if err := os.MkdirAll(cfg.Data, 0o700); err != nil {
			return dataDirError(cfg.Data, err)
		}
		var err error
		if a.lock, err = lockDataDir(cfg.Data); err != nil {
			return err
		}
	}
	if writeDevCert != nil {
		if err := writeDevCert(); err != nil {
			return fmt.Errorf("self-signed certificate: %w", err)
		}
	}
	if cfg.Dev && cfg.TLS.Cert == "" && a.acme == nil {
		fmt.Fprintf(a.out, "petrel: TLS certificate %s (self-signed, development instance)\n", a.certs.certFile)
	}
	st, err := openConfigured(ctx, cfg, a.log, a.metrics.Commit)
	if err != nil {
		if cfg.Store.Backend == "postgres" {
			return fmt.Errorf("open store: %w", err)
		}
		return fmt.Errorf("open store in %s: %w", cfg.Data, err)
	}
	a.store = st
	a.metrics.Queue(a.queueStats)
	if err := a.prepare(ctx); err != nil {
		st.Close()
		return err
	}
	return nil
}

// release gives back what New reserved, when New fails or Run ends: the listeners that
// were never served, and the data directory's lock.
func (a *App) release() {
	for _, b := range a.bound {
		b.l.Close()
	}
	if a.lock != nil {
		a.lock.Close()
	}
}

func (a *App) prepare(ctx context.Context) error {
	cfg := a.cfg
	c := a.certs
	if err := EnsureDomains(ctx, a.store, cfg.Domains); err != nil {
		return err
	}
	if cfg.Dev {
		if err := a.ensureDevAccount(ctx); err != nil {
			return err
		}
	}
	if err := a.ensureDKIMKeys(ctx); err != nil {
		return err
	}

	tlsConf := c.serverConfig()
	au := auth.New(a.store, auth.Config{
		FailureDelay:    cfg.Limits.AuthFailureDelay.Duration,
		MaxFailureDelay: cfg.Limits.AuthFailureMaxDelay.Duration,
	}, a.log)
	dl := countDeliveries{deliver.New(a.store, a.log), a.metrics}
	if sv, ok := a.store.(deliver.SieveStore); ok {
		// Each account's active Sieve script runs at delivery (issue 13); redirects count
		// against the [sending] limits like submitted mail.
		dl.SetSieve(&deliver.SieveConfig{Store: sv, Limits: sieve.DefaultLimits(), Sending: a.sendingLimits().Default,
			Hostname: cfg.Hostname})
	}
	var trainer imapd.JunkTrainer
	if jf := a.junkFilter(); jf != nil { // junk.go
		dl.SetJunk(jf)
		trainer = junkTrainer{jf}
	}
	if cfg.Outbound.Enabled {
		q, err := a.newQueue(dl.Deliverer)
		if err != nil {
			return err
		}
		a.queue = q
	}
	spool := filepath.Join(cfg.Data, "spool")
	if err := os.MkdirAll(spool, 0o700); err != nil {
		return err
	}
	if ps, ok := a.store.(pull.Store); ok && cfg.Pull.Enabled {
		// Outside mailboxes come in through dl, like SMTP: junk filter and Sieve apply.
		a.pull = pull.New(ps, dl, pull.Options{KeyFile: cfg.PullKeyFile(), Check: cfg.Pull.Check.Duration,
			Workers: cfg.Pull.Workers, Timeout: cfg.Pull.Timeout.Duration, SpoolDir: spool, Log: a.log,
			// The embedded store has one server (the data directory lock); PostgreSQL nodes
			// let a crashed node's leases run out.
			ReleaseLeases: cfg.Store.Backend != "postgres"})
	}
	senders := smtpd.SenderOwn
	if cfg.SMTP.SenderPolicy == "any" {
		senders = smtpd.SenderAny
	}
	smtpConf := func(name string, role smtpd.Role, implicit bool) smtpd.Config {
		return smtpd.Config{
			Metrics:           a.metrics.Listener(name),
			Hostname:          cfg.Hostname,
			Role:              role,
			TLS:               a.metrics.TLS(name, tlsConf),
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
			Relay:             cfg.Outbound.Enabled, // submission only: the MX role never relays
		}
	}
	pop3Conf := func(name string, implicit bool) pop3d.Config {
		return pop3d.Config{
			Metrics:            a.metrics.Listener(name),
			Hostname:           cfg.Hostname,
			TLS:                a.metrics.TLS(name, withALPN(tlsConf, "pop3")), // RFC 2595 (IANA ALPN registry)
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
	imapConf := func(name string, implicit bool) imapd.Config {
		return imapd.Config{
			Metrics:            a.metrics.Listener(name),
			Hostname:           cfg.Hostname,
			TLS:                a.metrics.TLS(name, withALPN(tlsConf, "imap")), // RFC 9051 (IANA ALPN registry)
			ImplicitTLS:        implicit,
			AllowPlaintextAuth: cfg.IMAP.AllowPlaintextAuth,
			IdleTimeout:        cfg.IMAP.IdleTimeout.Duration,
			CommandTimeout:     cfg.IMAP.CommandTimeout.Duration,
			LoginIdleTimeout:   cfg.Limits.LoginIdleTimeout.Duration,
			LoginTimeout:       cfg.Limits.LoginTimeout.Duration,
			MaxAuthFailures:    cfg.Limits.MaxAuthFailures,
			AppendLimit:        cfg.IMAP.AppendLimit,
			MaxAccountSessions: cfg.IMAP.MaxAccountSessions,
			MaxNotifyPending:   cfg.IMAP.MaxNotifyPending,
			Compress:           cfg.IMAP.Compress,
			SpoolDir:           spool,
			Limits:             imapd.Limits{MaxCommand: cfg.IMAP.MaxCommandBytes},
			Junk:               trainer,
		}
	}
	smtpBusy := busyLine("421 4.7.0 Too many connections, try again later\r\n")
	pop3Busy := busyLine("-ERR [SYS/TEMP] Too many connections, try again later\r\n")
	imapBusy := busyLine("* BYE [UNAVAILABLE] Too many connections, try again later\r\n")
	add := func(name string, srv server, reject func(net.Conn)) {
		for _, b := range a.bound {
			if b.name == name {
				a.bindings = append(a.bindings, binding{name: name, addr: b.addr, l: b.l, srv: srv, reject: reject})
			}
		}
	}
	mxConf := smtpConf("smtp", smtpd.RoleMX, false)
	subConf := smtpConf("submission", smtpd.RoleSubmission, false)
	subsConf := smtpConf("submissions", smtpd.RoleSubmission, true)
	inboundDNS, err := a.inboundResolver() // mailauth.go
	if err != nil {
		return err
	}
	mxConf.Verify = a.inboundVerification(inboundDNS)
	mxConf.Door = a.door(inboundDNS) // door.go
	subConf.Door, subsConf.Door = a.submissionDoor(), a.submissionDoor()
	subConf.Sending, subsConf.Sending = a.sendingLimits(), a.sendingLimits()
	mx := smtpd.New(mxConf, dl, au, a.log.With("listener", "smtp"))
	sub := smtpd.New(subConf, dl, au, a.log.With("listener", "submission"))
	subs := smtpd.New(subsConf, dl, au, a.log.With("listener", "submissions"))
	pop := pop3d.New(pop3Conf("pop3", false), a.store, au, a.log.With("listener", "pop3"))
	pops := pop3d.New(pop3Conf("pop3s", true), a.store, au, a.log.With("listener", "pop3s"))
	add("smtp", mx, smtpBusy)
	add("submission", sub, smtpBusy)
	add("submissions", subs, nil)
	add("pop3", pop, pop3Busy)
	add("pop3s", pops, nil)
	imap := imapd.New(imapConf("imap", false), a.store, au, a.log.With("listener", "imap"))
	imaps := imapd.New(imapConf("imaps", true), a.store, au, a.log.With("listener", "imaps"))
	add("imap", imap, imapBusy)
	add("imaps", imaps, nil)
	if sv, ok := a.store.(managesieve.Store); ok {
		ms := managesieve.New(managesieve.Config{
			Hostname:           cfg.Hostname,
			TLS:                a.metrics.TLS("managesieve", tlsConf),
			AllowPlaintextAuth: cfg.ManageSieve.AllowPlaintextAuth,
			IdleTimeout:        cfg.ManageSieve.IdleTimeout.Duration,
			CommandTimeout:     cfg.ManageSieve.CommandTimeout.Duration,
			LoginIdleTimeout:   cfg.Limits.LoginIdleTimeout.Duration,
			LoginTimeout:       cfg.Limits.LoginTimeout.Duration,
			MaxScripts:         cfg.ManageSieve.MaxScripts,
			MaxAuthFailures:    cfg.Limits.MaxAuthFailures,
		}, sv, au, a.log.With("listener", "managesieve"))
		add("managesieve", ms, busyLine("BYE (TRYLATER) \"Too many connections, try again later\"\r\n"))
	} else if len(cfg.ManageSieve.Listen) > 0 {
		a.log.Warn("ManageSieve not served: the store keeps no Sieve scripts", "listen", cfg.ManageSieve.Listen)
	}
	webTLS := tlsConf
	if a.acme != nil {
		webTLS = a.acme.TLSConfig(tlsConf) // TLS-ALPN-01 is answered on the HTTPS listener
	}
	// The protocols net/http would add to its own copy are named here: the counting
	// config hands each handshake a copy of this one (httpd.Metrics.TLS).
	webTLS = a.metrics.TLS("https", withALPN(webTLS, "h2", "http/1.1"))
	web, webs := a.webServers(a.webRoutes(au, sub), webTLS)
	web.OnShutdown(a.webmail.CloseStreams) // event streams taken over from net/http
	webs.OnShutdown(a.webmail.CloseStreams)
	add("http", web, busyLine("HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"))
	add("https", webs, nil)
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
	if a.acme != nil {
		a.log.Info("reload: the certificate comes from the ACME CA; nothing to re-read")
		return nil
	}
	if err := a.certs.Reload(); err != nil {
		a.log.Error("reload failed, keeping the current certificate", "err", err)
		return err
	}
	a.log.Info("reloaded TLS certificate", "file", a.certs.certFile)
	return nil
}

// Run serves the listeners New bound until ctx ends; reload (may be nil) triggers Reload.
func (a *App) Run(ctx context.Context, reload <-chan struct{}) error {
	defer a.release()     // last: the lock outlives the store
	defer a.store.Close() // after every server stopped
	listeners := make([]net.Listener, 0, len(a.bindings))
	limited := make([]*connlimit.Listener, 0, len(a.bindings))
	byName := map[string][]*connlimit.Listener{}
	var names []string
	for _, b := range a.bindings {
		cl := connlimit.New(b.l, a.cfg.Limits.MaxConnections, a.cfg.Limits.MaxConnectionsPerIP, b.reject)
		cl.LimitRate(connlimit.Rate{N: a.cfg.Limits.MaxConnectionRatePerIP})
		listeners = append(listeners, cl)
		limited = append(limited, cl)
		if byName[b.name] == nil {
			names = append(names, b.name)
		}
		byName[b.name] = append(byName[b.name], cl)
	}
	for _, name := range names {
		ls := byName[name]
		sum := func(f func(*connlimit.Listener) uint64) func() uint64 {
			return func() uint64 {
				var n uint64
				for _, l := range ls {
					n += f(l)
				}
				return n
			}
		}
		a.metrics.Connections(name, sum((*connlimit.Listener).Accepted), sum((*connlimit.Listener).Closed))
	}
	if a.user != nil && a.acme == nil {
		// The helper keeps root to read renewed key files; started before the switch.
		h, err := startKeyHelper(a.certs.certFile, a.certs.keyFile)
		if err != nil {
			return err
		}
		defer h.Close()
		a.certs.load = h.load
	}
	if a.user != nil {
		// The ACME account key and certificate are in the data directory, which the user
		// gets here: renewals need no privileges.
		if err := dropPrivileges(a.user, a.cfg.Data); err != nil {
			return err
		}
		a.log.Info("running as an unprivileged user", "user", a.user.name, "uid", os.Getuid())
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
	a.ready.Store(true)
	a.log.Info("petrel started", "hostname", a.cfg.Hostname, "data", a.cfg.Data)
	queueCtx, stopQueue := context.WithCancel(context.Background())
	defer stopQueue()
	waitQueue := func() {}
	if a.queue != nil {
		waitQueue = runQueue(queueCtx, a.queue, a)
	}
	// The poller stops with the queue: after the servers, before the store closes. A poll
	// cut short delivers nothing twice (its unique-ids commit with its messages) and a POP3
	// session ended without QUIT deletes nothing.
	pullDone := make(chan struct{})
	go func() {
		defer close(pullDone)
		if a.pull != nil {
			a.pull.Run(queueCtx)
		}
	}()

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

	// Bodies stored before the full-text index existed (an upgraded store) are indexed in
	// the background; a stop interrupts it and the next start goes on.
	indexDone := make(chan struct{})
	go func() {
		defer close(indexDone)
		if _, err := deliver.IndexBacklog(trimCtx, a.store, a.log); err != nil && trimCtx.Err() == nil {
			a.log.Error("full-text index: indexing older messages failed", "err", err)
		}
	}()

	acmeDone := make(chan struct{})
	go func() {
		defer close(acmeDone)
		if a.acme != nil {
			a.acme.Run(trimCtx) // the listeners serve: the CA's challenges can come in
		}
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

	a.ready.Store(false)
	stopTrim()
	<-trimDone
	<-indexDone
	<-acmeDone
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
	// The queue stops after the servers (their last transactions may queue mail) and before
	// the store closes; attempts in flight are cut short and their recipients stay leased
	// until the next start releases them.
	stopQueue()
	waitQueue()
	<-pullDone
	a.log.Info("stopped")
	return runErr
}
