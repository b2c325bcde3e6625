package cli

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"petrel/internal/store"
	"petrel/internal/store/sqlite"
)

// TestWebmailSessions: the sessions a running webmail recorded (here written into the
// store directly, as the server's webmail does at login) are listed and revoked from the
// shell; the webmail's own test (TestSessionRevokedInStore) shows a revoked row logs the
// browser out.
func TestWebmailSessions(t *testing.T) {
	data := t.TempDir()
	for _, c := range [][]string{{"domain", "add", "example.org"}, {"account", "add", "alice@example.org"}, {"account", "add", "bob@example.org"}} {
		if out, err := run(t, data, "a-long-password\n", c...); err != nil {
			t.Fatalf("%v: %v %s", c, err, out)
		}
	}
	if out, _ := run(t, data, "", "webmail", "sessions"); !strings.Contains(out, "no webmail sessions") {
		t.Errorf("empty list: %q", out)
	}
	st, err := sqlite.Open(filepath.Join(data, "petrel.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	now := time.Now()
	for i, addr := range []string{"alice@example.org", "alice@example.org", "bob@example.org"} {
		a, err := st.AccountByAddress(ctx, addr)
		if err != nil {
			t.Fatal(err)
		}
		if err := st.AddWebSession(ctx, store.WebSession{ID: "sess" + string(rune('a'+i)), AccountID: a.ID, Created: now, Seen: now, Remote: "192.0.2.7"}); err != nil {
			t.Fatal(err)
		}
	}
	st.Close()
	out, err := run(t, data, "", "webmail", "sessions")
	if err != nil || strings.Count(out, "alice@example.org") != 2 || !strings.Contains(out, "sessc") || !strings.Contains(out, "192.0.2.7") {
		t.Errorf("list: %q %v", out, err)
	}
	for _, step := range []struct {
		arg, want string
	}{
		{"sessc", "revoked 1 "},             // bob's, by id
		{"alice@example.org", "revoked 2 "}, // both of alice's
		{"sessc", ""},                       // gone: an error naming it
		{"nobody@example.org", ""},
		{"--all", "revoked 0 "},
	} {
		out, err := run(t, data, "", "webmail", "revoke", step.arg)
		if step.want == "" {
			if err == nil {
				t.Errorf("revoke %s: succeeded: %q", step.arg, out)
			}
			continue
		}
		if err != nil || !strings.Contains(out, step.want) {
			t.Errorf("revoke %s: %q %v, want %q", step.arg, out, err, step.want)
		}
	}
	if out, _ := run(t, data, "", "webmail", "sessions"); !strings.Contains(out, "no webmail sessions") {
		t.Errorf("after revoking: %q", out)
	}
}
