package cli

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestAccountPull(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	if _, err := run(t, data, "secret-password\n", "account", "add", "me@example.test"); err != nil {
		t.Fatal(err)
	}
	for _, bad := range [][]string{
		{"account", "pull", "add", "me@example.test", "--user", "u"},                                               // no server
		{"account", "pull", "add", "me@example.test", "--pop3", "h:1", "--imap", "h:2", "--user", "u"},             // both
		{"account", "pull", "add", "me@example.test", "--pop3", "h", "--user", "u"},                                // no port
		{"account", "pull", "add", "me@example.test", "--pop3", "h:1"},                                             // no user
		{"account", "pull", "add", "me@example.test", "--pop3", "h:1", "--user", "u", "--tls", "maybe"},            // tls
		{"account", "pull", "add", "me@example.test", "--pop3", "h:1", "--user", "u", "--every", "10s"},            // too often
		{"account", "pull", "add", "me@example.test", "--pop3", "h:1", "--user", "u", "--folder", "X"},             // folder on POP3
		{"account", "pull", "add", "me@example.test", "--pop3", "h:1", "--user", "u", "--keep", "--delete"},        // both modes
		{"account", "pull", "add", "me@example.test", "--imap", "h:1", "--user", "u", "--ca-file", "/nonexistent"}, // no CA file
		{"account", "pull", "list"},
		{"account", "pull", "remove", "me@example.test", "x"},
	} {
		_, err := run(t, data, "pw\n", bad...)
		switch {
		case err == nil:
			t.Errorf("%v succeeded", bad)
		case !errors.Is(err, ErrUsage) && !strings.Contains(strings.Join(bad, " "), "ca-file"):
			t.Errorf("%v: %v, want a usage error", bad, err)
		}
	}
	if _, err := run(t, data, "pw\n", "account", "pull", "add", "nobody@example.test", "--pop3", "h:1", "--user", "u"); err == nil ||
		!strings.Contains(err.Error(), "no account") {
		t.Errorf("a source for a missing account: %v", err)
	}
	if _, err := run(t, data, "", "account", "pull", "add", "me@example.test", "--pop3", "h:1", "--user", "u"); err == nil {
		t.Error("a source without a password was added")
	}
	out, err := run(t, data, "outside-password\n", "account", "pull", "add", "me@example.test", "--imap", "imap.example:993",
		"--user", "far", "--keep", "--every", "15m", "--folder", "Lists/Go")
	if err != nil || !strings.Contains(out, "added pull source 1 of me@example.test: imap://far@imap.example:993") {
		t.Fatalf("pull add: %q, %v", out, err)
	}
	// The key lives beside the data directory, not in it, and the password is in neither
	// the database nor the key file in clear text.
	key := data + ".pull-key"
	if fi, err := os.Stat(key); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file %s: %v", key, err)
	}
	filepath.Walk(filepath.Dir(data), func(p string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() {
			if b, _ := os.ReadFile(p); strings.Contains(string(b), "outside-password") {
				t.Errorf("%s holds the password in clear text", p)
			}
		}
		return nil
	})
	out, err = run(t, data, "", "account", "pull", "list", "me@example.test")
	if err != nil || !strings.Contains(out, "imap://far@imap.example:993/Lists/Go") || !strings.Contains(out, "keep") ||
		!strings.Contains(out, "15m0s") || !strings.Contains(out, "now") {
		t.Fatalf("pull list: %q, %v", out, err)
	}
	if out, err := run(t, data, "", "account", "pull", "now", "me@example.test", "1"); err != nil || !strings.Contains(out, "due now") {
		t.Errorf("pull now: %q, %v", out, err)
	}
	if _, err := run(t, data, "", "account", "pull", "remove", "me@example.test", "2"); err == nil || !strings.Contains(err.Error(), "no pull source 2") {
		t.Errorf("removing a missing source: %v", err)
	}
	if out, err := run(t, data, "", "account", "pull", "remove", "me@example.test", "1"); err != nil || !strings.Contains(out, "removed") {
		t.Errorf("pull remove: %q, %v", out, err)
	}
	if out, _ := run(t, data, "", "account", "pull", "list", "me@example.test"); !strings.Contains(out, "no pull sources") {
		t.Errorf("pull list after remove: %q", out)
	}
}
