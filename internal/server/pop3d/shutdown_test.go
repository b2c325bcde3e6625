package pop3d

// Failures and shutdown: a panic, Shutdown with and without a deadline, Serve's errors.

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"petrel/internal/store"
)

func TestPanicRecovery(t *testing.T) {
	e := newEnv(t, Config{AllowPlaintextAuth: true})
	inbox, _ := e.st.Mailbox(context.Background(), e.bob.ID, store.Inbox)
	e.st.panicOn = inbox.ID
	c := e.dial(t)
	c.Run(`
		S: +OK test.example Petrel POP3 server ready
		C: USER bob@example.org
		S: +OK send PASS
		C: PASS hunter2
		S: -ERR [SYS/TEMP] internal error
		CLOSED`)
	e.waitUnlocked(t, e.bob.ID)
	e.waitLog(t, "fake store: boom")
	other := e.dial(t)
	loginAlice(other)
}

// blockingReader blocks its first Read until release is closed.
type blockingReader struct {
	r       io.Reader
	opened  chan struct{}
	release chan struct{}
}

func (b *blockingReader) Read(p []byte) (int, error) {
	select {
	case <-b.opened:
	default:
		close(b.opened)
		<-b.release
	}
	return b.r.Read(p)
}

func TestShutdown(t *testing.T) {
	e := newEnv(t, Config{AllowPlaintextAuth: true})
	blocker := &blockingReader{opened: make(chan struct{}), release: make(chan struct{})}
	bobMsg := e.st.deliver(e.bob.ID, store.Inbox, "Subject: big\r\n\r\n"+strings.Repeat("0123456789\r\n", 1000))
	e.st.openBlob = func(id int64, r io.Reader) io.Reader {
		if id != bobMsg.BlobID {
			return r
		}
		blocker.r = r
		return blocker
	}

	idle := e.dial(t)
	loginAlice(idle)
	idle.Run(`
		C: DELE 1
		S: +OK message 1 deleted`)
	busy := e.dial(t)
	busy.Run(`
		S: +OK test.example Petrel POP3 server ready
		C: USER bob@example.org
		S: +OK send PASS
		C: PASS hunter2
		S: +OK maildrop has 1 messages (12016 octets)`)
	busy.Raw("RETR 1\r\nSTAT\r\n")
	<-blocker.opened

	shut := make(chan error, 1)
	go func() { shut <- e.srv.Shutdown(context.Background()) }()

	// The idle session is told at once and nothing of it is deleted.
	idle.Run(`
		S: -ERR [SYS/TEMP] shutting down
		CLOSED`)
	e.waitUnlocked(t, e.alice.ID)
	if bodies, _ := e.st.contents(e.alice.ID, store.Inbox); len(bodies) != 3 {
		t.Errorf("INBOX has %d messages after shutdown, want 3", len(bodies))
	}
	select {
	case err := <-shut:
		t.Fatalf("Shutdown returned %v while a RETR was running", err)
	case <-time.After(50 * time.Millisecond):
	}
	// The running RETR finishes, then the pipelined STAT is not served.
	close(blocker.release)
	busy.Run(`S: +OK 12016 octets`)
	for n := 0; busy.Line() != "."; n++ {
		if n > 1002 {
			t.Fatal("RETR response does not end")
		}
	}
	busy.Run(`
		S: -ERR [SYS/TEMP] shutting down
		CLOSED`)
	if err := <-shut; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if err := <-e.served; err != nil {
		t.Fatalf("Serve returned %v", err)
	}
	e.served <- nil // for the cleanup
	if _, err := e.dialErr(); err == nil {
		t.Error("dial after Shutdown succeeded")
	}
}

func TestShutdownDeadline(t *testing.T) {
	e := newEnv(t, Config{AllowPlaintextAuth: true})
	blocker := &blockingReader{opened: make(chan struct{}), release: make(chan struct{})}
	defer close(blocker.release)
	e.st.openBlob = func(id int64, r io.Reader) io.Reader { blocker.r = r; return blocker }
	c := e.dial(t)
	loginAlice(c)
	c.Raw("RETR 1\r\n")
	<-blocker.opened

	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := e.srv.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Shutdown = %v, want deadline exceeded", err)
	}
	c.Run(`CLOSED`)
}

func TestServeErrors(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := New(Config{ImplicitTLS: true}, newFakeStore(), &fakeAuth{}, nil)
	if err := srv.Serve(l); err == nil {
		t.Error("Serve with ImplicitTLS and no TLS config returned nil")
	}
	// Serve after Shutdown returns nil at once and closes the listener.
	l, err = net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv = New(Config{}, newFakeStore(), &fakeAuth{}, nil)
	if err := srv.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := srv.Serve(l); err != nil {
		t.Errorf("Serve after Shutdown = %v", err)
	}
	if _, err := net.DialTimeout("tcp", l.Addr().String(), time.Second); err == nil {
		t.Error("listener still open")
	}
}
