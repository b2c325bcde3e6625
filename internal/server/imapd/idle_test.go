package imapd

import (
	"bytes"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"

	"petrel/internal/store"
)

// waitingOnSocket counts the goroutines parked in netconn.WaitReadable: sessions that have
// moved to the buffer-less wait for a command (idle.go).
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

// A session that waited long enough to give back its buffer and move to a fresh goroutine
// continues where it was: logged in, mailbox selected, TLS on.
func TestIdleSessionContinues(t *testing.T) {
	e := newEnv(t, Config{})
	e.deliver(t, "INBOX", msgA)
	d := e.login(t)
	e.run(t, d, `
		C: s EXAMINE INBOX
		S: * FLAGS (\Answered \Flagged \Deleted \Seen \Draft)
		S: * OK [PERMANENTFLAGS ()] Read-only mailbox
		S: * 1 EXISTS
		S: * 0 RECENT
		S: * OK [UNSEEN 1] First unseen
		S: * OK [UIDVALIDITY $INBOX] UIDs valid
		S: * OK [UIDNEXT 2] Predicted next UID
		S: * OK [HIGHESTMODSEQ $$INBOX] Highest
		S: s OK [READ-ONLY] EXAMINE completed
	`)
	for deadline := time.Now().Add(time.Minute); waitingOnSocket() < 1; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the session never moved to the idle wait")
		}
	}
	e.run(t, d, `
		C: f UID FETCH 1 (UID RFC822.SIZE)
		S: * 1 FETCH (UID 1 RFC822.SIZE 149)
		S: f OK UID FETCH completed
	`)
}

// subStore is a Store whose change subscriptions the test feeds; nothing else is called.
type subStore struct {
	Store
	subs chan chan store.Change
}

func (f *subStore) Subscribe(int64) (<-chan store.Change, func()) {
	ch := make(chan store.Change, 4)
	f.subs <- ch
	var once sync.Once
	return ch, func() { once.Do(func() { close(ch) }) }
}

// The IDLE sessions of an account share one subscription: a change wakes the sessions that
// have its mailbox selected, and a subscription the store cuts off wakes them all and is
// replaced at the next watch.
func TestWatchFanOut(t *testing.T) {
	st := &subStore{subs: make(chan chan store.Change, 4)}
	srv := New(Config{}, st, nil, nil)
	wakeA, wakeB := make(chan struct{}, 1), make(chan struct{}, 1)
	stopA := srv.watch(1, 7, func() { wakeA <- struct{}{} })
	stopB := srv.watch(1, 8, func() { wakeB <- struct{}{} })
	ch := <-st.subs
	if len(st.subs) != 0 {
		t.Fatal("two subscriptions for one account")
	}
	ch <- store.Change{AccountID: 1, MailboxID: 7}
	<-wakeA
	srv.mu.Lock() // fanOut notifies under mu: once it is free, the change is fully handled
	srv.mu.Unlock()
	if len(wakeB) != 0 {
		t.Error("a change to mailbox 7 woke the session on mailbox 8")
	}
	close(ch) // cut off
	<-wakeA
	<-wakeB
	srv.mu.Lock()
	if len(srv.watchers) != 0 {
		t.Error("a cut-off watcher is still in use")
	}
	srv.mu.Unlock()
	stopA()
	stopB()
	stop := srv.watch(1, 7, func() {})
	<-st.subs // a fresh subscription
	stop()
	srv.mu.Lock()
	if len(srv.watchers) != 0 {
		t.Error("the last stop left the watcher")
	}
	srv.mu.Unlock()
}

// A session in IDLE waits on its socket without a buffer, is woken there by each change, goes
// back to that wait, and leaves IDLE at DONE.
func TestIdleWaitsWithoutBuffer(t *testing.T) {
	e := newEnv(t, Config{})
	d := e.login(t)
	e.run(t, d, selectEmptyAndIdle)
	for n := 1; n <= 3; n++ {
		waitOnSocket(t)
		e.deliver(t, "INBOX", msgA)
		e.run(t, d, "S: * "+strconv.Itoa(n)+" EXISTS")
	}
	waitOnSocket(t)
	e.run(t, d, `
		C: DONE
		S: i OK IDLE completed
		C: f FETCH 3 (UID)
		S: * 3 FETCH (UID 3)
		S: f OK FETCH completed
	`)
	e.srv.mu.Lock()
	defer e.srv.mu.Unlock()
	if len(e.srv.watchers) != 0 {
		t.Error("the account is still watched after DONE")
	}
}

// IDLE ends with the autologout timer, counted from the IDLE command, changes or not.
func TestIdleTimeout(t *testing.T) {
	// The delivery's EXISTS must come before the timeout: a bound a loaded machine's
	// commit and wake-up stay well within.
	e := newEnv(t, Config{IdleTimeout: 3 * time.Second})
	d := e.login(t)
	e.run(t, d, selectEmptyAndIdle)
	e.deliver(t, "INBOX", msgA)
	e.run(t, d, `
		S: * 1 EXISTS
		S: * BYE Autologout; idle for too long
		CLOSED
	`)
	e.srv.mu.Lock()
	defer e.srv.mu.Unlock()
	for deadline := time.Now().Add(time.Minute); len(e.srv.watchers) != 0; {
		if time.Now().After(deadline) {
			t.Fatal("the account is still watched after the session ended")
		}
		e.srv.mu.Unlock()
		time.Sleep(10 * time.Millisecond)
		e.srv.mu.Lock()
	}
}

// waitOnSocket waits until a session waits on its socket (netconn.WaitReadable).
func waitOnSocket(t *testing.T) {
	t.Helper()
	for deadline := time.Now().Add(time.Minute); waitingOnSocket() < 1; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the session never moved to the buffer-less wait")
		}
	}
}

// selectEmptyAndIdle selects an empty INBOX and enters IDLE.
const selectEmptyAndIdle = `
		C: s SELECT INBOX
		S: * FLAGS (\Answered \Flagged \Deleted \Seen \Draft)
		S: * OK [PERMANENTFLAGS (\Answered \Flagged \Deleted \Seen \Draft \*)] Flags permitted
		S: * 0 EXISTS
		S: * 0 RECENT
		S: * OK [UIDVALIDITY $INBOX] UIDs valid
		S: * OK [UIDNEXT 1] Predicted next UID
		S: * OK [HIGHESTMODSEQ $$INBOX] Highest
		S: s OK [READ-WRITE] SELECT completed
		C: i IDLE
		S: + idling
`
