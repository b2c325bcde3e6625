package pop3d

// Slow clients: a command line must be complete within CommandTimeout of its first byte, the
// wait for a command is shorter before login, and a connection must log in within
// LoginTimeout. The configured values are short so that the tests run fast; they assert on
// the replies and the closed connection, never on elapsed time.

import (
	"fmt"
	"testing"
	"time"
)

// beatable is a timeout under test that the steps before the one it must cut off have to
// beat: a login's commands come whole, but a loaded machine can keep the test's client or
// the session off the CPU for a good part of a second, and an expired read deadline fails a
// read even of bytes already waiting. Long enough for that, short enough for a quick test.
const beatable = 2 * time.Second

// A command line must be complete within CommandTimeout of its first byte, however its bytes
// drip and however long the idle timeout is; the client is told why.
func TestCommandTimeout(t *testing.T) {
	for _, login := range []bool{false, true} {
		t.Run(fmt.Sprintf("logged in %v", login), func(t *testing.T) {
			e := newEnv(t, Config{AllowPlaintextAuth: true, CommandTimeout: beatable})
			c := e.dial(t)
			if login {
				loginAlice(c)
			} else {
				c.Run(`S: +OK test.example Petrel POP3 server ready`)
			}
			c.StartDrip(20*time.Millisecond, "NOOP")
			c.Run(`
				S: -ERR command line too slow, closing connection
				CLOSED`)
		})
	}
}

// Before login the wait for a command is LoginIdleTimeout: a client that says nothing is
// logged out, without a response (RFC 1939 §3). After login the wait is IdleTimeout.
func TestLoginIdleTimeout(t *testing.T) {
	const idle = beatable
	e := newEnv(t, Config{AllowPlaintextAuth: true, LoginIdleTimeout: idle})
	c := e.dial(t)
	c.Run(`
		S: +OK test.example Petrel POP3 server ready
		CLOSED`)
	e.waitLog(t, "result=timeout")

	c = e.dial(t)
	loginAlice(c)
	time.Sleep(3 * idle)
	c.Run(`
		C: NOOP
		S: +OK`)
}

// A connection must log in within LoginTimeout: complete commands, each in time, do not keep
// an anonymous connection open. Once logged in there is no such limit.
func TestLoginTimeout(t *testing.T) {
	const login = beatable
	e := newEnv(t, Config{AllowPlaintextAuth: true, LoginTimeout: login})
	c := e.dial(t)
	c.Run(`S: +OK test.example Petrel POP3 server ready`)
	c.StartDrip(5*time.Millisecond, "USER x\r\n")
	c.ExpectUntil("+OK send PASS", "-ERR login timeout, closing connection")
	c.ExpectClosed()
	e.waitLog(t, "result=\"login timeout\"")

	start := time.Now()
	c = e.dial(t)
	loginAlice(c)
	for time.Since(start) < 3*login {
		c.Run(`
			C: NOOP
			S: +OK`)
		time.Sleep(10 * time.Millisecond)
	}
}
