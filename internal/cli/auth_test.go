package cli

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"petrel/internal/mailtest"
)

// TestAuthLoginFetch: `petrel auth login` through the device flow, then `petrel fetch` logs in
// with the token; once the provider revoked the login, fetch exits with ExitLogin and says
// what to run.
func TestAuthLoginFetch(t *testing.T) {
	prov := mailtest.StartOAuthProvider(t)
	srv := mailtest.StartOAuth(t, prov.Check)
	acct := srv.AddAccount(t, "alice@example.org", "pw")
	srv.Deliver(t, acct, "Subject: one\r\n\r\nhi\r\n")
	_, port, _ := net.SplitHostPort(srv.IMAPAddr)
	dir := t.TempDir()
	conf := filepath.Join(dir, "client.toml")
	src := fmt.Sprintf(`
outbox = "outbox"
[accounts.gm]
user = "alice@example.org"
[accounts.gm.oauth]
provider = "generic"
client_id = %q
token_url = "%s/token"
device_url = "%s/device"
[accounts.gm.imap]
host = "127.0.0.1"
port = %s
tls = "plain"
allow_plaintext = true
archive = "Mail"
`, prov.ClientID, prov.URL, prov.URL, port)
	if err := os.WriteFile(conf, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	data := t.TempDir()
	out, err := run(t, data, "", "auth", "status", "--config", conf, "gm")
	var ee *ExitError
	if !errors.As(err, &ee) || ee.Code != ExitLogin {
		t.Fatalf("status before login: %v %q", err, out)
	}
	out, err = run(t, data, "", "auth", "login", "--config", conf, "--no-browser", "gm")
	if err != nil || !strings.Contains(out, "WDJB-MJHT") || !strings.Contains(out, "logged in") {
		t.Fatalf("login: %v\n%s", err, out)
	}
	if fi, err := os.Stat(filepath.Join(dir, "tokens", "gm.json")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("token file: %v", err)
	}
	if out, err := run(t, data, "", "auth", "status", "--config", conf, "gm"); err != nil || !strings.Contains(out, "refresh token: true") {
		t.Fatalf("status: %v %q", err, out)
	}
	if out, err := run(t, data, "", "fetch", "--config", conf); err != nil || !strings.Contains(out, "1 downloaded") {
		t.Fatalf("fetch: %v\n%s", err, out)
	}
	prov.Revoke()
	prov.ExpireAll()
	out, err = run(t, data, "", "fetch", "--config", conf)
	if !errors.As(err, &ee) || ee.Code != ExitLogin || !strings.Contains(out, "petrel auth login") {
		t.Fatalf("fetch after revocation: %v\n%s", err, out)
	}
}

// TestFetchIdle: `petrel fetch --idle` stays running and archives a message delivered after
// it started; it stops when its context ends.
func TestFetchIdle(t *testing.T) {
	srv := mailtest.StartOAuth(t, func(string, string) string { return "invalid_token" })
	acct := srv.AddAccount(t, "alice@example.org", "pw")
	_, port, _ := net.SplitHostPort(srv.IMAPAddr)
	dir := t.TempDir()
	conf := filepath.Join(dir, "client.toml")
	src := fmt.Sprintf(`
[accounts.a]
user = "alice@example.org"
password_env = "PETREL_TEST_PW"
[accounts.a.imap]
host = "127.0.0.1"
port = %s
tls = "plain"
allow_plaintext = true
archive = "Mail"
`, port)
	if err := os.WriteFile(conf, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PETREL_TEST_PW", "pw")
	if _, err := run(t, t.TempDir(), "", "fetch", "--config", conf, "--idle", "--dry-run"); !errors.Is(err, ErrUsage) {
		t.Fatalf("--idle --dry-run: %v, want a usage error", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var out, errOut syncBuffer
	done := make(chan error, 1)
	go func() {
		done <- Main(&Env{Ctx: ctx, DataDir: t.TempDir(), Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errOut},
			[]string{"fetch", "--config", conf, "--idle"})
	}()
	srv.Deliver(t, acct, "Subject: pushed\r\n\r\nhi\r\n")
	deadline := time.Now().Add(time.Minute) // generous; polling the archive for the event
	for {
		if strings.Contains(out.String(), "1 downloaded") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("nothing archived; output %q %q", out.String(), errOut.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("fetch --idle: %v\n%s", err, errOut.String())
	}
	if files, _ := filepath.Glob(filepath.Join(dir, "Mail", "new", "*")); len(files) != 1 {
		t.Fatalf("archive holds %d messages, want 1", len(files))
	}
}

// syncBuffer is a bytes.Buffer safe for the command's goroutines and the test.
type syncBuffer = mailtest.SyncBuffer
