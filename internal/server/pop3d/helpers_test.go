package pop3d

import (
	"context"
	"crypto/tls"
	"log/slog"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"petrel/internal/mailtest/dialog"
	"petrel/internal/store"
)

// Test messages. msg1 has lines that need byte-stuffing; msg3 does not end with CRLF.
const (
	msg1 = "Subject: one\r\n\r\nHello\r\n.hidden\r\n..two\r\n.\r\n"
	msg2 = "Subject: two\r\nFrom: b@example.org\r\n\r\nline1\r\nline2\r\nline3\r\n"
	msg3 = "Subject: three\r\n\r\nno final newline"
)

// testEnv is a running server with a fake store holding alice (msg1..msg3 in INBOX) and bob
// (an empty INBOX).
type testEnv struct {
	srv    *Server
	st     *fakeStore
	au     *fakeAuth
	addr   string
	alice  store.Account
	bob    store.Account
	logs   *dialog.Log
	writes atomic.Int64 // Write calls the server made on its connections
	served chan error
}

// newEnv starts a server with cfg; Hostname defaults to test.example and plaintext is allowed
// unless cfg.TLS is set. The server is shut down when the test ends and must stop cleanly.
func newEnv(t testing.TB, cfg Config) *testEnv {
	t.Helper()
	if cfg.Hostname == "" {
		cfg.Hostname = "test.example"
	}
	e := &testEnv{st: newFakeStore(), logs: &dialog.Log{}, served: make(chan error, 1)}
	e.alice = e.st.addAccount("alice@example.org", store.POP3Delete)
	e.bob = e.st.addAccount("bob@example.org", store.POP3Delete)
	for _, m := range []string{msg1, msg2, msg3} {
		e.st.deliver(e.alice.ID, store.Inbox, m)
	}
	e.au = &fakeAuth{st: e.st, passwords: map[string]string{
		"alice@example.org": "secret",
		"bob@example.org":   "hunter2",
	}}
	log := slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	e.srv = New(cfg, e.st, e.au, log)

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e.addr = l.Addr().String()
	go func() { e.served <- e.srv.Serve(&countingListener{Listener: l, writes: &e.writes}) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := e.srv.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		if err := <-e.served; err != nil {
			t.Errorf("Serve: %v", err)
		}
		if t.Failed() {
			t.Logf("server log:\n%s", e.logs)
		}
	})
	return e
}

// waitUnlocked waits until the session holding the account's maildrop has ended.
func (e *testEnv) waitUnlocked(t *testing.T, accountID int64) {
	t.Helper()
	for deadline := time.Now().Add(time.Minute); e.st.locked(accountID); {
		if time.Now().After(deadline) {
			t.Fatal("maildrop still locked")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// waitLog waits until the server log contains want (the session line is written after the
// connection is closed and the maildrop unlocked).
func (e *testEnv) waitLog(t *testing.T, want string) {
	t.Helper()
	for deadline := time.Now().Add(time.Minute); !strings.Contains(e.logs.String(), want); {
		if time.Now().After(deadline) {
			t.Fatalf("log lacks %q:\n%s", want, e.logs)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// countingListener counts the writes made on accepted connections, so tests can check that
// pipelined replies go out in one write.
type countingListener struct {
	net.Listener
	writes *atomic.Int64
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &countingConn{Conn: c, writes: l.writes}, nil
}

type countingConn struct {
	net.Conn
	writes *atomic.Int64
}

func (c *countingConn) Write(p []byte) (int, error) {
	c.writes.Add(1)
	return c.Conn.Write(p)
}

// NetConn lets the server wait for input on the socket, as with connlimit's connections.
func (c *countingConn) NetConn() net.Conn { return c.Conn }

// dial connects a transcript client to the server (see dialog.Dialog.Run); STLS trusts any
// certificate.
func (e *testEnv) dial(t *testing.T) *dialog.Dialog {
	t.Helper()
	return pop3Dialog(t, dialog.New(e.dialConn(t), dialog.Lines))
}

// pop3Dialog binds c to t for POP3 transcripts.
func pop3Dialog(t *testing.T, c *dialog.Conn) *dialog.Dialog {
	d := dialog.Start(t, c)
	d.TLS = &tls.Config{InsecureSkipVerify: true, ServerName: "localhost"}
	return d
}

func (e *testEnv) dialConn(t *testing.T) net.Conn {
	t.Helper()
	conn, err := net.Dial("tcp", e.addr)
	if err != nil {
		t.Fatal(err)
	}
	return conn
}

func (e *testEnv) dialErr() (net.Conn, error) {
	c, err := net.DialTimeout("tcp", e.addr, time.Second)
	if err == nil {
		c.Close()
	}
	return c, err
}

// loginAlice runs USER/PASS for alice and checks the greeting and the maildrop reply.
func loginAlice(c *dialog.Dialog) {
	c.Run(`
		S: +OK test.example Petrel POP3 server ready
		C: USER alice@example.org
		S: +OK send PASS
		C: PASS secret
		S: +OK maildrop has 3 messages (134 octets)`)
}
