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
	"errors"
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
	if err != nil {
		s.r.br = nil // the next waitInput or reader sets it again
		if s.z != nil && errors.Is(err, errMoveOn) {
			s.z.release() // found empty by inputBuffered
		}
		return err
	}
	s.reader()
	return nil
}

// commandBuffered reports whether (decompressed) command input is buffered: pipelined
// commands, whose answers may wait to go out with theirs.
func (s *session) commandBuffered() bool {
	if s.z != nil {
		// Not z.buffered: that the inflater may hold more is no reason to hold answers back.
		return s.z.cmd != nil && s.z.cmd.Buffered() > 0
	}
	return s.in.Buffered() > 0
}

// inputBuffered reports whether input is buffered (or, compressed, may be), so that a read
// does not wait.
func (s *session) inputBuffered() bool {
	return s.in.Buffered() > 0 || s.z != nil && s.z.buffered()
}

// reader returns the buffer commands are read from, taking one from the pool if it has none:
// the read buffer, or with COMPRESS the buffer of decompressed input.
func (s *session) reader() *bufio.Reader {
	if s.z != nil {
		s.r.br = s.z.commandReader()
	} else {
		s.r.br = s.in.Reader()
	}
	return s.r.br
}

// releaseReader gives the read buffer back to the pool, dropping whatever it holds (callers
// either found it empty or mean to discard it, as after STARTTLS).
func (s *session) releaseReader() {
	s.in.Release()
	if s.z != nil {
		s.z.release()
	}
	s.r.br = nil
}

// IDLE (RFC 2177) without a buffer or a second goroutine. cmdIdle answers "+ idling" and
// returns errIdling; from then on run calls idleWait instead of reading commands until DONE
// comes. idleWait waits as a session waiting for a command does (Input.Wait: a read buffer
// only for the first moment, then the socket, on a fresh goroutine), so an idle session in
// IDLE costs what any idle session costs. A change to the selected mailbox wakes it through
// its watcher (wakeIdle, called by fanOut): the wake sets idleState.woken and expires the
// read deadline, as Shutdown's interrupt does, and setReadDeadline refuses to set a deadline
// while woken is set, so that no wake-up is lost between two waits. The woken session
// polls (selected.go), so the announcements are the same as at the end of any command.
// Events are a wake-up, not the record: poll reads the state by MODSEQ, so a missed event
// costs nothing but a poll.
//
// The wait is bounded by IdleTimeout from the IDLE command, after which the session ends as
// any idle one does (RFC 9051 §5.4; clients re-issue IDLE well within it, RFC 2177 §3
// suggests every 29 minutes).

// errIdling is not an end: IDLE was accepted and run continues in idleWait.
var errIdling = errors.New("idling")

// errWoken: a store change interrupted the wait (see wakeIdle).
var errWoken = errors.New("idle: woken by a change")

// idleState is what a session in IDLE keeps besides its usual state.
type idleState struct {
	tag      string    // the IDLE command's tag, for its tagged OK after DONE
	deadline time.Time // IdleTimeout after the IDLE command
	stop     func()    // ends the watch
	woken    bool      // a change came; guarded by session.mu
}

func (s *session) cmdIdle(c *Command) (done, error) {
	s.idle = &idleState{tag: c.Tag, deadline: time.Now().Add(s.srv.cfg.IdleTimeout)}
	s.idle.stop = s.srv.watch(s.account.ID, s.selectedID(), s.wakeIdle)
	s.out().str("+ idling\r\n")
	if s.sel != nil {
		if err := s.poll(true); err != nil {
			s.endIdle()
			return done{}, err
		}
	}
	if err := s.deliver(true, ""); err != nil { // NOTIFY (notify.go)
		s.endIdle()
		return done{}, err
	}
	return done{}, errIdling
}

func (s *session) selectedID() int64 {
	if s.sel != nil {
		return s.sel.mb.ID
	}
	return 0
}

// wakeIdle interrupts the IDLE wait because the mailbox changed (or a change may have been
// missed). It runs on fanOut's goroutine.
func (s *session) wakeIdle() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.idle != nil && !s.idle.woken {
		s.idle.woken = true
		s.raw.SetReadDeadline(time.Unix(1, 0))
	}
}

// idleWait waits in IDLE for DONE or a change, and answers either. It returns errMoveOn
// when the session is to continue on a fresh goroutine, and nil once DONE has ended IDLE.
func (s *session) idleWait() error {
	if err := s.flush(); err != nil {
		return err
	}
	var err error
	notified := false // NOTIFY's changes woke the session (notify.go)
	if s.inputBuffered() {
		s.reader() // DONE came with IDLE, or right after it
	} else {
		if !s.notifyArm() {
			return s.idleWoken()
		}
		err = s.waitInput(time.Until(s.idle.deadline), moveOnAfter)
		if errors.Is(err, errMoveOn) {
			return err // still armed
		}
		notified = s.notifyDisarm()
	}
	if err != nil && (errors.Is(err, errWoken) || isTimeout(err)) && (s.takeWake() || notified) {
		return s.idleWoken()
	}
	if err != nil {
		return err
	}
	s.takeWake() // DONE ends IDLE anyway, with a poll; else the deadline below would be refused
	if err := s.commandDeadline(time.Until(s.idle.deadline)); err != nil {
		return err
	}
	if err := s.r.readLine(); err != nil {
		if isTimeout(err) && !s.awaitingCommand() {
			return errCmdTimeout
		}
		return err
	}
	tag := s.idle.tag
	s.endIdle()
	if !strings.EqualFold(string(s.r.line), "DONE") {
		s.out().errorReply(tag, badf("Expected DONE"))
		return nil
	}
	if s.sel != nil {
		if err := s.poll(true); err != nil {
			return err
		}
	}
	s.out().status(tag, "OK", "", "IDLE completed")
	return nil
}

// idleWoken announces what changed: a change woke the session in IDLE.
func (s *session) idleWoken() error {
	// Watch again: the wake-up may mean the watcher was cut off (see fanOut).
	s.idle.stop()
	s.idle.stop = s.srv.watch(s.account.ID, s.selectedID(), s.wakeIdle)
	if s.sel != nil {
		if err := s.poll(true); err != nil {
			return err
		}
	}
	if err := s.deliver(true, ""); err != nil {
		return err
	}
	return s.flush()
}

// takeWake reports whether a change woke the session, and clears the mark.
func (s *session) takeWake() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	woken := s.idle.woken
	s.idle.woken = false
	return woken
}

// endIdle leaves IDLE: no more wake-ups.
func (s *session) endIdle() {
	if s.idle == nil {
		return
	}
	s.idle.stop()
	s.mu.Lock()
	s.idle = nil
	s.mu.Unlock()
}

// watcher shares one store subscription among the IDLE sessions of an account, so that a
// session in IDLE holds a one-slot channel rather than a subscription buffer of its own.
type watcher struct {
	cancel  func()
	waiters map[*waiter]int64 // → the mailbox its session has selected (0: none)
}

// waiter is one session in IDLE: wake is called (under Server.mu) when its mailbox changes;
// or one with NOTIFY: all is called (under Server.mu) with every change of the account.
type waiter struct {
	wake func()
	all  func(c store.Change, ok bool)
}

// watch registers a session in IDLE: wake is called when the mailbox changes, or when a
// change may have been missed, and must not block. stop unregisters it; the account's
// subscription ends with its last waiter.
func (s *Server) watch(accountID, mailboxID int64, wake func()) (stop func()) {
	return s.addWaiter(accountID, mailboxID, &waiter{wake: wake})
}

// watchAll registers a session with NOTIFY (notify.go): all gets every change of the
// account, and ok false once when the subscription was cut off (the session then watches
// again). all must not block.
func (s *Server) watchAll(accountID int64, all func(c store.Change, ok bool)) (stop func()) {
	return s.addWaiter(accountID, 0, &waiter{all: all})
}

func (s *Server) addWaiter(accountID, mailboxID int64, wt *waiter) (stop func()) {
	s.mu.Lock()
	w := s.watchers[accountID]
	if w == nil {
		ch, cancel := s.store.Subscribe(accountID)
		w = &watcher{cancel: cancel, waiters: map[*waiter]int64{}}
		s.watchers[accountID] = w
		go s.fanOut(accountID, w, ch)
	}
	w.waiters[wt] = mailboxID
	s.mu.Unlock()
	return func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		delete(w.waiters, wt)
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
		for wt, mb := range w.waiters {
			switch {
			case wt.all != nil:
				wt.all(c, ok)
			case !ok || mb == c.MailboxID:
				wt.wake()
			}
		}
		s.mu.Unlock()
		if !ok {
			return
		}
	}
}
