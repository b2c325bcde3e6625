package app

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"petrel/internal/lib/safefile"
	"sync/atomic"
	"time"
)

// certs serves the current certificate to every TLS listener; Reload swaps it atomically so
// that SIGHUP takes effect for new handshakes without dropping connections.
type certs struct {
	certFile, keyFile string
	// load reads the two files: directly (readFiles), or through the key helper once the
	// process has dropped the privileges the files may need. Only Reload's caller changes it.
	load func() (cert, key []byte, err error)
	cur  atomic.Pointer[tls.Certificate]
}

func loadCerts(certFile, keyFile string) (*certs, error) {
	c := &certs{certFile: certFile, keyFile: keyFile}
	c.load = c.readFiles
	return c, c.Reload()
}

func (c *certs) readFiles() (cert, key []byte, err error) {
	if cert, err = os.ReadFile(c.certFile); err != nil {
		return nil, nil, err
	}
	if key, err = os.ReadFile(c.keyFile); err != nil {
		return nil, nil, err
	}
	return cert, key, nil
}

// Reload reads the files again; on error the previous certificate stays in use.
func (c *certs) Reload() error {
	cert, key, err := c.load()
	if err != nil {
		return fmt.Errorf("tls: %w", err)
	}
	kp, err := tls.X509KeyPair(cert, key)
	if err != nil {
		return fmt.Errorf("tls: %s, %s: %w", c.certFile, c.keyFile, err)
	}
	c.cur.Store(&kp)
	return nil
}

// serverConfig is the TLS policy of every listener: TLS 1.2 or newer, AEAD suites with forward
// secrecy only (TLS 1.3 suites are all AEAD and not configurable).
func (c *certs) serverConfig() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		CipherSuites: []uint16{
			tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
			tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
			tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
			tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
			tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
			tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
		},
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			return c.cur.Load(), nil
		},
	}
}

// withALPN is the TLS policy of a listener of one protocol: a client that offers ALPN gets the
// protocol named (RFC 7301) or, if it offers only others, a no_application_protocol alert.
// That refusal is the defence against cross-protocol attacks such as ALPACA, where a browser
// is made to talk HTTPS to a mail port that shares the certificate.
func withALPN(c *tls.Config, protos ...string) *tls.Config {
	c = c.Clone()
	c.NextProtos = protos
	return c
}

// devCerts returns the development instance's certificate: the one in dir if there is one
// (clients may have pinned it), else a new self-signed one that exists only in memory until
// the returned function writes it into dir, once the start can no longer fail for other
// reasons.
func devCerts(dir, hostname string) (c *certs, write func() error, err error) {
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if _, err := os.Stat(certFile); err == nil {
		c, err := loadCerts(certFile, keyFile)
		return c, nil, err
	}
	certPEM, keyPEM, err := selfSigned(hostname)
	if err != nil {
		return nil, nil, err
	}
	kp, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, nil, err
	}
	c = &certs{certFile: certFile, keyFile: keyFile}
	c.load = c.readFiles
	c.cur.Store(&kp)
	write = func() error {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return err
		}
		// Key first: a certificate without its key would be taken as complete at the next start.
		if err := safefile.WriteAtomic(keyFile, keyPEM, 0o600); err != nil {
			return err
		}
		return safefile.WriteAtomic(certFile, certPEM, 0o644)
	}
	return c, write, nil
}

// selfSigned makes a certificate for hostname, localhost and the loopback addresses, and its
// key, in PEM.
func selfSigned(hostname string) (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: hostname, Organization: []string{"Petrel development instance"}},
		DNSNames:     []string{hostname, "localhost"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().AddDate(5, 0, 0),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, err
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), nil
}
