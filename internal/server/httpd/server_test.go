package httpd

import (
	"bufio"
	"context"
	"crypto/tls"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"petrel/internal/mailtest"
)

// testServer serves h on a loopback port with cfg (TLS: a certificate for 127.0.0.1 from a
// test CA) and returns the base URL and a client that trusts the CA and never follows
// redirects. t.Cleanup shuts it down and checks that Serve returned nil.
func testServer(t *testing.T, cfg Config, h http.Handler) (string, *http.Client) {
	t.Helper()
	ca := mailtest.NewCA(t)
	scheme := "http"
	if cfg.TLS != nil {
		cert := ca.Issue(t, "127.0.0.1", "localhost")
		cfg.TLS = cfg.TLS.Clone()
		cfg.TLS.Certificates = []tls.Certificate{cert}
		scheme = "https"
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := New(cfg, h, slog.New(slog.DiscardHandler))
	done := make(chan error, 1)
	go func() { done <- s.Serve(l) }()
	t.Cleanup(func() {
		if err := s.Shutdown(context.Background()); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		if err := <-done; err != nil {
			t.Errorf("Serve after Shutdown: %v", err)
		}
	})
	client := &http.Client{
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool}},
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
	t.Cleanup(client.CloseIdleConnections)
	return scheme + "://" + l.Addr().String(), client
}

func hello() http.Handler {
	mux := NewRoutes()
	mux.HandleFunc("GET /hello", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("hello")) })
	mux.HandleFunc("GET /mail/config-v1.1.xml", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("config")) })
	return mux
}

func get(t *testing.T, c *http.Client, url string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	return fetch(t, c, req)
}

// fetch sends req and returns the response with its whole body.
func fetch(t *testing.T, c *http.Client, req *http.Request) (*http.Response, string) {
	t.Helper()
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(b)
}

// TestSecurityHeaders: every answer, 404s included, carries the strict defaults; HSTS only
// over TLS.
func TestSecurityHeaders(t *testing.T) {
	for _, tlsOn := range []bool{false, true} {
		cfg := Config{HSTSMaxAge: 31536000}
		if tlsOn {
			cfg.TLS = &tls.Config{MinVersion: tls.VersionTLS12}
		}
		base, c := testServer(t, cfg, hello())
		for _, path := range []string{"/hello", "/nothing-here"} {
			resp, _ := get(t, c, base+path)
			h := resp.Header
			if h.Get("X-Content-Type-Options") != "nosniff" || h.Get("X-Frame-Options") != "DENY" ||
				h.Get("Referrer-Policy") != "no-referrer" {
				t.Errorf("%s%s: headers %v", base, path, h)
			}
			csp := h.Get("Content-Security-Policy")
			for _, want := range []string{"default-src 'none'", "frame-ancestors 'none'"} {
				if !strings.Contains(csp, want) {
					t.Errorf("%s%s: CSP %q lacks %q", base, path, csp, want)
				}
			}
			if got, want := h.Get("Strict-Transport-Security"), map[bool]string{true: "max-age=31536000"}[tlsOn]; got != want {
				t.Errorf("%s%s: HSTS %q, want %q", base, path, got, want)
			}
		}
	}
}

// TestTLSPolicy: TLS 1.1 is refused, 1.2 and 1.3 are served, and HTTP/2 is offered.
func TestTLSPolicy(t *testing.T) {
	base, c := testServer(t, Config{TLS: &tls.Config{MinVersion: tls.VersionTLS12}}, hello())
	addr := strings.TrimPrefix(base, "https://")
	roots := c.Transport.(*http.Transport).TLSClientConfig.RootCAs
	for _, v := range []uint16{tls.VersionTLS11, tls.VersionTLS12, tls.VersionTLS13} {
		conn, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: roots, MinVersion: v, MaxVersion: v, NextProtos: []string{"h2", "http/1.1"}})
		if v < tls.VersionTLS12 {
			if err == nil {
				conn.Close()
				t.Errorf("TLS version %x accepted", v)
			}
			continue
		}
		if err != nil {
			t.Errorf("TLS version %x: %v", v, err)
			continue
		}
		if p := conn.ConnectionState().NegotiatedProtocol; p != "h2" {
			t.Errorf("TLS version %x: ALPN %q, want h2", v, p)
		}
		conn.Close()
	}
}

// TestRedirectHTTPS: plain HTTP redirects to the same URL over HTTPS (port kept when it is
// not 443), except the client set-up and ACME paths.
func TestRedirectHTTPS(t *testing.T) {
	base, c := testServer(t, Config{RedirectHTTPS: true, HTTPSPort: 8443}, hello())
	resp, _ := get(t, c, base+"/hello?a=1&b=%3C")
	if resp.StatusCode != http.StatusMovedPermanently || resp.Header.Get("Location") != "https://127.0.0.1:8443/hello?a=1&b=%3C" {
		t.Errorf("GET /hello: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	resp, err := c.Post(base+"/form", "text/plain", strings.NewReader("x"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusPermanentRedirect {
		t.Errorf("POST: %d, want 308 (keeps the method)", resp.StatusCode)
	}
	resp, body := get(t, c, base+"/mail/config-v1.1.xml?emailaddress=a@example.org")
	if resp.StatusCode != 200 || body != "config" {
		t.Errorf("autoconfig over plain HTTP: %d %q", resp.StatusCode, body)
	}
	// A Host header that could smuggle something into the Location is refused.
	req, _ := http.NewRequest("GET", base+"/hello", nil)
	req.Host = "evil.example/x?"
	resp, err = c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("bad Host: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}

	base, c = testServer(t, Config{RedirectHTTPS: true, HTTPSPort: 443}, hello())
	resp, _ = get(t, c, base+"/hello")
	if loc := resp.Header.Get("Location"); loc != "https://127.0.0.1/hello" {
		t.Errorf("to 443: Location %q", loc)
	}
}

// TestLimits: a header over MaxHeaderBytes gets 431; a client that never finishes its header
// is disconnected after ReadHeaderTimeout.
func TestLimits(t *testing.T) {
	base, c := testServer(t, Config{MaxHeaderBytes: 4096, ReadHeaderTimeout: 200 * time.Millisecond}, hello())
	req, _ := http.NewRequest("GET", base+"/hello", nil)
	req.Header.Set("X-Big", strings.Repeat("a", 10000))
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("big header: %d", resp.StatusCode)
	}

	conn, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	io.WriteString(conn, "GET /hello HTTP/1.1\r\nHost: x\r\n") // and never the blank line
	// Generous: the server's 200ms decides, this only bounds a broken test.
	conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	if _, err := bufio.NewReader(conn).ReadString('\n'); err != io.EOF {
		t.Errorf("slow header: read %v, want EOF (closed by the server)", err)
	}
}

// TestShutdownFinishesRequests: a request in flight at Shutdown gets its answer; Serve then
// returns nil (checked by testServer's cleanup).
func TestShutdownFinishesRequests(t *testing.T) {
	started, release := make(chan struct{}), make(chan struct{})
	mux := NewRoutes()
	mux.HandleFunc("GET /slow", func(w http.ResponseWriter, r *http.Request) {
		close(started)
		<-release
		w.Write([]byte("done"))
	})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := New(Config{}, mux, slog.New(slog.DiscardHandler))
	served := make(chan error, 1)
	go func() { served <- s.Serve(l) }()
	got := make(chan string, 1)
	go func() {
		resp, err := http.Get("http://" + l.Addr().String() + "/slow")
		if err != nil {
			got <- err.Error()
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		got <- string(b)
	}()
	<-started
	shut := make(chan error, 1)
	go func() { shut <- s.Shutdown(context.Background()) }()
	// Serve returns once the listener is closed; the request is still running.
	if err := <-served; err != nil {
		t.Fatalf("Serve: %v", err)
	}
	close(release)
	if b := <-got; b != "done" {
		t.Errorf("request in flight got %q", b)
	}
	if err := <-shut; err != nil {
		t.Errorf("Shutdown: %v", err)
	}
}

func TestHealth(t *testing.T) {
	var failing atomic.Bool
	mux := NewRoutes()
	mux.Handle("GET /healthz", Healthz())
	mux.Handle("GET /readyz", Readyz(slog.New(slog.DiscardHandler),
		Check{"store", func(context.Context) error { return nil }},
		Check{"listeners", func(context.Context) error {
			if failing.Load() {
				return io.ErrClosedPipe
			}
			return nil
		}}))
	base, c := testServer(t, Config{}, mux)
	if resp, body := get(t, c, base+"/healthz"); resp.StatusCode != 200 || body != "ok\n" {
		t.Errorf("healthz: %d %q", resp.StatusCode, body)
	}
	if resp, body := get(t, c, base+"/readyz"); resp.StatusCode != 200 || body != "ok\n" {
		t.Errorf("readyz: %d %q", resp.StatusCode, body)
	}
	failing.Store(true)
	if resp, body := get(t, c, base+"/readyz"); resp.StatusCode != 503 || body != "not ready: listeners\n" {
		t.Errorf("readyz failing: %d %q", resp.StatusCode, body)
	}
}

func TestRequestHost(t *testing.T) {
	for host, want := range map[string]string{
		"Mail.Example.ORG.":     "mail.example.org",
		"mail.example.org:8443": "mail.example.org",
		"[::1]:8080":            "::1",
		"[::1]":                 "::1",
		"127.0.0.1":             "127.0.0.1",
		"":                      "",
		"evil.example/x?":       "",
		"a b":                   "",
		"b\u00fccher.example":   "",
		"[::1":                  "",
	} {
		r, _ := http.NewRequest("GET", "http://x/", nil)
		r.Host = host
		if got := RequestHost(r); got != want {
			t.Errorf("RequestHost(%q) = %q, want %q", host, got, want)
		}
	}
}
