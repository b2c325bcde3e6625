// Package acme keeps the server's certificate current from an ACME CA (RFC 8555): it obtains
// one certificate for the mail host name and the names clients and other servers look up
// (autoconfig.<domain>, mta-sts.<domain>), answers the CA's challenges on the server's own
// listeners (TLS-ALPN-01, RFC 8737, on HTTPS; HTTP-01 on plain HTTP), and renews it in the
// background well before it expires.
//
// Invariants:
//   - The certificate reaches the listeners only through Config.Install, which the app points
//     at the one certificate holder every tls.Config asks (GetCertificate). A handshake gets
//     either the old or the new certificate, never none, so a switch fails no handshake.
//   - A failed order never removes the current certificate: the server keeps serving it and
//     retries with backoff; a certificate close to expiry is logged at error level.
//   - One file holds the chain and its key (written atomically), so a crash can never leave
//     a certificate next to a key that does not belong to it. Files are readable by the
//     owner only and live in the data directory, which the unprivileged user owns.
//
// Why one certificate for every name rather than one per name (as autocert does): mail clients
// and MTAs often send no SNI or the MX name, so the mail listeners need one certificate that
// covers everything; a name whose challenge fails (no DNS record for autoconfig.<domain> yet)
// is left out of the order and tried again at the next renewal, so it cannot cost the host
// name its certificate.
package acme

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/acme"

	"petrel/internal/lib/safefile"
)

// LetsEncrypt is the default directory URL.
const LetsEncrypt = "https://acme-v02.api.letsencrypt.org/directory"

// Challenge types this package answers.
const (
	TLSALPN01 = "tls-alpn-01"
	HTTP01    = "http-01"
)

// Config configures a Manager.
type Config struct {
	DirectoryURL string // default LetsEncrypt
	Contact      string // e-mail address for the CA's notices; may be empty
	// Dir holds the account key and the certificate; created with mode 0700.
	Dir string
	// HTTPClient talks to the CA (its RootCAs trust a private CA); nil: http.DefaultClient.
	HTTPClient *http.Client
	// Names returns the names the certificate should cover. The first is the host name: the
	// certificate is useless without it; the others are dropped from an order whose
	// challenge for them fails.
	Names func(context.Context) ([]string, error)
	// Challenge is the type tried first (TLSALPN01 or HTTP01); the other is the fallback
	// when the CA does not offer it. Default TLSALPN01.
	Challenge string
	// Install gets every certificate the manager obtains or loads.
	Install func(*tls.Certificate)
	Log     *slog.Logger
	// RetryMin and RetryMax bound the backoff after a failed order. Defaults 1 minute and
	// 6 hours.
	RetryMin, RetryMax time.Duration
}

// Manager obtains and renews the certificate. Its methods are safe for concurrent use.
type Manager struct {
	cfg   Config
	renew chan struct{}

	mu       sync.Mutex
	client   *acme.Client               // registered account; nil until the first order
	alpn     map[string]tls.Certificate // TLS-ALPN-01 certificates by identifier
	tokens   map[string]string          // HTTP-01 key authorizations by token
	leaf     *x509.Certificate          // of the installed certificate; nil: none yet
	failures int                        // failed orders since the last success
	asked    []string                   // the names of the last order, dropped ones too
}

// New makes a manager; nothing is contacted until Run or Obtain.
func New(cfg Config) *Manager {
	if cfg.DirectoryURL == "" {
		cfg.DirectoryURL = LetsEncrypt
	}
	if cfg.Challenge == "" {
		cfg.Challenge = TLSALPN01
	}
	if cfg.RetryMin <= 0 {
		cfg.RetryMin = time.Minute
	}
	if cfg.RetryMax <= 0 {
		cfg.RetryMax = 6 * time.Hour
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	return &Manager{cfg: cfg, renew: make(chan struct{}, 1), alpn: map[string]tls.Certificate{}, tokens: map[string]string{}}
}

func (m *Manager) certFile() string { return filepath.Join(m.cfg.Dir, "certificate.pem") }

// askedFile lists the names of the last order, the dropped ones too, so that a restart does
// not order again for a name whose challenge failed (CAs limit orders per week).
func (m *Manager) askedFile() string { return filepath.Join(m.cfg.Dir, "names") }

// Load installs the certificate saved by an earlier run, if there is one. A file that does
// not parse is reported; the manager then orders a new certificate.
func (m *Manager) Load() (ok bool, err error) {
	data, err := os.ReadFile(m.certFile())
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	} else if err != nil {
		return false, err
	}
	kp, err := tls.X509KeyPair(data, data)
	if err != nil {
		return false, fmt.Errorf("%s: %w", m.certFile(), err)
	}
	m.install(&kp)
	asked := kp.Leaf.DNSNames
	if b, err := os.ReadFile(m.askedFile()); err == nil {
		asked = strings.Fields(string(b))
	}
	m.mu.Lock()
	m.asked = normalize(asked)
	m.mu.Unlock()
	return true, nil
}

func (m *Manager) install(c *tls.Certificate) {
	m.mu.Lock()
	m.leaf = c.Leaf
	m.mu.Unlock()
	if m.cfg.Install != nil {
		m.cfg.Install(c)
	}
}

// NotAfter is the expiry of the installed certificate (zero: none yet), for the metrics.
func (m *Manager) NotAfter() time.Time {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.leaf == nil {
		return time.Time{}
	}
	return m.leaf.NotAfter
}

// Failures is the number of failed orders since the last certificate, for the metrics.
func (m *Manager) Failures() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.failures
}

// RenewNow makes Run order a new certificate at once, whatever the current one's expiry.
func (m *Manager) RenewNow() {
	select {
	case m.renew <- struct{}{}:
	default:
	}
}

// due says how long until the certificate should be renewed: when a third of its lifetime
// is left (30 days of Let's Encrypt's 90, as they advise), or at once when there is none
// or it misses one of the names.
func (m *Manager) due(names []string, now time.Time) time.Duration {
	m.mu.Lock()
	leaf := m.leaf
	m.mu.Unlock()
	if leaf == nil || leaf.VerifyHostname(names[0]) != nil {
		return 0
	}
	life := leaf.NotAfter.Sub(leaf.NotBefore)
	return leaf.NotAfter.Add(-life / 3).Sub(now)
}

// Run keeps the certificate current until ctx ends: it orders one at once if there is none,
// then whenever one is due (or RenewNow asks), retrying failures with exponential backoff.
func (m *Manager) Run(ctx context.Context) {
	const recheck = time.Hour // the hosted domains may change: look at the names this often
	retry := m.cfg.RetryMin
	forced := false
	for {
		wait := recheck
		names, err := m.cfg.Names(ctx)
		names = normalize(names) // as ordered: "Mail.Example.org." is mail.example.org
		if err == nil && len(names) == 0 {
			err = errors.New("no host name")
		}
		if err != nil {
			m.cfg.Log.Error("acme: names for the certificate", "err", err)
		} else if d := m.due(names, time.Now()); forced || d <= 0 || m.missing(names) {
			if err := m.Obtain(ctx); err != nil {
				if ctx.Err() != nil {
					return
				}
				m.failed(err, retry)
				wait, retry = retry, min(2*retry, m.cfg.RetryMax)
			} else {
				retry = m.cfg.RetryMin
				forced = false
				continue // the new certificate's due time
			}
		} else {
			wait = min(d, recheck)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-m.renew:
			t.Stop()
			forced = true
		case <-t.C:
		}
	}
}

// missing reports whether names has one that the last order did not ask for (a domain added
// since). Names dropped from an order after a failed challenge are asked for again at the
// next renewal, not at every recheck.
func (m *Manager) missing(names []string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, n := range normalize(names) {
		if !slices.Contains(m.asked, n) {
			return true
		}
	}
	return false
}

func (m *Manager) failed(err error, retry time.Duration) {
	m.mu.Lock()
	m.failures++
	leaf := m.leaf
	m.mu.Unlock()
	log := m.cfg.Log.Warn
	attrs := []any{"err", err, "retry_in", retry}
	if leaf != nil {
		left := time.Until(leaf.NotAfter)
		attrs = append(attrs, "expires", leaf.NotAfter.UTC().Format(time.RFC3339))
		// A week before expiry a failing renewal is an operator's emergency.
		if left < 7*24*time.Hour {
			log = m.cfg.Log.Error
			attrs = append(attrs, "alert", "TLS certificate expires soon and cannot be renewed")
		}
	} else {
		log = m.cfg.Log.Error
		attrs = append(attrs, "alert", "no certificate from the CA yet: TLS listeners serve a self-signed one")
	}
	log("acme: certificate order failed", attrs...)
}

// Obtain orders a certificate for the current names now, saves it and installs it. A name
// other than the first whose challenge fails is dropped and the order made again without it.
func (m *Manager) Obtain(ctx context.Context) error {
	names, err := m.cfg.Names(ctx)
	if err != nil {
		return err
	}
	names = normalize(names)
	if len(names) == 0 {
		return errors.New("acme: no host name")
	}
	asked := slices.Clone(names)
	cl, err := m.account(ctx)
	if err != nil {
		return err
	}
	for {
		cert, err := m.order(ctx, cl, names)
		var ne *nameError
		if errors.As(err, &ne) && ne.name != names[0] {
			m.cfg.Log.Warn("acme: left out of the certificate until the next renewal (does its DNS point here?)", "name", ne.name, "err", ne.err)
			names = slices.DeleteFunc(names, func(n string) bool { return n == ne.name })
			continue
		}
		if err != nil {
			return err
		}
		if err := m.save(cert); err != nil {
			return err
		}
		if err := safefile.WriteAtomic(m.askedFile(), []byte(strings.Join(asked, "\n")+"\n"), 0o600); err != nil {
			return err
		}
		m.install(cert)
		m.mu.Lock()
		m.failures = 0
		m.asked = asked
		m.mu.Unlock()
		m.cfg.Log.Info("acme: new certificate", "names", strings.Join(names, " "),
			"expires", cert.Leaf.NotAfter.UTC().Format(time.RFC3339), "serial", cert.Leaf.SerialNumber.Text(16))
		return nil
	}
}

func normalize(names []string) []string {
	var out []string
	for _, n := range names {
		n = strings.TrimSuffix(strings.ToLower(strings.TrimSpace(n)), ".")
		if n != "" && !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	return out
}

// nameError is a challenge that failed for one name.
type nameError struct {
	name string
	err  error
}

func (e *nameError) Error() string { return fmt.Sprintf("acme: %s: %v", e.name, e.err) }

// account returns the client with the account registered (RFC 8555 §7.3), making the account
// key on first use. Registering an existing key finds its account (§7.3.1), so no account URL
// needs saving.
func (m *Manager) account(ctx context.Context) (*acme.Client, error) {
	m.mu.Lock()
	cl := m.client
	m.mu.Unlock()
	if cl != nil {
		return cl, nil
	}
	if err := os.MkdirAll(m.cfg.Dir, 0o700); err != nil {
		return nil, err
	}
	key, err := m.accountKey()
	if err != nil {
		return nil, err
	}
	cl = &acme.Client{Key: key, DirectoryURL: m.cfg.DirectoryURL, HTTPClient: m.cfg.HTTPClient, UserAgent: "petrel"}
	acct := &acme.Account{}
	if m.cfg.Contact != "" {
		acct.Contact = []string{"mailto:" + m.cfg.Contact}
	}
	if _, err := cl.Register(ctx, acct, acme.AcceptTOS); err != nil && !errors.Is(err, acme.ErrAccountAlreadyExists) {
		return nil, fmt.Errorf("acme: register account at %s: %w", m.cfg.DirectoryURL, err)
	}
	m.mu.Lock()
	m.client = cl
	m.mu.Unlock()
	return cl, nil
}

func (m *Manager) accountKey() (crypto.Signer, error) {
	file := filepath.Join(m.cfg.Dir, "account.key")
	data, err := os.ReadFile(file)
	if err == nil {
		b, _ := pem.Decode(data)
		if b == nil {
			return nil, fmt.Errorf("%s: no PEM key", file)
		}
		k, err := x509.ParsePKCS8PrivateKey(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", file, err)
		}
		s, ok := k.(crypto.Signer)
		if !ok {
			return nil, fmt.Errorf("%s: not a signing key", file)
		}
		return s, nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	if err := safefile.WriteAtomic(file, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		return nil, err
	}
	return key, nil
}

// order runs one order (RFC 8555 §7.4): authorize every name, finalize with a fresh key,
// download the chain.
func (m *Manager) order(ctx context.Context, cl *acme.Client, names []string) (*tls.Certificate, error) {
	o, err := cl.AuthorizeOrder(ctx, acme.DomainIDs(names...))
	if err != nil {
		return nil, fmt.Errorf("acme: new order: %w", err)
	}
	for _, u := range o.AuthzURLs {
		if err := m.authorize(ctx, cl, u); err != nil {
			return nil, err
		}
	}
	if o, err = cl.WaitOrder(ctx, o.URI); err != nil {
		return nil, fmt.Errorf("acme: order: %w", err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject:  pkix.Name{CommonName: names[0]},
		DNSNames: names,
	}, key)
	if err != nil {
		return nil, err
	}
	der, _, err := cl.CreateOrderCert(ctx, o.FinalizeURL, csr, true)
	if err != nil {
		return nil, fmt.Errorf("acme: finalize: %w", err)
	}
	leaf, err := x509.ParseCertificate(der[0])
	if err != nil {
		return nil, fmt.Errorf("acme: the CA's certificate: %w", err)
	}
	// What we install must be what we asked for: a CA bug must not cost us the listeners.
	for _, n := range names {
		if err := leaf.VerifyHostname(n); err != nil {
			return nil, fmt.Errorf("acme: the CA's certificate: %w", err)
		}
	}
	if !leaf.PublicKey.(*ecdsa.PublicKey).Equal(&key.PublicKey) {
		return nil, errors.New("acme: the CA's certificate is not for our key")
	}
	return &tls.Certificate{Certificate: der, PrivateKey: key, Leaf: leaf}, nil
}

// authorize answers one authorization's challenge and waits for the CA's verdict.
func (m *Manager) authorize(ctx context.Context, cl *acme.Client, url string) error {
	z, err := cl.GetAuthorization(ctx, url)
	if err != nil {
		return fmt.Errorf("acme: authorization: %w", err)
	}
	name := z.Identifier.Value
	switch z.Status {
	case acme.StatusValid:
		return nil // still valid from an earlier order
	case acme.StatusPending:
	default:
		return &nameError{name, fmt.Errorf("authorization is %s", z.Status)}
	}
	chal := m.pick(z.Challenges)
	if chal == nil {
		return &nameError{name, errors.New("the CA offers neither tls-alpn-01 nor http-01")}
	}
	done, err := m.serve(cl, chal, name)
	if err != nil {
		return err
	}
	defer done()
	if _, err := cl.Accept(ctx, chal); err != nil {
		return &nameError{name, err}
	}
	if _, err := cl.WaitAuthorization(ctx, z.URI); err != nil {
		return &nameError{name, err}
	}
	return nil
}

func (m *Manager) pick(chals []*acme.Challenge) *acme.Challenge {
	order := []string{m.cfg.Challenge, TLSALPN01, HTTP01}
	for _, typ := range order {
		for _, c := range chals {
			if c.Type == typ {
				return c
			}
		}
	}
	return nil
}

// serve makes the listeners answer chal until done is called.
func (m *Manager) serve(cl *acme.Client, chal *acme.Challenge, name string) (done func(), err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	switch chal.Type {
	case TLSALPN01:
		cert, err := cl.TLSALPN01ChallengeCert(chal.Token, name)
		if err != nil {
			return nil, err
		}
		m.alpn[name] = cert
		return func() { m.mu.Lock(); delete(m.alpn, name); m.mu.Unlock() }, nil
	default:
		resp, err := cl.HTTP01ChallengeResponse(chal.Token)
		if err != nil {
			return nil, err
		}
		m.tokens[chal.Token] = resp
		return func() { m.mu.Lock(); delete(m.tokens, chal.Token); m.mu.Unlock() }, nil
	}
}

// save writes the chain and its key into one file, atomically, readable by the owner only.
func (m *Manager) save(c *tls.Certificate) error {
	var buf []byte
	for _, der := range c.Certificate {
		buf = append(buf, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})...)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(c.PrivateKey)
	if err != nil {
		return err
	}
	buf = append(buf, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder})...)
	if err := os.MkdirAll(m.cfg.Dir, 0o700); err != nil {
		return err
	}
	return safefile.WriteAtomic(m.certFile(), buf, 0o600)
}

// ALPNProto is the ALPN protocol of TLS-ALPN-01 (RFC 8737 §6.2).
const ALPNProto = acme.ALPNProto

// TLSConfig returns a copy of base that also answers TLS-ALPN-01 validation: a ClientHello
// offering acme-tls/1 gets the challenge certificate for its SNI name and that protocol,
// whatever base serves (RFC 8737 §3). Only the HTTPS listener (port 443) needs it.
func (m *Manager) TLSConfig(base *tls.Config) *tls.Config {
	c := base.Clone()
	c.GetConfigForClient = func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
		if !slices.Contains(hello.SupportedProtos, ALPNProto) {
			if base.GetConfigForClient != nil {
				return base.GetConfigForClient(hello)
			}
			return nil, nil
		}
		m.mu.Lock()
		cert, ok := m.alpn[strings.ToLower(hello.ServerName)]
		m.mu.Unlock()
		if !ok {
			return nil, fmt.Errorf("acme: no TLS-ALPN-01 challenge pending for %q", hello.ServerName)
		}
		return &tls.Config{
			MinVersion:   tls.VersionTLS12,
			NextProtos:   []string{ALPNProto},
			Certificates: []tls.Certificate{cert},
		}, nil
	}
	return c
}

// HTTPPath is where HTTP01Handler is to be mounted (RFC 8555 §8.3).
const HTTPPath = "/.well-known/acme-challenge/"

// HTTP01Handler answers GET HTTPPath+token with the key authorization of a pending HTTP-01
// challenge (RFC 8555 §8.3), 404 for any other token.
func (m *Manager) HTTP01Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		token := strings.TrimPrefix(r.URL.Path, HTTPPath)
		m.mu.Lock()
		resp, ok := m.tokens[token]
		m.mu.Unlock()
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Write([]byte(resp))
	})
}
