package netconn

import (
	"bufio"
	"context"
	"errors"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"
)

// echoSession answers each line with itself until its client hangs up or Shutdown
// interrupts its wait; with stuck set it ignores interrupts, so that only Close ends it.
type echoSession struct {
	srv   *Server[*echoSession]
	conn  net.Conn
	stuck bool
	mu    sync.Mutex
}

func (s *echoSession) Serve() {
	defer s.srv.Done(s)
	defer s.conn.Close()
	r := bufio.NewReader(s.conn)
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			if s.srv.Closing() && !errors.Is(err, net.ErrClosed) {
				s.conn.Write([]byte("bye\n"))
			}
			return
		}
		s.conn.Write([]byte(line))
	}
}

func (s *echoSession) Interrupt() {
	if !s.stuck {
		s.conn.SetReadDeadline(time.Unix(1, 0))
	}
}

func (s *echoSession) Close() error { return s.conn.Close() }

func startEcho(t *testing.T, stuck bool) (*Server[*echoSession], string, chan error) {
	t.Helper()
	srv := NewServer[*echoSession]("echo", slog.New(slog.DiscardHandler))
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() {
		served <- srv.Serve(l, func(c net.Conn) *echoSession { return &echoSession{srv: srv, conn: c, stuck: stuck} })
	}()
	return srv, l.Addr().String(), served
}

func dialEcho(t *testing.T, addr string) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(10 * time.Second))
	r := bufio.NewReader(c)
	c.Write([]byte("hello\n"))
	if l, err := r.ReadString('\n'); l != "hello\n" || err != nil {
		t.Fatalf("echo: %q %v", l, err)
	}
	return c, r
}

// Shutdown interrupts every waiting session, which says goodbye, and Serve returns nil.
func TestServerShutdown(t *testing.T) {
	srv, addr, served := startEcho(t, false)
	_, r1 := dialEcho(t, addr)
	_, r2 := dialEcho(t, addr)
	if n := srv.Sessions(); n != 2 {
		t.Fatalf("%d sessions, want 2", n)
	}
	if err := srv.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, r := range []*bufio.Reader{r1, r2} {
		if l, err := r.ReadString('\n'); l != "bye\n" || err != nil {
			t.Errorf("after shutdown: %q %v", l, err)
		}
	}
	if err := <-served; err != nil {
		t.Errorf("Serve: %v", err)
	}
	if srv.Sessions() != 0 || srv.Context().Err() == nil {
		t.Error("sessions left, or their context not cancelled")
	}
	if _, err := net.Dial("tcp", addr); err == nil {
		t.Error("still accepting after Shutdown")
	}
}

// A session that does not end by itself is closed when Shutdown's context ends.
func TestServerShutdownGivesUp(t *testing.T) {
	srv, addr, _ := startEcho(t, true)
	_, r := dialEcho(t, addr)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := srv.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Shutdown: %v", err)
	}
	if _, err := r.ReadString('\n'); err == nil {
		t.Error("the stuck session's connection is still open")
	}
	srv.Wait()
	if srv.Track(&echoSession{}) {
		t.Error("a session was tracked after Shutdown")
	}
}
