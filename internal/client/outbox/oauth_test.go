package outbox

import (
	"context"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"testing"

	"petrel/internal/client/clientconf"
	"petrel/internal/client/wire"
	"petrel/internal/mailtest"
)

// TestSendOAuth submits with OAUTHBEARER and XOAUTH2 (token_command), and shows a refused
// token's status; a token refused once is fetched again and the send goes on.
func TestSendOAuth(t *testing.T) {
	s := mailtest.StartOAuth(t, mailtest.ScriptedTokens)
	bob := s.AddAccount(t, "bob@example.org", password)
	s.AddAccount(t, "alice@example.org", password)
	_, port, _ := net.SplitHostPort(s.SubmissionAddr)
	dir := t.TempDir()
	account := func(auth, tokenCommand string) *clientconf.Account {
		src := fmt.Sprintf(`
outbox = %q
[accounts.a]
user = "alice@example.org"
token_command = %q
timeout = "5s"
[accounts.a.smtp]
host = "127.0.0.1"
port = %s
tls = "plain"
allow_plaintext = true
auth = %q
`, dir, tokenCommand, port, auth)
		c, err := clientconf.Parse(filepath.Join(dir, "client.toml"), []byte(src))
		if err != nil {
			t.Fatal(err)
		}
		return c.Accounts["a"]
	}
	n := 0
	for _, auth := range []string{"", "oauthbearer", "xoauth2"} {
		for _, tt := range []struct{ token, want string }{{"good", ""}, {"stale", "token expired"}, {"narrow", "invalid scope"}} {
			a := account(auth, "echo "+tt.token)
			snd, err := DialAccount(context.Background(), a, nil)
			if tt.want != "" {
				var te *wire.TokenError
				if !errors.As(err, &te) || !strings.Contains(err.Error(), tt.want) {
					t.Fatalf("%s/%s: %v, want a refused token saying %q", auth, tt.token, err, tt.want)
				}
				continue
			}
			if err != nil {
				t.Fatalf("%s: %v", auth, err)
			}
			msg := fmt.Sprintf("Subject: oauth %d\r\n\r\nhi\r\n", n)
			if err := snd.Send(Envelope{From: "alice@example.org", To: []string{"bob@example.org"}}, strings.NewReader(msg)); err != nil {
				t.Fatal(err)
			}
			snd.Close()
			n++
		}
	}
	// token_command prints a stale token first, a good one when run again.
	counter := filepath.Join(dir, "n")
	a := account("", fmt.Sprintf("echo x >> %s; if [ $(wc -l < %s) = 1 ]; then echo stale; else echo good; fi", counter, counter))
	snd, err := DialAccount(context.Background(), a, nil)
	if err != nil {
		t.Fatalf("after a refused token: %v", err)
	}
	snd.Close()
	if got := len(s.Inbox(t, bob)); got != n {
		t.Fatalf("bob has %d messages, want %d", got, n)
	}
}
