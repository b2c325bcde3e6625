package app

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/xml"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/smtp"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"petrel/internal/config"
	"petrel/internal/mailtest"
	"petrel/internal/outbound/mx"
)

// runApp starts a development instance on free ports and serves it until the test ends
// (then checks that Run returned nil). It returns the app and a client that trusts the
// instance's certificate.
func runApp(t *testing.T) (*App, *http.Client) {
	a, c, _ := runAppOut(t)
	return a, c
}

// runAppOut is runApp that also returns what the start printed (the dev password).
func runAppOut(t *testing.T) (*App, *http.Client, string) {
	t.Helper()
	cfg := devConfig(t.TempDir())
	a, printed := runConfig(t, cfg)
	pem, err := os.ReadFile(filepath.Join(cfg.Data, "tls", "cert.pem"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	t.Cleanup(c.CloseIdleConnections)
	return a, c, printed
}

// runConfig starts an instance of cfg, serving until the test ends (then checks that Run
// returned nil), and returns it with what its start printed.
func runConfig(t *testing.T, cfg *config.Config) (*App, string) {
	t.Helper()
	return runConfigLog(t, cfg, slog.New(slog.DiscardHandler))
}

// runConfigLog is runConfig with the instance logging to log.
func runConfigLog(t *testing.T, cfg *config.Config, log *slog.Logger) (*App, string) {
	t.Helper()
	var out bytes.Buffer
	a, err := New(context.Background(), cfg, log, &out)
	if err != nil {
		t.Fatal(err)
	}
	a.out = io.Discard // Run prints the listeners while the test reads
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx, nil) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return a, out.String()
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

// TestMetricsAfterKnownTraffic: a known sequence of SMTP transactions and POP3 logins and
// commands against the running instance, then a scrape of /metrics that must count exactly
// them.
func TestMetricsAfterKnownTraffic(t *testing.T) {
	a, c, out := runAppOut(t)
	_, pw, ok := strings.Cut(out, "created account dev@example.test with password ")
	if !ok {
		t.Fatalf("no dev password in %q", out)
	}
	pw, _, _ = strings.Cut(pw, " ")
	waitReady(t, c, "http://"+a.addr(t, "http")+"/readyz")

	// Two SMTP connections: three messages accepted, one recipient refused as unknown.
	send := func(rcpts []string, msgs int) {
		sc, err := smtp.Dial(a.addr(t, "smtp"))
		if err != nil {
			t.Fatal(err)
		}
		defer sc.Close()
		for range msgs {
			if err := sc.Mail("someone@example.net"); err != nil {
				t.Fatal(err)
			}
			for _, r := range rcpts {
				err := sc.Rcpt(r)
				if strings.HasPrefix(r, "nobody") != (err != nil) {
					t.Fatalf("RCPT %s: %v", r, err)
				}
			}
			w, err := sc.Data()
			if err != nil {
				t.Fatal(err)
			}
			io.WriteString(w, "Subject: metrics\r\n\r\nhello\r\n")
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
		}
		if err := sc.Quit(); err != nil {
			t.Fatal(err)
		}
	}
	send([]string{"nobody@example.test", "dev@example.test"}, 1)
	send([]string{"dev@example.test"}, 2)

	// POP3 over TLS: one failed login, one good one, STAT, QUIT.
	pool := c.Transport.(*http.Transport).TLSClientConfig.RootCAs
	pc, err := tls.Dial("tcp", a.addr(t, "pop3s"), &tls.Config{RootCAs: pool, ServerName: "localhost"})
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	r := bufio.NewReader(pc)
	for _, step := range []struct{ send, want string }{
		{"", "+OK"},
		{"USER dev@example.test", "+OK"}, {"PASS wrong", "-ERR"},
		{"USER dev@example.test", "+OK"}, {"PASS " + pw, "+OK"},
		{"STAT", "+OK 3 "}, {"QUIT", "+OK"},
	} {
		if step.send != "" {
			io.WriteString(pc, step.send+"\r\n")
		}
		line, err := r.ReadString('\n')
		if err != nil || !strings.HasPrefix(line, step.want) {
			t.Fatalf("%q: %q %v, want %s", step.send, line, err, step.want)
		}
	}

	// IMAP over TLS: LOGIN, NOOP, LOGOUT.
	ic, err := tls.Dial("tcp", a.addr(t, "imaps"), &tls.Config{RootCAs: pool, ServerName: "localhost"})
	if err != nil {
		t.Fatal(err)
	}
	defer ic.Close()
	r = bufio.NewReader(ic)
	for _, step := range []struct{ send, want string }{
		{"", "* OK"},
		{"a LOGIN dev@example.test " + pw, "a OK"},
		{"b NOOP", "b OK"},
		{"c LOGOUT", "* BYE"},
	} {
		if step.send != "" {
			io.WriteString(ic, step.send+"\r\n")
		}
		line, err := r.ReadString('\n')
		for err == nil && strings.HasPrefix(line, "* ") && !strings.HasPrefix(step.want, "*") {
			line, err = r.ReadString('\n')
		}
		if err != nil || !strings.HasPrefix(line, step.want) {
			t.Fatalf("%q: %q %v, want %s", step.send, line, err, step.want)
		}
	}

	// Submission: STARTTLS, then a wrong password.
	sc, err := smtp.Dial(a.addr(t, "submission"))
	if err != nil {
		t.Fatal(err)
	}
	defer sc.Close()
	if err := sc.StartTLS(&tls.Config{RootCAs: pool, ServerName: "localhost"}); err != nil {
		t.Fatal(err)
	}
	if err := sc.Auth(smtp.PlainAuth("", "dev@example.test", "wrong", "127.0.0.1")); err == nil {
		t.Fatal("AUTH with a wrong password succeeded")
	} else if !strings.HasPrefix(err.Error(), "535 ") {
		t.Fatalf("AUTH with a wrong password: %v, want 535", err)
	}

	// Two handshakes the server refuses: a client that speaks only TLS 1.1 and one that
	// wants another protocol than IMAP (ALPN, the ALPACA defence).
	for _, bad := range []*tls.Config{
		{RootCAs: pool, ServerName: "localhost", MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS11},
		{RootCAs: pool, ServerName: "localhost", NextProtos: []string{"h2"}},
	} {
		if bc, err := tls.Dial("tcp", a.addr(t, "imaps"), bad); err == nil {
			bc.Close()
			t.Fatalf("a handshake the server should refuse succeeded: %+v", bad)
		}
	}

	scrape := func() map[string]float64 {
		resp, err := c.Get("http://" + a.addr(t, "http") + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("scrape: %d", resp.StatusCode)
		}
		return mailtest.Scrape(t, resp.Body)
	}
	// The server sees the failed handshake end after the client has given up: wait for it.
	got := scrape()
	for deadline := time.Now().Add(30 * time.Second); got[`petrel_tls_handshake_failures_total{listener="imaps"}`] < 2 && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
		got = scrape()
	}
	for series, want := range map[string]float64{
		`petrel_smtp_replies_total{code="2.0.0",listener="smtp",stage="data"}`: 3,
		`petrel_smtp_replies_total{code="5.1.1",listener="smtp",stage="rcpt"}`: 1,
		`petrel_deliveries_total{result="ok"}`:                                 3,
		`petrel_delivery_seconds_count`:                                        3,
		`petrel_connections_total{listener="smtp"}`:                            2,
		`petrel_connections_total{listener="pop3s"}`:                           1,
		`petrel_auth_total{listener="pop3s",result="failure"}`:                 1,
		`petrel_auth_total{listener="pop3s",result="success"}`:                 1,
		`petrel_commands_total{command="USER",listener="pop3s"}`:               2,
		`petrel_commands_total{command="PASS",listener="pop3s"}`:               2,
		`petrel_commands_total{command="STAT",listener="pop3s"}`:               1,
		`petrel_commands_total{command="QUIT",listener="pop3s"}`:               1,
		`petrel_auth_total{listener="imaps",result="success"}`:                 1,
		`petrel_commands_total{command="LOGIN",listener="imaps"}`:              1,
		`petrel_commands_total{command="NOOP",listener="imaps"}`:               1,
		`petrel_commands_total{command="LOGOUT",listener="imaps"}`:             1,
		`petrel_auth_total{listener="submission",result="failure"}`:            1,
		`petrel_connections_total{listener="submission"}`:                      1,
		`petrel_tls_handshakes_total{listener="pop3s",version="TLS1.3"}`:       1,
		`petrel_tls_handshakes_total{listener="imaps",version="TLS1.3"}`:       1,
		`petrel_tls_handshakes_total{listener="submission",version="TLS1.3"}`:  1,
		`petrel_tls_handshake_failures_total{listener="imaps"}`:                2,
		`petrel_tls_handshake_failures_total{listener="pop3s"}`:                0,
		`petrel_queue_messages`:                                                0,
		`petrel_queue_recipients`:                                              0,
	} {
		if got[series] != want {
			t.Errorf("%s = %v, want %v", series, got[series], want)
		}
	}
	// Every delivery is a store commit; the start wrote too (domain, account).
	if got["petrel_store_commit_requests_sum"] < 3 || got["petrel_store_commit_seconds_count"] < 1 {
		t.Errorf("store commits: %v requests in %v batches", got["petrel_store_commit_requests_sum"], got["petrel_store_commit_seconds_count"])
	}
	if got[`petrel_auth_total{listener="submission",result="success"}`] != 0 || got["go_goroutines"] < 1 {
		t.Errorf("unexpected series values: %v", got)
	}
}
