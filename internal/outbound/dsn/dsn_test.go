package dsn

import (
	"bufio"
	"bytes"
	"io"
	"net/mail"
	"net/textproto"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-message"
)

const original = "From: Alice <alice@example.org>\r\n" +
	"To: Bob <bob@example.net>\r\n" +
	"Subject: Lunch\r\n" +
	"Message-ID: <lunch-1@example.org>\r\n" +
	"\r\n" +
	"Shall we meet at noon?\r\n"

var (
	arrival  = time.Date(2026, 12, 7, 9, 0, 0, 0, time.UTC)
	attempt  = time.Date(2026, 12, 7, 9, 5, 0, 0, time.UTC)
	now      = time.Date(2026, 12, 7, 9, 6, 0, 0, time.UTC)
	giveUpAt = time.Date(2026, 12, 12, 9, 0, 0, 0, time.UTC)
)

// parsed is a DSN taken apart with go-message: the top header, the three parts' headers
// and bodies, and the delivery-status fields (the per-message group, then one group per
// recipient).
type parsed struct {
	header *message.Entity
	parts  []*message.Entity
	bodies [][]byte
	groups []textproto.MIMEHeader
}

func parse(t *testing.T, raw []byte) parsed {
	t.Helper()
	for i, line := range strings.Split(string(raw), "\r\n") {
		if len(line) > 998 {
			t.Errorf("line %d is %d bytes long (RFC 5322 §2.1.1)", i, len(line))
		}
	}
	if bytes.Contains(bytes.ReplaceAll(raw, []byte("\r\n"), nil), []byte("\n")) {
		t.Error("bare LF in the DSN")
	}
	e, err := message.Read(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("go-message cannot read the DSN: %v\n%s", err, raw)
	}
	p := parsed{header: e}
	mr := e.MultipartReader()
	if mr == nil {
		t.Fatalf("not multipart:\n%s", raw)
	}
	for {
		part, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(part.Body)
		if err != nil {
			t.Fatal(err)
		}
		p.parts = append(p.parts, part)
		p.bodies = append(p.bodies, body)
	}
	if len(p.parts) < 2 {
		t.Fatalf("%d parts", len(p.parts))
	}
	tp := textproto.NewReader(bufio.NewReader(bytes.NewReader(p.bodies[1])))
	for {
		h, err := tp.ReadMIMEHeader()
		if len(h) > 0 {
			p.groups = append(p.groups, h)
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("delivery-status fields: %v\n%s", err, p.bodies[1])
		}
	}
	return p
}

func write(t *testing.T, r *Report, orig string) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := Write(&b, r, strings.NewReader(orig)); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func wantFields(t *testing.T, what string, h textproto.MIMEHeader, want map[string]string) {
	t.Helper()
	for k, v := range want {
		if got := h.Get(k); got != v {
			t.Errorf("%s %s: %q, want %q", what, k, got, v)
		}
	}
}

func TestFailedDSN(t *testing.T) {
	r := &Report{
		ReportingMTA: "mail.example.org",
		To:           "alice@example.org",
		EnvelopeID:   "env-42",
		ArrivalDate:  arrival,
		Date:         now,
		MessageID:    "dsn-1@mail.example.org",
		Recipients: []Recipient{{
			Address: "bob@example.net", OriginalType: "rfc822", Original: "Bob@Example.NET",
			Action: Failed, Status: "5.1.1", RemoteMTA: "mx.example.net",
			Diagnostic:  "550 5.1.1 <bob@example.net>: Recipient address rejected: User unknown in virtual mailbox table",
			LastAttempt: attempt,
		}, {
			Address: "carol@example.com", Action: Failed, Reason: "no MX or address records for example.com",
			LastAttempt: attempt,
		}},
	}
	p := parse(t, write(t, r, original))

	h := p.header.Header
	for k, v := range map[string]string{
		"From":           "Mail Delivery System <MAILER-DAEMON@mail.example.org>",
		"To":             "<alice@example.org>",
		"Subject":        "Undelivered Mail Returned to Sender",
		"Date":           "Mon, 07 Dec 2026 09:06:00 +0000",
		"Message-Id":     "<dsn-1@mail.example.org>",
		"In-Reply-To":    "<lunch-1@example.org>",
		"References":     "<lunch-1@example.org>",
		"Auto-Submitted": "auto-replied",
		"Mime-Version":   "1.0",
	} {
		if got := h.Get(k); got != v {
			t.Errorf("header %s: %q, want %q", k, got, v)
		}
	}
	mt, params, _ := h.ContentType()
	if mt != "multipart/report" || params["report-type"] != "delivery-status" {
		t.Errorf("Content-Type %s %v", mt, params)
	}
	if h.Get(DoubleBounceHeader) != "" {
		t.Error("a first bounce is marked as a double bounce")
	}

	if len(p.parts) != 3 {
		t.Fatalf("%d parts, want 3", len(p.parts))
	}
	for i, want := range []string{"text/plain", "message/delivery-status", "message/rfc822"} {
		if mt, _, _ := p.parts[i].Header.ContentType(); mt != want {
			t.Errorf("part %d is %s, want %s", i+1, mt, want)
		}
	}
	text := string(p.bodies[0])
	for _, want := range []string{"<bob@example.net>: failed", "mx.example.net said: 550 5.1.1", "no MX or address records", "The message follows."} {
		if !strings.Contains(text, want) {
			t.Errorf("text lacks %q:\n%s", want, text)
		}
	}

	if len(p.groups) != 3 {
		t.Fatalf("%d field groups, want per-message + 2:\n%s", len(p.groups), p.bodies[1])
	}
	wantFields(t, "per-message", p.groups[0], map[string]string{
		"Reporting-MTA":        "dns; mail.example.org",
		"Original-Envelope-Id": "env-42",
		"Arrival-Date":         "Mon, 07 Dec 2026 09:00:00 +0000",
	})
	wantFields(t, "bob", p.groups[1], map[string]string{
		"Original-Recipient": "rfc822; Bob@Example.NET",
		"Final-Recipient":    "rfc822; bob@example.net",
		"Action":             "failed",
		"Status":             "5.1.1",
		"Remote-MTA":         "dns; mx.example.net",
		"Diagnostic-Code":    "smtp; 550 5.1.1 <bob@example.net>: Recipient address rejected: User unknown in virtual mailbox table",
		"Last-Attempt-Date":  "Mon, 07 Dec 2026 09:05:00 +0000",
		"Will-Retry-Until":   "",
	})
	wantFields(t, "carol", p.groups[2], map[string]string{
		"Original-Recipient": "",
		"Final-Recipient":    "rfc822; carol@example.com",
		"Action":             "failed",
		"Status":             "5.0.0",
		"Remote-MTA":         "",
		"Diagnostic-Code":    "X-Petrel; no MX or address records for example.com",
	})
	if string(p.bodies[2]) != original {
		t.Errorf("returned message differs:\n%q", p.bodies[2])
	}
	// The DSN itself is recognized as a bounce: its failure must not be bounced back.
	if !IsAutoReply(&p.header.Header) {
		t.Error("our own DSN is not recognized as an automatic reply")
	}
}

func TestDelayedDSN(t *testing.T) {
	r := &Report{
		ReportingMTA: "mail.example.org", To: "alice@example.org", Date: now, ArrivalDate: arrival,
		Recipients: []Recipient{{
			Address: "bob@example.net", Action: Delayed, Status: "4.4.1", RemoteMTA: "mx.example.net",
			Reason: "connection refused", LastAttempt: attempt, WillRetryUntil: giveUpAt,
		}},
	}
	p := parse(t, write(t, r, original))
	if got := p.header.Header.Get("Subject"); got != "Delayed Mail (still being retried)" {
		t.Errorf("Subject %q", got)
	}
	if len(p.groups) != 2 {
		t.Fatalf("%d groups", len(p.groups))
	}
	wantFields(t, "bob", p.groups[1], map[string]string{
		"Action":           "delayed",
		"Status":           "4.4.1",
		"Will-Retry-Until": "Sat, 12 Dec 2026 09:00:00 +0000",
		"Diagnostic-Code":  "X-Petrel; connection refused",
	})
	if !strings.Contains(string(p.bodies[0]), "you do not need to send it again") || !strings.Contains(string(p.bodies[0]), "Retrying until Sat, 12 Dec 2026") {
		t.Errorf("text:\n%s", p.bodies[0])
	}
	// A delay returns the header section only (the sender still has the message).
	if mt, _, _ := p.parts[2].Header.ContentType(); mt != "text/rfc822-headers" {
		t.Errorf("returned part is %s", mt)
	}
	if strings.Contains(string(p.bodies[2]), "noon") || !strings.Contains(string(p.bodies[2]), "Subject: Lunch") {
		t.Errorf("returned header section:\n%s", p.bodies[2])
	}
}

func TestDeliveredAndRelayed(t *testing.T) {
	r := &Report{
		ReportingMTA: "mail.example.org", To: "alice@example.org", Date: now,
		Recipients: []Recipient{
			{Address: "bob@example.org", Action: Delivered, Status: "2.0.0"},
			{Address: "carol@example.net", Action: Relayed, RemoteMTA: "mx.example.net", Diagnostic: "250 2.0.0 Ok: queued as 4F2"},
		},
	}
	p := parse(t, write(t, r, original))
	if got := p.header.Header.Get("Subject"); got != "Successful Mail Delivery Report" {
		t.Errorf("Subject %q", got)
	}
	wantFields(t, "bob", p.groups[1], map[string]string{"Action": "delivered", "Status": "2.0.0"})
	wantFields(t, "carol", p.groups[2], map[string]string{"Action": "relayed", "Status": "2.0.0", "Diagnostic-Code": "smtp; 250 2.0.0 Ok: queued as 4F2"})
}

func TestReturnAndSizeBound(t *testing.T) {
	base := func() *Report {
		return &Report{ReportingMTA: "m.example.org", To: "a@example.org", Date: now,
			Recipients: []Recipient{{Address: "b@example.net", Action: Failed, Status: "5.2.2"}}}
	}
	// RET=HDRS on a failure: the header section only.
	r := base()
	r.Return = ReturnHeaders
	p := parse(t, write(t, r, original))
	if mt, _, _ := p.parts[2].Header.ContentType(); mt != "text/rfc822-headers" || strings.Contains(string(p.bodies[2]), "noon") {
		t.Errorf("RET=HDRS returned %s:\n%s", mt, p.bodies[2])
	}

	// RET=FULL with a message over the bound: its header section, and the text says why.
	big := original + strings.Repeat("x", 5000) + "\r\n"
	r = base()
	r.Return = ReturnFull
	r.MaxOriginal = 1000
	p = parse(t, write(t, r, big))
	if mt, _, _ := p.parts[2].Header.ContentType(); mt != "text/rfc822-headers" || strings.Contains(string(p.bodies[2]), "xxx") {
		t.Errorf("oversized RET=FULL returned %s (%d bytes)", mt, len(p.bodies[2]))
	}
	if !strings.Contains(string(p.bodies[0]), "too large to return whole") {
		t.Errorf("text does not say the message was cut:\n%s", p.bodies[0])
	}

	// A body line over 998 octets cannot travel as message/rfc822: the header section
	// goes back instead, and a long header line means nothing is attached.
	r = base()
	r.Return = ReturnFull
	p = parse(t, write(t, r, original+strings.Repeat("z", 1200)+"\r\n"))
	if mt, _, _ := p.parts[2].Header.ContentType(); mt != "text/rfc822-headers" || !strings.Contains(string(p.bodies[0]), "lines too long") {
		t.Errorf("long body line: part 3 is %s, text:\n%s", mt, p.bodies[0])
	}
	r = base()
	p = parse(t, write(t, r, "Subject: "+strings.Repeat("z", 1200)+"\r\n\r\nbody\r\n"))
	if len(p.parts) != 2 || !strings.Contains(string(p.bodies[0]), "not returned") {
		t.Errorf("long header line: %d parts, text:\n%s", len(p.parts), p.bodies[0])
	}

	// A header section over the bound is cut at a line end, and the reader is not drained.
	hugeHeader := strings.Repeat("X-Filler: "+strings.Repeat("y", 60)+"\r\n", 1000) + "\r\nbody\r\n"
	r = base()
	r.MaxOriginal = 4096
	src := &countingReader{r: strings.NewReader(hugeHeader)}
	var out bytes.Buffer
	if err := Write(&out, r, src); err != nil {
		t.Fatal(err)
	}
	p = parse(t, out.Bytes())
	if n := len(p.bodies[2]); n > 4096 || n < 3000 || !strings.HasSuffix(string(p.bodies[2]), "\r\n") {
		t.Errorf("cut header section: %d bytes, ends %q", n, p.bodies[2][max(0, n-10):])
	}
	if src.n > 4097 {
		t.Errorf("read %d bytes of the original for a bound of 4096", src.n)
	}
}

type countingReader struct {
	r io.Reader
	n int
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}

func TestSMTPUTF8(t *testing.T) {
	r := &Report{
		ReportingMTA: "mail.example.org", To: "álvaro@example.org", Date: now, SMTPUTF8: true,
		Recipients: []Recipient{{
			Address: "jörg@bücher.example", OriginalType: "utf-8", Original: "Jörg@bücher.example",
			Action: Failed, Status: "5.1.1", RemoteMTA: "mx.bücher.example", Diagnostic: "550 5.1.1 Empfänger unbekannt",
		}},
	}
	orig := "From: álvaro@example.org\r\nTo: jörg@bücher.example\r\nSubject: Grüße\r\n\r\nHallo\r\n"
	p := parse(t, write(t, r, orig))
	if mt, params, _ := p.header.Header.ContentType(); params["report-type"] != "global-delivery-status" {
		t.Errorf("Content-Type %s %v", mt, params)
	}
	for i, want := range []string{"text/plain", "message/global-delivery-status", "message/global"} {
		if mt, _, _ := p.parts[i].Header.ContentType(); mt != want {
			t.Errorf("part %d is %s, want %s", i+1, mt, want)
		}
	}
	if p.parts[2].Header.Get("Content-Transfer-Encoding") != "8bit" {
		t.Errorf("8-bit original sent as %q", p.parts[2].Header.Get("Content-Transfer-Encoding"))
	}
	wantFields(t, "jörg", p.groups[1], map[string]string{
		"Final-Recipient":    "utf-8; jörg@bücher.example",
		"Original-Recipient": "utf-8; Jörg@bücher.example",
		"Diagnostic-Code":    "smtp; 550 5.1.1 Empfänger unbekannt",
	})
	if p.header.Header.Get("To") != "<álvaro@example.org>" {
		t.Errorf("To %q", p.header.Header.Get("To"))
	}

	// A non-ASCII address forces the global types even without SMTPUTF8.
	r.SMTPUTF8 = false
	p = parse(t, write(t, r, orig))
	if _, params, _ := p.header.Header.ContentType(); params["report-type"] != "global-delivery-status" {
		t.Error("non-ASCII recipient without the RFC 6533 types")
	}
}

func TestHostileText(t *testing.T) {
	r := &Report{
		ReportingMTA: "mail.example.org", To: "alice@example.org", Date: now,
		Recipients: []Recipient{{
			Address: "bob@example.net", Action: Failed, Status: "4.1.1", // wrong class for failed
			RemoteMTA:  "mx.example.net",
			Diagnostic: "550-5.1.1 first line\r\n550 5.1.1 second\r\nBcc: victim@example.com\r\n\r\nInjected body \xff\xfe é" + strings.Repeat(" long", 1000),
		}},
	}
	raw := write(t, r, original)
	p := parse(t, raw)
	if p.header.Header.Get("Bcc") != "" || strings.Contains(string(raw), "\r\nBcc:") {
		t.Error("reply text injected a header field")
	}
	g := p.groups[1]
	if g.Get("Status") != "5.0.0" {
		t.Errorf("Status %q: a failed recipient needs a 5.x.x code", g.Get("Status"))
	}
	diag := g.Get("Diagnostic-Code")
	if !strings.HasPrefix(diag, "smtp; 550-5.1.1 first line 550 5.1.1 second Bcc: victim@example.com Injected body ??") || len(diag) > maxDiagnostic+10 {
		t.Errorf("Diagnostic-Code %q…", diag[:min(len(diag), 120)])
	}
	for _, c := range diag {
		if c > 0x7e {
			t.Fatalf("non-ASCII %q in a message/delivery-status field", c)
		}
	}

	for name, bad := range map[string]*Report{
		"null sender":     {ReportingMTA: "m", To: "", Recipients: r.Recipients},
		"no recipients":   {ReportingMTA: "m", To: "a@b"},
		"CRLF in To":      {ReportingMTA: "m", To: "a@b>\r\nBcc: <x@y", Recipients: r.Recipients},
		"CRLF in address": {ReportingMTA: "m", To: "a@b", Recipients: []Recipient{{Address: "x@y\r\nBcc: z", Action: Failed}}},
		"unknown action":  {ReportingMTA: "m", To: "a@b", Recipients: []Recipient{{Address: "x@y", Action: "exploded"}}},
		"control char":    {ReportingMTA: "m", To: "a@b", Recipients: []Recipient{{Address: "x\x01@y", Action: Failed}}},
		"huge address":    {ReportingMTA: "m", To: "a@b", Recipients: []Recipient{{Address: strings.Repeat("x", 600) + "@y", Action: Failed}}},
		"bad UTF-8 MTA":   {ReportingMTA: "m", To: "a@b", Recipients: []Recipient{{Address: "x@y", RemoteMTA: "\xff\xfe", Action: Failed}}},
	} {
		if err := Write(io.Discard, bad, strings.NewReader(original)); err == nil {
			t.Errorf("%s: written", name)
		}
	}
}

func TestNotify(t *testing.T) {
	for in, want := range map[string]map[Action]bool{
		"":                      {Failed: true, Delayed: true, Delivered: false, Relayed: false},
		"NEVER":                 {Failed: false, Delayed: false, Delivered: false},
		"success":               {Failed: false, Delayed: false, Delivered: true, Relayed: true, Expanded: true},
		"FAILURE":               {Failed: true, Delayed: false, Delivered: false},
		"SUCCESS,FAILURE,DELAY": {Failed: true, Delayed: true, Delivered: true},
	} {
		n, err := ParseNotify(in)
		if err != nil {
			t.Fatalf("%q: %v", in, err)
		}
		for a, w := range want {
			if n.Wants(a) != w {
				t.Errorf("NOTIFY=%q wants %s: %v", in, a, !w)
			}
		}
	}
	for _, bad := range []string{"NEVER,FAILURE", "SOMETIMES", "FAILURE,"} {
		if _, err := ParseNotify(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestParseReturn(t *testing.T) {
	for in, want := range map[string]Return{"": ReturnDefault, "FULL": ReturnFull, "hdrs": ReturnHeaders} {
		if got, err := ParseReturn(in); err != nil || got != want {
			t.Errorf("%q: %v %v", in, got, err)
		}
	}
	if _, err := ParseReturn("ALL"); err == nil {
		t.Error("RET=ALL accepted")
	}
}

func header(t *testing.T, s string) mail.Header {
	t.Helper()
	m, err := mail.ReadMessage(strings.NewReader(s + "\r\n"))
	if err != nil {
		t.Fatal(err)
	}
	return m.Header
}

func TestDecide(t *testing.T) {
	for _, tc := range []struct {
		name   string
		sender string
		hdr    string
		want   Decision
	}{
		{"ordinary mail", "alice@example.org", "Subject: hi\r\n", ToSender},
		{"auto-generated with a reverse path (a list)", "list-bounces@example.org", "Auto-Submitted: auto-generated\r\n", ToSender},
		{"Auto-Submitted: no", "alice@example.org", "Auto-Submitted: no\r\n", ToSender},
		{"null sender", "", "Subject: hi\r\n", ToPostmaster},
		{"auto-replied (vacation)", "alice@example.org", "Auto-Submitted: auto-replied; owner-email=\"a@b\"\r\n", ToPostmaster},
		{"a DSN sent with a reverse path", "mailer@example.org", "Content-Type: multipart/report; report-type=delivery-status; boundary=x\r\n", ToPostmaster},
		{"an RFC 6533 DSN", "mailer@example.org", "Content-Type: multipart/report; report-type=\"global-delivery-status\"; boundary=x\r\n", ToPostmaster},
		{"a disposition report is not a bounce", "alice@example.org", "Content-Type: multipart/report; report-type=disposition-notification; boundary=x\r\n", ToSender},
		{"our double bounce failed", "", DoubleBounceHeader + ": yes\r\nAuto-Submitted: auto-replied\r\n", Discard},
	} {
		if got := Decide(tc.sender, header(t, tc.hdr)); got != tc.want {
			t.Errorf("%s: %s, want %s", tc.name, got, tc.want)
		}
	}
}

// The loop end to end: a bounce we made fails, so its failure goes to the postmaster as a
// double bounce; that one fails too and is dropped.
func TestBounceLoopEnds(t *testing.T) {
	first := &Report{ReportingMTA: "mail.example.org", To: "alice@example.org", Date: now,
		Recipients: []Recipient{{Address: "bob@example.net", Action: Failed, Status: "5.1.1"}}}
	dsn1 := write(t, first, original)
	h1 := parse(t, dsn1).header.Header
	if d := Decide("", &h1); d != ToPostmaster {
		t.Fatalf("failed DSN: %s, want to postmaster", d)
	}
	second := &Report{ReportingMTA: "mail.example.org", To: "postmaster@mail.example.org", Date: now, DoubleBounce: true,
		Recipients: []Recipient{{Address: "alice@example.org", Action: Failed, Status: "5.2.1", Diagnostic: "552 5.2.2 mailbox full"}}}
	p := parse(t, write(t, second, string(dsn1)))
	if p.header.Header.Get(DoubleBounceHeader) != "yes" || !strings.Contains(p.header.Header.Get("Subject"), "double bounce") {
		t.Errorf("double bounce header: %v", p.header.Header)
	}
	if d := Decide("", &p.header.Header); d != Discard {
		t.Errorf("failed double bounce: %s, want discard", d)
	}
}
