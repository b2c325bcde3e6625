// Package mailtest holds the servers that the client tools' tests talk to, all on 127.0.0.1:
// a real Petrel (POP3 from internal/server/pop3d and submission from internal/server/smtpd,
// over the embedded SQLite store and internal/mail/auth, wired the way internal/app wires
// the production server), and private instances of Dovecot and Postfix from Debian.
//
// Client packages import this package from their tests only; it is the one place where a
// client test reaches the server side, so the client packages themselves stay free of it.
package mailtest

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"petrel/internal/mail/auth"
	"petrel/internal/mail/deliver"
	"petrel/internal/server/pop3d"
	"petrel/internal/server/smtpd"
	"petrel/internal/store"
	"petrel/internal/store/sqlite"
)

// Server is a running POP3 server with one listener for STLS/plaintext and one for
// implicit TLS.
type Server struct {
	Store    store.Store
	Addr     string // STLS listener (plaintext allowed)
	TLSAddr  string // implicit TLS listener
	CertPEM  []byte // the self-signed certificate, for a private-CA test
	CertFile string // CertPEM written to a file
	// Fingerprint is the SHA-256 of the certificate's DER bytes.
	Fingerprint [32]byte
	// TLS is the server side TLS configuration, for other servers of the same test.
	TLS         *tls.Config
	dir         string
	srv, tlsSrv *pop3d.Server
}

// Start starts a server whose data lives in a temporary directory; t.Cleanup stops it.
func Start(t testing.TB) *Server {
	t.Helper()
	dir := t.TempDir()
	st, err := sqlite.Open(filepath.Join(dir, "petrel.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{Store: st, dir: dir}
	cert, certPEM := SelfSigned(t, "localhost")
	s.CertPEM = certPEM
	s.Fingerprint = sha256.Sum256(cert.Certificate[0])
	s.CertFile = filepath.Join(dir, "cert.pem")
	if err := os.WriteFile(s.CertFile, certPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	tlsConf := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	au := auth.New(st, auth.Config{FailureDelay: time.Millisecond, MaxFailureDelay: time.Millisecond}, log)
	s.srv = pop3d.New(pop3d.Config{Hostname: "localhost", TLS: tlsConf, AllowPlaintextAuth: true}, st, au, log)
	s.tlsSrv = pop3d.New(pop3d.Config{Hostname: "localhost", TLS: tlsConf, ImplicitTLS: true}, st, au, log)
	s.TLS = tlsConf
	s.Addr = serve(t, s.srv)
	s.TLSAddr = serve(t, s.tlsSrv)
	t.Cleanup(func() {
		// Generous: a Shutdown that gives up leaves sessions running on a closed store,
		// which the race detector reports on a loaded machine.
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		s.srv.Shutdown(ctx)
		s.tlsSrv.Shutdown(ctx)
		st.Close()
	})
	return s
}

func serve(t testing.TB, srv *pop3d.Server) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(l)
	return l.Addr().String()
}

// Account is an account of the test server, as AddAccount returns it.
type Account = store.Account

// Submission is a Petrel submission listener over the server's store.
type Submission struct {
	Addr string
	srv  *smtpd.Server
}

// SubmissionOptions are the choices a test makes for a submission listener.
type SubmissionOptions struct {
	Addr      string // "" for a free port; else a fixed address (a restarted server)
	NoTLS     bool   // offer no STARTTLS
	Plaintext bool   // allow AUTH without TLS
}

// StartSubmission starts a submission listener (STARTTLS with the server's certificate,
// then AUTH) that delivers into the server's store; t.Cleanup stops it.
func (s *Server) StartSubmission(t testing.TB, o SubmissionOptions) *Submission {
	t.Helper()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	au := auth.New(s.Store, auth.Config{FailureDelay: time.Millisecond, MaxFailureDelay: time.Millisecond}, log)
	cfg := smtpd.Config{Hostname: "localhost", Role: smtpd.RoleSubmission, TLS: s.TLS, SpoolDir: t.TempDir(), AllowInsecureAuth: o.Plaintext}
	if o.NoTLS {
		cfg.TLS = nil
	}
	addr := o.Addr
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	sub := &Submission{Addr: l.Addr().String(), srv: smtpd.New(cfg, deliver.New(s.Store, log), au, log)}
	go sub.srv.Serve(l)
	t.Cleanup(sub.Stop)
	return sub
}

// Stop stops the listener and waits for its sessions; a second Stop does nothing.
func (sub *Submission) Stop() {
	if sub.srv == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	sub.srv.Shutdown(ctx)
	sub.srv = nil
}

// AddAccount creates an account (its domain too) with a password.
func (s *Server) AddAccount(t testing.TB, addr, password string) store.Account {
	t.Helper()
	ctx := context.Background()
	_, domain, _ := strings.Cut(addr, "@")
	if err := s.Store.AddDomain(ctx, domain); err != nil && !errors.Is(err, store.ErrExists) {
		t.Fatal(err)
	}
	cred, err := auth.NewCredentials(password)
	if err != nil {
		t.Fatal(err)
	}
	a, err := s.Store.AddAccount(ctx, addr, cred)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// Deliver puts a message (CRLF line endings expected) into the account's INBOX.
func (s *Server) Deliver(t testing.TB, acct store.Account, body string) {
	t.Helper()
	_, err := s.Store.Deliver(context.Background(), &store.Delivery{
		MailFrom:   "sender@example.net",
		Targets:    []store.Target{{AccountID: acct.ID, Mailbox: store.Inbox}},
		Body:       strings.NewReader(body),
		Size:       int64(len(body)),
		ReceivedAt: time.Now(),
	})
	if err != nil {
		t.Fatal(err)
	}
}

// Inbox returns the messages in the account's INBOX, in UID order, as their bodies.
func (s *Server) Inbox(t testing.TB, acct store.Account) []string {
	t.Helper()
	ctx := context.Background()
	mb, err := s.Store.Mailbox(ctx, acct.ID, store.Inbox)
	if err != nil {
		t.Fatal(err)
	}
	msgs, err := s.Store.Messages(ctx, mb.ID, store.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, m := range msgs {
		rc, err := s.Store.OpenBlob(ctx, m.BlobID)
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, string(b))
	}
	return out
}

// SelfSigned makes an ECDSA certificate for host (and 127.0.0.1) valid for a day.
func SelfSigned(t testing.TB, host string) (tls.Certificate, []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: host},
		DNSNames:              []string{host},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	return cert, certPEM
}

// WriteKeyPair writes a fresh self-signed certificate and key for host into dir (for
// external servers such as Dovecot and Postfix) and returns the file names.
func WriteKeyPair(t testing.TB, dir, host string) (certFile, keyFile string, certPEM []byte) {
	t.Helper()
	cert, certPEM := SelfSigned(t, host)
	keyDER, err := x509.MarshalPKCS8PrivateKey(cert.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, certPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile, certPEM
}
