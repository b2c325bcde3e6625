package imapd

// What a session waiting for a command costs: as in pop3d. A session that has had no input
// for moveOnAfter gives its read buffer back to the pool, waits for the socket to become
// readable instead of inside a read, and continues on a fresh goroutine whose small stack
// is all it keeps (netconn.Input has the reasoning). The path from serve's start to that
// wait (run, waitCommand, waitInput, Input.Wait) must stay shallow: each frame on it counts
// against the fresh goroutine's 2 KB stack.
//
// IDLE (RFC 2177) waits differently, since store changes must wake it too: see cmdIdle.

import (
	"bufio"
	"strings"
	"time"

	"petrel/internal/store"
)

// moveOnAfter is how long a session waits for its next command on the goroutine that ran the
// last one before it continues on a fresh one.
const moveOnAfter = 100 * time.Millisecond

// waitInput waits up to wait for the first byte of the next command (netconn.Input.Wait): on
// return without error the command reader has its buffer; on errMoveOn the session continues
// on a fresh goroutine and calls waitInput again.
func (s *session) waitInput(wait, moveAfter time.Duration) error {
	err := s.in.Wait(wait, moveAfter, s)
	if err == errMoveOn {
		s.r.br = nil
		return err
	}
	s.reader()
	return err
}

// reader returns the session's read buffer, taking one from the pool if it has none.
func (s *session) reader() *bufio.Reader {
	s.r.br = s.in.Reader()
	return s.r.br
}

// releaseReader gives the read buffer back to the pool, dropping whatever it holds (callers
// either found it empty or mean to discard it, as after STARTTLS).
func (s *session) releaseReader() {
	s.in.Release()
	s.r.br = nil
}

// cmdIdle waits for DONE while announcing changes as they happen (RFC 2177). A change to
// the selected mailbox wakes it (watch) and it polls (selected.go), so the announcements are
// the same as at the end of any command. Events are a wake-up, not the record: poll reads
// the state by MODSEQ, so a missed event costs nothing but a poll.
//
// The wait is bounded by IdleTimeout, after which the session ends as any idle one does
// (RFC 9051 §5.4; clients re-issue IDLE well within it, RFC 2177 §3 suggests every 29
// minutes).
//
// Left for later: an IDLE session holds its read buffer and two goroutines while it waits,
// not the buffer-less wait of waitInput (issue 10 asks for under 24 KB per idle connection).
func (s *session) cmdIdle(c *Command) (done, error) {
	mailboxID := int64(0)
	if s.sel != nil {
		mailboxID = s.sel.mb.ID
	}
	wake, stop := s.srv.watch(s.account.ID, mailboxID)
	defer func() { stop() }()
	s.out().str("+ idling\r\n")
	if s.sel != nil {
		if err := s.poll(true); err != nil {
			return done{}, err
		}
	}
	if err := s.flush(); err != nil {
		return done{}, err
	}
	s.reader()
	if err := s.setReadDeadline(s.srv.cfg.IdleTimeout); err != nil {
		return done{}, err
	}
	lineErr := make(chan error, 1)
	go func() { lineErr <- s.r.readLine() }()
	for {
		select {
		case err := <-lineErr:
			if err != nil {
				return done{}, err
			}
			if !strings.EqualFold(string(s.r.line), "DONE") {
				return done{}, badf("Expected DONE")
			}
			return done{}, nil
		case <-wake:
			// Watch again: the wake-up may mean the watcher was cut off (see fanOut).
			stop()
			wake, stop = s.srv.watch(s.account.ID, mailboxID)
			if s.sel != nil {
				if err := s.poll(true); err != nil {
					s.raw.Close() // ends the read goroutine
					<-lineErr
					return done{}, err
				}
			}
			if err := s.flush(); err != nil {
				s.raw.Close()
				<-lineErr
				return done{}, err
			}
		}
	}
}

// watcher shares one store subscription among the IDLE sessions of an account, so that a
// session in IDLE holds a one-slot channel rather than a subscription buffer of its own.
type watcher struct {
	cancel  func()
	waiters map[chan struct{}]int64 // wake-up channel → the mailbox its session has selected (0: none)
}

// watch registers a session in IDLE: wake gets a value when the mailbox changes, or when a
// change may have been missed. stop unregisters it; the account's subscription ends with its
// last waiter.
func (s *Server) watch(accountID, mailboxID int64) (wake chan struct{}, stop func()) {
	wake = make(chan struct{}, 1)
	s.mu.Lock()
	w := s.watchers[accountID]
	if w == nil {
		ch, cancel := s.store.Subscribe(accountID)
		w = &watcher{cancel: cancel, waiters: map[chan struct{}]int64{}}
		s.watchers[accountID] = w
		go s.fanOut(accountID, w, ch)
	}
	w.waiters[wake] = mailboxID
	s.mu.Unlock()
	return wake, func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		delete(w.waiters, wake)
		if len(w.waiters) == 0 && s.watchers[accountID] == w {
			delete(s.watchers, accountID)
			w.cancel() // closes ch: fanOut returns
		}
	}
}

// fanOut passes an account's changes on to the waiters whose mailbox they concern. When the
// store cuts the subscription off (a burst the buffer could not hold, or the store closing),
// it wakes every waiter and retires: each polls and watches again with a fresh subscription.
func (s *Server) fanOut(accountID int64, w *watcher, ch <-chan store.Change) {
	for {
		c, ok := <-ch
		s.mu.Lock()
		if s.watchers[accountID] != w {
			s.mu.Unlock()
			return
		}
		if !ok {
			delete(s.watchers, accountID)
		}
		for wake, mb := range w.waiters {
			if !ok || mb == c.MailboxID {
				select {
				case wake <- struct{}{}:
				default: // already woken
				}
			}
		}
		s.mu.Unlock()
		if !ok {
			return
		}
	}
}
