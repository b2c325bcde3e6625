package app

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/xml"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"petrel/internal/outbound/mx"
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

// curl runs curl with args and returns the body and what -w printed after it (the status
// code and content type); it skips without curl, but fails in CI, which installs it.
func curl(t *testing.T, args ...string) (body, code, ctype string) {
	t.Helper()
	bin, err := exec.LookPath("curl")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("curl is missing (.ci/run installs it)")
		}
		t.Skip("curl not installed")
	}
	out, err := exec.Command(bin, append([]string{"-sS", "-w", "\n%{http_code} %{content_type}"}, args...)...).Output()
	if err != nil {
		t.Fatalf("curl %v: %v", args, err)
	}
	s := string(out)
	i := strings.LastIndex(s, "\n")
	code, ctype, _ = strings.Cut(s[i+1:], " ")
	return s[:i], code, ctype
}

// TestClientSetupWithCurl fetches every client set-up document from the development
// instance with curl, as a client would, and checks them against its listeners.
func TestClientSetupWithCurl(t *testing.T) {
	a, c := runApp(t)
	plain, secure := "http://"+a.addr(t, "http"), "https://"+a.addr(t, "https")
	waitReady(t, c, plain+"/readyz")
	cacert := filepath.Join(a.cfg.Data, "tls", "cert.pem")
	port := func(name string) string {
		_, p, _ := strings.Cut(a.addr(t, name), ":")
		return p
	}

	for _, args := range [][]string{
		{plain + "/.well-known/autoconfig/mail/config-v1.1.xml?emailaddress=dev@example.test"},
		{"-H", "Host: autoconfig.example.test", plain + "/mail/config-v1.1.xml"},
		{"--cacert", cacert, secure + "/mail/config-v1.1.xml?emailaddress=dev%40example.test"},
	} {
		body, code, ctype := curl(t, args...)
		if code != "200" || ctype != "application/xml; charset=utf-8" {
			t.Fatalf("%v: %s %s\n%s", args, code, ctype, body)
		}
		var cc struct {
			Incoming []struct {
				Type   string `xml:"type,attr"`
				Host   string `xml:"hostname"`
				Port   string `xml:"port"`
				Socket string `xml:"socketType"`
			} `xml:"emailProvider>incomingServer"`
			Outgoing []struct {
				Port   string `xml:"port"`
				Socket string `xml:"socketType"`
			} `xml:"emailProvider>outgoingServer"`
		}
		if err := xml.Unmarshal([]byte(body), &cc); err != nil {
			t.Fatal(err)
		}
		got := fmt.Sprint(cc.Incoming, cc.Outgoing)
		want := fmt.Sprintf("[{imap localhost %s SSL} {imap localhost %s STARTTLS} {pop3 localhost %s SSL} {pop3 localhost %s STARTTLS}] [{%s SSL} {%s STARTTLS}]",
			port("imaps"), port("imap"), port("pop3s"), port("pop3"), port("submissions"), port("submission"))
		if got != want {
			t.Errorf("%v: servers\n%s\nwant\n%s", args, got, want)
		}
	}

	body, code, ctype := curl(t, "--cacert", cacert, secure+"/apple.mobileconfig?email=dev@example.test")
	if code != "200" || ctype != "application/x-apple-aspen-config" ||
		!regexp.MustCompile(`<key>IncomingMailServerPortNumber</key>\s*<integer>`+port("imaps")+`</integer>`).MatchString(body) {
		t.Errorf("mobileconfig: %s %s\n%s", code, ctype, body)
	}

	body, code, _ = curl(t, "--cacert", cacert, "-H", "Content-Type: text/xml", "--data-binary",
		`<Autodiscover xmlns="http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006"><Request><EMailAddress>dev@example.test</EMailAddress><AcceptableResponseSchema>http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a</AcceptableResponseSchema></Request></Autodiscover>`,
		secure+"/autodiscover/autodiscover.xml")
	if code != "200" || !strings.Contains(body, "<Type>IMAP</Type>") || !strings.Contains(body, "<Port>"+port("imaps")+"</Port>") {
		t.Errorf("autodiscover: %s\n%s", code, body)
	}

	// The MTA-STS policy parses as the outbound side parses policies, and names our host.
	body, code, _ = curl(t, "--cacert", cacert, "-H", "Host: mta-sts.example.test", secure+"/.well-known/mta-sts.txt")
	p, err := mx.ParsePolicy([]byte(body))
	if code != "200" || err != nil || p.Mode != mx.ModeTesting || len(p.MX) != 1 || p.MX[0] != "localhost" || p.MaxAge != 7*24*time.Hour {
		t.Errorf("mta-sts: %s %v %+v\n%q", code, err, p, body)
	}
	if want, _, _ := MTASTSPolicy(a.cfg); body != want {
		t.Errorf("served policy %q, want %q", body, want)
	}

	// Someone else's domain gets nothing.
	for _, args := range [][]string{
		{plain + "/mail/config-v1.1.xml?emailaddress=dev@example.com"},
		{"-H", "Host: autoconfig.example.com", plain + "/mail/config-v1.1.xml"},
		{"--cacert", cacert, secure + "/apple.mobileconfig?email=dev@example.com"},
		{"--cacert", cacert, "-H", "Host: mta-sts.example.com", secure + "/.well-known/mta-sts.txt"},
	} {
		if body, code, _ := curl(t, args...); code != "404" {
			t.Errorf("%v: %s\n%s", args, code, body)
		}
	}
}
