package smtpd

// Transactions and message data: BDAT, pipelining, size and recipient limits, and the
// line-ending rules that keep SMTP smuggling out.

import (
	"fmt"
	"strings"
	"testing"
)

func TestBDAT(t *testing.T) {
	ts := startServer(t, Config{}, nil)
	c := dial(t, ts.addr)
	c.Run(openTx + `
		C: RCPT TO:<bob@example.test>
		S: 250
		R: BDAT 15\r\nSubject: bdat\r\n
		S: 250 2.0.0
		R: BDAT 13 LAST\r\n\r\n.\r\nbinary\r\n
		S: 250 2.0.0 OK id=
		# Bare LF in a chunk is refused like in DATA.
		C: MAIL FROM:<a@elsewhere.example>
		S: 250
		C: RCPT TO:<alice@example.test>
		S: 250
		R: BDAT 8 LAST\r\nbare\nLF\n
		S: 554 5.6.0
		C: NOOP
		S: 250
	`)
	msgs := ts.fd.delivered()
	if len(msgs) != 1 {
		t.Fatalf("%d deliveries, want 1", len(msgs))
	}
	if !strings.HasSuffix(msgs[0].body, "\r\nSubject: bdat\r\n\r\n.\r\nbinary\r\n") || strings.Contains(msgs[0].body, "\tfor <") {
		t.Errorf("body = %q", msgs[0].body)
	}
}

func TestPipelining(t *testing.T) {
	ts := startServer(t, Config{}, nil)
	c := dial(t, ts.addr)
	c.Expect("220")
	// RFC 2920 §3.1: the whole group in one write, replies in order.
	c.Raw("EHLO client\r\nMAIL FROM:<a@elsewhere.example>\r\nRCPT TO:<alice@example.test>\r\nRCPT TO:<nobody@example.test>\r\nRCPT TO:<bob@example.test>\r\nDATA\r\n")
	c.Run(`
		S: 250
		S: 250
		S: 250
		S: 550 5.1.1
		S: 250
		S: 354
	`)
	c.Raw("Subject: p\r\n\r\nx\r\n.\r\nMAIL FROM:<b@elsewhere.example>\r\nRCPT TO:<alice@example.test>\r\nDATA\r\n")
	c.Run(`
		S: 250 2.0.0 OK
		S: 250
		S: 250
		S: 354
		C: y
		C: .
		S: 250 2.0.0 OK
	`)
	msgs := ts.fd.delivered()
	if len(msgs) != 2 || len(msgs[0].env.Targets) != 2 {
		t.Fatalf("deliveries = %+v", msgs)
	}
}

func TestLimits(t *testing.T) {
	ts := startServer(t, Config{MaxMessageBytes: 1000, MaxRecipients: 2, MaxLineLength: 1000}, nil)
	c := dial(t, ts.addr)
	big := strings.Repeat("x", 990)
	c.Run(`
		S: 220
		C: EHLO client
		S: 250
		C: MAIL FROM:<a@elsewhere.example> SIZE=1001
		S: 552 5.3.4
		C: MAIL FROM:<a@elsewhere.example> SIZE=1000
		S: 250
		C: RCPT TO:<alice@example.test>
		S: 250
		C: RCPT TO:<bob@example.test>
		S: 250
		C: RCPT TO:<alice+2@example.test>
		S: 452 4.5.3
		C: DATA
		S: 354
		C: ` + big + `
		C: ` + big + `
		C: .
		S: 552 5.3.4
		C: NOOP
		S: 250
	`)
	if msgs := ts.fd.delivered(); len(msgs) != 0 {
		t.Fatalf("over-size message delivered")
	}
	// A command line over the limit ends the session.
	c.Raw("NOOP " + strings.Repeat("y", 1200) + "\r\n")
	c.Expect("500")
	c.ExpectClosed()

	// So does a text line over the limit; nothing is delivered. (go-smtp adds its own
	// "500 5.4.0" before closing.)
	c = dial(t, ts.addr)
	c.Run(openTx + `
		C: DATA
		S: 354
	`)
	c.Raw(strings.Repeat("z", 1001) + "\r\n.\r\n")
	c.Expect("500 5.5.2 line too long")
	c.Expect("500")
	c.ExpectClosed()
	if msgs := ts.fd.delivered(); len(msgs) != 0 {
		t.Fatalf("message with an over-long line delivered")
	}
}

// TestBareLineEndings sends bodies with bare CR/LF around the end-of-data marker and
// smuggled commands after it. None may end DATA early (the smuggled MAIL would get its own
// reply) and none may be delivered.
func TestBareLineEndings(t *testing.T) {
	ts := startServer(t, Config{}, nil)
	smuggled := "MAIL FROM:<evil@elsewhere.example>\r\nRCPT TO:<bob@example.test>\r\nDATA\r\nsmuggled\r\n"
	cases := []struct{ body, end string }{
		{"a\n.\r\n" + smuggled, "\r\n.\r\n"},
		{"a\r\n.\n" + smuggled, "\r\n.\r\n"},
		{"a\r.\r\n" + smuggled, "\r\n.\r\n"},
		{"a\n.\n" + smuggled, "\r\n.\r\n"},
		{"a\r\n\n.\r\n" + smuggled, "\r\n.\r\n"},
		{"bare\nlf", "\r\n.\r\n"},
		{"bare\rcr", "\r\n.\r\n"},
		// go-smtp does not take the CRLF of CR CR LF as a line end, so the marker after it
		// does not end DATA either; only a later one does.
		{"ends with cr\r", "\r\n.\r\n.\r\n"},
	}
	for i, tc := range cases {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			c := dial(t, ts.addr)
			c.Run(openTx + `
				C: DATA
				S: 354
			`)
			c.Raw(tc.body + tc.end)
			c.Expect("554 5.6.0 bare LF/CR not allowed")
			c.Raw("NOOP\r\n")
			c.Expect("250 2.0.0 I have successfully done nothing")
		})
	}
	if msgs := ts.fd.delivered(); len(msgs) != 0 {
		t.Fatalf("%d messages with bare line endings delivered: %q", len(msgs), msgs[0].body)
	}
}

// TestDotCR documents a quirk of go-smtp's DATA reader: at the start of a line, "." CR
// followed by anything but LF is dropped whole, so the bare CR never reaches us and cannot
// be refused. It still does not end DATA: the text after it stays message text.
func TestDotCR(t *testing.T) {
	ts := startServer(t, Config{}, nil)
	c := dial(t, ts.addr)
	c.Run(openTx + `
		C: DATA
		S: 354
		R: a\r\n.\rMAIL FROM:<evil@elsewhere.example>\r\n.\r\n
		S: 250 2.0.0 OK
		C: NOOP
		S: 250 2.0.0 I have successfully done nothing
	`)
	msgs := ts.fd.delivered()
	if len(msgs) != 1 || !strings.HasSuffix(msgs[0].body, "\r\na\r\nMAIL FROM:<evil@elsewhere.example>\r\n") {
		t.Fatalf("deliveries = %+v", msgs)
	}
}
