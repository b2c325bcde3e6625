package message

import (
	"encoding/json"
	"net/mail"
	"strings"
	"testing"
	"unicode/utf8"

	"petrel/internal/store"
)

func FuzzParse(f *testing.F) {
	f.Add("Subject: hi\r\n\r\nbody\r\n")
	f.Add("Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: message/rfc822\r\n\r\nSubject: in\r\n\r\nx\r\n--b--\r\n")
	f.Add("Content-Type: multipart/digest; boundary=\"a b\"\r\n\r\n--a b\r\n\r\n--a b--")
	f.Add("From: =?utf-8?b?w6k=?= <a@b>, x\r\nDate: bad\r\n\n\n")
	f.Fuzz(func(t *testing.T, msg string) {
		pm, err := Parse(strings.NewReader(msg))
		if err != nil {
			t.Fatalf("Parse: %v", err)
		}
		at, err := ParseAt(strings.NewReader(msg), int64(len(msg)))
		if err != nil || at.Text == nil || len(at.Text.Body) > MaxIndexText+1 {
			t.Fatalf("ParseAt: %v (text %v)", err, at.Text != nil)
		}
		for _, s := range []string{at.Text.Subject, at.Text.From, at.Text.Header, at.Text.Body} {
			if !utf8.ValidString(s) {
				t.Fatalf("index text is not UTF-8: %q", s)
			}
		}
		var root Part
		if err := json.Unmarshal(pm.Structure, &root); err != nil {
			t.Fatalf("structure: %v", err)
		}
		if got := HeaderSize([]byte(msg)); got != root.HeaderSize {
			t.Fatalf("HeaderSize = %d, the parsed root's header is %d", got, root.HeaderSize)
		}
		var env Envelope
		if err := json.Unmarshal(pm.Envelope, &env); err != nil {
			t.Fatalf("envelope: %v", err)
		}
		var check func(p Part, lo, hi int64, depth int)
		check = func(p Part, lo, hi int64, depth int) {
			if depth > MaxDepth+1 {
				t.Fatalf("depth %d", depth)
			}
			start, end := p.Offset, p.Offset+p.HeaderSize+p.Size
			if start < lo || end > hi || p.HeaderSize < 0 || p.Size < 0 {
				t.Fatalf("part [%d,%d) outside [%d,%d)", start, end, lo, hi)
			}
			for _, c := range p.Children {
				check(c, p.Offset+p.HeaderSize, end, depth+1)
			}
		}
		check(root, 0, int64(len(msg)), 0)
	})
}

// FuzzParseDate checks parseDate's shortcut against mail.ParseDate: the same instant, zone
// offset and error for every input.
func FuzzParseDate(f *testing.F) {
	for _, s := range []string{
		"Mon, 02 Jan 2006 15:04:05 -0700", "Tue, 1 Dec 2026 02:03:04 +0100", "1 Dec 2026 02:03 GMT",
		"Mon, 02 Jan 2006 15:04:05 -0700 (MST)", " Mon, 02 Jan 2006 15:04:05 +0000", "Fri, 31 Feb 2026 25:61:61 +9999",
		"mon, 02 jan 2006 15:04:05 -0700", "Mon, 02 Jan 06 15:04:05 -0700", "Mon, 02 Jan 2006 15:04:05 -0700\r\n", "",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, gotErr := parseDate(s)
		want, wantErr := mail.ParseDate(s)
		_, gotOff := got.Zone()
		_, wantOff := want.Zone()
		if (gotErr == nil) != (wantErr == nil) || !got.Equal(want) || gotOff != wantOff {
			t.Fatalf("%q: parseDate = %v, %v; mail.ParseDate = %v, %v", s, got, gotErr, want, wantErr)
		}
	})
}

// prependedRoundTrip is Prepended by decoding and encoding the structure, the reference
// FuzzPrepended holds Prepended's text rewriting to.
func prependedRoundTrip(pm store.ParsedMessage, n int64) ([]byte, error) {
	var root Part
	if err := json.Unmarshal(pm.Structure, &root); err != nil {
		return nil, err
	}
	root.HeaderSize += n
	var shift func(p *Part)
	shift = func(p *Part) {
		p.Offset += n
		for i := range p.Children {
			shift(&p.Children[i])
		}
	}
	for i := range root.Children {
		shift(&root.Children[i])
	}
	return json.Marshal(root)
}

// FuzzPrepended: for any message, Prepended's rewriting of the cached structure equals
// the decode-shift-encode round trip, whatever parameters (named "offset" or "header_size"
// too) the parts carry.
func FuzzPrepended(f *testing.F) {
	f.Add("Subject: hi\r\n\r\nbody\r\n", int64(40))
	f.Add("Content-Type: multipart/mixed; boundary=b; offset=7; header_size=9\r\n\r\n--b\r\nContent-Type: message/rfc822\r\n\r\nSubject: in\r\n\r\nx\r\n--b\r\nContent-Type: text/plain; offset=\"1\"\r\n\r\ny\r\n--b--\r\n", int64(1))
	f.Fuzz(func(t *testing.T, msg string, n int64) {
		if n < 0 || n > 1<<20 {
			return
		}
		pm, err := Parse(strings.NewReader(msg))
		if err != nil {
			t.Fatal(err)
		}
		want, err := prependedRoundTrip(pm, n)
		if err != nil {
			t.Fatal(err)
		}
		got, err := Prepended(pm, n)
		if err != nil {
			t.Fatal(err)
		}
		if string(got.Structure) != string(want) {
			t.Fatalf("Prepended\n%s\nround trip\n%s", got.Structure, want)
		}
	})
}

// BenchmarkPrepended: the text rewriting against the round trip it replaced, on a message
// of three parts and an encapsulated one.
func BenchmarkPrepended(b *testing.B) {
	msg := "From: a@example.org\r\nSubject: parts\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n" +
		"--b\r\nContent-Type: text/plain\r\n\r\nhello\r\n--b\r\nContent-Type: message/rfc822\r\n\r\n" +
		"Subject: inner\r\n\r\ninner text\r\n--b--\r\n"
	pm, err := Parse(strings.NewReader(msg))
	if err != nil {
		b.Fatal(err)
	}
	b.Run("rewrite", func(b *testing.B) {
		for b.Loop() {
			Prepended(pm, 60)
		}
	})
	b.Run("roundtrip", func(b *testing.B) {
		for b.Loop() {
			prependedRoundTrip(pm, 60)
		}
	})
}
