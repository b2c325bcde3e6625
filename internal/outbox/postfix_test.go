package outbox

import (
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"testing"

	"petrel/internal/clientconf"
	"petrel/internal/pop3client/pop3test"
)

// TestPostfix submits through a real Postfix submission service (STARTTLS, SASL via
// Dovecot): the server down queues, up delivers in order, a 5xx goes to failed/, -t strips Bcc.
func TestPostfix(t *testing.T) {
	d := pop3test.StartDovecot(t)
	pf := pop3test.StartPostfix(t, d)
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
	// The -t message goes to two recipients, delivered as two copies (recipient limit 1).
	msgs := pf.Messages(t, 6)
	for i := 0; i < 5; i++ {
		if !strings.Contains(msgs[i], fmt.Sprintf("Subject: n%d\n", i)) {
			t.Fatalf("delivery %d out of order: %q", i, msgs[i])
		}
	}
	for _, m := range msgs[4:] {
		if strings.Contains(strings.ToLower(m), "bcc:") || strings.Contains(m, "frank@example.net\n") && strings.Contains(m, "Bcc") {
			t.Fatalf("Bcc leaked: %q", m)
		}
	}
	if _, err := Dial(t.Context(), a, "wrong"); err == nil || !strings.Contains(err.Error(), "AUTH") {
		t.Fatalf("bad password: %v", err)
	}
}
