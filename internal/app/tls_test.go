package app

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"net"
	"os"
	"path/filepath"
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
