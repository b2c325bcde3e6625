package sieve

import (
	"bytes"
	"strings"
)

// HeaderMessage is a Message over a raw header section, with the body supplied by the
// caller (who knows how to decode it; delivery has the parse already).
type HeaderMessage struct {
	fields   map[string][]string // lower-case name -> unfolded values in order
	size     int64
	BodyFunc func(transform string, types []string) string
}

// maxHeaderFields bounds how many fields NewHeaderMessage keeps.
const maxHeaderFields = 1000

// NewHeaderMessage parses the header section at the start of raw (up to the empty line or
// the end) for a message of size bytes.
func NewHeaderMessage(raw []byte, size int64) *HeaderMessage {
	m := &HeaderMessage{fields: map[string][]string{}, size: size}
	var name string
	var value []byte // the field's value; it points into raw until a continuation line comes
	folded := false
	n := 0
	flush := func() {
		if name != "" && n < maxHeaderFields {
			m.fields[name] = append(m.fields[name], strings.TrimSpace(string(value)))
			n++
		}
		name, value, folded = "", nil, false
	}
	for len(raw) > 0 {
		line := raw
		if i := bytes.IndexByte(raw, '\n'); i >= 0 {
			line, raw = raw[:i], raw[i+1:]
		} else {
			raw = nil
		}
		line = bytes.TrimSuffix(line, []byte("\r"))
		if len(line) == 0 {
			break
		}
		if line[0] == ' ' || line[0] == '\t' {
			if name != "" {
				if !folded {
					value, folded = append([]byte(nil), value...), true // a copy: raw stays as it is
				}
				value = append(value, line...) // RFC 5322 §2.2.3: unfold by removing CRLF
			}
			continue
		}
		flush()
		if i := bytes.IndexByte(line, ':'); i > 0 {
			name = strings.ToLower(strings.TrimSpace(string(line[:i])))
			value = line[i+1:]
		}
	}
	flush()
	return m
}

func (m *HeaderMessage) Header(name string) []string { return m.fields[strings.ToLower(name)] }
func (m *HeaderMessage) Size() int64                 { return m.size }

func (m *HeaderMessage) Body(transform string, types []string) string {
	if m.BodyFunc == nil {
		return ""
	}
	return m.BodyFunc(transform, types)
}
