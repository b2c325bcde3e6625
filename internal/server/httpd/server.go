// Package httpd is Petrel's web listener: one net/http server per listener (plain HTTP or
// HTTPS), with the timeouts, TLS policy and security headers every page shares, and the
// handlers that need no login: client set-up (Thunderbird autoconfig, Microsoft Autodiscover,
// Apple configuration profiles), the MTA-STS policy, health and metrics.
//
// The package does not build the URL space itself: the caller (internal/app) fills a Routes
// (an http.ServeMux) with the handlers of this package and, later, with the webmail and admin
// handlers, and hands it to New. So a new set of pages is one more Handle call, and gets the
// timeouts, headers and redirects below without knowing them.
//
// Rules a handler may rely on, and must not break:
//   - Every answer carries the security headers of secureHeaders: a Content-Security-Policy
//     that allows nothing (default-src 'none', frame-ancestors 'none'), nosniff, no referrer,
//     and HSTS over TLS when configured. A page that needs more sets its own CSP header; it
//     replaces the default, so it must stay as strict as the page allows.
//   - On a plain-HTTP listener with RedirectHTTPS set, only the paths in PlainPaths reach a
//     handler; every other request is redirected to the same URL over HTTPS.
//   - Handlers never echo request data into an answer unescaped: the XML and plist writers
//     escape every value, and an unknown domain is a 404, never someone else's data.
package httpd

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"petrel/internal/lib/connid"
	"strconv"
	"strings"
	"time"
)

// Config is one listener's settings.
type Config struct {
	// TLS serves HTTPS on every accepted connection (implicit TLS); nil serves plain HTTP.
	TLS *tls.Config
	// RedirectHTTPS: on plain HTTP, answer every path outside PlainPaths with a permanent
	// redirect to HTTPS. HTTPSPort is the port named in the redirect (0 or 443: none).
	RedirectHTTPS bool
	HTTPSPort     int
	// HSTSMaxAge is the Strict-Transport-Security max-age sent over TLS (0: none).
	HSTSMaxAge int

	ReadHeaderTimeout time.Duration // TLS handshake and request header
	ReadTimeout       time.Duration // the whole request, body included
	WriteTimeout      time.Duration // the whole response
	IdleTimeout       time.Duration // keep-alive wait for the next request
	MaxHeaderBytes    int
}

// Defaults for a zero Config field.
const (
	DefaultReadHeaderTimeout = 10 * time.Second
	DefaultReadTimeout       = 5 * time.Minute
	DefaultWriteTimeout      = 5 * time.Minute
	DefaultIdleTimeout       = 2 * time.Minute
	DefaultMaxHeaderBytes    = 64 << 10
)

// PlainPaths are the path prefixes that stay on plain HTTP when the listener redirects:
// client set-up (a mail client asks http://autoconfig.DOMAIN/ before it knows better, and
// the answer names only public settings) and ACME HTTP-01 challenges (RFC 8555 §8.3, which
// must be answered on port 80).
var PlainPaths = []string{
	"/.well-known/acme-challenge/",
	"/.well-known/autoconfig/",
	"/mail/config-v1.1.xml",
}

// Routes is the URL space: the caller registers handlers with Handle or HandleFunc
// (net/http patterns, "GET /healthz").
type Routes = http.ServeMux

// NewRoutes returns an empty URL space.
func NewRoutes() *Routes { return http.NewServeMux() }

// Server serves one listener.
type Server struct {
	cfg Config
	srv *http.Server
	log *slog.Logger
}

// New makes a server for h.
func New(cfg Config, h http.Handler, log *slog.Logger) *Server {
	if cfg.ReadHeaderTimeout <= 0 {
		cfg.ReadHeaderTimeout = DefaultReadHeaderTimeout
	}
	if cfg.ReadTimeout <= 0 {
		cfg.ReadTimeout = DefaultReadTimeout
	}
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = DefaultWriteTimeout
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = DefaultIdleTimeout
	}
	if cfg.MaxHeaderBytes <= 0 {
		cfg.MaxHeaderBytes = DefaultMaxHeaderBytes
	}
	s := &Server{cfg: cfg, log: log}
	if cfg.TLS == nil && cfg.RedirectHTTPS {
		h = redirectHTTPS(h, cfg.HTTPSPort)
	}
	s.srv = &http.Server{
		Handler:           secureHeaders(h, cfg.HSTSMaxAge),
		ReadHeaderTimeout: cfg.ReadHeaderTimeout,
		ReadTimeout:       cfg.ReadTimeout,
		WriteTimeout:      cfg.WriteTimeout,
		IdleTimeout:       cfg.IdleTimeout,
		MaxHeaderBytes:    cfg.MaxHeaderBytes,
		// Failed handshakes and broken clients are routine on a public port: debug level.
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelDebug),
		// Every request of a connection carries the connection's id for the handlers' logs
		// (lib/connid), as every mail session's lines do.
		ConnContext: func(ctx context.Context, _ net.Conn) context.Context { return connid.With(ctx, connid.New()) },
	}
	if cfg.TLS != nil {
		// A clone: net/http appends "h2" and "http/1.1" to the NextProtos of the config it is
		// given, and the caller shares its config with the mail listeners, whose TLS would
		// then refuse every client offering ALPN "imap" or "pop3". The certificate comes from
		// GetCertificate, which the clone keeps, so a reload reaches new handshakes.
		s.srv.TLSConfig = cfg.TLS.Clone()
	}
	return s
}

// Serve accepts connections on l until Shutdown; it returns nil after a Shutdown.
func (s *Server) Serve(l net.Listener) error {
	var err error
	if s.cfg.TLS != nil {
		err = s.srv.ServeTLS(l, "", "")
	} else {
		err = s.srv.Serve(l)
	}
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// OnShutdown registers f to run when Shutdown begins: for connections a handler took over
// (webmail event streams), which net/http no longer tracks.
func (s *Server) OnShutdown(f func()) { s.srv.RegisterOnShutdown(f) }

// Shutdown stops accepting, closes idle connections, and waits for requests in flight until
// ctx ends; then it closes what is left.
func (s *Server) Shutdown(ctx context.Context) error {
	err := s.srv.Shutdown(ctx)
	if err != nil {
		s.srv.Close()
	}
	return err
}

// ContentSecurityPolicy is the default policy: nothing may load, nothing may frame us, no
// form may post anywhere. The client set-up documents and the metrics are not pages; pages
// that come later widen it for themselves.
const ContentSecurityPolicy = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"

// secureHeaders sets the headers every answer carries, before the handler runs (so a
// handler can replace one, and an error page of net/http still gets them).
func secureHeaders(h http.Handler, hstsMaxAge int) http.Handler {
	hsts := ""
	if hstsMaxAge > 0 {
		// No includeSubDomains: other hosts of the domain may not serve HTTPS at all.
		hsts = "max-age=" + strconv.Itoa(hstsMaxAge)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		hd.Set("Content-Security-Policy", ContentSecurityPolicy)
		hd.Set("X-Content-Type-Options", "nosniff")
		hd.Set("X-Frame-Options", "DENY") // for browsers that predate frame-ancestors
		hd.Set("Referrer-Policy", "no-referrer")
		hd.Set("Cross-Origin-Opener-Policy", "same-origin")
		if r.TLS != nil && hsts != "" {
			// RFC 6797 §7.2: never over plain HTTP.
			hd.Set("Strict-Transport-Security", hsts)
		}
		h.ServeHTTP(w, r)
	})
}

// redirectHTTPS sends every request outside PlainPaths to the same URL over HTTPS.
func redirectHTTPS(h http.Handler, port int) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for _, p := range PlainPaths {
			if strings.HasPrefix(r.URL.Path, p) || r.URL.Path == strings.TrimSuffix(p, "/") {
				h.ServeHTTP(w, r)
				return
			}
		}
		host := RequestHost(r)
		if host == "" {
			http.Error(w, "400 no Host header", http.StatusBadRequest)
			return
		}
		if strings.Contains(host, ":") {
			host = "[" + host + "]"
		}
		if port != 0 && port != 443 {
			host += ":" + strconv.Itoa(port)
		}
		// 308 keeps the method and body (RFC 9110 §15.4.9); GET and HEAD get 301, which every
		// client knows.
		code := http.StatusPermanentRedirect
		if r.Method == http.MethodGet || r.Method == http.MethodHead {
			code = http.StatusMovedPermanently
		}
		http.Redirect(w, r, "https://"+host+r.URL.RequestURI(), code)
	})
}

// RequestHost is the host name of the request (Host header, or the URL of an HTTP/2
// request), lower case, without port or trailing dot; "" when it is not a plausible host
// name or IP address, so that it can be used in a URL or compared with a domain safely.
func RequestHost(r *http.Request) string {
	host := r.Host
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	} else if len(host) > 2 && host[0] == '[' && host[len(host)-1] == ']' {
		host = host[1 : len(host)-1] // an IPv6 literal without a port
	}
	host = strings.TrimSuffix(strings.ToLower(host), ".")
	if host == "" || len(host) > 253 {
		return ""
	}
	if net.ParseIP(host) != nil {
		return host
	}
	for _, c := range host {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '.') {
			return ""
		}
	}
	return host
}
