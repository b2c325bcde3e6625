package discover

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"petrel/internal/client/clientconf"
	"petrel/internal/mailtest"
)

// finder resolves through the test DNS server and fetches autoconfig files from web (served
// for every host name: the test DNS points them at loopback).
func finder(t *testing.T, zone mailtest.Zone, web *httptest.Server) *Finder {
	d := mailtest.StartDNS(t, zone)
	res := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, network, d.Addr)
	}}
	_, port, _ := net.SplitHostPort(web.Listener.Addr().String())
	return &Finder{
		Resolver: res,
		AutoconfigURLs: func(domain, address string) []string {
			return []string{
				"http://autoconfig." + domain + ":" + port + "/mail/config-v1.1.xml?emailaddress=" + address,
				"http://" + domain + ":" + port + "/.well-known/autoconfig/mail/config-v1.1.xml",
				"http://ispdb.test:" + port + "/v1.1/" + domain,
			}
		},
	}
}

const config = `<?xml version="1.0"?>
<clientConfig version="1.1">
  <emailProvider id="example.test">
    <domain>example.test</domain>
    <incomingServer type="pop3">
      <hostname>pop.example.test</hostname><port>995</port><socketType>SSL</socketType>
      <username>%EMAILLOCALPART%</username><authentication>password-cleartext</authentication>
    </incomingServer>
    <incomingServer type="imap">
      <hostname>imap.example.test</hostname><port>143</port><socketType>STARTTLS</socketType>
      <username>%EMAILLOCALPART%</username><authentication>password-cleartext</authentication>
    </incomingServer>
    <incomingServer type="imap">
      <hostname>imap.example.test</hostname><port>993</port><socketType>SSL</socketType>
      <username>%EMAILLOCALPART%</username><authentication>password-cleartext</authentication>
    </incomingServer>
    <outgoingServer type="smtp">
      <hostname>smtp.example.test</hostname><port>587</port><socketType>STARTTLS</socketType>
      <username>%EMAILADDRESS%</username><authentication>OAuth2</authentication>
    </outgoingServer>
  </emailProvider>
</clientConfig>`

// checkBlock: the block written for r is a valid client config.
func checkBlock(t *testing.T, r *Result, name string) *clientconf.Account {
	t.Helper()
	block := r.Block(name, true, true)
	c, err := clientconf.Parse(filepath.Join(t.TempDir(), "client.toml"), []byte(block))
	if err != nil {
		t.Fatalf("block does not parse: %v\n%s", err, block)
	}
	return c.Accounts[name]
}

// TestAutoconfig: the domain's autoconfig host is absent; the well-known URL answers. IMAP
// with implicit TLS is preferred; the SMTP server's OAuth2 makes an [oauth] table.
func TestAutoconfig(t *testing.T) {
	var asked []string
	web := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		asked = append(asked, r.Host+r.URL.Path)
		if strings.HasPrefix(r.Host, "example.test:") && r.URL.Path == "/.well-known/autoconfig/mail/config-v1.1.xml" {
			io.WriteString(w, config)
			return
		}
		http.NotFound(w, r)
	}))
	defer web.Close()
	f := finder(t, mailtest.Zone{A: map[string][]string{"example.test": {"127.0.0.1"}, "autoconfig.example.test": {"127.0.0.1"}}}, web)
	r, err := f.Find(context.Background(), "alice@example.test")
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Incoming) != 3 || r.Incoming[0].Addr() != "imap.example.test:993" || r.Incoming[0].TLS != "tls" || r.Incoming[0].User != "alice" {
		t.Fatalf("incoming %+v", r.Incoming)
	}
	if r.Incoming[2].Proto != "pop3" || len(r.Outgoing) != 1 || r.Outgoing[0].TLS != "starttls" || !r.Outgoing[0].OAuth {
		t.Fatalf("servers %+v %+v", r.Incoming, r.Outgoing)
	}
	if len(asked) != 2 || !strings.HasPrefix(asked[0], "autoconfig.example.test") {
		t.Fatalf("asked %v, want the autoconfig host first", asked)
	}
	a := checkBlock(t, r, "work")
	if a.IMAP == nil || a.IMAP.Host != "imap.example.test" || a.SMTP == nil || a.SMTP.Port != 587 || a.OAuth == nil || a.OAuth.Provider != "generic" {
		t.Fatalf("account %+v", a)
	}
}

// TestSRV: no autoconfig anywhere; the SRV records name the servers, "." says IMAP over
// implicit TLS is not offered, and Check verifies each server's certificate after STARTTLS.
func TestSRV(t *testing.T) {
	web := httptest.NewServer(http.NotFoundHandler())
	defer web.Close()
	s := mailtest.Start(t)
	sub := s.StartSubmission(t, mailtest.SubmissionOptions{})
	port := func(addr string) uint16 {
		_, p, _ := net.SplitHostPort(addr)
		n, _ := strconv.Atoi(p)
		return uint16(n)
	}
	f := finder(t, mailtest.Zone{
		A: map[string][]string{"autoconfig.example.test": {"127.0.0.1"}, "example.test": {"127.0.0.1"}, "ispdb.test": {"127.0.0.1"}},
		SRV: map[string][]mailtest.SRV{
			"_imaps._tcp.example.test":      {{Target: "."}},
			"_pop3._tcp.example.test":       {{Priority: 10, Port: port(s.Addr), Target: "localhost"}},
			"_submission._tcp.example.test": {{Priority: 10, Port: port(sub.Addr), Target: "localhost"}},
		},
	}, web)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(s.CertPEM)
	f.TLS = &tls.Config{RootCAs: pool}
	r, err := f.Find(context.Background(), "bob@example.test")
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Incoming) != 1 || r.Incoming[0].Proto != "pop3" || r.Incoming[0].TLS != "starttls" || len(r.Outgoing) != 1 {
		t.Fatalf("found %+v %+v", r.Incoming, r.Outgoing)
	}
	for _, srv := range []Server{r.Incoming[0], r.Outgoing[0]} {
		if err := f.Check(context.Background(), srv); err != nil {
			t.Fatalf("check %s: %v", srv.Addr(), err)
		}
	}
	// A certificate for another name fails the check.
	other := r.Incoming[0]
	other.Host = "127.0.0.2"
	if err := f.Check(context.Background(), other); err == nil {
		t.Fatal("a certificate for another host passed the check")
	}
	if a := checkBlock(t, r, "bob"); a.POP3 == nil || a.SMTP == nil || a.PasswordCommand == "" {
		t.Fatalf("account %+v", a)
	}
}

// TestMXGuess: nothing published; the MX host's provider has no ISPDB entry either, and of
// the guessed names only the MX host answers TLS with a valid certificate.
func TestMXGuess(t *testing.T) {
	web := httptest.NewServer(http.NotFoundHandler())
	defer web.Close()
	cert, pemBytes := mailtest.SelfSigned(t, "mx.provider.test")
	l, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.(*tls.Conn).Handshake()
			c.Close()
		}
	}()
	closed, _ := net.Listen("tcp", "127.0.0.1:0")
	closedPort := closed.Addr().(*net.TCPAddr).Port
	closed.Close() // connections to it are refused at once
	f := finder(t, mailtest.Zone{
		MX: map[string][]mailtest.MX{"example.test": {{Pref: 10, Host: "mx.provider.test"}}},
		A:  map[string][]string{"mx.provider.test": {"127.0.0.1"}, "ispdb.test": {"127.0.0.1"}, "mail.example.test": {"127.0.0.1"}},
	}, web)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pemBytes)
	f.TLS = &tls.Config{RootCAs: pool}
	f.GuessPorts = map[int]int{993: l.Addr().(*net.TCPAddr).Port, 995: closedPort, 465: closedPort, 587: closedPort}
	r, err := f.Find(context.Background(), "carol@example.test")
	if err != nil {
		t.Fatal(err)
	}
	// mail.example.test answers on the port too, but with a certificate for another name.
	if len(r.Incoming) != 1 || r.Incoming[0].Host != "mx.provider.test" || r.Incoming[0].Proto != "imap" || len(r.Outgoing) != 0 {
		t.Fatalf("found %+v %+v (tried %v)", r.Incoming, r.Outgoing, r.Tried)
	}
	if !strings.Contains(strings.Join(r.Tried, " "), "/v1.1/provider.test") {
		t.Fatalf("the MX provider's ISPDB entry was not tried: %v", r.Tried)
	}
}

// TestNotAnAddress and nothing found.
func TestNothing(t *testing.T) {
	web := httptest.NewServer(http.NotFoundHandler())
	defer web.Close()
	f := finder(t, mailtest.Zone{}, web)
	if _, err := f.Find(context.Background(), "no-at-sign"); err == nil {
		t.Fatal("accepted an address without @")
	}
	f.GuessPorts = map[int]int{993: 1, 995: 1, 465: 1, 587: 1}
	if _, err := f.Find(context.Background(), "x@nothing.test"); err == nil || !strings.Contains(err.Error(), "no mail servers") {
		t.Fatalf("err = %v", err)
	}
}
