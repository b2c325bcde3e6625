package smtpd

// Slow clients: every deadline bounds a whole command line or message body, so a client
// that drips bytes, each read well within any per-read timeout, is still cut off, with
// "421 4.4.2". The configured values are short so that the tests run fast; they assert on the
// replies and the closed connection, never on elapsed time.

import (
	"strings"
	"testing"
	"time"

	"petrel/internal/mailtest/dialog"
)

// plainAlice is AUTH PLAIN's initial response for alice@example.test / secret.
const plainAlice = "AGFsaWNlQGV4YW1wbGUudGVzdABzZWNyZXQ="

// beatable is a timeout under test that the steps before the one it must cut off have to
// beat: EHLO and AUTH come whole, but a loaded machine can keep the test's client or the
// session off the CPU for a good part of a second, and an expired read deadline fails a
// read even of bytes already waiting. Long enough for that, short enough for a quick test.
const beatable = 2 * time.Second

// A command line must be complete within ReadTimeout, however its bytes drip.
func TestDripCommandLine(t *testing.T) {
	ts := startServer(t, Config{ReadTimeout: beatable}, nil)
	c := dial(t, ts.addr)
	c.Run(`
		S: 220
		C: EHLO client
		S: 250
	`)
	c.StartDrip(20*time.Millisecond, "NOOP")
	c.Run(`
		S: 421 4.4.2
		CLOSED
	`)
}

// Before AUTH on submission a command line gets LoginIdleTimeout, not ReadTimeout; after
// AUTH it gets ReadTimeout again.
func TestDripBeforeAuth(t *testing.T) {
	cfg := Config{Role: RoleSubmission, AllowInsecureAuth: true, ReadTimeout: time.Minute, LoginIdleTimeout: beatable}
	ts := startServer(t, cfg, nil)
	c := dial(t, ts.addr)
	c.Run(`
		S: 220
		C: EHLO laptop
		S: 250
	`)
	c.StartDrip(20*time.Millisecond, "NOOP")
	c.Run(`
		S: 421 4.4.2
		CLOSED
	`)

	c = dial(t, ts.addr)
	c.Run(`
		S: 220
		C: EHLO laptop
		S: 250
		C: AUTH PLAIN ` + plainAlice + `
		S: 235
	`)
	// Six bytes beatable*2/5 apart: twice LoginIdleTimeout for the line, far within ReadTimeout.
	c.StartDrip(beatable*2/5, "NOOP\r\n")
	c.Run(`
		S: 250
	`)
}

// On submission, AUTH must succeed within LoginTimeout of connecting: complete commands,
// each in time, do not keep an unauthenticated connection open. Authenticated connections
// and the MX port have no such limit.
func TestLoginTimeout(t *testing.T) {
	const login = beatable
	t.Run("unauthenticated", func(t *testing.T) {
		ts := startServer(t, Config{Role: RoleSubmission, AllowInsecureAuth: true, LoginTimeout: login}, nil)
		c := dial(t, ts.addr)
		c.Expect("220")
		c.StartDrip(10*time.Millisecond, "NOOP\r\n")
		c.ExpectUntil("250 ", "421 4.4.2")
		c.ExpectClosed()
	})
	for name, cfg := range map[string]Config{
		"authenticated": {Role: RoleSubmission, AllowInsecureAuth: true, LoginTimeout: login},
		"MX":            {LoginTimeout: login},
	} {
		t.Run(name, func(t *testing.T) {
			ts := startServer(t, cfg, nil)
			start := time.Now()
			c := dial(t, ts.addr)
			c.Expect("220")
			if cfg.Role == RoleSubmission {
				c.Run(`
					C: EHLO laptop
					S: 250
					C: AUTH PLAIN ` + plainAlice + `
					S: 235
				`)
			}
			for time.Since(start) < 3*login {
				c.Run(`
					C: NOOP
					S: 250
				`)
				time.Sleep(10 * time.Millisecond)
			}
		})
	}
}

// startData opens a transaction on the MX port and sends DATA or the given BDAT command.
func startData(t *testing.T, ts *testServer, cmd string) *dialog.Dialog {
	t.Helper()
	c := dial(t, ts.addr)
	c.Run(openTx)
	c.Send(cmd)
	if cmd == "DATA" {
		c.Expect("354")
	}
	return c
}

// A body must keep up with DataMinRate: one dripped byte at a time falls behind and is cut
// off, though every read is quick and ReadTimeout is long.
func TestDataTimeout(t *testing.T) {
	cfg := Config{DataTimeout: 300 * time.Millisecond, DataMinRate: 1000, ReadTimeout: 10 * time.Second}
	for _, cmd := range []string{"DATA", "BDAT 100000 LAST"} {
		t.Run(cmd, func(t *testing.T) {
			ts := startServer(t, cfg, nil)
			c := startData(t, ts, cmd)
			c.StartDrip(20*time.Millisecond, "x")
			c.Run(`
				S: 421 4.4.2
				CLOSED
			`)
			if len(ts.fd.delivered()) != 0 {
				t.Error("dripped message delivered")
			}
		})
	}
}

// A body that keeps up with DataMinRate may take much longer than DataTimeout: the deadline
// grows with what arrives.
func TestDataAtMinRate(t *testing.T) {
	cfg := Config{DataTimeout: time.Second, DataMinRate: 2000, ReadTimeout: 10 * time.Second}
	ts := startServer(t, cfg, nil)
	c := startData(t, ts, "DATA")
	line := strings.Repeat("y", 998) + "\r\n"
	// 25 KB, 1000 bytes every 100ms: 10 KB/s, 2.5s in all.
	c.Raw("Subject: slow but steady\r\n\r\n")
	for range 25 {
		time.Sleep(100 * time.Millisecond)
		c.Raw(line)
	}
	c.Run(`
		C: .
		S: 250
	`)
	if msgs := ts.fd.delivered(); len(msgs) != 1 || !strings.HasSuffix(msgs[0].body, line) {
		t.Errorf("%d deliveries", len(msgs))
	}
}
