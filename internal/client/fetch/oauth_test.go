package fetch

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"slices"
	"testing"

	"petrel/internal/client/clientconf"
	"petrel/internal/client/oauth"
	"petrel/internal/mailtest"
)

// oauthEnv is Petrel's servers accepting OAuth tokens from a test provider, one account with
// mail, and a logged-in client account.
type oauthEnv struct {
	prov *mailtest.OAuthProvider
	srv  *mailtest.OAuthServers
	acct mailtest.Account
}

func newOAuthEnv(t *testing.T, n int) *oauthEnv {
	e := &oauthEnv{prov: mailtest.StartOAuthProvider(t)}
	e.srv = mailtest.StartOAuth(t, e.prov.Check)
	e.acct = e.srv.AddAccount(t, "alice@example.org", password)
	for i := range n {
		e.srv.Deliver(t, e.acct, body(i))
	}
	return e
}

// account is a client account reading the server over proto ("pop3" or "imap") with the
// given auth, logged in through the provider's device flow.
func (e *oauthEnv) account(t *testing.T, proto, auth, archive, mode string) *clientconf.Account {
	t.Helper()
	addr := e.srv.POP3Addr
	if proto == "imap" {
		addr = e.srv.IMAPAddr
	}
	host, port, _ := net.SplitHostPort(addr)
	dir := t.TempDir()
	src := fmt.Sprintf(`
outbox = "outbox"
[accounts.test]
user = "alice@example.org"
timeout = "10s"
[accounts.test.oauth]
provider = "generic"
client_id = %q
token_url = "%s/token"
device_url = "%s/device"
[accounts.test.%s]
host = %q
port = %s
tls = "plain"
allow_plaintext = true
auth = %q
archive = %q
mode = %q
`, e.prov.ClientID, e.prov.URL, e.prov.URL, proto, host, port, auth, archive, mode)
	c, err := clientconf.Parse(filepath.Join(dir, "client.toml"), []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	a := c.Accounts["test"]
	if err := oauth.Login(t.Context(), a.Name, a.OAuth, oauth.LoginOptions{Out: io.Discard}); err != nil {
		t.Fatal(err)
	}
	return a
}

// TestOAuthFetch: POP3 and IMAP with OAUTHBEARER and XOAUTH2; an access token the server no
// longer takes is refreshed and the run goes on; a revoked refresh token stops the run with
// ErrLoginAgain.
func TestOAuthFetch(t *testing.T) {
	for _, proto := range []string{"pop3", "imap"} {
		for _, auth := range []string{"", "oauthbearer", "xoauth2"} {
			t.Run(proto+"/"+auth, func(t *testing.T) {
				t.Parallel()
				e := newOAuthEnv(t, 3)
				archive := filepath.Join(t.TempDir(), "Mail")
				a := e.account(t, proto, auth, archive, "keep")
				res := fetch(t, a, Options{})
				if res.Downloaded != 3 {
					t.Fatalf("downloaded %d, want 3", res.Downloaded)
				}
				// The provider forgets every access token; our stored one still looks
				// valid, so the server's refusal is what makes the run refresh.
				e.prov.ExpireAll()
				e.srv.Deliver(t, e.acct, body(3))
				if res := fetch(t, a, Options{}); res.Downloaded != 1 {
					t.Fatalf("after the refresh: downloaded %d, want 1", res.Downloaded)
				}
				if len(e.prov.Refreshed) != 1 {
					t.Fatalf("%d refreshes, want 1", len(e.prov.Refreshed))
				}
				if got := subjects(t, archive, "maildir"); !slices.Equal(got, want(0, 4)) {
					t.Fatalf("archive %v", got)
				}
				e.prov.Revoke()
				e.prov.ExpireAll()
				_, err := Account(context.Background(), a, Options{})
				if !errors.Is(err, oauth.ErrLoginAgain) {
					t.Fatalf("with a revoked refresh token: %v, want ErrLoginAgain", err)
				}
			})
		}
	}
}

// TestIMAPPetrel: `petrel fetch` with an [imap] account against Petrel's own IMAP server, with
// a password: delete mode empties the folder into the archive; a second run finds nothing.
func TestIMAPPetrel(t *testing.T) {
	e := newOAuthEnv(t, 5)
	_, port, _ := net.SplitHostPort(e.srv.IMAPAddr)
	archive := filepath.Join(t.TempDir(), "Mail")
	src := fmt.Sprintf(`
[accounts.test]
user = "alice@example.org"
password_command = "echo '%s'"
timeout = "10s"
[accounts.test.imap]
host = "127.0.0.1"
port = %s
tls = "plain"
allow_plaintext = true
archive = %q
`, password, port, archive)
	c, err := clientconf.Parse(filepath.Join(t.TempDir(), "client.toml"), []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	a := c.Accounts["test"]
	if res := fetch(t, a, Options{}); res.Downloaded != 5 || res.Deleted != 5 {
		t.Fatalf("first run %+v", res)
	}
	if got := subjects(t, archive, "maildir"); !slices.Equal(got, want(0, 5)) {
		t.Fatalf("archive %v", got)
	}
	if n := len(e.srv.Inbox(t, e.acct)); n != 0 {
		t.Fatalf("%d messages left on the server", n)
	}
	e.srv.Deliver(t, e.acct, body(5))
	if res := fetch(t, a, Options{}); res.Downloaded != 1 || res.OnServer != 1 {
		t.Fatalf("second run %+v", res)
	}
}
