package dsn

import (
	"bytes"
	"io"
	"strings"
	"testing"

	"github.com/emersion/go-message"
)

// FuzzWrite: whatever the far side replied and whatever the original contains, the DSN is
// a well-formed MIME message with no long lines, or Write refuses the report.
func FuzzWrite(f *testing.F) {
	f.Add("550 5.1.1 no such user", "bob@example.net", "4.4.1", original, false)
	f.Add("451-4.7.1 greylisted\r\n451 4.7.1 try later", "jörg@bücher.example", "", "From: x\r\n\r\n\xff\xfe", true)
	f.Add(strings.Repeat("x", 3000), "a@b", "5.999.999", strings.Repeat("H: v\r\n", 100), false)
	f.Fuzz(func(t *testing.T, diag, addr, status, orig string, utf bool) {
		r := &Report{
			ReportingMTA: "mail.example.org", To: "alice@example.org", Date: now, SMTPUTF8: utf, MaxOriginal: 2048,
			Recipients: []Recipient{{Address: addr, Action: Failed, Status: status, RemoteMTA: "mx.example.net", Diagnostic: diag}},
		}
		var b bytes.Buffer
		if err := Write(&b, r, strings.NewReader(orig)); err != nil {
			return
		}
		for _, line := range strings.Split(b.String(), "\r\n") {
			if len(line) > 998 {
				t.Fatalf("line of %d bytes", len(line))
			}
		}
		e, err := message.Read(bytes.NewReader(b.Bytes()))
		if err != nil {
			t.Fatalf("unreadable DSN: %v", err)
		}
		if e.Header.Get("Bcc") != "" || e.Header.Get("From") != "Mail Delivery System <MAILER-DAEMON@mail.example.org>" {
			t.Fatalf("header changed: %v", e.Header)
		}
		mr := e.MultipartReader()
		n := 0
		for {
			p, err := mr.NextPart()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("part %d: %v", n+1, err)
			}
			io.Copy(io.Discard, p.Body)
			n++
		}
		if n < 2 || n > 3 {
			t.Fatalf("%d parts", n)
		}
	})
}
