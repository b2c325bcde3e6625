package app

import (
	"context"
	"strings"
	"testing"
	"time"

	"petrel/internal/config"
	"petrel/internal/mailtest"
	"petrel/internal/mailtest/dialog"
)

// TestDoor runs the MX listener as `petrel serve` wires [door]: greylisting keeps its
// state in the store (the first attempt is deferred, the retry passes), and a DNS list
// asked through the [mail_auth] resolver files the message as junk.
func TestDoor(t *testing.T) {
	d := mailtest.StartDNS(t, mailtest.Zone{A: map[string][]string{"1.0.0.127.bl.example": {"127.0.0.2"}}})
	cfg := devConfig(t.TempDir())
	cfg.MailAuth.Resolver = d.Addr
	cfg.Door.DNSBL = []config.DNSList{{Zone: "bl.example", Action: "junk"}}
	cfg.Door.Greylist.Enabled = true
	cfg.Door.Greylist.MinDelay.Duration = time.Millisecond // the retry below comes later than that
	a, mxAddr := runMX(t, cfg)
	rcpt := func() string {
		c := dialog.DialTest(t, mxAddr, dialog.SMTP)
		defer c.Send("QUIT")
		c.Run("S: 220\nC: EHLO client.test\nS: 250\nC: MAIL FROM:<a@sender.test>\nS: 250")
		c.Send("RCPT TO:<dev@example.test>")
		lines, err := c.ReadReply()
		if err != nil {
			t.Fatal(err)
		}
		if r := lines[len(lines)-1]; !strings.HasPrefix(r, "250") {
			return r
		}
		c.Run("C: DATA\nS: 354")
		c.Raw("From: <a@sender.test>\r\nSubject: hi\r\n\r\nhello\r\n.\r\n")
		lines, err = c.ReadReply()
		if err != nil {
			t.Fatal(err)
		}
		return lines[len(lines)-1]
	}
	if r := rcpt(); !strings.HasPrefix(r, "451 4.7.1") {
		t.Fatalf("first attempt: %q, want 451 4.7.1 (greylisted)", r)
	}
	if r := rcpt(); !strings.HasPrefix(r, "250") {
		t.Fatalf("retry: %q", r)
	}
	acct, err := a.store.AccountByAddress(context.Background(), "dev@example.test")
	if err != nil {
		t.Fatal(err)
	}
	junk, err := a.store.Mailbox(context.Background(), acct.ID, "Junk")
	if err != nil || junk.Messages != 1 {
		t.Fatalf("Junk %+v, %v; want the listed client's message", junk, err)
	}
}
