package pop3d

// The AUTHORIZATION state: CAPA, STLS and implicit TLS, USER/PASS and SASL (RFC 1939 §7,
// RFC 2449, RFC 2595, RFC 5034).

import (
	"encoding/base64"
	"io"
	"strings"
	"testing"
	"time"
)

func TestCapa(t *testing.T) {
	e := newEnv(t, Config{AllowPlaintextAuth: true, Expire: "NEVER", LoginDelay: 60})
	c := e.dial(t)
	c.Run(`
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
	again.Run(`
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
	c.Run(`
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
	c.StartTLS()
	c.Run(`
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
		CLOSED`)
	if len(e.au.attempts) != 1 {
		t.Errorf("passwords checked before TLS: %q", e.au.attempts)
	}
}

// Bytes pipelined after STLS were sent in plaintext and must not be taken for commands sent
// under TLS (RFC 2595 §4; CVE-2011-0411).
func TestSTLSInjection(t *testing.T) {
	e := newEnv(t, Config{TLS: testTLSConfig(t)})
	c := e.dial(t)
	c.Run(`S: +OK test.example Petrel POP3 server ready`)
	c.Raw("STLS\r\nUSER alice@example.org\r\n")
	c.Run(`S: +OK begin TLS negotiation`)
	c.StartTLS()
	c.Run(`
		C: PASS secret
		S: -ERR USER first
		C: NOOP
		S: -ERR command not valid in this state`)
}

func TestImplicitTLS(t *testing.T) {
	e := newEnv(t, Config{TLS: testTLSConfig(t), ImplicitTLS: true})
	c := e.dial(t)
	c.StartTLS()
	c.Run(`
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
			c.Run(`S: +OK test.example Petrel POP3 server ready`)
			c.Run(tc.transcript)
		})
	}
}

func TestMaxAuthFailures(t *testing.T) {
	e := newEnv(t, Config{AllowPlaintextAuth: true, MaxAuthFailures: 2})
	c := e.dial(t)
	c.Run(`
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
		CLOSED`)
	e.waitLog(t, "too many authentication failures")
	if logs := e.logs.String(); strings.Contains(logs, "wrong") {
		t.Errorf("log leaks a password or lacks the result:\n%s", logs)
	}
}

// A failed TLS handshake ends the session without a plaintext word on the wire.
func TestTLSHandshakeFailure(t *testing.T) {
	t.Run("STLS", func(t *testing.T) {
		e := newEnv(t, Config{TLS: testTLSConfig(t)})
		c := e.dial(t)
		c.Run(`
			S: +OK test.example Petrel POP3 server ready
			C: STLS
			S: +OK begin TLS negotiation
			C: this is not a client hello`)
		c.NetConn().SetReadDeadline(time.Now().Add(time.Minute))
		rest, _ := io.ReadAll(c.Reader())
		if len(rest) > 0 && rest[0] != 0x15 { // only a TLS alert record may come
			t.Errorf("server sent %q", rest)
		}
		e.waitLog(t, "tls handshake failed")
	})
	t.Run("implicit", func(t *testing.T) {
		e := newEnv(t, Config{TLS: testTLSConfig(t), ImplicitTLS: true})
		c := e.dial(t)
		c.Raw("USER alice@example.org\r\n")
		c.NetConn().SetReadDeadline(time.Now().Add(time.Minute))
		rest, _ := io.ReadAll(c.Reader())
		if len(rest) > 0 && rest[0] != 0x15 {
			t.Errorf("server sent %q", rest)
		}
		e.waitLog(t, "tls handshake failed")
	})
}
