package e2e

import (
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"petrel/internal/mailtest"
	"petrel/internal/mailtest/dialog"
)

// Three petrel nodes on one PostgreSQL database (issue 12): mail accepted by one is read on
// another, an IMAP session in IDLE on one wakes for a delivery on another, a flag set on one
// reaches a QRESYNC client of the third, the POP3 maildrop lock holds across them, and
// killing one under SMTP load loses no acknowledged message (nodes_kill_test.go).

// postgresNodes starts n instances sharing one new database.
func postgresNodes(t *testing.T, n int) []*instance {
	t.Helper()
	nodes := make([]*instance, n)
	opts := postgresOptions(t)
	for i := range nodes {
		nodes[i] = startInstance(t, opts)
	}
	return nodes
}

// postgresOptions are the config sections of nodes of one new database: the store, and
// the key file that seals the secrets the database keeps (DKIM keys, pull passwords),
// which every node of a cluster shares as it shares the config.
func postgresOptions(t *testing.T) options {
	t.Helper()
	return options{
		"store": {`backend = "postgres"`, fmt.Sprintf("dsn = %q", mailtest.PostgresDSN(t))},
		"pull":  {fmt.Sprintf("key_file = %q", filepath.Join(t.TempDir(), "pull.key"))},
	}
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

func TestThreeNodesOnPostgres(t *testing.T) {
	t.Parallel()
	nodes := postgresNodes(t, 3)
	a, b, c3 := nodes[0], nodes[1], nodes[2]
	a.addAccount("alice@example.test", "password-alice")
	for i, in := range nodes {
		if code, body := readiness(t, in); code != 200 || body != "ok\n" {
			t.Errorf("node %d: /readyz %d %q, want 200 ok", i, code, body)
		}
	}

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

	// A flag set on A reaches a QRESYNC client of C (RFC 7162 §3.2.5): reselecting with the
	// HIGHESTMODSEQ it knew, it is told about that message's flags and nothing else.
	qc := dialIMAPS(t, c3.IMAPS)
	qc.run(t, "LOGIN alice@example.test password-alice")
	qc.run(t, "ENABLE QRESYNC")
	validity, modseq := selectState(t, qc.run(t, "SELECT INBOX"))
	qc.run(t, "UNSELECT")
	ac := dialIMAPS(t, a.IMAPS)
	ac.run(t, "LOGIN alice@example.test password-alice")
	ac.run(t, "SELECT INBOX")
	ac.run(t, "UID STORE 1 +FLAGS (\\Flagged)")
	lines := qc.run(t, fmt.Sprintf("SELECT INBOX (QRESYNC (%s %s))", validity, modseq))
	var fetched []string
	for _, l := range lines {
		if strings.Contains(l, " FETCH ") {
			fetched = append(fetched, l)
		}
	}
	if len(fetched) != 1 || !strings.HasPrefix(fetched[0], "* 1 FETCH ") || !strings.Contains(fetched[0], "\\Flagged") ||
		!strings.Contains(fetched[0], "UID 1") {
		t.Errorf("QRESYNC on node c after a flag set on node a: FETCH lines %q, want one for UID 1 with \\Flagged", fetched)
	}
}

var (
	uidValidityRe   = regexp.MustCompile(`\[UIDVALIDITY (\d+)\]`)
	highestModSeqRe = regexp.MustCompile(`\[HIGHESTMODSEQ (\d+)\]`)
)

// selectState returns UIDVALIDITY and HIGHESTMODSEQ from the untagged lines of a SELECT.
func selectState(t *testing.T, lines []string) (uidvalidity, modseq string) {
	t.Helper()
	for _, l := range lines {
		if m := uidValidityRe.FindStringSubmatch(l); m != nil {
			uidvalidity = m[1]
		}
		if m := highestModSeqRe.FindStringSubmatch(l); m != nil {
			modseq = m[1]
		}
	}
	if uidvalidity == "" || modseq == "" {
		t.Fatalf("SELECT without UIDVALIDITY or HIGHESTMODSEQ: %q", lines)
	}
	return uidvalidity, modseq
}
