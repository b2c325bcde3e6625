package app

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// handshake runs a TLS handshake between the server policy and a client configuration.
func handshake(t *testing.T, srv *tls.Config, cli *tls.Config) (tls.ConnectionState, error) {
	t.Helper()
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	done := make(chan error, 1)
	go func() {
		s := tls.Server(a, srv)
		done <- s.Handshake()
		s.Close()
	}()
	c := tls.Client(b, cli)
	err := c.Handshake()
	st := c.ConnectionState()
	c.Close()
	<-done
	return st, err
}

// writeSelfSigned makes the development certificate in dir and returns its files.
func writeSelfSigned(t *testing.T, dir, hostname string) (certFile, keyFile string) {
	t.Helper()
	c, write, err := devCerts(dir, hostname)
	if err != nil {
		t.Fatal(err)
	}
	if write != nil {
		if err := write(); err != nil {
			t.Fatal(err)
		}
	}
	return c.certFile, c.keyFile
}

func TestTLSPolicy(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := writeSelfSigned(t, dir, "mail.example.test")
	c, err := loadCerts(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	srv := c.serverConfig()
	pool := x509.NewCertPool()
	pem, _ := os.ReadFile(certFile)
	pool.AppendCertsFromPEM(pem)
	ok := &tls.Config{RootCAs: pool, ServerName: "mail.example.test"}

	if st, err := handshake(t, srv, ok); err != nil || st.Version != tls.VersionTLS13 {
		t.Fatalf("default client: version %x, %v", st.Version, err)
	}
	// TLS 1.2 with an AEAD suite is accepted.
	tls12 := ok.Clone()
	tls12.MaxVersion = tls.VersionTLS12
	if _, err := handshake(t, srv, tls12); err != nil {
		t.Errorf("TLS 1.2 AEAD refused: %v", err)
	}
	// TLS 1.1 and CBC suites are refused.
	old := ok.Clone()
	old.MinVersion, old.MaxVersion = tls.VersionTLS10, tls.VersionTLS11
	if _, err := handshake(t, srv, old); err == nil {
		t.Error("TLS 1.1 accepted")
	}
	cbc := tls12.Clone()
	cbc.CipherSuites = []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA, tls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA}
	if _, err := handshake(t, srv, cbc); err == nil {
		t.Error("CBC suite accepted")
	}
}

func TestSelfSignedKeptAndReloaded(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "tls")
	mem, write, err := devCerts(dir, "localhost")
	if err != nil {
		t.Fatal(err)
	}
	// Made in memory: nothing is written until the start has passed its checks.
	if _, err := os.Stat(dir); !os.IsNotExist(err) || write == nil || mem.cur.Load() == nil {
		t.Fatalf("devCerts wrote %s before being asked (%v)", dir, err)
	}
	if err := write(); err != nil {
		t.Fatal(err)
	}
	certFile, keyFile := mem.certFile, mem.keyFile
	first, _ := os.ReadFile(certFile)
	// A second start keeps the certificate it made (clients may have pinned it).
	again, write, err := devCerts(dir, "localhost")
	if err != nil || write != nil {
		t.Fatalf("second start: %v, write %v", err, write != nil)
	}
	if !bytes.Equal(again.cur.Load().Certificate[0], mem.cur.Load().Certificate[0]) {
		t.Error("certificate regenerated on second start")
	}
	if f, _ := os.ReadFile(certFile); string(f) != string(first) {
		t.Error("certificate file rewritten on second start")
	}
	if fi, err := os.Stat(keyFile); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("key file mode %v, %v", fi.Mode(), err)
	}

	c, err := loadCerts(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	before := c.cur.Load()
	// A broken file on reload keeps the current certificate.
	os.WriteFile(certFile, []byte("garbage"), 0o644)
	if err := c.Reload(); err == nil || c.cur.Load() != before {
		t.Error("broken certificate replaced the working one")
	}
	// A new pair is picked up.
	other := filepath.Join(t.TempDir(), "n")
	nc, nk := writeSelfSigned(t, other, "localhost")
	c.certFile, c.keyFile = nc, nk
	if err := c.Reload(); err != nil || c.cur.Load() == before {
		t.Errorf("reload: %v", err)
	}
}

// TestALPN: each TLS listener names its own protocol to a client that offers ALPN and refuses
// one that offers only another protocol (a browser sent to a mail port: ALPACA). The HTTP
// listener's "h2" must not leak into the mail listeners' shared TLS policy, which made every
// client offering "imap" fail.
func TestALPN(t *testing.T) {
	a, c := runApp(t)
	waitReady(t, c, "http://"+a.addr(t, "http")+"/readyz")
	pool := c.Transport.(*http.Transport).TLSClientConfig.RootCAs
	for _, tc := range []struct {
		listener string
		offer    []string
		want     string
		refused  bool
	}{
		{"imaps", []string{"imap"}, "imap", false},
		{"imaps", []string{"h2", "http/1.1"}, "", true},
		{"pop3s", []string{"pop3"}, "pop3", false},
		{"pop3s", []string{"http/1.1"}, "", true},
		{"https", []string{"h2", "http/1.1"}, "h2", false},
		{"https", []string{"imap"}, "", true},
		// SMTP has no registered ALPN name: whatever a client offers, no protocol is named
		// and the handshake goes on.
		{"submissions", []string{"smtp"}, "", false},
		{"submissions", nil, "", false},
	} {
		conn, err := tls.Dial("tcp", a.addr(t, tc.listener), &tls.Config{RootCAs: pool, ServerName: "localhost", NextProtos: tc.offer})
		switch {
		case tc.refused:
			if err == nil {
				conn.Close()
				t.Errorf("%s offered %q: handshake succeeded with %q, want a refusal", tc.listener, tc.offer, conn.ConnectionState().NegotiatedProtocol)
			} else if !strings.Contains(err.Error(), "no application protocol") {
				t.Errorf("%s offered %q: %v, want no_application_protocol", tc.listener, tc.offer, err)
			}
		case err != nil:
			t.Errorf("%s offered %q: %v", tc.listener, tc.offer, err)
		default:
			if got := conn.ConnectionState().NegotiatedProtocol; got != tc.want {
				t.Errorf("%s offered %q: negotiated %q, want %q", tc.listener, tc.offer, got, tc.want)
			}
			conn.Close()
		}
	}
}
