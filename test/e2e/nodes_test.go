package e2e

import (
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"petrel/internal/mailtest"
	"petrel/internal/mailtest/dialog"
)

// Two petrel nodes on one PostgreSQL database (issue 12): mail accepted by one is read on
// the other, an IMAP session in IDLE on one wakes for a delivery on the other, and the POP3
// maildrop lock holds across them.

// postgresNodes starts two instances sharing one new database.
func postgresNodes(t *testing.T) (a, b *instance) {
	t.Helper()
	store := []string{`backend = "postgres"`, fmt.Sprintf("dsn = %q", mailtest.PostgresDSN(t))}
	a = startInstance(t, options{"store": store})
	b = startInstance(t, options{"store": store})
	return a, b
}

// imapConn is a minimal IMAP client: tagged commands, untagged lines collected.
type imapConn struct {
	*dialog.Conn
	tag int
}

func dialIMAPS(t *testing.T, addr string) *imapConn {
	t.Helper()
	c, err := dialog.DialTLS(addr, dialog.Lines, ca.tlsConfig())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.Timeout = ioTimeout
	if l, err := c.ReadLine(); err != nil || !strings.HasPrefix(l, "* OK") {
		t.Fatalf("IMAP greeting %q, %v", l, err)
	}
	return &imapConn{Conn: c}
}

// run sends a command and returns the untagged lines up to its tagged OK.
func (c *imapConn) run(t *testing.T, cmd string) []string {
	t.Helper()
	c.tag++
	tag := fmt.Sprintf("a%d", c.tag)
	if err := c.WriteLine(tag + " " + cmd); err != nil {
		t.Fatal(err)
	}
	var lines []string
	for {
		l, err := c.ReadLine()
		if err != nil {
			t.Fatalf("%s: %v (after %q)", cmd, err, lines)
		}
		if strings.HasPrefix(l, tag+" ") {
			if !strings.HasPrefix(l, tag+" OK") {
				t.Fatalf("%s: %s", cmd, l)
			}
			return lines
		}
		lines = append(lines, l)
	}
}

var existsRe = regexp.MustCompile(`^\* (\d+) EXISTS$`)

func TestTwoNodesOnPostgres(t *testing.T) {
	a, b := postgresNodes(t)
	a.addAccount("alice@example.test", "password-alice")

	// Delivered on A, read over POP3 on B.
	msg := testMessage("node-a-1", "sender@remote.example", "alice@example.test")
	mustDeliver(t, a, []string{"alice@example.test"}, msg)
	p, _, err := dialPOP3S(b.POP3S)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if err := p.login("alice@example.test", "password-alice"); err != nil {
		t.Fatal(err)
	}
	if n, err := p.stat(); err != nil || n != 1 {
		t.Fatalf("STAT on node b = %d, %v; want 1", n, err)
	}
	if _, err := p.ok("RETR 1"); err != nil {
		t.Fatal(err)
	}
	got, err := p.multiline()
	if err != nil {
		t.Fatal(err)
	}
	checkStored(t, "RETR on node b", got, msg)

	// The maildrop is locked on every node while B's session holds it (RFC 2449 [IN-USE]).
	p2, _, err := dialPOP3S(a.POP3S)
	if err != nil {
		t.Fatal(err)
	}
	defer p2.Close()
	if _, err := p2.ok("USER alice@example.test"); err != nil {
		t.Fatal(err)
	}
	if l, err := p2.cmd("PASS password-alice"); err != nil || !strings.HasPrefix(l, "-ERR [IN-USE]") {
		t.Fatalf("second POP3 session on node a: %q, %v; want -ERR [IN-USE]", l, err)
	}
	if _, err := p.ok("QUIT"); err != nil {
		t.Fatal(err)
	}

	// An IMAP session in IDLE on B wakes for a delivery on A.
	c := dialIMAPS(t, b.IMAPS)
	c.run(t, "LOGIN alice@example.test password-alice")
	c.run(t, "SELECT INBOX")
	if err := c.WriteLine("idle IDLE"); err != nil {
		t.Fatal(err)
	}
	if l, err := c.ReadLine(); err != nil || !strings.HasPrefix(l, "+") {
		t.Fatalf("IDLE: %q, %v", l, err)
	}
	mustDeliver(t, a, []string{"alice@example.test"}, testMessage("node-a-2", "sender@remote.example", "alice@example.test"))
	c.Timeout = 30 * time.Second
	for {
		l, err := c.ReadLine()
		if err != nil {
			t.Fatalf("IDLE on node b did not report the delivery on node a: %v", err)
		}
		if m := existsRe.FindStringSubmatch(l); m != nil && m[1] == "2" {
			break
		}
	}
	c.Timeout = ioTimeout
	if err := c.WriteLine("DONE"); err != nil {
		t.Fatal(err)
	}
	if l, err := c.ReadLine(); err != nil || !strings.HasPrefix(l, "idle OK") {
		t.Fatalf("IDLE end: %q, %v", l, err)
	}
}
