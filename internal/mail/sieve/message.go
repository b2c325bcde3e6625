package sieve

import (
	"bytes"
	"strings"
)

// HeaderMessage is a Message over a raw header section, with the body supplied by the
// caller (who knows how to decode it; delivery has the parse already). A field is looked
// for only when a script asks for it, and kept for the next test and the next script: a
// script tests a few of a message's fields, and building every field's value cost more
// than the tests. It is not safe for concurrent use (one delivery runs its scripts in turn).
type HeaderMessage struct {
	raw      []byte              // the header section, up to its empty line
	asked    map[string][]string // lower-case name -> unfolded values in order
	size     int64
	BodyFunc func(transform string, types []string) string
}

// maxHeaderFields bounds how many fields of a header section are looked at.
const maxHeaderFields = 1000

// NewHeaderMessage is the message whose header section starts raw (up to the empty line
// or the end; what follows is not read), of size bytes in all. It keeps raw.
func NewHeaderMessage(raw []byte, size int64) *HeaderMessage {
	return &HeaderMessage{raw: raw, size: size}
}

func (m *HeaderMessage) Header(name string) []string {
	key := strings.ToLower(name)
	if v, ok := m.asked[key]; ok {
		return v
	}
	v := m.find(key)
	if m.asked == nil {
		m.asked = make(map[string][]string, 8)
	}
	m.asked[key] = v
	return v
}

// find returns the unfolded, trimmed values of the fields named key (lower case), in order.
func (m *HeaderMessage) find(key string) []string {
	var out []string
	raw := m.raw
	for n := 0; len(raw) > 0 && n < maxHeaderFields; {
		line := nextLine(&raw)
		if len(line) == 0 {
			break // the end of the header section
		}
		if line[0] == ' ' || line[0] == '\t' {
			continue // the rest of a field not asked for
		}
		i := bytes.IndexByte(line, ':')
		if i <= 0 {
			continue
		}
		n++
		if !equalFoldASCII(bytes.TrimSpace(line[:i]), key) {
			continue
		}
		value := line[i+1:]
		folded := false
		for len(raw) > 0 && (raw[0] == ' ' || raw[0] == '\t') {
			if !folded {
				value, folded = append([]byte(nil), value...), true // a copy: raw stays as it is
			}
			value = append(value, nextLine(&raw)...) // RFC 5322 §2.2.3: unfold by removing CRLF
		}
		out = append(out, strings.TrimSpace(string(value)))
	}
	return out
}

// nextLine cuts the next line off *raw, without its CRLF or LF.
func nextLine(raw *[]byte) []byte {
	line := *raw
	if i := bytes.IndexByte(line, '\n'); i >= 0 {
		line, *raw = line[:i], line[i+1:]
	} else {
		*raw = nil
	}
	return bytes.TrimSuffix(line, []byte("\r"))
}

// equalFoldASCII compares a field name with a lower-case key, ASCII letters folded (field
// names are ASCII, RFC 5322 §2.2).
func equalFoldASCII(b []byte, key string) bool {
	if len(b) != len(key) {
		return false
	}
	for i := range len(b) {
		c := b[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != key[i] {
			return false
		}
	}
	return true
}

func (m *HeaderMessage) Size() int64 { return m.size }

func (m *HeaderMessage) Body(transform string, types []string) string {
	if m.BodyFunc == nil {
		return ""
	}
	return m.BodyFunc(transform, types)
}
