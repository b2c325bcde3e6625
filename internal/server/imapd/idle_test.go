package imapd

import (
	"bytes"
	"runtime"
	"testing"
	"time"
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
		S: s OK [READ-ONLY] EXAMINE completed
	`)
	for deadline := time.Now().Add(10 * time.Second); waitingOnSocket() < 1; time.Sleep(10 * time.Millisecond) {
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
