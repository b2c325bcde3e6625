package pop3d

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

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
	logs   *lockedBuffer
	writes atomic.Int64 // Write calls the server made on its connections
	served chan error
}

type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// newEnv starts a server with cfg; Hostname defaults to test.example and plaintext is allowed
// unless cfg.TLS is set. The server is shut down when the test ends and must stop cleanly.
func newEnv(t testing.TB, cfg Config) *testEnv {
	t.Helper()
	if cfg.Hostname == "" {
		cfg.Hostname = "test.example"
	}
	e := &testEnv{st: newFakeStore(), logs: &lockedBuffer{}, served: make(chan error, 1)}
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
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
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
	for deadline := time.Now().Add(5 * time.Second); e.st.locked(accountID); {
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
	for deadline := time.Now().Add(5 * time.Second); !strings.Contains(e.logs.String(), want); {
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

// client is a raw POP3 test client.
type client struct {
	t    *testing.T
	conn net.Conn
	r    *bufio.Reader
}

func (e *testEnv) dial(t *testing.T) *client {
	t.Helper()
	conn, err := net.Dial("tcp", e.addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return &client{t: t, conn: conn, r: bufio.NewReader(conn)}
}

func (e *testEnv) dialErr() (net.Conn, error) {
	c, err := net.DialTimeout("tcp", e.addr, time.Second)
	if err == nil {
		c.Close()
	}
	return c, err
}

// startTLS switches the client to TLS on the same connection.
func (c *client) startTLS() {
	c.t.Helper()
	tc := tls.Client(c.conn, &tls.Config{InsecureSkipVerify: true, ServerName: "localhost"})
	tc.SetDeadline(time.Now().Add(5 * time.Second))
	if err := tc.Handshake(); err != nil {
		c.t.Fatalf("TLS handshake: %v", err)
	}
	c.conn = tc
	c.r = bufio.NewReader(tc)
}

func (c *client) send(s string) {
	c.t.Helper()
	c.conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c.conn, s); err != nil {
		c.t.Fatalf("send %q: %v", s, err)
	}
}

// line reads one line, CRLF included; "" at EOF.
func (c *client) line() string {
	c.t.Helper()
	c.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	l, err := c.r.ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		c.t.Fatalf("read: %v (got %q)", err, l)
	}
	return l
}

// run plays a transcript: "C: x" sends x CRLF, "S: x" expects exactly the line x CRLF, and
// "S: <closed>" expects the server to close the connection. Leading tabs are ignored.
func (c *client) run(transcript string) {
	c.t.Helper()
	for _, l := range strings.Split(strings.TrimSpace(transcript), "\n") {
		l = strings.TrimLeft(l, "\t")
		switch {
		case strings.HasPrefix(l, "C: "), l == "C:":
			c.send(strings.TrimPrefix(strings.TrimPrefix(l, "C:"), " ") + "\r\n")
		case l == "S: <closed>":
			c.expectClosed()
		case strings.HasPrefix(l, "S: "), l == "S:":
			want := strings.TrimPrefix(strings.TrimPrefix(l, "S:"), " ") + "\r\n"
			if got := c.line(); got != want {
				c.t.Fatalf("transcript line %q: got %q", want, got)
			}
		default:
			c.t.Fatalf("bad transcript line %q", l)
		}
	}
}

func (c *client) expectClosed() {
	c.t.Helper()
	c.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	rest, err := io.ReadAll(c.r)
	if err != nil && !isReset(err) {
		c.t.Fatalf("waiting for close: %v (read %q)", err, rest)
	}
	if len(rest) > 0 {
		c.t.Fatalf("expected close, got %q", rest)
	}
}

func isReset(err error) bool {
	return strings.Contains(err.Error(), "connection reset")
}

// login runs USER/PASS for alice and checks the greeting and the maildrop reply.
func (c *client) loginAlice() {
	c.t.Helper()
	c.run(`
		S: +OK test.example Petrel POP3 server ready
		C: USER alice@example.org
		S: +OK send PASS
		C: PASS secret
		S: +OK maildrop has 3 messages (134 octets)`)
}
