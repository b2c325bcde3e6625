package mailmove

import (
	"encoding/base64"
	"strings"
	"unicode/utf16"
)

// mutf7 is the base64 alphabet of IMAP's modified UTF-7, "," in place of "/".
var mutf7 = base64.NewEncoding("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,").WithPadding(base64.NoPadding)

// decodeMUTF7 decodes a mailbox name in IMAP modified UTF-7 (RFC 3501 §5.1.3), as Dovecot
// names Maildir folders on disk: "&-" is "&", "&...-" is base64 of UTF-16. A name that is
// not valid modified UTF-7 is returned unchanged.
func decodeMUTF7(s string) string {
	if !strings.Contains(s, "&") {
		return s
	}
	var b strings.Builder
	for rest := s; rest != ""; {
		i := strings.IndexByte(rest, '&')
		if i < 0 {
			b.WriteString(rest)
			break
		}
		b.WriteString(rest[:i])
		rest = rest[i+1:]
		j := strings.IndexByte(rest, '-')
		if j < 0 {
			return s
		}
		if j == 0 {
			b.WriteByte('&')
			rest = rest[1:]
			continue
		}
		raw, err := mutf7.DecodeString(rest[:j])
		if err != nil || len(raw)%2 != 0 {
			return s
		}
		units := make([]uint16, len(raw)/2)
		for k := range units {
			units[k] = uint16(raw[2*k])<<8 | uint16(raw[2*k+1])
		}
		b.WriteString(string(utf16.Decode(units)))
		rest = rest[j+1:]
	}
	return b.String()
}

// encodeMUTF7 is the inverse, for folder names written by export.
func encodeMUTF7(s string) string {
	var b strings.Builder
	var run []rune
	flush := func() {
		if len(run) == 0 {
			return
		}
		units := utf16.Encode(run)
		raw := make([]byte, 2*len(units))
		for k, u := range units {
			raw[2*k], raw[2*k+1] = byte(u>>8), byte(u)
		}
		b.WriteString("&" + mutf7.EncodeToString(raw) + "-")
		run = run[:0]
	}
	for _, r := range s {
		if r >= 0x20 && r <= 0x7e {
			flush()
			if r == '&' {
				b.WriteString("&-")
			} else {
				b.WriteRune(r)
			}
			continue
		}
		run = append(run, r)
	}
	flush()
	return b.String()
}
