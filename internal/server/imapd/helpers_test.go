package imapd

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"log/slog"
	"math/big"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"petrel/internal/mail/auth"
	"petrel/internal/mail/message"
	"petrel/internal/mailtest/dialog"
	"petrel/internal/store"
	"petrel/internal/store/sqlite"
)

// testEnv is a running IMAP server on 127.0.0.1:0 over a real sqlite store, with the
// account alice@example.org (password "secret").
type testEnv struct {
	srv    *Server
	st     *sqlite.Store
	addr   string
	alice  store.Account
	tls    *tls.Config // client side: trusts the test certificate
	logs   *dialog.Log
	served chan error
}

const alicePass = "secret"

func newEnv(t testing.TB, cfg Config) *testEnv {
	t.Helper()
	st, err := sqlite.Open(filepath.Join(t.TempDir(), "petrel.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	ctx := context.Background()
	if err := st.AddDomain(ctx, "example.org"); err != nil {
		t.Fatal(err)
	}
	cred, err := auth.NewCredentials(alicePass)
	if err != nil {
		t.Fatal(err)
	}
	alice, err := st.AddAccount(ctx, "alice@example.org", cred)
	if err != nil {
		t.Fatal(err)
	}
	e := &testEnv{st: st, alice: alice, logs: &dialog.Log{}, served: make(chan error, 1)}
	log := slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	if cfg.Hostname == "" {
		cfg.Hostname = "test.example"
	}
	if cfg.TLS == nil && !cfg.AllowPlaintextAuth {
		cfg.TLS = testTLSConfig(t)
	}
	e.tls = &tls.Config{InsecureSkipVerify: true}
	e.srv = New(cfg, st, auth.New(st, auth.Config{FailureDelay: time.Millisecond, MaxFailureDelay: time.Millisecond}, log), log)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e.addr = l.Addr().String()
	go func() { e.served <- e.srv.Serve(l) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := e.srv.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		if err := <-e.served; err != nil {
			t.Errorf("Serve: %v", err)
		}
		if t.Failed() || strings.Contains(e.logs.String(), "panic") {
			t.Logf("server log:\n%s", e.logs)
		}
		if strings.Contains(e.logs.String(), "imap: panic") {
			t.Error("the server panicked")
		}
	})
	return e
}

// deliver puts a message into one of alice's mailboxes, as SMTP delivery does.
func (e *testEnv) deliver(t testing.TB, mailbox, msg string) {
	t.Helper()
	parsed, err := message.ParseAt(strings.NewReader(msg), int64(len(msg)))
	if err != nil {
		t.Fatal(err)
	}
	_, err = e.st.Deliver(context.Background(), &store.Delivery{
		Targets:    []store.Target{{AccountID: e.alice.ID, Mailbox: mailbox}},
		Body:       strings.NewReader(msg),
		Size:       int64(len(msg)),
		Parsed:     parsed,
		ReceivedAt: time.Date(2026, 12, 7, 9, 0, 0, 0, time.UTC),
	})
	if err != nil {
		t.Fatal(err)
	}
}

// dial connects and reads the greeting.
func (e *testEnv) dial(t testing.TB) *dialog.Dialog {
	t.Helper()
	d := dialog.DialTest(t, e.addr, dialog.Lines)
	d.TLS = e.tls
	if g := d.Line(); !strings.HasPrefix(g, "* OK [CAPABILITY IMAP4rev1 ") {
		t.Fatalf("greeting %q", g)
	}
	return d
}

// login connects, starts TLS and logs in as alice.
func (e *testEnv) login(t testing.TB) *dialog.Dialog {
	t.Helper()
	d := e.dial(t)
	d.Run(`
		C: s STARTTLS
		S: s OK Begin TLS negotiation now
		STARTTLS
	`)
	d.Send("l LOGIN alice@example.org " + alicePass)
	if l := d.Line(); !strings.HasPrefix(l, "l OK [CAPABILITY IMAP4rev1 ") {
		t.Fatalf("login: %q", l)
	}
	return d
}

// run plays a transcript (dialog.Dialog.Run) after replacing each "$Name" (a mailbox name
// up to the next "]", ")" or space) with that mailbox's UIDVALIDITY, and each "$$Name" with
// its HIGHESTMODSEQ, both of which the store chooses. A line with such a name is filled in
// after its reply has been read, so a MODSEQ is the one the server answered with.
func (e *testEnv) run(t testing.TB, d *dialog.Dialog, script string) {
	t.Helper()
	for _, line := range strings.Split(script, "\n") {
		trimmed := strings.TrimSpace(line)
		if !strings.HasPrefix(trimmed, "S:") || !strings.Contains(trimmed, "$") {
			d.Run(line)
			continue
		}
		got := d.Line()
		want := strings.TrimPrefix(strings.TrimPrefix(trimmed, "S:"), " ")
		for {
			i := strings.Index(want, "$")
			if i < 0 {
				break
			}
			start := i + 1
			modseq := strings.HasPrefix(want[start:], "$")
			if modseq {
				start++
			}
			end := strings.IndexAny(want[start:], "]) ")
			if end < 0 {
				end = len(want) - start
			}
			mb, err := e.st.Mailbox(context.Background(), e.alice.ID, want[start:start+end])
			if err != nil {
				t.Fatalf("transcript names mailbox %q: %v", want[start:start+end], err)
			}
			v := strconv.FormatUint(uint64(mb.UIDValidity), 10)
			if modseq {
				v = strconv.FormatUint(mb.HighestModSeq, 10)
			}
			want = want[:i] + v + want[start+end:]
		}
		if got != want {
			t.Fatalf("reply %q, want %q", got, want)
		}
	}
}

// testTLSConfig returns a server config with a fresh self-signed certificate for localhost.
func testTLSConfig(t testing.TB) *tls.Config {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "localhost"},
		DNSNames:     []string{"localhost"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}
}
