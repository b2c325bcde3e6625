package pop3d

import (
	"context"
	"encoding/base64"
	"errors"
	"io"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"petrel/internal/store"
)

func TestTransaction(t *testing.T) {
	e := newEnv(t, Config{AllowPlaintextAuth: true})
	c := e.dial(t)
	c.loginAlice()
	// RFC 1939 §5 and §7. msg1 needs byte-stuffing (lines starting with "."), msg3 gets a CRLF
	// added before the terminator.
	c.run(`
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
		S: <closed>`)
	e.waitUnlocked(t, e.alice.ID)
	if bodies, _ := e.st.contents(e.alice.ID, store.Inbox); len(bodies) != 3 {
		t.Errorf("INBOX has %d messages after a read-only session, want 3", len(bodies))
	}
}

func TestDeleRset(t *testing.T) {
	e := newEnv(t, Config{AllowPlaintextAuth: true})
	c := e.dial(t)
	c.loginAlice()
	c.run(`
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
		S: <closed>`)
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
			c.loginAlice()
			e.st.mu.Lock()
			a := e.st.accounts[e.alice.ID]
			a.POP3Delete = policy
			e.st.accounts[e.alice.ID] = a
			e.st.mu.Unlock()
			c.run(`
				C: DELE 1
				S: +OK message 1 deleted
				C: DELE 3
				S: +OK message 3 deleted
				C: QUIT
				S: +OK bye
				S: <closed>`)
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
	c.loginAlice()
	c.run(`
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
	c.loginAlice()
	c.run(`
		C: DELE 1
		S: +OK message 1 deleted
		C: QUIT
		S: -ERR [SYS/TEMP] some deleted messages not removed
		S: <closed>`)
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
		c.loginAlice()
		c.run(`
			C: DELE 1
			S: +OK message 1 deleted`)
		c.conn.Close()
		e.waitUnlocked(t, e.alice.ID)
		if bodies, _ := e.st.contents(e.alice.ID, store.Inbox); len(bodies) != 3 {
			t.Errorf("INBOX has %d messages, want 3", len(bodies))
		}
	})
	t.Run("idle timeout", func(t *testing.T) {
		e := newEnv(t, Config{AllowPlaintextAuth: true, IdleTimeout: 200 * time.Millisecond})
		c := e.dial(t)
		c.loginAlice()
		c.run(`
			C: DELE 1
			S: +OK message 1 deleted
			S: <closed>`) // silently (RFC 1939 §3)
		e.waitUnlocked(t, e.alice.ID)
		if bodies, _ := e.st.contents(e.alice.ID, store.Inbox); len(bodies) != 3 {
			t.Errorf("INBOX has %d messages, want 3", len(bodies))
		}
		e.waitLog(t, "result=timeout")
	})
}

// A client that sends part of a line and stalls is cut off after CommandTimeout, even though
// the idle timeout is long, and told why.
func TestCommandTimeout(t *testing.T) {
	e := newEnv(t, Config{AllowPlaintextAuth: true, CommandTimeout: 200 * time.Millisecond})
	c := e.dial(t)
	c.run(`S: +OK test.example Petrel POP3 server ready`)
	c.send("CA")
	c.run(`
		S: -ERR command line too slow, closing connection
		S: <closed>`)
}

func TestInUse(t *testing.T) {
	e := newEnv(t, Config{AllowPlaintextAuth: true})
	first := e.dial(t)
	first.loginAlice()
	second := e.dial(t)
	second.run(`
		S: +OK test.example Petrel POP3 server ready
		C: USER alice@example.org
		S: +OK send PASS
		C: PASS secret
		S: -ERR [IN-USE] maildrop already locked
		C: STAT
		S: -ERR command not valid in this state`)
	first.run(`
		C: QUIT
		S: +OK bye`)
	// The lock is free before the reply to QUIT goes out: a client that reconnects at once
	// must not find its own old session still holding the maildrop.
	if e.st.locked(e.alice.ID) {
		t.Fatal("maildrop still locked when the client read +OK to QUIT")
	}
	second.run(`
		C: USER alice@example.org
		S: +OK send PASS
		C: PASS secret
		S: +OK maildrop has 3 messages (134 octets)`)
}

func TestCapa(t *testing.T) {
	e := newEnv(t, Config{AllowPlaintextAuth: true, Expire: "NEVER", LoginDelay: 60})
	c := e.dial(t)
	c.run(`
		S: +OK test.example Petrel POP3 server ready
		C: CAPA
		S: +OK capability list follows
		S: TOP
		S: UIDL
		S: RESP-CODES
		S: AUTH-RESP-CODE
		S: PIPELINING
		S: USER
		S: SASL PLAIN X-FINAL
		S: EXPIRE NEVER
		S: LOGIN-DELAY 60
		S: IMPLEMENTATION Petrel
		S: .
		C: USER alice@example.org
		S: +OK send PASS
		C: PASS secret
		S: +OK maildrop has 3 messages (134 octets)
		C: CAPA
		S: +OK capability list follows
		S: TOP
		S: UIDL
		S: RESP-CODES
		S: AUTH-RESP-CODE
		S: PIPELINING
		S: EXPIRE NEVER
		S: LOGIN-DELAY 60
		S: IMPLEMENTATION Petrel
		S: .
		C: QUIT
		S: +OK bye`)

	// LOGIN-DELAY is enforced per account (RFC 2449 §8.1.1).
	e.waitUnlocked(t, e.alice.ID)
	again := e.dial(t)
	again.run(`
		S: +OK test.example Petrel POP3 server ready
		C: USER alice@example.org
		S: +OK send PASS
		C: PASS secret
		S: -ERR [LOGIN-DELAY] logged in too recently, try again later
		C: USER bob@example.org
		S: +OK send PASS
		C: PASS hunter2
		S: +OK maildrop has 0 messages (0 octets)`)
	if e.st.locked(e.alice.ID) {
		t.Error("a login refused for LOGIN-DELAY keeps the maildrop locked")
	}
}

func TestPlaintextRefusedBeforeTLS(t *testing.T) {
	e := newEnv(t, Config{TLS: testTLSConfig(t)})
	c := e.dial(t)
	c.run(`
		S: +OK test.example Petrel POP3 server ready
		C: CAPA
		S: +OK capability list follows
		S: TOP
		S: UIDL
		S: RESP-CODES
		S: AUTH-RESP-CODE
		S: PIPELINING
		S: STLS
		S: IMPLEMENTATION Petrel
		S: .
		C: USER alice@example.org
		S: -ERR [AUTH] plaintext authentication needs TLS: use STLS first
		C: PASS secret
		S: -ERR [AUTH] plaintext authentication needs TLS: use STLS first
		C: AUTH PLAIN AGFsaWNlQGV4YW1wbGUub3JnAHNlY3JldA==
		S: -ERR [AUTH] authentication needs TLS: use STLS first
		C: STLS
		S: +OK begin TLS negotiation`)
	c.startTLS()
	c.run(`
		C: CAPA
		S: +OK capability list follows
		S: TOP
		S: UIDL
		S: RESP-CODES
		S: AUTH-RESP-CODE
		S: PIPELINING
		S: USER
		S: SASL PLAIN X-FINAL
		S: IMPLEMENTATION Petrel
		S: .
		C: STLS
		S: -ERR STLS not available
		C: USER alice@example.org
		S: +OK send PASS
		C: PASS secret
		S: +OK maildrop has 3 messages (134 octets)
		C: RETR 2
		S: +OK 58 octets
		S: Subject: two
		S: From: b@example.org
		S:
		S: line1
		S: line2
		S: line3
		S: .
		C: QUIT
		S: +OK bye
		S: <closed>`)
	if len(e.au.attempts) != 1 {
		t.Errorf("passwords checked before TLS: %q", e.au.attempts)
	}
}

// Bytes pipelined after STLS were sent in plaintext and must not be taken for commands sent
// under TLS (RFC 2595 §4; CVE-2011-0411).
func TestSTLSInjection(t *testing.T) {
	e := newEnv(t, Config{TLS: testTLSConfig(t)})
	c := e.dial(t)
	c.run(`S: +OK test.example Petrel POP3 server ready`)
	c.send("STLS\r\nUSER alice@example.org\r\n")
	c.run(`S: +OK begin TLS negotiation`)
	c.startTLS()
	c.run(`
		C: PASS secret
		S: -ERR USER first
		C: NOOP
		S: -ERR command not valid in this state`)
}

func TestImplicitTLS(t *testing.T) {
	e := newEnv(t, Config{TLS: testTLSConfig(t), ImplicitTLS: true})
	c := e.dial(t)
	c.startTLS()
	c.run(`
		S: +OK test.example Petrel POP3 server ready
		C: CAPA
		S: +OK capability list follows
		S: TOP
		S: UIDL
		S: RESP-CODES
		S: AUTH-RESP-CODE
		S: PIPELINING
		S: USER
		S: SASL PLAIN X-FINAL
		S: IMPLEMENTATION Petrel
		S: .
		C: USER alice@example.org
		S: +OK send PASS
		C: PASS secret
		S: +OK maildrop has 3 messages (134 octets)
		C: QUIT
		S: +OK bye`)
}

func TestAuth(t *testing.T) {
	b64 := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
	alice := b64("\x00alice@example.org\x00secret")
	cases := []struct {
		name       string
		transcript string
	}{
		{"list", `
			C: AUTH
			S: +OK
			S: PLAIN
			S: X-FINAL
			S: .`},
		{"initial response", `
			C: AUTH PLAIN ` + alice + `
			S: +OK maildrop has 3 messages (134 octets)`},
		{"continuation", `
			C: auth plain
			S: + 
			C: ` + alice + `
			S: +OK maildrop has 3 messages (134 octets)`},
		{"wrong password", `
			C: AUTH PLAIN ` + b64("\x00alice@example.org\x00wrong") + `
			S: -ERR [AUTH] invalid user name or password
			C: STAT
			S: -ERR command not valid in this state`},
		{"empty initial response", `
			C: AUTH PLAIN =
			S: -ERR [AUTH] invalid user name or password`},
		{"cancel", `
			C: AUTH PLAIN
			S: + 
			C: *
			S: -ERR authentication cancelled
			C: AUTH PLAIN ` + alice + `
			S: +OK maildrop has 3 messages (134 octets)`},
		{"bad base64 initial", `
			C: AUTH PLAIN !!notbase64
			S: -ERR invalid base64 in initial response`},
		{"bad base64 continuation", `
			C: AUTH PLAIN
			S: + 
			C: %%%
			S: -ERR invalid base64 in response
			C: NOOP
			S: -ERR command not valid in this state`},
		{"unknown mechanism", `
			C: AUTH CRAM-MD5
			S: -ERR unsupported authentication mechanism`},
		{"success with data", `
			C: AUTH X-FINAL ` + alice + `
			S: + ` + b64("v=final") + `
			C:
			S: +OK maildrop has 3 messages (134 octets)`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, Config{AllowPlaintextAuth: true})
			c := e.dial(t)
			c.run(`S: +OK test.example Petrel POP3 server ready`)
			c.run(tc.transcript)
		})
	}
}

func TestMaxAuthFailures(t *testing.T) {
	e := newEnv(t, Config{AllowPlaintextAuth: true, MaxAuthFailures: 2})
	c := e.dial(t)
	c.run(`
		S: +OK test.example Petrel POP3 server ready
		C: USER alice@example.org
		S: +OK send PASS
		C: PASS wrong1
		S: -ERR [AUTH] invalid user name or password
		C: PASS wrong2
		S: -ERR USER first
		C: USER alice@example.org
		S: +OK send PASS
		C: PASS wrong3
		S: -ERR [AUTH] invalid user name or password
		S: <closed>`)
	e.waitLog(t, "too many authentication failures")
	if logs := e.logs.String(); strings.Contains(logs, "wrong") {
		t.Errorf("log leaks a password or lacks the result:\n%s", logs)
	}
}

func TestBadCommands(t *testing.T) {
	e := newEnv(t, Config{AllowPlaintextAuth: true})
	c := e.dial(t)
	c.run(`
		S: +OK test.example Petrel POP3 server ready
		C:
		S: -ERR syntax error
		C: HELO
		S: -ERR unknown command
		C: APOP alice@example.org c4c9334bac560ecc979e58001b3e22fb
		S: -ERR unknown command
		C: RETRIEVE 1
		S: -ERR syntax error
		C: STAT
		S: -ERR command not valid in this state
		C: PASS secret
		S: -ERR USER first
		C: USER
		S: -ERR USER needs a name
		C: CAPA now
		S: -ERR CAPA takes no argument`)
	c.send("NO\x00P\r\n")
	c.run(`S: -ERR syntax error`)
	c.loginAliceAfterGreeting()
	c.run(`
		C: RETR
		S: -ERR invalid message number
		C: RETR x
		S: -ERR invalid message number
		C: RETR 0
		S: -ERR no such message
		C: RETR 4
		S: -ERR no such message
		C: RETR -1
		S: -ERR invalid message number
		C: RETR 99999999999999999999
		S: -ERR invalid message number
		C: LIST 1 2
		S: -ERR invalid message number
		C: TOP 1
		S: -ERR usage: TOP msg lines
		C: TOP 1 x
		S: -ERR usage: TOP msg lines
		C: TOP 9 1
		S: -ERR no such message
		C: STAT 1
		S: -ERR STAT takes no argument
		C: USER bob@example.org
		S: -ERR command not valid in this state
		C: STLS
		S: -ERR command not valid in this state
		C: STAT
		S: +OK 3 134`)
}

func (c *client) loginAliceAfterGreeting() {
	c.t.Helper()
	c.run(`
		C: USER alice@example.org
		S: +OK send PASS
		C: PASS secret
		S: +OK maildrop has 3 messages (134 octets)`)
}

func TestLineTooLong(t *testing.T) {
	for _, n := range []int{511, 2000} {
		e := newEnv(t, Config{AllowPlaintextAuth: true})
		c := e.dial(t)
		c.run(`S: +OK test.example Petrel POP3 server ready`)
		c.send("NOOP " + strings.Repeat("x", n) + "\r\n")
		c.run(`
			S: -ERR line too long
			S: <closed>`)
	}
	// Exactly at the limit (512 octets with CRLF) is still served.
	e := newEnv(t, Config{AllowPlaintextAuth: true})
	c := e.dial(t)
	c.run(`S: +OK test.example Petrel POP3 server ready`)
	c.send("USER " + strings.Repeat("x", 505) + "\r\n")
	c.run(`S: +OK send PASS`)
}

// RFC 2449 §6.6: replies to a pipelined batch come in order, and (our rule) in one write.
func TestPipelining(t *testing.T) {
	e := newEnv(t, Config{AllowPlaintextAuth: true})
	c := e.dial(t)
	c.run(`S: +OK test.example Petrel POP3 server ready`)
	before := e.writes.Load()
	c.send("USER alice@example.org\r\nPASS secret\r\nSTAT\r\nLIST 1\r\nUIDL 2\r\nDELE 2\r\n" +
		"RETR 3\r\nFOO\r\nTOP 1 0\r\nSTAT\r\nNOOP\r\nQUIT\r\n")
	c.run(`
		S: +OK send PASS
		S: +OK maildrop has 3 messages (134 octets)
		S: +OK 3 134
		S: +OK 1 42
		S: +OK 2 3ea.2
		S: +OK message 2 deleted
		S: +OK 34 octets
		S: Subject: three
		S:
		S: no final newline
		S: .
		S: -ERR unknown command
		S: +OK top of message follows
		S: Subject: one
		S:
		S: .
		S: +OK 2 76
		S: +OK
		S: +OK bye
		S: <closed>`)
	if n := e.writes.Load() - before; n != 1 {
		t.Errorf("pipelined replies took %d writes, want 1", n)
	}
	e.waitUnlocked(t, e.alice.ID)
	if bodies, _ := e.st.contents(e.alice.ID, store.Inbox); !slices.Equal(bodies, []string{msg1, msg3}) {
		t.Errorf("INBOX = %q", bodies)
	}
}

func TestPanicRecovery(t *testing.T) {
	e := newEnv(t, Config{AllowPlaintextAuth: true})
	inbox, _ := e.st.Mailbox(context.Background(), e.bob.ID, store.Inbox)
	e.st.panicOn = inbox.ID
	c := e.dial(t)
	c.run(`
		S: +OK test.example Petrel POP3 server ready
		C: USER bob@example.org
		S: +OK send PASS
		C: PASS hunter2
		S: -ERR [SYS/TEMP] internal error
		S: <closed>`)
	e.waitUnlocked(t, e.bob.ID)
	e.waitLog(t, "fake store: boom")
	other := e.dial(t)
	other.loginAlice()
}

func TestSessionLog(t *testing.T) {
	e := newEnv(t, Config{AllowPlaintextAuth: true})
	c := e.dial(t)
	c.loginAlice()
	c.run(`
		C: RETR 1
		S: +OK 42 octets`)
	for c.line() != ".\r\n" {
	}
	c.run(`
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
	idle.loginAlice()
	idle.run(`
		C: DELE 1
		S: +OK message 1 deleted`)
	busy := e.dial(t)
	busy.run(`
		S: +OK test.example Petrel POP3 server ready
		C: USER bob@example.org
		S: +OK send PASS
		C: PASS hunter2
		S: +OK maildrop has 1 messages (12016 octets)`)
	busy.send("RETR 1\r\nSTAT\r\n")
	<-blocker.opened

	shut := make(chan error, 1)
	go func() { shut <- e.srv.Shutdown(context.Background()) }()

	// The idle session is told at once and nothing of it is deleted.
	idle.run(`
		S: -ERR [SYS/TEMP] shutting down
		S: <closed>`)
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
	busy.run(`S: +OK 12016 octets`)
	for n := 0; busy.line() != ".\r\n"; n++ {
		if n > 1002 {
			t.Fatal("RETR response does not end")
		}
	}
	busy.run(`
		S: -ERR [SYS/TEMP] shutting down
		S: <closed>`)
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
	c.loginAlice()
	c.send("RETR 1\r\n")
	<-blocker.opened

	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := e.srv.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Shutdown = %v, want deadline exceeded", err)
	}
	c.run(`S: <closed>`)
}

// A failed TLS handshake ends the session without a plaintext word on the wire.
func TestTLSHandshakeFailure(t *testing.T) {
	t.Run("STLS", func(t *testing.T) {
		e := newEnv(t, Config{TLS: testTLSConfig(t)})
		c := e.dial(t)
		c.run(`
			S: +OK test.example Petrel POP3 server ready
			C: STLS
			S: +OK begin TLS negotiation
			C: this is not a client hello`)
		c.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		rest, _ := io.ReadAll(c.r)
		if len(rest) > 0 && rest[0] != 0x15 { // only a TLS alert record may come
			t.Errorf("server sent %q", rest)
		}
		e.waitLog(t, "tls handshake failed")
	})
	t.Run("implicit", func(t *testing.T) {
		e := newEnv(t, Config{TLS: testTLSConfig(t), ImplicitTLS: true})
		c := e.dial(t)
		c.send("USER alice@example.org\r\n")
		c.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		rest, _ := io.ReadAll(c.r)
		if len(rest) > 0 && rest[0] != 0x15 {
			t.Errorf("server sent %q", rest)
		}
		e.waitLog(t, "tls handshake failed")
	})
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
