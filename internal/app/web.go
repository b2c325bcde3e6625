package app

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"petrel/internal/config"
	"petrel/internal/mail/deliver"
	"petrel/internal/server/acme"
	"petrel/internal/server/httpd"
	"petrel/internal/server/httpd/webmail"
	"petrel/internal/store"
)

// webRoutes is the URL space of the HTTP listeners; httpd gives every route the same
// timeouts and security headers. The webmail logs in through au (the throttle of SMTP,
// POP3 and IMAP) and sends through sub, the submission listener's own path.
func (a *App) webRoutes(au webmail.Authenticator, sub webmail.Submitter) *httpd.Routes {
	mux := httpd.NewRoutes()
	mux.Handle("GET /healthz", httpd.Healthz())
	var allow []netip.Prefix
	for _, n := range a.cfg.HTTP.MetricsAllow {
		if p, err := netip.ParsePrefix(n); err == nil { // validated with the config
			allow = append(allow, p)
		}
	}
	mux.Handle("GET /metrics", a.metrics.Handler(httpd.MetricsAccess{Allow: allow, Token: a.cfg.HTTP.MetricsToken}, a.log.With("listener", "http")))
	checks := []httpd.Check{{Name: "store", Run: a.storeAnswers}}
	if sc, ok := a.store.(store.SchemaChecker); ok {
		// Several nodes on one database: a newer node may have migrated it past us.
		checks = append(checks, httpd.Check{Name: "store schema", Run: sc.SchemaCurrent})
	}
	checks = append(checks, httpd.Check{Name: "listeners", Run: func(context.Context) error {
		if !a.ready.Load() {
			return errors.New("not serving (starting or shutting down)")
		}
		return nil
	}})
	mux.Handle("GET /readyz", httpd.Readyz(a.log.With("listener", "http"), checks...))
	log := a.log.With("listener", "http")
	// The ports actually bound (a configured port 0 is the kernel's choice).
	ports := map[string][]int{}
	for _, b := range a.bound {
		ports[b.name] = append(ports[b.name], ListenPorts([]string{b.l.Addr().String()})...)
	}
	(&httpd.ClientSetup{Services: ClientServices(a.cfg.Hostname, ports), Domains: a.store, Log: log}).Register(mux)
	if a.acme != nil {
		mux.Handle("GET "+acme.HTTPPath, a.acme.HTTP01Handler()) // plain HTTP: never redirected
	}
	if policy, _, ok := MTASTSPolicy(a.cfg); ok {
		(&httpd.MTASTS{Policy: policy, Domains: a.store, Log: log}).Register(mux)
	}
	a.webmail = webmail.New(webmail.Config{MaxUpload: a.cfg.HTTP.MaxUpload}, a.store, au, sub, log.With("component", "webmail"))
	if ws, ok := a.store.(webmail.PersistStore); ok {
		// Recorded in the store, so that `petrel webmail sessions|revoke` reaches them, and
		// every node on a shared PostgreSQL knows them.
		if err := a.webmail.Sessions.Persist(context.Background(), ws); err != nil {
			log.Error("webmail sessions are kept in memory only: the store refused them", "err", err)
		}
	}
	a.webmail.SetLive(func() (any, error) { return a.metrics.Live() })
	a.webmail.Register(mux)
	return mux
}

// SetManage turns on the web admin (for accounts the store marks as admins): run is the
// CLI's own entry point, given by `petrel serve`, so that every action of the web admin is
// the command an operator would type. Call it before Run.
func (a *App) SetManage(run webmail.ManageFunc) {
	if adm, ok := a.store.(store.Admins); ok && a.webmail != nil {
		a.webmail.SetAdmin(adm, run)
	}
}

// countDeliveries is the deliverer the SMTP servers get: the real one, with each delivery
// counted and timed for the metrics.
type countDeliveries struct {
	*deliver.Deliverer
	m *httpd.Metrics
}

func (c countDeliveries) Deliver(ctx context.Context, env deliver.Envelope, body deliver.Body) (store.Delivered, error) {
	start := time.Now()
	d, err := c.Deliverer.Deliver(ctx, env, body)
	c.m.Delivery(time.Since(start), err)
	return d, err
}

// ClientServices is what client set-up documents tell mail clients: the host name and the
// ports of the listeners (by listener name: "imaps", "submission", ...), implicit TLS first
// (RFC 8314 §3).
func ClientServices(hostname string, ports map[string][]int) httpd.Services {
	eps := func(implicit, starttls string) []httpd.Endpoint {
		var out []httpd.Endpoint
		for _, p := range ports[implicit] {
			out = append(out, httpd.Endpoint{Port: p, TLS: true})
		}
		for _, p := range ports[starttls] {
			out = append(out, httpd.Endpoint{Port: p})
		}
		return out
	}
	return httpd.Services{
		Hostname:   strings.TrimSuffix(strings.ToLower(hostname), "."),
		IMAP:       eps("imaps", "imap"),
		POP3:       eps("pop3s", "pop3"),
		Submission: eps("submissions", "submission"),
	}
}

// MTASTSPolicy is the MTA-STS policy file of every hosted domain (RFC 8461 §3.2: the
// configured mode and max_age, our host name as the only mx) and its id for the
// _mta-sts TXT record, which changes whenever the policy does (a hash of it). ok is false
// when http.mta_sts_mode is "off".
func MTASTSPolicy(cfg *config.Config) (policy, id string, ok bool) {
	mode := cfg.HTTP.MTASTSMode
	if mode == "off" {
		return "", "", false
	}
	host := strings.TrimSuffix(strings.ToLower(cfg.Hostname), ".")
	policy = "version: STSv1\r\nmode: " + mode + "\r\n"
	if mode != "none" {
		policy += "mx: " + host + "\r\n"
	}
	policy += "max_age: " + strconv.Itoa(cfg.HTTP.MTASTSMaxAge) + "\r\n"
	sum := sha256.Sum256([]byte(policy))
	// RFC 8461 §3.1: id is 1 to 32 letters and digits.
	return policy, hex.EncodeToString(sum[:16]), true
}

// storeAnswers is the readiness check of the store: a read that needs the database.
func (a *App) storeAnswers(ctx context.Context) error {
	_, err := a.store.Domain(ctx, "readiness-check.invalid")
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	return err
}

// webServers makes the plain and the TLS HTTP server from the [http] section.
func (a *App) webServers(h http.Handler, tlsConf *tls.Config) (plain, secure *httpd.Server) {
	hc := a.cfg.HTTP
	conf := httpd.Config{
		RedirectHTTPS:     hc.RedirectHTTPS,
		HSTSMaxAge:        hc.HSTSMaxAge,
		ReadHeaderTimeout: hc.ReadHeaderTimeout.Duration,
		ReadTimeout:       hc.ReadTimeout.Duration,
		WriteTimeout:      hc.WriteTimeout.Duration,
		IdleTimeout:       hc.IdleTimeout.Duration,
		MaxHeaderBytes:    hc.MaxHeaderBytes,
	}
	if p := ListenPorts(hc.ListenTLS); len(p) > 0 {
		conf.HTTPSPort = p[0]
	} else {
		conf.RedirectHTTPS = false // nowhere to redirect to
	}
	plain = httpd.New(conf, h, a.log.With("listener", "http"))
	conf.TLS = tlsConf
	secure = httpd.New(conf, h, a.log.With("listener", "https"))
	return plain, secure
}
