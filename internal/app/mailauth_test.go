package app

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"petrel/internal/config"
	"petrel/internal/mailtest"
	"petrel/internal/mailtest/dialog"
)

// TestInboundVerification runs the MX listener as `petrel serve` wires it ([mail_auth]
// with a resolver address) against a DNS server that answers some senders' look-ups with
// a thousand records or a CNAME loop: both end as temperror and 451 4.4.3, promptly, while
// a sender whose DNS works gets its message delivered with an Authentication-Results field.
func TestInboundVerification(t *testing.T) {
	d := mailtest.StartDNS(t, mailtest.Zone{
		TXT: map[string][]string{
			"good.test":          {"v=spf1 ip4:127.0.0.1 -all"},
			"_dmarc.good.test":   {"v=DMARC1; p=reject"},
			"_dmarc.huge.test":   {"v=DMARC1; p=reject"},
			"_dmarc.loop.test":   {"v=DMARC1; p=reject"},
			"_dmarc.forged.test": {"v=DMARC1; p=reject"},
			"forged.test":        {"v=spf1 -all"},
		},
		CNAME: map[string]string{"loop.test": "loop2.test", "loop2.test": "loop.test"},
		Fail:  map[string]mailtest.Failure{"TXT huge.test": mailtest.Huge},
	})
	cfg := devConfig(t.TempDir())
	cfg.MailAuth.Resolver = d.Addr
	cfg.MailAuth.DeferTempError = true
	cfg.MailAuth.DNSTimeout.Duration = 5 * time.Second
	a, mxAddr := runMX(t, cfg)

	send := func(from string) string {
		c := dialog.DialTest(t, mxAddr, dialog.SMTP)
		c.Run(`
			S: 220
			C: EHLO client.test
			S: 250
			C: MAIL FROM:<` + from + `>
			S: 250
			C: RCPT TO:<dev@example.test>
			S: 250
			C: DATA
			S: 354
		`)
		c.Raw("From: <" + from + ">\r\nSubject: hi\r\n\r\nhello\r\n.\r\n")
		lines, err := c.ReadReply()
		if err != nil {
			t.Fatal(err)
		}
		c.Send("QUIT")
		return lines[len(lines)-1]
	}
	for from, want := range map[string]string{
		"a@huge.test":   "451 4.4.3 ",
		"a@loop.test":   "451 4.4.3 ",
		"a@forged.test": "550 5.7.1 ",
		"a@good.test":   "250 ",
	} {
		if got := send(from); !strings.HasPrefix(got, want) {
			t.Errorf("MAIL FROM %s: %q, want %q", from, got, want)
		}
	}
	acct, err := a.store.AccountByAddress(context.Background(), "dev@example.test")
	if err != nil {
		t.Fatal(err)
	}
	inbox, err := a.store.Mailbox(context.Background(), acct.ID, "INBOX")
	if err != nil || inbox.Messages != 1 {
		t.Fatalf("INBOX %+v, %v; want the one good message", inbox, err)
	}
}

// runMX starts an instance of cfg until the test ends and returns it with the address of
// its MX listener.
func runMX(t *testing.T, cfg *config.Config) (*App, string) {
	t.Helper()
	a, err := New(context.Background(), cfg, slog.New(slog.DiscardHandler), &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	mxAddr := ""
	for _, b := range a.bound {
		if b.name == "smtp" {
			mxAddr = b.l.Addr().String()
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx, nil) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	return a, mxAddr
}
