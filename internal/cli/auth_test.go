package cli

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

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
