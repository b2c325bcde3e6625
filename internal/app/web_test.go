package app

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// runApp starts a development instance on free ports and serves it until the test ends
// (then checks that Run returned nil). It returns the app and a client that trusts the
// instance's certificate.
func runApp(t *testing.T) (*App, *http.Client) {
	t.Helper()
	cfg := devConfig(t.TempDir())
	a, err := New(context.Background(), cfg, slog.New(slog.DiscardHandler), &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx, nil) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	pem, err := os.ReadFile(filepath.Join(cfg.Data, "tls", "cert.pem"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	t.Cleanup(c.CloseIdleConnections)
	return a, c
}

// addr is the address the listener called name is bound to.
func (a *App) addr(t *testing.T, name string) string {
	for _, b := range a.bound {
		if b.name == name {
			return b.l.Addr().String()
		}
	}
	t.Fatalf("no %s listener", name)
	return ""
}

// waitReady polls url until it answers 200, with a generous deadline.
func waitReady(t *testing.T, c *http.Client, url string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := c.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not ready: %v", url, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestWebListeners: the development instance serves /healthz and /readyz over plain HTTP
// and over TLS with its own certificate, without HSTS (a browser would pin localhost).
func TestWebListeners(t *testing.T) {
	a, c := runApp(t)
	waitReady(t, c, "http://"+a.addr(t, "http")+"/readyz")
	for _, u := range []string{"http://" + a.addr(t, "http") + "/healthz", "https://" + a.addr(t, "https") + "/healthz", "https://" + a.addr(t, "https") + "/readyz"} {
		resp, err := c.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || string(b) != "ok\n" {
			t.Errorf("%s: %d %q", u, resp.StatusCode, b)
		}
		if resp.Header.Get("Strict-Transport-Security") != "" || resp.Header.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("%s: headers %v", u, resp.Header)
		}
	}
	// Not ready once the store stops answering.
	a.store.Close()
	resp, err := c.Get("http://" + a.addr(t, "http") + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 503 || string(b) != "not ready: store\n" {
		t.Errorf("readyz with a closed store: %d %q", resp.StatusCode, b)
	}
}
