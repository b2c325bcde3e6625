package fetch

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"testing"

	"petrel/internal/client/clientconf"
	"petrel/internal/client/oauth"
	"petrel/internal/mailtest"
)

// TestOAuthDovecot: IMAP and POP3 over TLS with OAUTHBEARER and XOAUTH2 against Dovecot's oauth2
// passdb, which checks each token at the test provider's introspection endpoint: a token the
// provider forgot is refused by Dovecot, refreshed, and the run goes on; a revoked login
// stops with ErrLoginAgain.
func TestOAuthDovecot(t *testing.T) {
	mailtest.RequireBinary(t, mailtest.IMAPBinary)
	prov := mailtest.StartOAuthProvider(t)
	d := mailtest.StartDovecotOAuth(t, prov.URL+"/introspect")
	prov.User = d.User
	for i, tt := range []struct{ proto, auth string }{
		{"imap", "oauthbearer"}, {"imap", "xoauth2"}, {"pop3", "oauthbearer"}, {"pop3", "xoauth2"},
	} {
		t.Run(tt.proto+"/"+tt.auth, func(t *testing.T) {
			archive := filepath.Join(t.TempDir(), "Mail")
			addr := d.IMAPSAddr
			if tt.proto == "pop3" {
				addr = d.POP3SAddr
			}
			_, port, _ := net.SplitHostPort(addr)
			src := fmt.Sprintf(`
outbox = "outbox"
[accounts.test]
user = %q
timeout = "10s"
[accounts.test.oauth]
provider = "generic"
client_id = %q
token_url = "%s/token"
device_url = "%s/device"
[accounts.test.%s]
host = "localhost"
port = %s
ca_file = %q
auth = %q
archive = %q
mode = "keep"
`, d.User, prov.ClientID, prov.URL, prov.URL, tt.proto, port, d.CertFile, tt.auth, archive)
			c, err := clientconf.Parse(filepath.Join(t.TempDir(), "client.toml"), []byte(src))
			if err != nil {
				t.Fatal(err)
			}
			a := c.Accounts["test"]
			if err := oauth.Login(t.Context(), a.Name, a.OAuth, oauth.LoginOptions{Out: io.Discard}); err != nil {
				t.Fatal(err)
			}
			d.Deliver(t, i, body(i))
			fetch(t, a, Options{})
			if n, want := len(maildirContents(t, archive)), d.Count(t); n != want || n != i+1 {
				t.Fatalf("%d messages archived, %d on the server, want %d", n, want, i+1)
			}
			prov.ExpireAll()
			before := len(prov.Refreshed)
			fetch(t, a, Options{})
			if len(prov.Refreshed) != before+1 {
				t.Fatal("no refresh after Dovecot refused the forgotten token")
			}
			prov.Revoke()
			prov.ExpireAll()
			if _, err := Account(context.Background(), a, Options{}); !errors.Is(err, oauth.ErrLoginAgain) {
				t.Fatalf("revoked: %v", err)
			}
		})
	}
}
