package mailtest

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// PebbleBinary is Let's Encrypt's ACME test server (Debian package pebble).
const PebbleBinary = "/usr/bin/pebble"

// Pebble is a running ACME test CA.
type Pebble struct {
	Directory string         // the ACME directory URL
	APICA     *CA            // issued Pebble's own HTTPS certificate: trust it to reach Directory
	Client    *http.Client   // trusts APICA
	cmd       *exec.Cmd      // nil once stopped
	mgmt      string         // management address host:port
	log       string         // Pebble's output, shown when the test fails
	roots     *x509.CertPool // cached Roots
}

// StartPebble runs Pebble on loopback. Its validation authority resolves names with the DNS
// server at dnsAddr and connects to port httpPort for HTTP-01 and tlsPort for TLS-ALPN-01
// challenges; t.Cleanup stops it. Nonces are never rejected at random and validation does not
// sleep, so a test does not wait for Pebble's chaos.
func StartPebble(t testing.TB, dnsAddr string, httpPort, tlsPort int) *Pebble {
	t.Helper()
	RequireBinary(t, PebbleBinary)
	dir := t.TempDir()
	ca := NewCA(t)
	cert := ca.Issue(t, "127.0.0.1", "localhost")
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Certificate[0]})
	kder, err := x509.MarshalPKCS8PrivateKey(cert.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder})
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, certPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	ports := FreePorts(t, 2)
	api := "127.0.0.1:" + strconv.Itoa(ports[0])
	mgmt := "127.0.0.1:" + strconv.Itoa(ports[1])
	conf, _ := json.Marshal(map[string]any{"pebble": map[string]any{
		"listenAddress":           api,
		"managementListenAddress": mgmt,
		"certificate":             certFile,
		"privateKey":              keyFile,
		"httpPort":                httpPort,
		"tlsPort":                 tlsPort,
		"ocspResponderURL":        "",
	}})
	confFile := filepath.Join(dir, "pebble.json")
	if err := os.WriteFile(confFile, conf, 0o600); err != nil {
		t.Fatal(err)
	}
	p := &Pebble{
		Directory: "https://" + api + "/dir",
		APICA:     ca,
		Client:    &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool}}},
		mgmt:      mgmt,
		log:       filepath.Join(dir, "pebble.log"),
	}
	out, err := os.Create(p.log)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	p.cmd = exec.Command(PebbleBinary, "-config", confFile, "-dnsserver", dnsAddr)
	p.cmd.Env = append(os.Environ(), "PEBBLE_VA_NOSLEEP=1", "PEBBLE_WFE_NONCEREJECT=0", "PEBBLE_AUTHZREUSE=0")
	p.cmd.Stdout, p.cmd.Stderr = out, out
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		p.Stop()
		if t.Failed() {
			b, _ := os.ReadFile(p.log)
			t.Logf("pebble output:\n%s", b)
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		res, err := p.Client.Get(p.Directory)
		if err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return p
			}
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(p.log)
			t.Fatalf("pebble did not answer at %s: %v\n%s", p.Directory, err, b)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Stop ends Pebble (a CA that is down); a second call does nothing.
func (p *Pebble) Stop() {
	if p.cmd == nil {
		return
	}
	p.cmd.Process.Kill()
	p.cmd.Wait()
	p.cmd = nil
}

// Roots is the pool of Pebble's root for the certificates it issues (it makes a new root
// at every start, served by its management interface).
func (p *Pebble) Roots(t testing.TB) *x509.CertPool {
	t.Helper()
	if p.roots != nil {
		return p.roots
	}
	res, err := p.Client.Get("https://" + p.mgmt + "/roots/0")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil || res.StatusCode != http.StatusOK {
		t.Fatalf("pebble root: %v %s", err, res.Status)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		t.Fatal(fmt.Errorf("pebble root: no PEM certificate in %q", b))
	}
	p.roots = pool
	return pool
}
