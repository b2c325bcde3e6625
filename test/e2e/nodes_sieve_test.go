package e2e

import (
	"strings"
	"testing"

	"petrel/internal/mailtest/dialog"
)

// TestSieveOnPostgresNodes: with the PostgreSQL store, ManageSieve is served and Sieve runs
// at delivery; a script stored through one node files the mail another node accepts.
func TestSieveOnPostgresNodes(t *testing.T) {
	nodes := postgresNodes(t, 2)
	a, b := nodes[0], nodes[1]
	a.addAccount("alice@example.test", "password-alice")

	// ManageSieve answers on B (RFC 5804 §1.7: capabilities, then OK).
	ms, err := dialog.Dial(b.ManageSieve, dialog.Lines)
	if err != nil {
		t.Fatal(err)
	}
	defer ms.Close()
	ms.Timeout = ioTimeout
	var greeting []string
	for {
		l, err := ms.ReadLine()
		if err != nil {
			t.Fatalf("ManageSieve greeting on node b: %v (after %q)", err, greeting)
		}
		greeting = append(greeting, l)
		if strings.HasPrefix(l, "OK") {
			break
		}
	}
	if !strings.Contains(strings.Join(greeting, "\n"), `"SIEVE"`) {
		t.Fatalf("ManageSieve greeting without SIEVE: %q", greeting)
	}

	script := "require \"fileinto\";\r\nif header :contains \"subject\" \"filed\" { fileinto \"Archive\"; }\r\n"
	a.mustPetrel(script, "sieve", "put", "alice@example.test", "rules")
	a.mustPetrel("", "sieve", "activate", "alice@example.test", "rules")
	if out := b.mustPetrel("", "sieve", "list", "alice@example.test"); !strings.Contains(out, "rules") || !strings.Contains(out, "active") {
		t.Fatalf("sieve list: %q", out)
	}

	mustDeliver(t, b, []string{"alice@example.test"}, testMessage("filed-1", "sender@remote.example", "alice@example.test"))
	mustDeliver(t, b, []string{"alice@example.test"}, testMessage("kept-1", "sender@remote.example", "alice@example.test"))
	c := dialIMAPS(t, a.IMAPS)
	c.run(t, "LOGIN alice@example.test password-alice")
	for box, want := range map[string]string{"Archive": "MESSAGES 1", "INBOX": "MESSAGES 1"} {
		lines := c.run(t, "STATUS "+box+" (MESSAGES)")
		if len(lines) != 1 || !strings.Contains(lines[0], want) {
			t.Errorf("STATUS %s: %q, want %s", box, lines, want)
		}
	}
}
