package app

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"net/smtp"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"petrel/internal/mailtest"
)

// TestACMECertificateOnEveryListener runs a server whose certificate comes from Pebble: the
// first certificate reaches IMAPS, SMTP STARTTLS, ManageSieve STARTTLS and HTTPS; a forced
// renewal while clients handshake on all four in a loop fails none of them, and each
// listener serves the new certificate without a restart.
func TestACMECertificateOnEveryListener(t *testing.T) {
	mailtest.RequireBinary(t, mailtest.PebbleBinary)
	const host = "mail.example.test"
	dns := mailtest.StartDNS(t, mailtest.Zone{A: map[string][]string{
		host:                      {"127.0.0.1"},
		"autoconfig.example.test": {"127.0.0.1"},
		"mta-sts.example.test":    {"127.0.0.1"},
	}})
	// Pebble validates on fixed ports: the server's HTTP listeners take them.
	ports := mailtest.FreePorts(t, 2)
	httpPort, tlsPort := ports[0], ports[1]
	p := mailtest.StartPebble(t, dns.Addr, httpPort, tlsPort)
	dir := t.TempDir()
	caFile := filepath.Join(dir, "pebble-api-ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: p.APICA.Cert.Raw}), 0o600); err != nil {
		t.Fatal(err)
	}

	cfg := devConfig(dir)
	cfg.Hostname = host
	cfg.HTTP.Listen = []string{"127.0.0.1:" + strconv.Itoa(httpPort)}
	cfg.HTTP.ListenTLS = []string{"127.0.0.1:" + strconv.Itoa(tlsPort)}
	cfg.MailAuth.Resolver, cfg.Outbound.Resolver = dns.Addr, dns.Addr
	cfg.ACME.Enabled = true
	cfg.ACME.Directory = p.Directory
	cfg.ACME.CAFile = caFile
	cfg.ACME.Contact = "postmaster@example.test"
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	a, _ := runConfig(t, cfg)

	roots := p.Roots(t)
	handshakes := map[string]func() (*x509.Certificate, error){
		"imaps": func() (*x509.Certificate, error) {
			return tlsLeaf(a.addr(t, "imaps"), &tls.Config{RootCAs: roots, ServerName: host})
		},
		"https": func() (*x509.Certificate, error) {
			return tlsLeaf(a.addr(t, "https"), &tls.Config{RootCAs: roots, ServerName: "mta-sts.example.test"})
		},
		"smtp": func() (*x509.Certificate, error) {
			c, err := smtp.Dial(a.addr(t, "smtp"))
			if err != nil {
				return nil, err
			}
			defer c.Close()
			if err := c.StartTLS(&tls.Config{RootCAs: roots, ServerName: host}); err != nil {
				return nil, err
			}
			st, _ := c.TLSConnectionState()
			c.Quit()
			return st.PeerCertificates[0], nil
		},
		"managesieve": func() (*x509.Certificate, error) {
			return sieveStartTLS(a.addr(t, "managesieve"), &tls.Config{RootCAs: roots, ServerName: host})
		},
	}
	// The first certificate: until it comes, the listeners serve a self-signed one that
	// the clients refuse.
	first := waitServed(t, handshakes["imaps"], nil)
	for name, hs := range handshakes {
		if leaf, err := hs(); err != nil || !leaf.Equal(first) {
			t.Fatalf("%s: %v, serial %v, want %x", name, err, leaf, first.SerialNumber)
		}
	}

	var (
		stop     atomic.Bool
		wg       sync.WaitGroup
		mu       sync.Mutex
		failures []string
		seen     = map[string]map[string]bool{} // listener -> serials served
	)
	for name, hs := range handshakes {
		seen[name] = map[string]bool{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				leaf, err := hs()
				mu.Lock()
				if err != nil {
					failures = append(failures, name+": "+err.Error())
				} else {
					seen[name][leaf.SerialNumber.String()] = true
				}
				mu.Unlock()
			}
		}()
	}
	a.acme.RenewNow()
	second := waitServed(t, handshakes["imaps"], first)
	allSeen := func() bool {
		mu.Lock()
		defer mu.Unlock()
		for _, s := range seen {
			if !s[second.SerialNumber.String()] {
				return false
			}
		}
		return true
	}
	for deadline := time.Now().Add(time.Minute); !allSeen() && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	stop.Store(true)
	wg.Wait()
	if len(failures) > 0 {
		t.Errorf("%d handshakes failed during the renewal, first: %s", len(failures), failures[0])
	}
	for name, s := range seen {
		if !s[first.SerialNumber.String()] || !s[second.SerialNumber.String()] {
			t.Errorf("%s served serials %v, want %x then %x", name, s, first.SerialNumber, second.SerialNumber)
		}
	}
	if fi, err := os.Stat(filepath.Join(cfg.Data, "acme", "certificate.pem")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("saved certificate: %v %v", fi, err)
	}
}

// tlsLeaf handshakes with addr (implicit TLS) and returns the server's leaf certificate.
func tlsLeaf(addr string, conf *tls.Config) (*x509.Certificate, error) {
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", addr, conf)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	return c.ConnectionState().PeerCertificates[0], nil
}

// sieveStartTLS connects to a ManageSieve listener, upgrades with STARTTLS (RFC 5804 §2.2)
// and returns the server's leaf certificate.
func sieveStartTLS(addr string, conf *tls.Config) (*x509.Certificate, error) {
	c, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	r := bufio.NewReader(c)
	// The greeting is capability lines ending with OK; STARTTLS is answered with one OK line.
	untilOK := func() error {
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				return err
			}
			switch {
			case strings.HasPrefix(line, "OK"):
				return nil
			case strings.HasPrefix(line, "NO"), strings.HasPrefix(line, "BYE"):
				return fmt.Errorf("managesieve: %q", line)
			}
		}
	}
	if err := untilOK(); err != nil {
		return nil, err
	}
	if _, err := io.WriteString(c, "STARTTLS\r\n"); err != nil {
		return nil, err
	}
	if err := untilOK(); err != nil {
		return nil, err
	}
	tc := tls.Client(c, conf)
	if err := tc.Handshake(); err != nil {
		return nil, err
	}
	return tc.ConnectionState().PeerCertificates[0], nil
}

// waitServed polls hs until it verifies a certificate other than old.
func waitServed(t *testing.T, hs func() (*x509.Certificate, error), old *x509.Certificate) *x509.Certificate {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		leaf, err := hs()
		if err == nil && (old == nil || !leaf.Equal(old)) {
			return leaf
		}
		if time.Now().After(deadline) {
			t.Fatalf("no new certificate served: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
