package smtpd

import (
	"strings"
	"testing"
)

// TestSubmissionRelay: an authenticated submission queues remote recipients with their DSN
// parameters, in the same delivery as the local ones.
func TestSubmissionRelay(t *testing.T) {
	ts := startServer(t, Config{Role: RoleSubmission, TLS: serverTLS(t), Relay: true}, nil)
	c := dial(t, ts.addr)
	c.Run(`
		S: 220
		C: EHLO laptop
		S: 250
		C: STARTTLS
		S: 220
		STARTTLS
		C: EHLO laptop
	`)
	if ehlo := strings.Join(c.Expect("250 "), "\n"); !strings.Contains(ehlo, "DSN") {
		t.Errorf("EHLO of a relaying submission lacks DSN:\n%s", ehlo)
	}
	c.Run(`
		C: MAIL FROM:<alice@example.test> RET=HDRS ENVID=QQ+2Bid
		S: 530 5.7.0 authentication required
		C: AUTH PLAIN AGFsaWNlQGV4YW1wbGUudGVzdABzZWNyZXQ=
		S: 235
		C: MAIL FROM:<alice@example.test> RET=HDRS ENVID=QQ+2Bid
		S: 250
		C: RCPT TO:<Friend@Remote.Example> NOTIFY=FAILURE,DELAY ORCPT=rfc822;friend+2Bx@remote.example
		S: 250
		C: RCPT TO:<other@remote.example>
		S: 250
		C: RCPT TO:<bob@example.test>
		S: 250
		C: DATA
		S: 354
		C: Subject: out
		C:
		C: hi
		C: .
		S: 250
	`)
	msgs := ts.fd.delivered()
	if len(msgs) != 1 {
		t.Fatalf("deliveries = %+v", msgs)
	}
	env := msgs[0].env
	if env.Ret != "HDRS" || env.EnvID != "QQ+id" || len(env.Targets) != 1 || len(env.Remote) != 2 {
		t.Fatalf("envelope %+v", env)
	}
	r := env.Remote[0]
	if r.Address != "Friend@remote.example" || r.Domain != "remote.example" || r.Notify != "FAILURE,DELAY" ||
		r.ORcpt != "friend+x@remote.example" || r.ORcptType != "rfc822" {
		t.Errorf("remote recipient %+v", r)
	}
	if env.Remote[1].Notify != "" || env.Remote[1].ORcpt != "" {
		t.Errorf("recipient without parameters %+v", env.Remote[1])
	}
}

// TestMXNeverRelays: Relay is a submission setting; the MX role refuses remote recipients.
func TestMXNeverRelays(t *testing.T) {
	ts := startServer(t, Config{Role: RoleMX, Relay: true}, nil)
	c := dial(t, ts.addr)
	c.Run(`
		S: 220
		C: EHLO mta
		S: 250
		C: MAIL FROM:<someone@elsewhere.example>
		S: 250
		C: RCPT TO:<user@other.com>
		S: 550 5.7.1 relaying denied
	`)
}
