package e2e

import (
	"strings"
	"testing"
	"time"

	"petrel/internal/mailtest/dialog"
)

// TestSlowClients: with short limits configured, clients that drip bytes (every single write
// quick) are cut off by the rule that bounds the whole: the login cap on submission and POP3,
// the data rate on the MX port. The test waits for the replies and the closed connections.
func TestSlowClients(t *testing.T) {
	t.Parallel()
	in := startInstance(t, options{
		"smtp":   {`data_timeout = "1s"`, "data_min_rate = 1000"},
		"limits": {`login_timeout = "1s"`},
	})
	in.addAccount("drip@example.test", "drip-secret-1")

	t.Run("submission before AUTH", func(t *testing.T) {
		c := dialog.DialTest(t, in.Submission, dialog.SMTP)
		c.Expect("220 ")
		c.StartDrip(20*time.Millisecond, "NOOP\r\n")
		c.ExpectUntil("250 ", "421 4.4.2")
		c.ExpectClosed()
	})

	t.Run("POP3 before login", func(t *testing.T) {
		conn, err := dialog.DialTLS(in.POP3S, dialog.Lines, ca.tlsConfig())
		if err != nil {
			t.Fatal(err)
		}
		c := dialog.Start(t, conn)
		if l := c.Line(); !strings.HasPrefix(l, "+OK") {
			t.Fatalf("greeting %q", l)
		}
		c.StartDrip(20*time.Millisecond, "USER x\r\n")
		c.ExpectUntil("+OK send PASS", "-ERR login timeout, closing connection")
		c.ExpectClosed()
	})

	t.Run("MX DATA", func(t *testing.T) {
		c := dialog.DialTest(t, in.SMTP, dialog.SMTP)
		c.Run(`
			S: 220
			C: EHLO client.example
			S: 250
			C: MAIL FROM:<sender@remote.example>
			S: 250
			C: RCPT TO:<drip@example.test>
			S: 250
			C: DATA
			S: 354
		`)
		c.StartDrip(20*time.Millisecond, "x")
		c.Run(`
			S: 421 4.4.2
			CLOSED
		`)
	})
}
