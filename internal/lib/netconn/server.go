package netconn

// The skeleton pop3d and imapd share, after net/http's: Serve accepts on any number of
// listeners with one goroutine per connection, sessions are tracked, and Shutdown stops
// accepting, interrupts every session's wait and closes what is left when its context ends.

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// Session is one served connection as Server sees it.
type Session interface {
	comparable
	// Serve runs the session to its end; its last act is Server.Done.
	Serve()
	// Interrupt wakes a wait for input so that the session notices Closing and says goodbye.
	Interrupt()
	// Close closes the connection at once: Shutdown gave up waiting.
	Close() error
}

// Server tracks the listeners and sessions of one protocol server. The zero value is not
// usable; call NewServer.
type Server[S Session] struct {
	name string // "imap", "pop3": prefixes the log and errors
	log  *slog.Logger

	// ctx is the parent of every session's context; cancel ends it when Shutdown is done or
	// gives up.
	ctx    context.Context
	cancel context.CancelFunc

	closing atomic.Bool // Shutdown was called

	mu        sync.Mutex
	listeners map[net.Listener]struct{}
	sessions  map[S]struct{}
	active    sync.WaitGroup // one per tracked session; Add only under mu while !closing
}

// NewServer returns a Server whose log lines and errors start with name.
func NewServer[S Session](name string, log *slog.Logger) *Server[S] {
	ctx, cancel := context.WithCancel(context.Background())
	return &Server[S]{
		name:      name,
		log:       log,
		ctx:       ctx,
		cancel:    cancel,
		listeners: make(map[net.Listener]struct{}),
		sessions:  make(map[S]struct{}),
	}
}

// Context is the parent of every session's context; it ends when Shutdown returns.
func (s *Server[S]) Context() context.Context { return s.ctx }

// Closing reports whether Shutdown was called. A session checks it under the same lock its
// Interrupt takes before it sets a read deadline, so that an interrupt is never overwritten.
func (s *Server[S]) Closing() bool { return s.closing.Load() }

// Sessions returns the number of sessions being served.
func (s *Server[S]) Sessions() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.sessions)
}

// Serve accepts connections on l until Shutdown, then returns nil; newSession makes the
// session for each, whose Serve runs on a goroutine of its own. Serve closes l.
func (s *Server[S]) Serve(l net.Listener, newSession func(net.Conn) S) error {
	if !s.trackListener(l) {
		l.Close()
		return nil
	}
	defer s.untrackListener(l)

	var backoff time.Duration
	for {
		c, err := l.Accept()
		if err != nil {
			if s.closing.Load() {
				return nil
			}
			if errors.Is(err, net.ErrClosed) {
				return err
			}
			// Temporary failures such as EMFILE: back off like net/http does.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			s.log.Warn(s.name+": accept", "err", err, "retry_in", backoff)
			time.Sleep(backoff)
			continue
		}
		backoff = 0
		sess := newSession(c)
		if !s.trackSession(sess) {
			c.Close()
			return nil
		}
		go sess.Serve()
	}
}

// Shutdown stops accepting and interrupts every session, which ends after the command it
// runs. When ctx ends before all sessions are gone, the remaining connections are closed
// and ctx's error is returned. Either way the sessions' context is cancelled.
func (s *Server[S]) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.closing.Store(true)
	for l := range s.listeners {
		l.Close()
	}
	waiting := make([]S, 0, len(s.sessions))
	for sess := range s.sessions {
		waiting = append(waiting, sess)
	}
	s.mu.Unlock()

	for _, sess := range waiting {
		sess.Interrupt()
	}

	done := make(chan struct{})
	go func() {
		s.active.Wait() // no Add can follow: trackSession refuses once closing is set
		close(done)
	}()
	select {
	case <-done:
		s.cancel()
		return nil
	case <-ctx.Done():
		s.cancel() // aborts store calls and auth delays of the remaining sessions
		s.mu.Lock()
		for sess := range s.sessions {
			sess.Close()
		}
		s.mu.Unlock()
		return ctx.Err()
	}
}

// Track tracks a session made outside Serve (a test on a socket pair), or reports false once
// Shutdown was called; the caller then runs its Serve.
func (s *Server[S]) Track(sess S) bool { return s.trackSession(sess) }

// Wait blocks until every tracked session has ended.
func (s *Server[S]) Wait() { s.active.Wait() }

// Done untracks a session that has ended.
func (s *Server[S]) Done(sess S) {
	s.mu.Lock()
	delete(s.sessions, sess)
	s.mu.Unlock()
	s.active.Done()
}

func (s *Server[S]) trackListener(l net.Listener) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing.Load() {
		return false
	}
	s.listeners[l] = struct{}{}
	return true
}

func (s *Server[S]) untrackListener(l net.Listener) {
	s.mu.Lock()
	delete(s.listeners, l)
	s.mu.Unlock()
}

func (s *Server[S]) trackSession(sess S) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing.Load() {
		return false
	}
	s.sessions[sess] = struct{}{}
	s.active.Add(1)
	return true
}
