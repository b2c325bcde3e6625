package cli

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"petrel/internal/app"
	"petrel/internal/pull"
	"petrel/internal/store"
	"petrel/internal/store/sqlite"
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

// openPulls opens the store of data beside the CLI.
func openPulls(t *testing.T, data string) *sqlite.Store {
	t.Helper()
	st, err := sqlite.Open(app.StorePath(data), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func TestAccountPullEdit(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	ctx := context.Background()
	if _, err := run(t, data, "secret-password\n", "account", "add", "me@example.test"); err != nil {
		t.Fatal(err)
	}
	if _, err := run(t, data, "outside-password\n", "account", "pull", "add", "me@example.test", "--imap", "imap.example:993",
		"--user", "far", "--keep", "--every", "15m", "--folder", "Lists/Go"); err != nil {
		t.Fatal(err)
	}
	if _, err := run(t, data, "pw\n", "account", "pull", "add", "me@example.test", "--pop3", "pop.example:995", "--user", "p"); err != nil {
		t.Fatal(err)
	}
	// What source 1 pulled before the edits, and a notice of its last poll.
	st := openPulls(t, data)
	if err := st.MarkPulledWith(ctx, []store.PulledMessage{{SourceID: 1, UID: "7/1", Fingerprint: "a"}, {SourceID: 1, UID: "7/2", Fingerprint: "b"}}, time.Now()); err != nil {
		t.Fatal(err)
	}
	claimed, err := st.ClaimPull(ctx, time.Now(), time.Minute)
	if err != nil || claimed.ID != 1 {
		t.Fatal(claimed, err)
	}
	if err := st.FinishPull(ctx, claimed, store.PullOutcome{Polled: time.Now(), NextPoll: time.Now().Add(time.Hour),
		Notice: "UIDVALIDITY of Lists/Go changed from 7 to 8"}); err != nil {
		t.Fatal(err)
	}
	st.Close()
	if out, err := run(t, data, "", "account", "pull", "list", "me@example.test"); err != nil || !strings.Contains(out, "source 1: UIDVALIDITY of Lists/Go changed from 7 to 8") {
		t.Errorf("pull list without the notice: %q, %v", out, err)
	}

	for _, bad := range [][]string{
		{"account", "pull", "edit", "me@example.test"},                                          // no ID
		{"account", "pull", "edit", "me@example.test", "x", "--user", "u"},                      // bad ID
		{"account", "pull", "edit", "me@example.test", "1"},                                     // nothing to change
		{"account", "pull", "edit", "me@example.test", "1", "--pop3", "h:1"},                    // protocol
		{"account", "pull", "edit", "me@example.test", "1", "--imap", "h"},                      // no port
		{"account", "pull", "edit", "me@example.test", "2", "--folder", "X"},                    // folder on POP3
		{"account", "pull", "edit", "me@example.test", "1", "--keep", "--delete"},               // both modes
		{"account", "pull", "edit", "me@example.test", "1", "--every", "30s"},                   // too often
		{"account", "pull", "edit", "me@example.test", "1", "--tls", "sometimes"},               // tls
		{"account", "pull", "edit", "me@example.test", "1", "--user", ""},                       // empty user
		{"account", "pull", "edit", "me@example.test", "1", "--ca-file", "/nonexistent/ca.pem"}, // no CA file
	} {
		if _, err := run(t, data, "", bad...); err == nil {
			t.Errorf("%v succeeded", bad)
		}
	}
	if _, err := run(t, data, "", "account", "pull", "edit", "me@example.test", "9", "--every", "5m"); err == nil || !strings.Contains(err.Error(), "no pull source 9") {
		t.Errorf("editing a missing source: %v", err)
	}

	// Server, user, mode, interval and TLS change; the password is sealed again for them.
	out, err := run(t, data, "", "account", "pull", "edit", "me@example.test", "1", "--imap", "new.example:143", "--user", "far2",
		"--delete", "--every", "5m", "--tls", "starttls")
	if err != nil || !strings.Contains(out, "changed pull source 1 of me@example.test: imap://far2@new.example:143/Lists/Go, due now; 2 pulled messages remembered") {
		t.Fatalf("pull edit: %q, %v", out, err)
	}
	source := func() store.PullSource {
		t.Helper()
		st := openPulls(t, data)
		defer st.Close()
		list, err := st.PullSources(ctx, 1)
		if err != nil || len(list) != 2 {
			t.Fatal(list, err)
		}
		return list[0]
	}
	sealer, err := pull.LoadKey(data+".pull-key", false)
	if err != nil {
		t.Fatal(err)
	}
	src := source()
	if src.Addr != "new.example:143" || src.User != "far2" || src.Keep || src.Every != 5*time.Minute || src.TLS != "starttls" ||
		src.Folder != "Lists/Go" || src.NextPoll.After(time.Now()) {
		t.Errorf("after the edit %+v", src)
	}
	if pw, err := sealer.Open(src.Secret, src.AccountID, src.Protocol, src.Addr, src.User); err != nil || pw != "outside-password" {
		t.Errorf("the password after the edit: %q, %v", pw, err)
	}
	// A new password.
	if _, err := run(t, data, "new-password\n", "account", "pull", "edit", "me@example.test", "1", "--password"); err != nil {
		t.Fatal(err)
	}
	src = source()
	if pw, err := sealer.Open(src.Secret, src.AccountID, src.Protocol, src.Addr, src.User); err != nil || pw != "new-password" {
		t.Errorf("the new password: %q, %v", pw, err)
	}
	// Another folder: the state is kept, retired (the old folder's UIDs name nothing here).
	if out, err := run(t, data, "", "account", "pull", "edit", "me@example.test", "1", "--folder", "INBOX"); err != nil || !strings.Contains(out, "/INBOX, due now; 2 pulled") {
		t.Fatalf("pull edit --folder: %q, %v", out, err)
	}
	st = openPulls(t, data)
	fps, err := st.PulledFingerprints(ctx, 1)
	st.Close()
	if err != nil || len(fps) != 2 || fps[store.RetiredPrefix+"7/1"] != "a" || fps[store.RetiredPrefix+"7/2"] != "b" {
		t.Errorf("state after changing the folder: %v, %v", fps, err)
	}
	// The other source was not touched.
	if out, _ := run(t, data, "", "account", "pull", "list", "me@example.test"); !strings.Contains(out, "pop3://p@pop.example:995") ||
		!strings.Contains(out, "imap://far2@new.example:143/INBOX") {
		t.Errorf("pull list after the edits: %q", out)
	}
}
