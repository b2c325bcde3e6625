package outbox

import (
	"fmt"
	"io"
	"net"
	"path/filepath"
	"strings"
	"testing"

	"petrel/internal/client/clientconf"
	"petrel/internal/client/oauth"
	"petrel/internal/mailtest"
)

// TestPostfix submits through a real Postfix submission service (STARTTLS, SASL via
// Dovecot): the server down queues, up delivers in order, a 5xx goes to failed/, -t strips Bcc.
func TestPostfix(t *testing.T) {
	d := mailtest.StartDovecot(t)
	pf := mailtest.StartPostfix(t, d)
	_, port, _ := net.SplitHostPort(pf.Submit)
	src := fmt.Sprintf(`
[accounts.pf]
user = %q
password_env = "UNUSED"
timeout = "10s"
[accounts.pf.smtp]
host = "localhost"
port = %s
ca_file = %q
from = "carol@example.org"
`, d.User, port, pf.CertFile)
	c, err := clientconf.Parse("client.toml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	a := c.Accounts["pf"]
	o, err := Open(filepath.Join(t.TempDir(), "pf"))
	if err != nil {
		t.Fatal(err)
	}
	dial := func() (Sender, error) { return Dial(t.Context(), a, d.Pass) }

	queue(t, o, []string{"bob"}, "Subject: refused\n\nnot fully qualified\n") // 5xx at RCPT
	for i := 0; i < 4; i++ {
		queue(t, o, []string{"dave@example.net"}, fmt.Sprintf("From: carol@example.org\nSubject: n%d\n\nbody %d\n", i, i))
	}
	queue(t, o, []string{"-t"}, "From: carol@example.org\nTo: erin@example.net\nBcc: frank@example.net\nSubject: n4\n\nbody 4\n")
	res, err := o.Flush(dial)
	if err != nil || len(res.Sent) != 5 || len(res.Failed) != 1 || res.Remaining != 0 {
		t.Fatalf("%+v %v", res, err)
	}
	if !strings.Contains(res.Failed[0].Err, "5") {
		t.Fatalf("failed: %+v", res.Failed[0])
	}
	// We submit in queue order; in what order Postfix's queue manager then delivers is its
	// business (it may run deliveries in parallel), so the order is checked on our side and
	// the arrival of each message, once, on Postfix's.
	for i := 1; i < len(res.Sent); i++ {
		if res.Sent[i-1].ID >= res.Sent[i].ID {
			t.Fatalf("sent out of queue order: %s before %s", res.Sent[i-1].ID, res.Sent[i].ID)
		}
	}
	// The -t message goes to two recipients, delivered as two copies (recipient limit 1).
	msgs := pf.Messages(t, 6)
	for i := 0; i < 5; i++ {
		n := 0
		for _, m := range msgs {
			if strings.Contains(m, fmt.Sprintf("Subject: n%d\n", i)) {
				n++
			}
		}
		if want := map[bool]int{true: 2, false: 1}[i == 4]; n != want {
			t.Fatalf("message n%d delivered %d times, want %d", i, n, want)
		}
	}
	for _, m := range msgs {
		if strings.Contains(strings.ToLower(m), "bcc:") || strings.Contains(m, "frank@example.net\n") && strings.Contains(m, "Bcc") {
			t.Fatalf("Bcc leaked: %q", m)
		}
	}
	if _, err := Dial(t.Context(), a, "wrong"); err == nil || !strings.Contains(err.Error(), "AUTH") {
		t.Fatalf("bad password: %v", err)
	}
}

// TestPostfixOAuth submits through Postfix whose SASL goes to Dovecot with an oauth2 passdb
// (token introspection at the test provider), with OAUTHBEARER and XOAUTH2; a token the
// provider forgot is refused, refreshed, and the message goes out.
func TestPostfixOAuth(t *testing.T) {
	prov := mailtest.StartOAuthProvider(t)
	d := mailtest.StartDovecotOAuth(t, prov.URL+"/introspect")
	prov.User = d.User
	pf := mailtest.StartPostfix(t, d)
	_, port, _ := net.SplitHostPort(pf.Submit)
	for _, auth := range []string{"oauthbearer", "xoauth2"} {
		dir := t.TempDir()
		src := fmt.Sprintf(`
outbox = "outbox"
[accounts.pf]
user = %q
timeout = "10s"
[accounts.pf.oauth]
provider = "generic"
client_id = %q
token_url = "%s/token"
device_url = "%s/device"
[accounts.pf.smtp]
host = "localhost"
port = %s
ca_file = %q
auth = %q
from = "carol@example.org"
`, d.User, prov.ClientID, prov.URL, prov.URL, port, pf.CertFile, auth)
		c, err := clientconf.Parse(filepath.Join(dir, "client.toml"), []byte(src))
		if err != nil {
			t.Fatal(err)
		}
		a := c.Accounts["pf"]
		if err := oauth.Login(t.Context(), a.Name, a.OAuth, oauth.LoginOptions{Out: io.Discard}); err != nil {
			t.Fatal(err)
		}
		o, err := Open(filepath.Join(dir, "q"))
		if err != nil {
			t.Fatal(err)
		}
		dial := func() (Sender, error) { return DialAccount(t.Context(), a, nil) }
		queue(t, o, []string{"dave@example.net"}, "From: carol@example.org\nSubject: oauth\n\nbody\n")
		if res, err := o.Flush(dial); err != nil || len(res.Sent) != 1 {
			t.Fatalf("%s: %+v %v", auth, res, err)
		}
		prov.ExpireAll()
		before := len(prov.Refreshed)
		queue(t, o, []string{"dave@example.net"}, "From: carol@example.org\nSubject: oauth 2\n\nbody\n")
		if res, err := o.Flush(dial); err != nil || len(res.Sent) != 1 || len(prov.Refreshed) != before+1 {
			t.Fatalf("%s after the provider forgot the token: %+v %v (%d refreshes)", auth, res, err, len(prov.Refreshed)-before)
		}
	}
}
