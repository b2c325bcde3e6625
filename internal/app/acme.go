package app

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"petrel/internal/server/acme"
)

// acmeCerts makes the certificate holder of a server whose certificate comes from an ACME
// CA: the one saved in the data directory by an earlier run, or a self-signed one in memory
// until the first certificate arrives (Run starts the manager once the listeners serve, since
// the CA's challenges come in through them).
func (a *App) acmeCerts() (*certs, *acme.Manager, error) {
	cfg := a.cfg
	client := &http.Client{Timeout: time.Minute}
	if cfg.ACME.CAFile != "" {
		pem, err := os.ReadFile(cfg.ACME.CAFile)
		if err != nil {
			return nil, nil, fmt.Errorf("acme.ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, nil, fmt.Errorf("acme.ca_file: no PEM certificate in %s", cfg.ACME.CAFile)
		}
		client.Transport = &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}
	}
	c := &certs{} // no files: Reload keeps what the manager installed
	m := acme.New(acme.Config{
		DirectoryURL: cfg.ACME.Directory,
		Contact:      cfg.ACME.Contact,
		Dir:          filepath.Join(cfg.Data, "acme"),
		HTTPClient:   client,
		Challenge:    cfg.ACME.Challenge,
		Names:        a.certNames,
		Install:      func(kp *tls.Certificate) { c.cur.Store(kp) },
		Log:          a.log.With("component", "acme"),
	})
	ok, err := m.Load()
	if err != nil {
		a.log.Warn("acme: saved certificate unusable, ordering a new one", "err", err)
	}
	if !ok || err != nil {
		certPEM, keyPEM, err := selfSigned(cfg.Hostname)
		if err != nil {
			return nil, nil, err
		}
		kp, err := tls.X509KeyPair(certPEM, keyPEM)
		if err != nil {
			return nil, nil, err
		}
		c.cur.Store(&kp)
	}
	a.metrics.Certificate(m.NotAfter, m.Failures)
	return c, m, nil
}

// certNames are the names the certificate covers: the host name (mail clients and MTAs
// connect to it) and, for every hosted domain, the names clients and servers look up over
// HTTPS: autoconfig.<domain> (Thunderbird's client set-up) and mta-sts.<domain> (RFC 8461
// §3.3: the policy host's certificate must be valid) when MTA-STS is on.
func (a *App) certNames(ctx context.Context) ([]string, error) {
	names := []string{strings.TrimSuffix(strings.ToLower(a.cfg.Hostname), ".")}
	domains, err := a.store.Domains(ctx)
	if err != nil {
		return nil, err
	}
	_, _, sts := MTASTSPolicy(a.cfg)
	for _, d := range domains {
		names = append(names, "autoconfig."+d.Name)
		if sts {
			names = append(names, "mta-sts."+d.Name)
		}
	}
	return names, nil
}
