package acme

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"petrel/internal/mailtest"
)

// listeners are a plain HTTP and an HTTPS listener as the app runs them: the HTTPS one with
// a GetCertificate from one holder, wrapped by Manager.TLSConfig.
type listeners struct {
	holder        atomic.Pointer[tls.Certificate]
	http, https   net.Listener
	httpPort, tls int
	mgr           atomic.Pointer[Manager]
}

func startListeners(t *testing.T) *listeners {
	t.Helper()
	ls := &listeners{}
	var err error
	if ls.http, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	if ls.https, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	ls.httpPort, ls.tls = ls.http.Addr().(*net.TCPAddr).Port, ls.https.Addr().(*net.TCPAddr).Port
	mux := http.NewServeMux()
	mux.Handle(HTTPPath, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ls.mgr.Load().HTTP01Handler().ServeHTTP(w, r)
	}))
	plain := &http.Server{Handler: mux}
	go plain.Serve(ls.http)
	base := &tls.Config{GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
		if c := ls.holder.Load(); c != nil {
			return c, nil
		}
		return nil, errors.New("no certificate yet")
	}}
	secure := &http.Server{Handler: mux, TLSConfig: &tls.Config{
		GetConfigForClient: func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
			// The manager of the current subtest answers the challenge.
			return ls.mgr.Load().TLSConfig(base).GetConfigForClient(hello)
		},
		GetCertificate: base.GetCertificate,
	}}
	go secure.ServeTLS(ls.https, "", "")
	t.Cleanup(func() { plain.Close(); secure.Close() })
	return ls
}

func (ls *listeners) newManager(t *testing.T, p *mailtest.Pebble, dir, challenge string) *Manager {
	m := New(Config{
		DirectoryURL: p.Directory,
		Contact:      "postmaster@example.test",
		Dir:          dir,
		HTTPClient:   p.Client,
		Challenge:    challenge,
		Names: func(context.Context) ([]string, error) {
			// mta-sts has no DNS record: its challenge fails and it must be left out.
			return []string{"Mail.Example.Test.", "autoconfig.example.test", "mta-sts.example.test"}, nil
		},
		Install:  func(c *tls.Certificate) { ls.holder.Store(c) },
		RetryMin: 20 * time.Millisecond,
		RetryMax: 200 * time.Millisecond,
	})
	ls.mgr.Store(m)
	return m
}

// handshake connects to the HTTPS listener as a client that trusts only Pebble's root and
// returns the leaf it got.
func (ls *listeners) handshake(roots *x509.CertPool, name string) (*x509.Certificate, error) {
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", "127.0.0.1:"+strconv.Itoa(ls.tls),
		&tls.Config{RootCAs: roots, ServerName: name})
	if err != nil {
		return nil, err
	}
	defer c.Close()
	return c.ConnectionState().PeerCertificates[0], nil
}

func startCA(t *testing.T, ls *listeners) *mailtest.Pebble {
	dns := mailtest.StartDNS(t, mailtest.Zone{A: map[string][]string{
		"mail.example.test":       {"127.0.0.1"},
		"autoconfig.example.test": {"127.0.0.1"},
	}})
	return mailtest.StartPebble(t, dns.Addr, ls.httpPort, ls.tls)
}

func TestObtain(t *testing.T) {
	ls := startListeners(t)
	p := startCA(t, ls)
	for _, challenge := range []string{TLSALPN01, HTTP01} {
		t.Run(challenge, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "acme")
			m := ls.newManager(t, p, dir, challenge)
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			if err := m.Obtain(ctx); err != nil {
				t.Fatal(err)
			}
			for _, name := range []string{"mail.example.test", "autoconfig.example.test"} {
				if _, err := ls.handshake(p.Roots(t), name); err != nil {
					t.Errorf("%s: %v", name, err)
				}
			}
			leaf := ls.holder.Load().Leaf
			if err := leaf.VerifyHostname("mta-sts.example.test"); err == nil {
				t.Error("the name whose challenge failed is in the certificate")
			}
			for file, mode := range map[string]os.FileMode{dir: 0o700, m.certFile(): 0o600, filepath.Join(dir, "account.key"): 0o600} {
				if fi, err := os.Stat(file); err != nil || fi.Mode().Perm() != mode {
					t.Errorf("%s: %v, mode %v, want %v", file, err, fi.Mode().Perm(), mode)
				}
			}
			// A restart finds the certificate without asking the CA.
			again := ls.newManager(t, p, dir, challenge)
			ls.holder.Store(nil)
			if ok, err := again.Load(); !ok || err != nil {
				t.Fatalf("load: %v %v", ok, err)
			}
			if got := ls.holder.Load().Leaf; !got.Equal(leaf) {
				t.Errorf("loaded serial %x, saved %x", got.SerialNumber, leaf.SerialNumber)
			}
			if again.missing([]string{"mail.example.test", "mta-sts.example.test"}) {
				t.Error("a loaded certificate without a dropped name is ordered again at once")
			}
		})
	}
}

// TestRenewWhileHandshaking renews while clients handshake in a loop: none may fail, and they
// must see the new certificate. Then the CA goes down: renewal fails, the old certificate
// stays served.
func TestRenewWhileHandshaking(t *testing.T) {
	ls := startListeners(t)
	p := startCA(t, ls)
	m := ls.newManager(t, p, t.TempDir(), TLSALPN01)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan struct{})
	go func() { m.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	roots := p.Roots(t)

	first := waitLeaf(t, ls, nil)
	var (
		stop     atomic.Bool
		wg       sync.WaitGroup
		mu       sync.Mutex
		failures []error
		serials  = map[string]int{}
	)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				leaf, err := ls.handshake(roots, "mail.example.test")
				mu.Lock()
				if err != nil {
					failures = append(failures, err)
				} else {
					serials[leaf.SerialNumber.String()]++
				}
				mu.Unlock()
			}
		}()
	}
	m.RenewNow()
	second := waitLeaf(t, ls, first)
	// Keep handshaking until the clients have seen the new certificate.
	deadline := time.Now().Add(time.Minute)
	for {
		mu.Lock()
		n := serials[second.SerialNumber.String()]
		mu.Unlock()
		if n > 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	stop.Store(true)
	wg.Wait()
	if len(failures) > 0 {
		t.Errorf("%d handshakes failed during the renewal, first: %v", len(failures), failures[0])
	}
	if serials[first.SerialNumber.String()] == 0 || serials[second.SerialNumber.String()] == 0 {
		t.Errorf("handshakes by serial %v: want both %x and %x", serials, first.SerialNumber, second.SerialNumber)
	}

	// The CA goes away: the renewal fails, the current certificate stays.
	p.Stop()
	m.RenewNow()
	for deadline := time.Now().Add(time.Minute); m.Failures() < 2; {
		if time.Now().After(deadline) {
			t.Fatal("no failed renewal with the CA down")
		}
		time.Sleep(10 * time.Millisecond)
	}
	leaf, err := ls.handshake(roots, "mail.example.test")
	if err != nil || !leaf.Equal(second) {
		t.Errorf("with the CA down: %v, serial %v, want %x", err, leaf, second.SerialNumber)
	}
	if m.NotAfter() != second.NotAfter {
		t.Errorf("NotAfter %v, want %v", m.NotAfter(), second.NotAfter)
	}
}

// waitLeaf waits until the holder has a certificate other than old.
func waitLeaf(t *testing.T, ls *listeners, old *x509.Certificate) *x509.Certificate {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		if c := ls.holder.Load(); c != nil && (old == nil || !c.Leaf.Equal(old)) {
			return c.Leaf
		}
		if time.Now().After(deadline) {
			t.Fatal("no new certificate")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestDue: renewal is due when a third of the lifetime is left, at once without a certificate
// or when it misses the host name; names are compared as Run orders them (lower case, no
// trailing dot).
func TestDue(t *testing.T) {
	m := New(Config{})
	now := time.Now()
	names := normalize([]string{"Mail.Example.Test.", "autoconfig.example.test"})
	if d := m.due(names, now); d != 0 {
		t.Errorf("without a certificate: due in %v", d)
	}
	cert := mailtest.NewCA(t).Issue(t, "mail.example.test") // valid from an hour ago for a day
	leaf, err := x509.ParseCertificate(cert.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	cert.Leaf = leaf
	m.install(&cert)
	want := leaf.NotAfter.Add(-leaf.NotAfter.Sub(leaf.NotBefore) / 3).Sub(now)
	if d := m.due(names, now); d != want || d <= 0 {
		t.Errorf("due in %v, want %v", d, want)
	}
	if d := m.due([]string{"other.example.test"}, now); d != 0 {
		t.Errorf("a certificate without the host name: due in %v", d)
	}
}
