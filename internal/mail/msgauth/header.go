package msgauth

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
)

// DefaultMaxHeaderBytes bounds the header section read into memory for signing and
// verification. RFC 5322 sets no limit; 1 MiB is far above real mail (Postfix's
// header_size_limit is 100 KiB) and keeps a hostile message from costing more.
const DefaultMaxHeaderBytes = 1 << 20

// ErrHeaderTooLarge is returned when a message's header section exceeds the bound.
var ErrHeaderTooLarge = errors.New("msgauth: header section too large")

// headerLimit is a configured bound on the header section, or the default for 0.
func headerLimit(n int) int {
	if n <= 0 {
		return DefaultMaxHeaderBytes
	}
	return n
}

// readHeader reads the header section of a message from br, up to and including the empty
// line that ends it (or up to EOF for a message without a body). It never holds more than
// max bytes. Lines may end in CRLF or LF; the bytes are returned as they were.
func readHeader(br *bufio.Reader, max int) ([]byte, error) {
	var hdr []byte
	for {
		line, err := br.ReadSlice('\n')
		if len(hdr)+len(line) > max {
			return nil, ErrHeaderTooLarge
		}
		hdr = append(hdr, line...)
		switch {
		case err == bufio.ErrBufferFull:
			continue // a long line: keep reading it
		case err == io.EOF:
			return hdr, nil
		case err != nil:
			return nil, err
		}
		if len(line) == 1 || (len(line) == 2 && line[0] == '\r') {
			// The empty line: the header section ends here (RFC 5322 §2.1).
			return hdr, nil
		}
	}
}

// message is a header section already read followed by the rest of the message. Unlike
// io.MultiReader it has no WriteTo, whose 32 KiB buffer per call was 40% of the memory a
// verification allocated: a bufio.Reader on top copies through its own buffer instead.
type message struct {
	hdr  []byte
	body io.Reader
}

func (m *message) Read(p []byte) (int, error) {
	if len(m.hdr) > 0 {
		n := copy(p, m.hdr)
		m.hdr = m.hdr[n:]
		return n, nil
	}
	return m.body.Read(p)
}

// terminated returns hdr ending in the empty line, added if the message ended without one
// (a message without a body): go-msgauth reads up to that line and fails without it.
func terminated(hdr []byte) []byte {
	if blankLine(hdr) != nil {
		return hdr
	}
	if len(hdr) > 0 && hdr[len(hdr)-1] != '\n' {
		hdr = append(hdr, "\r\n"...)
	}
	return append(hdr, "\r\n"...)
}

// field is one header field as it appears in the message: its name and the whole field
// (name, colon, value and continuation lines, with line ends), a slice of the header
// section (capacity capped, so an append never writes into the section).
type field struct {
	name string
	raw  []byte
}

// value returns the field's value unfolded (RFC 5322 §2.2.3), trimmed.
func (f field) value() string {
	_, v, _ := bytes.Cut(f.raw, []byte(":"))
	if bytes.IndexByte(bytes.TrimRight(v, "\r\n"), '\n') < 0 {
		return strings.TrimSpace(string(v)) // not folded: the common case
	}
	b := make([]byte, 0, len(v))
	for _, c := range v {
		if c != '\r' && c != '\n' {
			b = append(b, c)
		}
	}
	return strings.TrimSpace(string(b))
}

// splitFields splits a header section into fields. Lines that are neither a field nor a
// continuation (no colon: broken mail) are kept as fields of their own so that a filter
// that writes fields back loses nothing; the final empty line is not a field.
func splitFields(hdr []byte) []field {
	var fields []field
	for pos := 0; pos < len(hdr); {
		end := len(hdr)
		if i := bytes.IndexByte(hdr[pos:], '\n'); i >= 0 {
			end = pos + i + 1
		}
		line := hdr[pos:end]
		start := pos
		pos = end
		if len(bytes.TrimRight(line, "\r\n")) == 0 {
			continue // the empty line ending the section
		}
		if (line[0] == ' ' || line[0] == '\t') && len(fields) > 0 {
			// A continuation line directly follows its field: the field's slice of hdr
			// grows over it.
			last := &fields[len(fields)-1]
			last.raw = hdr[end-len(last.raw)-len(line) : end : end]
			continue
		}
		// The name is what precedes the colon; a line without one is named by all of it,
		// as go-msgauth's header reader does, so that both see the same DKIM-Signature
		// fields (a mismatch would attribute results to the wrong signature).
		n, _, _ := bytes.Cut(line, []byte(":"))
		fields = append(fields, field{name: strings.TrimSpace(string(n)), raw: hdr[start:end:end]})
	}
	return fields
}

// RemoveAuthResults returns the header section hdr without the Authentication-Results
// fields whose authserv-id is authservID (compared without case). RFC 8601 §5: a border
// MTA MUST remove such fields arriving from outside, since only it may claim its own id,
// and a forged one would otherwise be trusted by our own filters and the recipient's MUA.
// Fields of other authserv-ids are kept: they are another host's claims, which MUAs
// ignore unless configured to trust them.
func RemoveAuthResults(hdr []byte, authservID string) []byte {
	if !bytes.Contains(bytes.ToLower(hdr), []byte("authentication-results")) {
		return hdr
	}
	var out []byte
	for _, f := range splitFields(hdr) {
		if strings.EqualFold(f.name, "Authentication-Results") && strings.EqualFold(authservIDOf(f.value()), authservID) {
			continue
		}
		out = append(out, f.raw...)
	}
	return append(out, blankLine(hdr)...)
}

// blankLine returns the empty line that ends the header section hdr, as it was written, or
// nil if the section ends at EOF without one.
func blankLine(hdr []byte) []byte {
	switch {
	case string(hdr) == "\r\n" || bytes.HasSuffix(hdr, []byte("\n\r\n")):
		return []byte("\r\n")
	case string(hdr) == "\n" || bytes.HasSuffix(hdr, []byte("\n\n")):
		return []byte("\n")
	}
	return nil
}

// authservIDOf returns the authserv-id at the start of an Authentication-Results value
// (RFC 8601 §2.2: [CFWS] authserv-id [ CFWS authres-version ] ";" ...), with comments
// skipped, so that "(forged) mx.example.org; ..." is recognized too.
func authservIDOf(v string) string {
	v = stripComments(v)
	v, _, _ = strings.Cut(v, ";")
	fields := strings.Fields(v)
	if len(fields) == 0 {
		return ""
	}
	id := fields[0]
	if len(id) >= 2 && id[0] == '"' && id[len(id)-1] == '"' {
		id = id[1 : len(id)-1] // authserv-id is a value: a token or a quoted-string
	}
	return id
}

// stripComments removes RFC 5322 comments (nested parentheses, with quoted pairs) from s.
// An unclosed comment runs to the end.
func stripComments(s string) string {
	if !strings.Contains(s, "(") {
		return s
	}
	var b strings.Builder
	depth := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\\' && depth > 0:
			i++
		case c == '(':
			depth++
		case c == ')' && depth > 0:
			depth--
			if depth == 0 {
				b.WriteByte(' ')
			}
		case depth == 0:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// StripAuthResults returns a reader of the message in r with the Authentication-Results
// fields claiming authservID removed from its header section (see RemoveAuthResults); the
// body streams through untouched. maxHeader bounds the header section (0: the default).
func StripAuthResults(r io.Reader, authservID string, maxHeader int) (io.Reader, error) {
	br := bufio.NewReader(r)
	hdr, err := readHeader(br, headerLimit(maxHeader))
	if err != nil {
		return nil, fmt.Errorf("msgauth: reading header: %w", err)
	}
	return &message{hdr: RemoveAuthResults(hdr, authservID), body: br}, nil
}
