package smtpd

// Graceful shutdown: 421 to idle sessions, transactions in flight finish (RFC 5321 §3.8).

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"testing"
	"time"
)

func TestShutdown(t *testing.T) {
	fd := newFakeDeliverer()
	ts := startServer(t, Config{}, fd)

	idle := dial(t, ts.addr)
	idle.Run(`
		S: 220
		C: EHLO idle
		S: 250
	`)
	busy := dial(t, ts.addr)
	busy.Run(`
		S: 220
		C: EHLO busy
		S: 250
		C: MAIL FROM:<a@elsewhere.example>
		S: 250
		C: RCPT TO:<alice@example.test>
		S: 250
	`)
	greeted := dial(t, ts.addr) // no EHLO yet
	greeted.Expect("220")

	done := make(chan error, 1)
	go func() { done <- ts.Shutdown(context.Background()) }()

	idle.Expect("421 4.3.2")
	idle.ExpectClosed()
	greeted.Expect("421 4.3.2")
	greeted.ExpectClosed()

	// The transaction in progress finishes, then the session is told to go.
	busy.Run(`
		C: DATA
		S: 354
		C: finishing
		C: .
		S: 250 2.0.0 OK
		S: 421 4.3.2
		CLOSED
	`)
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Shutdown: %v", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("Shutdown did not return")
	}
	if len(fd.delivered()) != 1 {
		t.Error("transaction in progress was not delivered")
	}
	if _, err := net.Dial("tcp", ts.addr); err == nil {
		t.Error("still accepting connections")
	}
}

func TestShutdownTLS(t *testing.T) {
	ts := startServer(t, Config{TLS: serverTLS(t)}, nil)
	session := dial(t, ts.addr)
	session.Run(`
		S: 220
		C: EHLO client
		S: 250
		C: STARTTLS
		S: 220
		STARTTLS
		C: EHLO client
		S: 250
	`)
	handshaken := dial(t, ts.addr) // TLS is up, but no session yet
	handshaken.Run(`
		S: 220
		C: EHLO client
		S: 250
		C: STARTTLS
		S: 220
		STARTTLS
		C: NOOP
		S: 250
	`)
	if err := ts.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	// Inside TLS our 421 goes through the TLS connection...
	session.Expect("421 4.3.2")
	session.ExpectClosed()
	// ...and where that is not known to be safe, go-smtp's own 421 closes the session.
	handshaken.Expect("421 4.4.2")
	handshaken.ExpectClosed()
}

func TestShutdownDeadline(t *testing.T) {
	fd := newFakeDeliverer()
	fd.block = make(chan struct{})
	fd.entered = make(chan struct{}, 1)
	ts := startServer(t, Config{}, fd)
	c := dial(t, ts.addr)
	c.Run(`
		S: 220
		C: EHLO busy
		S: 250
		C: MAIL FROM:<a@elsewhere.example>
		S: 250
		C: RCPT TO:<alice@example.test>
		S: 250
		C: DATA
		S: 354
		C: stuck
		C: .
	`)
	<-fd.entered
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if err := ts.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Shutdown = %v, want deadline exceeded", err)
	}
	// The connection is closed, maybe after a last reply; nothing was committed.
	for {
		if _, err := c.ReadReply(); err != nil {
			break
		}
	}
	if len(fd.delivered()) != 0 {
		t.Error("unfinished transaction committed")
	}
}

// A Shutdown that comes before Serve has started (a stop right at start, as a SIGTERM may
// be) must still end Serve: the listener it is given is closed, never accepted on.
func TestShutdownBeforeServe(t *testing.T) {
	srv := New(Config{Hostname: "mx.example.test"}, newFakeDeliverer(), nil, slog.New(slog.DiscardHandler))
	if err := srv.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Serve(l); !errors.Is(err, ErrServerClosed) {
		t.Fatalf("Serve after Shutdown: %v", err)
	}
	l.(*net.TCPListener).SetDeadline(time.Now().Add(10 * time.Second)) // fail, not hang, if open
	if _, err := l.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("the listener is still open: %v", err)
	}
}

// Shutdown racing with Serve's start ends Serve, whichever runs first.
func TestShutdownRacesServe(t *testing.T) {
	for range 50 {
		srv := New(Config{Hostname: "mx.example.test"}, newFakeDeliverer(), nil, slog.New(slog.DiscardHandler))
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- srv.Serve(l) }()
		if err := srv.Shutdown(context.Background()); err != nil {
			t.Fatal(err)
		}
		select {
		case err := <-done:
			if err != nil && !errors.Is(err, ErrServerClosed) {
				t.Fatalf("Serve: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Fatal("Serve still accepting after Shutdown returned")
		}
	}
}
