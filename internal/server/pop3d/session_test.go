package pop3d

// The TRANSACTION and UPDATE states: listing, retrieving, deleting, the delete policies and
// the maildrop lock (RFC 1939 §5-§8).

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"petrel/internal/store"
)

func TestTransaction(t *testing.T) {
	e := newEnv(t, Config{AllowPlaintextAuth: true})
	c := e.dial(t)
	loginAlice(c)
	// RFC 1939 §5 and §7. msg1 needs byte-stuffing (lines starting with "."), msg3 gets a CRLF
	// added before the terminator.
	c.Run(`
		C: STAT
		S: +OK 3 134
		C: LIST
		S: +OK
		S: 1 42
		S: 2 58
		S: 3 34
		S: .
		C: LIST 2
		S: +OK 2 58
		C: UIDL
		S: +OK
		S: 1 3ea.1
		S: 2 3ea.2
		S: 3 3ea.3
		S: .
		C: UIDL 3
		S: +OK 3 3ea.3
		C: RETR 1
		S: +OK 42 octets
		S: Subject: one
		S:
		S: Hello
		S: ..hidden
		S: ...two
		S: ..
		S: .
		C: retr 3
		S: +OK 34 octets
		S: Subject: three
		S:
		S: no final newline
		S: .
		C: TOP 2 1
		S: +OK top of message follows
		S: Subject: two
		S: From: b@example.org
		S:
		S: line1
		S: .
		C: TOP 2 0
		S: +OK top of message follows
		S: Subject: two
		S: From: b@example.org
		S:
		S: .
		C: TOP 2 99
		S: +OK top of message follows
		S: Subject: two
		S: From: b@example.org
		S:
		S: line1
		S: line2
		S: line3
		S: .
		C: NOOP
		S: +OK
		C: QUIT
		S: +OK bye
		CLOSED`)
	e.waitUnlocked(t, e.alice.ID)
	if bodies, _ := e.st.contents(e.alice.ID, store.Inbox); len(bodies) != 3 {
		t.Errorf("INBOX has %d messages after a read-only session, want 3", len(bodies))
	}
}

func TestDeleRset(t *testing.T) {
	e := newEnv(t, Config{AllowPlaintextAuth: true})
	c := e.dial(t)
	loginAlice(c)
	c.Run(`
		C: DELE 1
		S: +OK message 1 deleted
		C: DELE 1
		S: -ERR message already deleted
		C: RETR 1
		S: -ERR message already deleted
		C: LIST 1
		S: -ERR message already deleted
		C: STAT
		S: +OK 2 92
		C: LIST
		S: +OK
		S: 2 58
		S: 3 34
		S: .
		C: RSET
		S: +OK maildrop has 3 messages (134 octets)
		C: LIST 1
		S: +OK 1 42
		C: QUIT
		S: +OK bye
		CLOSED`)
	e.waitUnlocked(t, e.alice.ID)
	if bodies, _ := e.st.contents(e.alice.ID, store.Inbox); len(bodies) != 3 {
		t.Errorf("INBOX has %d messages after RSET, want 3", len(bodies))
	}
}

func TestDeletePolicies(t *testing.T) {
	for _, policy := range []store.POP3DeletePolicy{store.POP3Delete, store.POP3Keep, store.POP3Archive, ""} {
		t.Run(string(policy), func(t *testing.T) {
			e := newEnv(t, Config{AllowPlaintextAuth: true})
			// The policy is read at QUIT, so changing it after login must still apply.
			c := e.dial(t)
			loginAlice(c)
			e.st.mu.Lock()
			a := e.st.accounts[e.alice.ID]
			a.POP3Delete = policy
			e.st.accounts[e.alice.ID] = a
			e.st.mu.Unlock()
			c.Run(`
				C: DELE 1
				S: +OK message 1 deleted
				C: DELE 3
				S: +OK message 3 deleted
				C: QUIT
				S: +OK bye
				CLOSED`)
			e.waitUnlocked(t, e.alice.ID)

			inbox, flags := e.st.contents(e.alice.ID, store.Inbox)
			archive, _ := e.st.contents(e.alice.ID, store.Archive)
			switch policy {
			case store.POP3Delete, "":
				if !slices.Equal(inbox, []string{msg2}) || len(archive) != 0 {
					t.Errorf("delete: INBOX %q, Archive %q", inbox, archive)
				}
			case store.POP3Keep:
				if len(inbox) != 3 || len(archive) != 0 {
					t.Fatalf("keep: INBOX %q, Archive %q", inbox, archive)
				}
				want := [][]string{{store.FlagSeen}, nil, {store.FlagSeen}}
				for i := range want {
					if !slices.Equal(flags[i], want[i]) {
						t.Errorf("keep: flags of message %d = %q, want %q", i+1, flags[i], want[i])
					}
				}
			case store.POP3Archive:
				if !slices.Equal(inbox, []string{msg2}) || !slices.Equal(archive, []string{msg1, msg3}) {
					t.Errorf("archive: INBOX %q, Archive %q", inbox, archive)
				}
			}
			e.waitLog(t, "deleted=2")
		})
	}
}

func TestArchiveCreatesMissingMailbox(t *testing.T) {
	e := newEnv(t, Config{AllowPlaintextAuth: true})
	e.st.mu.Lock()
	a := e.st.accounts[e.alice.ID]
	a.POP3Delete = store.POP3Archive
	e.st.accounts[e.alice.ID] = a
	delete(e.st.mailboxes, e.st.findLocked(e.alice.ID, store.Archive).ID)
	e.st.mu.Unlock()
	c := e.dial(t)
	loginAlice(c)
	c.Run(`
		C: DELE 2
		S: +OK message 2 deleted
		C: QUIT
		S: +OK bye`)
	e.waitUnlocked(t, e.alice.ID)
	if archive, _ := e.st.contents(e.alice.ID, store.Archive); !slices.Equal(archive, []string{msg2}) {
		t.Errorf("Archive = %q", archive)
	}
}

func TestUpdateFailure(t *testing.T) {
	e := newEnv(t, Config{AllowPlaintextAuth: true})
	e.st.failUpdate = errors.New("disk on fire")
	c := e.dial(t)
	loginAlice(c)
	c.Run(`
		C: DELE 1
		S: +OK message 1 deleted
		C: QUIT
		S: -ERR [SYS/TEMP] some deleted messages not removed
		CLOSED`)
	e.waitUnlocked(t, e.alice.ID) // unlocked even though UPDATE failed
	if bodies, _ := e.st.contents(e.alice.ID, store.Inbox); len(bodies) != 3 {
		t.Errorf("INBOX has %d messages, want 3", len(bodies))
	}
	e.waitLog(t, "disk on fire")
	e.waitLog(t, `result="quit: update failed"`)
}

// A connection that ends without QUIT, or times out, never enters UPDATE (RFC 1939 §6).
func TestNoUpdateWithoutQuit(t *testing.T) {
	t.Run("drop", func(t *testing.T) {
		e := newEnv(t, Config{AllowPlaintextAuth: true})
		c := e.dial(t)
		loginAlice(c)
		c.Run(`
			C: DELE 1
			S: +OK message 1 deleted`)
		c.NetConn().Close()
		e.waitUnlocked(t, e.alice.ID)
		if bodies, _ := e.st.contents(e.alice.ID, store.Inbox); len(bodies) != 3 {
			t.Errorf("INBOX has %d messages, want 3", len(bodies))
		}
	})
	t.Run("idle timeout", func(t *testing.T) {
		e := newEnv(t, Config{AllowPlaintextAuth: true, IdleTimeout: beatable})
		c := e.dial(t)
		loginAlice(c)
		c.Run(`
			C: DELE 1
			S: +OK message 1 deleted
			CLOSED`) // silently (RFC 1939 §3)
		e.waitUnlocked(t, e.alice.ID)
		if bodies, _ := e.st.contents(e.alice.ID, store.Inbox); len(bodies) != 3 {
			t.Errorf("INBOX has %d messages, want 3", len(bodies))
		}
		e.waitLog(t, "result=timeout")
	})
}

func TestInUse(t *testing.T) {
	e := newEnv(t, Config{AllowPlaintextAuth: true})
	first := e.dial(t)
	loginAlice(first)
	second := e.dial(t)
	second.Run(`
		S: +OK test.example Petrel POP3 server ready
		C: USER alice@example.org
		S: +OK send PASS
		C: PASS secret
		S: -ERR [IN-USE] maildrop already locked
		C: STAT
		S: -ERR command not valid in this state`)
	first.Run(`
		C: QUIT
		S: +OK bye`)
	// The lock is free before the reply to QUIT goes out: a client that reconnects at once
	// must not find its own old session still holding the maildrop.
	if e.st.locked(e.alice.ID) {
		t.Fatal("maildrop still locked when the client read +OK to QUIT")
	}
	second.Run(`
		C: USER alice@example.org
		S: +OK send PASS
		C: PASS secret
		S: +OK maildrop has 3 messages (134 octets)`)
}

func TestSessionLog(t *testing.T) {
	e := newEnv(t, Config{AllowPlaintextAuth: true})
	c := e.dial(t)
	loginAlice(c)
	c.Run(`
		C: RETR 1
		S: +OK 42 octets`)
	for c.Line() != "." {
	}
	c.Run(`
		C: QUIT
		S: +OK bye`)
	e.waitLog(t, "result=quit")
	logs := e.logs.String()
	for _, want := range []string{"user=alice@example.org", "retrieved=1", "retrieved_bytes=42", "deleted=0", "result=quit", "remote=127.0.0.1"} {
		if !strings.Contains(logs, want) {
			t.Errorf("session log lacks %q:\n%s", want, logs)
		}
	}
	if strings.Contains(logs, "secret") {
		t.Errorf("log contains the password:\n%s", logs)
	}
}
