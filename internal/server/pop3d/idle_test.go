package pop3d

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"

	"petrel/internal/mailtest/dialog"
	"petrel/internal/store"
)

// waitingOnSocket counts the goroutines parked in netconn.WaitReadable: sessions that have
// moved to the idle wait (idle.go).
func waitingOnSocket() int {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			return bytes.Count(buf[:n], []byte("netconn.WaitReadable("))
		}
		buf = make([]byte, 2*len(buf))
	}
}

// waitMoved waits until n sessions wait on their socket.
func waitMoved(t *testing.T, n int) {
	t.Helper()
	for deadline := time.Now().Add(time.Minute); waitingOnSocket() < n; {
		if time.Now().After(deadline) {
			t.Fatalf("%d sessions wait on their socket, want %d", waitingOnSocket(), n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// A session that went idle continues where it was: state, pipelining, and idle again.
func TestIdleSessionContinues(t *testing.T) {
	for _, implicit := range []bool{false, true} {
		name := map[bool]string{false: "plaintext", true: "implicit TLS"}[implicit]
		t.Run(name, func(t *testing.T) {
			cfg := Config{AllowPlaintextAuth: true}
			if implicit {
				cfg = Config{TLS: testTLSConfig(t), ImplicitTLS: true}
			}
			e := newEnv(t, cfg)
			c := e.dial(t)
			if implicit {
				c.StartTLS()
			}
			c.Run(`S: +OK test.example Petrel POP3 server ready`)
			waitMoved(t, 1)
			c.Run(`
				C: USER alice@example.org
				S: +OK send PASS
				C: PASS secret
				S: +OK maildrop has 3 messages (134 octets)
				C: DELE 1
				S: +OK message 1 deleted`)
			waitMoved(t, 1)
			c.Raw("STAT\r\nLIST 1\r\nNOOP\r\n")
			c.Run(`
				S: +OK 2 92
				S: -ERR message already deleted
				S: +OK`)
			waitMoved(t, 1)
			c.Run(`
				C: QUIT
				S: +OK bye
				CLOSED`)
			e.waitLog(t, "result=quit")
			if bodies, _ := e.st.contents(e.alice.ID, store.Inbox); len(bodies) != 2 {
				t.Errorf("INBOX has %d messages, want 2", len(bodies))
			}
		})
	}
}

// A TLS record that arrives in pieces after the session moved is read whole.
func TestIdleSessionSplitRecord(t *testing.T) {
	e := newEnv(t, Config{TLS: testTLSConfig(t), ImplicitTLS: true})
	raw, err := net.Dial("tcp", e.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	split := &splitConn{Conn: raw}
	c := pop3Dialog(t, dialog.New(split, dialog.Lines))
	c.StartTLS()
	c.Run(`S: +OK test.example Petrel POP3 server ready`)
	waitMoved(t, 1)
	split.pause = 50 * time.Millisecond // from now on every write goes out in two halves
	c.Run(`
		C: NOOP
		S: -ERR command not valid in this state
		C: QUIT
		S: +OK bye`)
}

// splitConn sends each write in two parts, pause apart.
type splitConn struct {
	net.Conn
	pause time.Duration
}

func (c *splitConn) Write(p []byte) (int, error) {
	if c.pause == 0 || len(p) < 2 {
		return c.Conn.Write(p)
	}
	n, err := c.Conn.Write(p[:len(p)/2])
	if err != nil {
		return n, err
	}
	time.Sleep(c.pause)
	m, err := c.Conn.Write(p[len(p)/2:])
	return n + m, err
}

// RFC 1939 §3: the autologout timer runs on after the move, and the full timeout applies.
func TestIdleTimeoutAfterMove(t *testing.T) {
	const timeout = 400 * time.Millisecond
	e := newEnv(t, Config{AllowPlaintextAuth: true, IdleTimeout: timeout})
	// The server's wait starts after it sent the greeting, so a clock started before the
	// dial is a lower bound whatever the scheduler does; one started after reading the
	// greeting is not (a loaded machine delivered it 13 ms late, and the test failed).
	start := time.Now()
	c := e.dial(t)
	c.Run(`S: +OK test.example Petrel POP3 server ready`)
	waitMoved(t, 1)
	c.Run(`CLOSED`)
	if d := time.Since(start); d < timeout {
		t.Errorf("closed after %v, before the idle timeout %v", d, timeout)
	}
	e.waitLog(t, "result=timeout")
}

// Shutdown reaches a session waiting on its socket as it reaches one waiting in a read.
func TestShutdownAfterMove(t *testing.T) {
	e := newEnv(t, Config{TLS: testTLSConfig(t), ImplicitTLS: true})
	c := e.dial(t)
	c.StartTLS()
	c.Run(`S: +OK test.example Petrel POP3 server ready`)
	waitMoved(t, 1)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := e.srv.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	c.Run(`
		S: -ERR [SYS/TEMP] shutting down
		CLOSED`)
	e.waitLog(t, "result=shutdown")
}

// A connection that does not expose its socket is served as before: a blocking read, on
// the goroutine it has.
func TestIdleWithoutSocket(t *testing.T) {
	st := newFakeStore()
	alice := st.addAccount("alice@example.org", store.POP3Keep)
	st.deliver(alice.ID, store.Inbox, msg1)
	au := &fakeAuth{st: st, passwords: map[string]string{"alice@example.org": "secret"}}
	var logs dialog.Log
	srv := New(Config{Hostname: "test.example", AllowPlaintextAuth: true}, st, au, slog.New(slog.NewTextHandler(&logs, nil)))
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(opaqueListener{l}) }()
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		<-served
	}()
	conn, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	c := pop3Dialog(t, dialog.New(conn, dialog.Lines))
	c.Run(`S: +OK test.example Petrel POP3 server ready`)
	time.Sleep(3 * moveOnAfter)
	if n := waitingOnSocket(); n != 0 {
		t.Errorf("%d sessions wait on a socket they cannot see", n)
	}
	c.Run(`
		C: USER alice@example.org
		S: +OK send PASS
		C: PASS secret
		S: +OK maildrop has 1 messages (42 octets)
		C: QUIT
		S: +OK bye`)
	if strings.Contains(logs.String(), "panic") {
		t.Errorf("log:\n%s", logs.String())
	}
}

// opaqueListener hands out connections that hide their socket (no SyscallConn, no NetConn).
type opaqueListener struct{ net.Listener }

type opaqueConn struct{ net.Conn }

func (l opaqueListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return opaqueConn{c}, nil
}
