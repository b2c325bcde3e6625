package message

import (
	"encoding/base64"
	"io"
	"mime/quotedprintable"
	"strings"
	"unicode/utf8"

	"github.com/emersion/go-message/charset"
	"golang.org/x/net/html"

	"petrel/internal/store"
)

// MaxIndexText bounds the decoded body text of one message kept for the full-text index;
// text beyond it is not searchable. A 50 MB message of text would otherwise cost its
// whole size again in the index.
const MaxIndexText = 1 << 20

// ParseAt is Parse for a body that can be read again, and also extracts the text the
// full-text index keeps (store.SearchText): the header fields decoded from RFC 2047, and
// the text/* parts (attachments included, at any depth, inside forwarded messages too)
// decoded from base64 or quoted-printable and converted from their charset to UTF-8; HTML
// is reduced to its text. Parts in other types (images, PDFs) are not indexed. Like Parse
// it never fails on a malformed message, only when reading fails.
func ParseAt(r io.ReaderAt, size int64) (store.ParsedMessage, error) {
	pm, root, h, err := parseTree(io.NewSectionReader(r, 0, size))
	if err != nil {
		return pm, err
	}
	text := headerText(h)
	var body strings.Builder
	if err := bodyText(&body, r, &root); err != nil {
		return store.ParsedMessage{}, err
	}
	text.Body = body.String()
	pm.Text = &text
	return pm, nil
}

// headerText sorts the decoded header fields into the index's columns.
func headerText(h header) store.SearchText {
	var t store.SearchText
	var other strings.Builder
	add := func(dst *string, v string) {
		if *dst != "" {
			*dst += "\n"
		}
		*dst += v
	}
	for _, f := range h {
		v := validUTF8(decodeText(f.value))
		switch f.name {
		case "subject":
			add(&t.Subject, v)
		case "from":
			add(&t.From, v)
		case "to":
			add(&t.To, v)
		case "cc":
			add(&t.Cc, v)
		case "bcc":
			add(&t.Bcc, v)
		default:
			other.WriteString(f.name)
			other.WriteString(": ")
			other.WriteString(v)
			other.WriteByte('\n')
		}
	}
	t.Header = other.String()
	return t
}

// bodyText appends the decoded text of p's text parts to b, up to MaxIndexText.
func bodyText(b *strings.Builder, r io.ReaderAt, p *Part) error {
	if b.Len() >= MaxIndexText {
		return nil
	}
	if len(p.Children) > 0 {
		for i := range p.Children {
			if err := bodyText(b, r, &p.Children[i]); err != nil {
				return err
			}
		}
		return nil
	}
	if p.Type != "text" {
		return nil
	}
	src := &sourceReader{r: io.NewSectionReader(r, p.Offset+p.HeaderSize, p.Size)}
	var in io.Reader = src
	switch p.Encoding {
	case "base64":
		// The standard decoder skips the line breaks; it stops at the first bad byte,
		// keeping what came before.
		in = base64.NewDecoder(base64.StdEncoding, in)
	case "quoted-printable":
		in = quotedprintable.NewReader(in)
	}
	if cs := strings.ToLower(p.Params["charset"]); cs != "" && cs != "utf-8" && cs != "us-ascii" {
		if cr, err := charset.Reader(cs, in); err == nil {
			in = cr
		}
	}
	room := int64(MaxIndexText - b.Len())
	// A decoding error (bad base64, a stray '=') ends the part: it is indexed as far as
	// it decoded. Only an error reading the stored body is the caller's.
	if p.Subtype == "html" {
		htmlText(b, io.LimitReader(in, 4*room))
	} else {
		data, _ := io.ReadAll(io.LimitReader(in, room))
		b.WriteString(validUTF8(string(data)))
		b.WriteByte('\n')
	}
	return src.err
}

// sourceReader remembers an error of the reader under the decoders, so that it can be
// told from their own errors about bad content.
type sourceReader struct {
	r   io.Reader
	err error
}

func (s *sourceReader) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	if err != nil && err != io.EOF {
		s.err = err
	}
	return n, err
}

// htmlText appends the text of an HTML document to b, without the contents of script and
// style elements. x/net/html's tokenizer decodes entities and survives any input.
func htmlText(b *strings.Builder, r io.Reader) {
	z := html.NewTokenizer(r)
	skip := 0
	for b.Len() < MaxIndexText {
		switch z.Next() {
		case html.ErrorToken:
			b.WriteByte('\n')
			return
		case html.StartTagToken:
			if name, _ := z.TagName(); string(name) == "script" || string(name) == "style" {
				skip++
			}
			b.WriteByte(' ')
		case html.EndTagToken:
			if name, _ := z.TagName(); (string(name) == "script" || string(name) == "style") && skip > 0 {
				skip--
			}
			b.WriteByte(' ')
		case html.TextToken:
			if skip == 0 {
				b.WriteString(validUTF8(string(z.Text())))
			}
		}
	}
}

func validUTF8(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	return strings.ToValidUTF8(s, " ")
}
