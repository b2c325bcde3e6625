package message

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"testing/iotest"
	"time"
)

func crlf(s string) string { return strings.ReplaceAll(s, "\n", "\r\n") }

func parse(t *testing.T, msg string) (Envelope, Part, string, string, string, time.Time) {
	t.Helper()
	pm, err := Parse(strings.NewReader(msg))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	var env Envelope
	var root Part
	if err := json.Unmarshal(pm.Envelope, &env); err != nil {
		t.Fatalf("envelope JSON: %v", err)
	}
	if err := json.Unmarshal(pm.Structure, &root); err != nil {
		t.Fatalf("structure JSON: %v", err)
	}
	return env, root, pm.MessageID, pm.Subject, pm.From, pm.Date
}

func TestSimple(t *testing.T) {
	msg := crlf(`From: "Alice A." <alice@example.org>
To: bob@example.test, Carol <carol@example.test>
Cc: undisclosed-recipients:;
Subject: =?utf-8?q?caf=C3=A9?= and
 more
Date: Mon, 2 Jan 2006 15:04:05 -0700
Message-ID: <abc.123@example.org>
In-Reply-To: <prev@example.org>

Hello
world
`)
	env, root, id, subject, from, date := parse(t, msg)
	if id != "abc.123@example.org" {
		t.Errorf("MessageID = %q", id)
	}
	if subject != "café and more" {
		t.Errorf("Subject = %q", subject)
	}
	if from != "Alice A. <alice@example.org>" {
		t.Errorf("From = %q", from)
	}
	if want := time.Date(2006, 1, 2, 22, 4, 5, 0, time.UTC); !date.Equal(want) {
		t.Errorf("Date = %v, want %v", date, want)
	}
	if env.MessageID != "<abc.123@example.org>" || env.InReplyTo != "<prev@example.org>" {
		t.Errorf("envelope ids = %q %q", env.MessageID, env.InReplyTo)
	}
	if env.Date != "Mon, 2 Jan 2006 15:04:05 -0700" {
		t.Errorf("envelope date = %q", env.Date)
	}
	if len(env.To) != 2 || env.To[1] != (Address{Name: "Carol", Mailbox: "carol", Host: "example.test"}) {
		t.Errorf("To = %+v", env.To)
	}
	// RFC 9051 §7.5.2: absent Sender and Reply-To are the From.
	if len(env.Sender) != 1 || env.Sender[0].Mailbox != "alice" || len(env.ReplyTo) != 1 {
		t.Errorf("Sender = %+v, ReplyTo = %+v", env.Sender, env.ReplyTo)
	}
	if root.Type != "text" || root.Subtype != "plain" || root.Params["charset"] != "us-ascii" {
		t.Errorf("root type = %s/%s %v", root.Type, root.Subtype, root.Params)
	}
	if root.Encoding != "7bit" {
		t.Errorf("encoding = %q", root.Encoding)
	}
	body := "Hello\r\nworld\r\n"
	if root.Size != int64(len(body)) || root.Lines != 2 {
		t.Errorf("size %d lines %d, want %d 2", root.Size, root.Lines, len(body))
	}
	if root.Offset != 0 || root.HeaderSize != int64(len(msg)-len(body)) {
		t.Errorf("offset %d header size %d", root.Offset, root.HeaderSize)
	}
}

func TestMultipart(t *testing.T) {
	msg := crlf(`From: a@example.org
Subject: parts
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="outer"

preamble
--outer
Content-Type: multipart/alternative; boundary=inner

--inner
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: Quoted-Printable

plain text
--inner
Content-Type: text/html

<p>html</p>
--inner--
--outer
Content-Type: message/rfc822
Content-Description: forwarded

From: c@example.org
Subject: inner message

inner body
--outer
Content-Type: application/pdf; name=doc.pdf
Content-Disposition: attachment; filename="doc.pdf"
Content-ID: <part3@example.org>
Content-Transfer-Encoding: base64

AAAA
--outer--
epilogue
`)
	_, root, _, _, _, _ := parse(t, msg)
	if root.Type != "multipart" || root.Subtype != "mixed" || len(root.Children) != 3 {
		t.Fatalf("root = %s/%s with %d children", root.Type, root.Subtype, len(root.Children))
	}
	alt := root.Children[0]
	if alt.Subtype != "alternative" || len(alt.Children) != 2 {
		t.Fatalf("alternative = %+v", alt)
	}
	plain := alt.Children[0]
	if plain.Params["charset"] != "utf-8" || plain.Encoding != "quoted-printable" {
		t.Errorf("plain = %+v", plain)
	}
	// The CRLF before a delimiter belongs to the delimiter (RFC 2046 §5.1.1).
	if plain.Size != int64(len("plain text")) || plain.Lines != 1 {
		t.Errorf("plain size %d lines %d", plain.Size, plain.Lines)
	}
	if got := msg[plain.Offset+plain.HeaderSize : plain.Offset+plain.HeaderSize+plain.Size]; got != "plain text" {
		t.Errorf("plain body by offsets = %q", got)
	}
	html := alt.Children[1]
	if html.Subtype != "html" || msg[html.Offset+html.HeaderSize:][:html.Size] != "<p>html</p>" {
		t.Errorf("html = %+v", html)
	}

	fwd := root.Children[1]
	if fwd.Type != "message" || fwd.Subtype != "rfc822" || fwd.Envelope == nil || len(fwd.Children) != 1 {
		t.Fatalf("forwarded = %+v", fwd)
	}
	if fwd.Envelope.Subject != "inner message" || fwd.Description != "forwarded" {
		t.Errorf("forwarded envelope = %+v", fwd.Envelope)
	}
	if fwd.Lines != 4 {
		t.Errorf("forwarded lines = %d, want 4", fwd.Lines)
	}
	if inner := fwd.Children[0]; inner.Type != "text" || inner.Size != int64(len("inner body")) {
		t.Errorf("encapsulated = %+v", inner)
	}

	pdf := root.Children[2]
	if pdf.Disposition != "attachment" || pdf.DispositionParams["filename"] != "doc.pdf" ||
		pdf.Params["name"] != "doc.pdf" || pdf.ID != "<part3@example.org>" || pdf.Encoding != "base64" {
		t.Errorf("pdf = %+v", pdf)
	}
	if pdf.Lines != 0 {
		t.Errorf("non-text part has lines %d", pdf.Lines)
	}
	if end := root.Offset + root.HeaderSize + root.Size; end != int64(len(msg)) {
		t.Errorf("root ends at %d, message has %d bytes", end, len(msg))
	}
}

func TestDigestDefault(t *testing.T) {
	msg := crlf(`Content-Type: multipart/digest; boundary=d

--d

Subject: one

1
--d--
`)
	_, root, _, _, _, _ := parse(t, msg)
	if len(root.Children) != 1 {
		t.Fatalf("children = %+v", root.Children)
	}
	c := root.Children[0]
	if c.Type != "message" || c.Subtype != "rfc822" || c.Envelope == nil || c.Envelope.Subject != "one" {
		t.Errorf("digest part = %+v", c)
	}
}

func TestMalformed(t *testing.T) {
	cases := map[string]string{
		"empty":                "",
		"no header end":        "Subject: x",
		"body only":            "\r\njust a body",
		"bad content type":     "Content-Type: /;;;\r\n\r\nbody",
		"multipart no bound":   "Content-Type: multipart/mixed\r\n\r\n--x\r\nbody",
		"unterminated":         "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nnever closed",
		"bare LF":              "Subject: lf\n\nbody\n",
		"bad addresses":        "From: <<<@@@, good@example.org, \"unterminated\r\nTo: ;;;\r\n\r\n",
		"bad encoded word":     "Subject: =?x-unknown?q?abc?= =?utf-8?b?!!!?=\r\n\r\n",
		"binary":               "Subject: \xff\xfe\x00\r\n\r\n\x00\x01\x02",
		"header continuation":  "  leading continuation\r\nSubject: s\r\n\r\n",
		"delimiter in header":  "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nX: 1\r\n--b--\r\n",
		"invalid media params": "Content-Type: text/plain; charset\r\n\r\nx",
	}
	for name, msg := range cases {
		t.Run(name, func(t *testing.T) {
			_, root, _, _, _, _ := parse(t, msg)
			if end := root.Offset + root.HeaderSize + root.Size; end > int64(len(msg)) {
				t.Errorf("root ends at %d past the %d-byte message", end, len(msg))
			}
		})
	}
	_, _, _, _, from, _ := parse(t, cases["bad addresses"])
	if from != "good@example.org" {
		t.Errorf("lenient address list: From = %q", from)
	}
}

func TestDepthAndPartLimits(t *testing.T) {
	var b strings.Builder
	for i := range 100 {
		b.WriteString("Content-Type: multipart/mixed; boundary=b" + string(rune('A'+i%26)) + string(rune('0'+i/26)) + "\r\n\r\n")
		b.WriteString("--b" + string(rune('A'+i%26)) + string(rune('0'+i/26)) + "\r\n")
	}
	b.WriteString("\r\ndeep\r\n")
	_, root, _, _, _, _ := parse(t, b.String())
	depth := 0
	for p := root; len(p.Children) > 0; p = p.Children[0] {
		depth++
	}
	if depth > MaxDepth {
		t.Errorf("depth %d > %d", depth, MaxDepth)
	}

	b.Reset()
	b.WriteString("Content-Type: multipart/mixed; boundary=x\r\n\r\n")
	for range MaxParts + 500 {
		b.WriteString("--x\r\n\r\np\r\n")
	}
	b.WriteString("--x--\r\n")
	_, root, _, _, _, _ = parse(t, b.String())
	if n := len(root.Children); n >= MaxParts {
		t.Errorf("%d parts described, limit %d", n, MaxParts)
	}
}

func TestLongLines(t *testing.T) {
	long := strings.Repeat("x", 200<<10)
	msg := "Subject: " + long + "\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\r\n" + long + "\r\n--b--\r\n"
	_, root, _, subject, _, _ := parse(t, msg)
	if subject != long {
		t.Errorf("long subject lost (%d bytes)", len(subject))
	}
	if len(root.Children) != 1 || root.Children[0].Size != int64(len(long)) || root.Children[0].Lines != 1 {
		t.Errorf("long line part = %+v", root.Children)
	}
}

func TestReadError(t *testing.T) {
	boom := errors.New("boom")
	_, err := Parse(iotest.DataErrReader(iotest.ErrReader(boom)))
	if !errors.Is(err, boom) {
		t.Errorf("err = %v, want boom", err)
	}
}

// TestPrepended: the parse of a message with fields put before it equals the parse of the
// message as stored, so FETCH of a section reads the right octets after delivery adds
// its verdict.
func TestPrepended(t *testing.T) {
	msg := "From: a@example.org\r\nSubject: parts\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n" +
		"--b\r\nContent-Type: text/plain\r\n\r\nhello\r\n--b\r\nContent-Type: message/rfc822\r\n\r\n" +
		"Subject: inner\r\nContent-Type: multipart/alternative; boundary=c\r\n\r\n--c\r\nContent-Type: text/plain\r\n\r\ninner text\r\n--c--\r\n" +
		"--b--\r\n"
	extra := "X-Spam-Status: No, score=0.10\r\nX-Spam-Score: 0.100\r\n"
	pm, err := ParseAt(strings.NewReader(msg), int64(len(msg)))
	if err != nil {
		t.Fatal(err)
	}
	got, err := Prepended(pm, int64(len(extra)))
	if err != nil {
		t.Fatal(err)
	}
	want, err := Parse(strings.NewReader(extra + msg))
	if err != nil {
		t.Fatal(err)
	}
	if string(got.Structure) != string(want.Structure) {
		t.Errorf("Prepended structure\n%s\nwant\n%s", got.Structure, want.Structure)
	}
	if string(got.Structure) == string(pm.Structure) {
		t.Error("Prepended changed nothing")
	}
}

// HeaderSize agrees with the parse on the ways a header can end; FuzzParse checks it on
// any input.
func TestHeaderSize(t *testing.T) {
	long := "Subject: " + strings.Repeat("x", 10000) + "\r\n"
	for _, msg := range []string{
		"Subject: hi\r\n\r\nbody\r\n",
		"Subject: hi\n\nbody\n",
		"\r\nbody",
		"\nbody",
		"Subject: no body\r\n",
		"Subject: no end",
		"",
		"Subject: a\r\n \r\nX: b\r\n\r\nbody",
		"Subject: a\r\r\nX: b\r\n\r\n",
		long + "\r\nbody",
		"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\r\npart\r\n--b--\r\n",
	} {
		_, root, _, _, _, _ := parse(t, msg)
		if got := HeaderSize([]byte(msg)); got != root.HeaderSize {
			t.Errorf("HeaderSize(%.40q) = %d, parsed %d", msg, got, root.HeaderSize)
		}
	}
}
