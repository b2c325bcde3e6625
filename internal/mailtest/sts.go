package mailtest

import (
	"context"
	"crypto/tls"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

// STSServer serves MTA-STS policy files (RFC 8461 §3.3) for mta-sts.DOMAIN on one loopback
// port, over HTTPS with a certificate of a test CA for those names. Client reaches it for
// every host name (as DNS would) and trusts the CA, so the certificate decides what is
// valid, as on the Internet.
type STSServer struct {
	Client *http.Client // for mx.STS.HTTP

	mu          sync.Mutex
	policies    map[string]string // domain -> body; "" is 404, "redirect:URL" redirects
	contentType string
	fetches     int
}

// StartSTS starts a policy server for domains; t.Cleanup stops it.
func StartSTS(t testing.TB, domains ...string) *STSServer {
	t.Helper()
	ca := NewCA(t)
	s := &STSServer{policies: map[string]string{}, contentType: "text/plain; charset=utf-8"}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(s.serve))
	var names []string
	for _, d := range domains {
		names = append(names, "mta-sts."+d)
	}
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // tests make handshakes fail on purpose
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{ca.Issue(t, names...)}}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	addr := srv.Listener.Addr().String()
	s.Client = &http.Client{Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: ca.Pool},
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, addr)
		},
	}}
	return s
}

func (s *STSServer) serve(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fetches++
	domain := strings.TrimPrefix(strings.Split(r.Host, ":")[0], "mta-sts.")
	body := s.policies[domain]
	switch {
	case r.URL.Path != "/.well-known/mta-sts.txt" || body == "":
		http.NotFound(w, r)
	case strings.HasPrefix(body, "redirect:"):
		http.Redirect(w, r, strings.TrimPrefix(body, "redirect:"), http.StatusFound)
	default:
		w.Header().Set("Content-Type", s.contentType)
		w.Write([]byte(body))
	}
}

// Set serves body as the policy of domain ("" for 404, "redirect:URL" for a redirect).
func (s *STSServer) Set(domain, body string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.policies[domain] = body
}

// SetContentType changes the Content-Type of every policy (default text/plain).
func (s *STSServer) SetContentType(ct string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.contentType = ct
}

// Fetches counts the requests so far.
func (s *STSServer) Fetches() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.fetches
}
