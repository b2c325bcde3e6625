package app

import (
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

func TestTLSPolicy(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile, err := ensureSelfSigned(dir, "mail.example.test")
	if err != nil {
		t.Fatal(err)
	}
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
	dir := t.TempDir()
	certFile, keyFile, err := ensureSelfSigned(dir, "localhost")
	if err != nil {
		t.Fatal(err)
	}
	first, _ := os.ReadFile(certFile)
	// A second start keeps the certificate it made (clients may have pinned it).
	if _, _, err := ensureSelfSigned(dir, "localhost"); err != nil {
		t.Fatal(err)
	}
	if again, _ := os.ReadFile(certFile); string(again) != string(first) {
		t.Error("certificate regenerated on second start")
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
	nc, nk, err := ensureSelfSigned(other, "localhost")
	if err != nil {
		t.Fatal(err)
	}
	c.certFile, c.keyFile = nc, nk
	if err := c.Reload(); err != nil || c.cur.Load() == before {
		t.Errorf("reload: %v", err)
	}
}
