package pop3d

// Command lines: syntax, states, length limits and pipelining (RFC 1939 §3, RFC 2449 §4, §6.6).

import (
	"slices"
	"strings"
	"testing"

	"petrel/internal/mailtest/dialog"
	"petrel/internal/store"
)

func TestBadCommands(t *testing.T) {
	e := newEnv(t, Config{AllowPlaintextAuth: true})
	c := e.dial(t)
	c.Run(`
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
	c.Raw("NO\x00P\r\n")
	c.Run(`S: -ERR syntax error`)
	loginAliceAfterGreeting(c)
	c.Run(`
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

func loginAliceAfterGreeting(c *dialog.Dialog) {
	c.Run(`
		C: USER alice@example.org
		S: +OK send PASS
		C: PASS secret
		S: +OK maildrop has 3 messages (134 octets)`)
}

func TestLineTooLong(t *testing.T) {
	for _, n := range []int{511, 2000} {
		e := newEnv(t, Config{AllowPlaintextAuth: true})
		c := e.dial(t)
		c.Run(`S: +OK test.example Petrel POP3 server ready`)
		c.Raw("NOOP " + strings.Repeat("x", n) + "\r\n")
		c.Run(`
			S: -ERR line too long
			CLOSED`)
	}
	// Exactly at the limit (512 octets with CRLF) is still served.
	e := newEnv(t, Config{AllowPlaintextAuth: true})
	c := e.dial(t)
	c.Run(`S: +OK test.example Petrel POP3 server ready`)
	c.Raw("USER " + strings.Repeat("x", 505) + "\r\n")
	c.Run(`S: +OK send PASS`)
}

// RFC 2449 §6.6: replies to a pipelined batch come in order, and (our rule) in one write.
func TestPipelining(t *testing.T) {
	e := newEnv(t, Config{AllowPlaintextAuth: true})
	c := e.dial(t)
	c.Run(`S: +OK test.example Petrel POP3 server ready`)
	before := e.writes.Load()
	c.Raw("USER alice@example.org\r\nPASS secret\r\nSTAT\r\nLIST 1\r\nUIDL 2\r\nDELE 2\r\n" +
		"RETR 3\r\nFOO\r\nTOP 1 0\r\nSTAT\r\nNOOP\r\nQUIT\r\n")
	c.Run(`
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
		CLOSED`)
	if n := e.writes.Load() - before; n != 1 {
		t.Errorf("pipelined replies took %d writes, want 1", n)
	}
	e.waitUnlocked(t, e.alice.ID)
	if bodies, _ := e.st.contents(e.alice.ID, store.Inbox); !slices.Equal(bodies, []string{msg1, msg3}) {
		t.Errorf("INBOX = %q", bodies)
	}
}
