package app

import (
	"context"
	"crypto/tls"
	"errors"
	"net/http"

	"petrel/internal/server/httpd"
	"petrel/internal/store"
)

// webRoutes is the URL space of the HTTP listeners. The webmail and admin pages will be
// registered here too; httpd gives every route the same timeouts and security headers.
func (a *App) webRoutes() *httpd.Routes {
	mux := httpd.NewRoutes()
	mux.Handle("GET /healthz", httpd.Healthz())
	mux.Handle("GET /readyz", httpd.Readyz(a.log.With("listener", "http"),
		httpd.Check{Name: "store", Run: a.storeAnswers},
		httpd.Check{Name: "listeners", Run: func(context.Context) error {
			if !a.ready.Load() {
				return errors.New("not serving (starting or shutting down)")
			}
			return nil
		}},
	))
	return mux
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
