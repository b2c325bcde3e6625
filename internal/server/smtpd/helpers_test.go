package smtpd

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"petrel/internal/lib/address"
	"petrel/internal/mail/auth"
	"petrel/internal/mail/deliver"
	"petrel/internal/mailtest/dialog"
	"petrel/internal/store"
)

// fakeDeliverer resolves from maps and records deliveries in memory.
type fakeDeliverer struct {
	mu      sync.Mutex
	hosted  map[string]bool
	users   map[string]int64 // key (or base key) → account id
	msgs    []delivered
	fail    error         // Deliver returns it
	block   chan struct{} // Deliver waits for it to close, when not nil
	entered chan struct{} // receives once per Deliver call, when not nil
	panicOn string        // Resolve panics for this key
	discard bool          // do not read bodies (benchmark)
	// sending, when set, charges env.Charge as a store does in the delivery commit.
	sending interface {
		ChargeSending(ctx context.Context, accountID int64, now time.Time, messages, recipients int, limits store.SendingLimits) (store.SendingUsage, error)
	}
}

type delivered struct {
	env  deliver.Envelope
	body string
}

func newFakeDeliverer() *fakeDeliverer {
	return &fakeDeliverer{
		hosted: map[string]bool{"example.test": true},
		users: map[string]int64{
			"alice@example.test": 1,
			"bob@example.test":   2,
			"team@example.test":  1, // an alias of alice, as far as delivery cares
		},
	}
}

func (f *fakeDeliverer) Route(ctx context.Context, a address.Address) (deliver.Route, error) {
	t, err := f.Resolve(ctx, a)
	return deliver.Route{Targets: t}, err
}

func (f *fakeDeliverer) Resolve(_ context.Context, a address.Address) ([]store.Target, error) {
	if a.Key() == f.panicOn {
		panic("resolve exploded")
	}
	if !f.hosted[a.Domain] {
		return nil, deliver.ErrNotHosted
	}
	id, ok := f.users[a.Key()]
	if !ok {
		id, ok = f.users[deliver.BaseKey(a)]
	}
	if !ok {
		return nil, deliver.ErrUnknownUser
	}
	return []store.Target{{AccountID: id, Mailbox: store.Inbox}}, nil
}

// Reaches is the real resolver's (deliver.Deliverer.Reaches) over the accounts and aliases of
// fakeDir, so that the sender policy is tested against the one place that knows aliases.
func (f *fakeDeliverer) Reaches(ctx context.Context, a address.Address, acct store.Account) (bool, error) {
	return deliver.New(&fakeDir{}, slog.New(slog.DiscardHandler)).Reaches(ctx, a, acct)
}

func (f *fakeDeliverer) CheckQuota(context.Context, []store.Target, int64) error { return nil }

func (f *fakeDeliverer) Deliver(ctx context.Context, env deliver.Envelope, body deliver.Body) (store.Delivered, error) {
	if f.entered != nil {
		f.entered <- struct{}{}
	}
	if f.block != nil {
		select {
		case <-f.block:
		case <-ctx.Done():
			return store.Delivered{}, ctx.Err()
		}
	}
	if f.discard {
		return store.Delivered{}, nil
	}
	b, err := io.ReadAll(io.NewSectionReader(body, 0, body.Size()))
	if err != nil {
		return store.Delivered{}, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail != nil {
		return store.Delivered{}, f.fail
	}
	if c := env.Charge; c != nil && f.sending != nil {
		if _, err := f.sending.ChargeSending(ctx, c.AccountID, c.Now, c.Messages, c.Recipients, c.Limits); err != nil {
			return store.Delivered{}, err
		}
	}
	f.msgs = append(f.msgs, delivered{env: env, body: string(b)})
	return store.Delivered{BlobID: int64(len(f.msgs))}, nil
}

func (f *fakeDeliverer) delivered() []delivered {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]delivered(nil), f.msgs...)
}

// fakeAuth knows PLAIN for alice@example.test / secret.
type fakeAuth struct{}

func (fakeAuth) Mechanisms() []string { return []string{"PLAIN", "X-FINAL"} }

func (fakeAuth) NewSASL(_ context.Context, mech string, _ netip.Addr) (auth.SASL, error) {
	switch strings.ToUpper(mech) {
	case "PLAIN":
		return &plainSASL{}, nil
	case "X-FINAL":
		return &finalSASL{}, nil
	}
	return nil, errors.New("unknown mechanism")
}

// finalSASL ends with data for the client, as SCRAM does: "hello" → "server-final".
type finalSASL struct{ step int }

func (f *finalSASL) Next(resp []byte) ([]byte, bool, error) {
	f.step++
	switch {
	case f.step == 1 && resp == nil:
		return []byte("challenge"), false, nil
	case string(resp) == "hello":
		return []byte("server-final"), true, nil
	}
	return nil, false, auth.ErrInvalid
}

func (f *finalSASL) Account() store.Account {
	return store.Account{ID: 1, Address: "alice@example.test"}
}

type plainSASL struct{ acct store.Account }

func (p *plainSASL) Next(resp []byte) ([]byte, bool, error) {
	if resp == nil {
		return []byte{}, false, nil
	}
	parts := strings.Split(string(resp), "\x00")
	if len(parts) != 3 || parts[1] != "alice@example.test" || parts[2] != "secret" {
		return nil, false, auth.ErrInvalid
	}
	p.acct = store.Account{ID: 1, Address: "alice@example.test"}
	return nil, true, nil
}

func (p *plainSASL) Account() store.Account { return p.acct }

// fakeDir is the directory behind fakeDeliverer.Reaches: memStore's accounts, alice (1) and
// bob (2), with an alias delivering to alice through another alias.
type fakeDir struct{ memStore }

func (*fakeDir) Alias(_ context.Context, addr string) (store.Alias, error) {
	switch addr {
	case "team@example.test":
		return store.Alias{Address: addr, Targets: []string{"info@example.test"}}, nil
	case "info@example.test":
		return store.Alias{Address: addr, Targets: []string{"Alice+x@example.test", "bob@example.test"}}, nil
	}
	return store.Alias{}, store.ErrNotFound
}

type testServer struct {
	*Server
	addr string
	fd   *fakeDeliverer
	logs *dialog.Log
}

// startServer runs a server on 127.0.0.1:0 until the test ends.
func startServer(t testing.TB, cfg Config, fd *fakeDeliverer) *testServer {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return serveOn(t, l, cfg, fd)
}

// serveOn runs a server on l until the test ends.
func serveOn(t testing.TB, l net.Listener, cfg Config, fd *fakeDeliverer) *testServer {
	t.Helper()
	if fd == nil {
		fd = newFakeDeliverer()
	}
	if cfg.Hostname == "" {
		cfg.Hostname = "mx.example.test"
	}
	if cfg.ReadTimeout == 0 {
		// Long enough for a test client that a loaded machine keeps waiting: tests of the
		// timeout set their own.
		cfg.ReadTimeout = time.Minute
	}
	logs := &dialog.Log{}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	srv := New(cfg, fd, fakeAuth{}, log)
	done := make(chan error, 1)
	go func() { done <- srv.Serve(l) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return &testServer{Server: srv, addr: l.Addr().String(), fd: fd, logs: logs}
}

var (
	certOnce sync.Once
	testCert tls.Certificate
)

// serverTLS returns a TLS config with a self-signed certificate for mx.example.test.
func serverTLS(t testing.TB) *tls.Config {
	certOnce.Do(func() {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			panic(err)
		}
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(1),
			Subject:      pkix.Name{CommonName: "mx.example.test"},
			DNSNames:     []string{"mx.example.test"},
			NotBefore:    time.Now().Add(-time.Hour),
			NotAfter:     time.Now().Add(time.Hour),
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
		if err != nil {
			panic(err)
		}
		testCert = tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
	})
	return &tls.Config{Certificates: []tls.Certificate{testCert}}
}

func clientTLS() *tls.Config {
	return &tls.Config{InsecureSkipVerify: true, ServerName: "mx.example.test"}
}

// openTx is a transcript that opens a transaction on the MX port: a remote sender, alice as
// the recipient.
const openTx = `
	S: 220
	C: EHLO client
	S: 250
	C: MAIL FROM:<a@elsewhere.example>
	S: 250
	C: RCPT TO:<alice@example.test>
	S: 250
`

// dial connects a transcript client to addr (see dialog.Dialog.Run); STARTTLS trusts any
// certificate.
func dial(t testing.TB, addr string) *dialog.Dialog {
	t.Helper()
	d := dialog.DialTest(t, addr, dialog.SMTP)
	d.TLS = clientTLS()
	return d
}
