package queue

import (
	"context"
	"crypto/rand"
	"net/netip"
	"strings"
	"testing"

	"github.com/emersion/go-msgauth/dkim"

	"petrel/internal/mail/deliver"
	"petrel/internal/mail/msgauth"
	"petrel/internal/mailtest"
	"petrel/internal/store"
)

// TestPostfixMX: the queue delivers to Postfix (the Debian package, as a private MX on
// loopback) a message signed at submission, whose DKIM signatures still verify as Postfix
// stored it; a recipient Postfix refuses comes back as a DSN.
func TestPostfixMX(t *testing.T) {
	p := mailtest.StartPostfixMX(t, mailtest.PostfixMXOptions{Domain: "remote.test", Recipients: []string{"x@remote.test"}})
	e := newEnv(t, Config{})
	e.far.addr = netip.MustParseAddrPort(p.SMTP)
	keys := msgauth.StaticKeys{}
	records := map[string]string{}
	for _, alg := range []msgauth.Algorithm{msgauth.Ed25519, msgauth.RSA} {
		k, err := msgauth.GenerateKey("example.org", string(alg)+"1", alg, rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		keys["example.org"] = append(keys["example.org"], k)
		if records[k.RecordName()], err = k.Record(); err != nil {
			t.Fatal(err)
		}
	}
	e.dl.SetOutbound(&msgauth.Signer{Keys: keys}, e.q.Kick)
	e.start()
	env := deliver.Envelope{MailFrom: "alice@example.org", Remote: []store.OutboundRecipient{
		{Address: "x@remote.test", Domain: "remote.test"}, {Address: "nobody@remote.test", Domain: "remote.test"}}}
	// msg has no Date: Postfix would add one and break a signature that covers its absence,
	// unless submission added it before signing (RFC 6409 §8.3).
	if _, err := e.dl.Deliver(context.Background(), env, strings.NewReader(msg)); err != nil {
		t.Fatal(err)
	}
	got := p.Messages(t, 1)[0]
	if !strings.Contains(got, "Subject: hello") || !strings.Contains(got, "DKIM-Signature:") {
		t.Fatalf("Postfix stored:\n%s", got)
	}
	verifs, err := dkim.VerifyWithOptions(strings.NewReader(strings.ReplaceAll(strings.ReplaceAll(got, "\r\n", "\n"), "\n", "\r\n")),
		&dkim.VerifyOptions{LookupTXT: func(name string) ([]string, error) { return []string{records[name]}, nil }})
	if err != nil || len(verifs) != 2 {
		t.Fatalf("verify: %v, %d signatures", err, len(verifs))
	}
	for _, v := range verifs {
		if v.Err != nil || v.Domain != "example.org" {
			t.Errorf("signature %+v: %v", v, v.Err)
		}
	}
	e.waitFor("the DSN for the refused recipient", func() bool { return len(e.inbox(e.alice)) == 1 })
	if d := e.inbox(e.alice)[0]; !strings.Contains(d, "Final-Recipient: rfc822; nobody@remote.test") || !strings.Contains(d, "Status: 5.1.1") {
		t.Errorf("DSN:\n%s", d)
	}
}
