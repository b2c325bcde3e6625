package imapd

// Mailbox names in modified UTF-7 (RFC 3501 §5.1.3), which IMAP4rev1 clients use for
// anything outside printable US-ASCII; RFC 9051 and UTF8=ACCEPT (RFC 6855) clients send
// UTF-8 instead. The store keeps names in UTF-8.

import (
	"encoding/base64"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// mutf7 is base64 with "," for "/" and no padding (RFC 3501 §5.1.3).
var mutf7 = base64.NewEncoding(mutf7Alphabet).WithPadding(base64.NoPadding)

const mutf7Alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,"

// EncodeMUTF7 encodes a UTF-8 mailbox name in modified UTF-7.
func EncodeMUTF7(s string) string {
	var b strings.Builder
	var run []uint16 // pending non-ASCII characters as UTF-16
	flush := func() {
		if len(run) == 0 {
			return
		}
		buf := make([]byte, 0, 2*len(run))
		for _, u := range run {
			buf = append(buf, byte(u>>8), byte(u))
		}
		b.WriteByte('&')
		b.WriteString(mutf7.EncodeToString(buf))
		b.WriteByte('-')
		run = run[:0]
	}
	for _, c := range s {
		if 0x20 <= c && c <= 0x7e {
			flush()
			b.WriteRune(c)
			if c == '&' {
				b.WriteByte('-')
			}
			continue
		}
		run = utf16.AppendRune(run, c)
	}
	flush()
	return b.String()
}

// DecodeMUTF7 decodes a modified UTF-7 mailbox name to UTF-8. It refuses what RFC 3501
// §5.1.3 forbids: octets outside printable US-ASCII, bad base64, printable US-ASCII encoded
// in base64, two encoded runs next to each other, broken UTF-16.
func DecodeMUTF7(s string) (string, bool) {
	var b strings.Builder
	lastEncodedEnd := -1
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c > 0x7e {
			return "", false
		}
		if c != '&' {
			b.WriteByte(c)
			continue
		}
		end := strings.IndexByte(s[i+1:], '-')
		if end < 0 {
			return "", false
		}
		enc := s[i+1 : i+1+end]
		if enc == "" {
			b.WriteByte('&')
			i++
			continue
		}
		if i == lastEncodedEnd {
			return "", false
		}
		// encoding/base64 skips CR and LF; a name must not.
		if strings.Trim(enc, mutf7Alphabet) != "" {
			return "", false
		}
		raw, err := mutf7.Strict().DecodeString(enc)
		if err != nil || len(raw)%2 != 0 {
			return "", false
		}
		units := make([]uint16, len(raw)/2)
		for j := range units {
			units[j] = uint16(raw[2*j])<<8 | uint16(raw[2*j+1])
		}
		for _, r := range utf16.Decode(units) {
			if r == utf8.RuneError || (0x20 <= r && r <= 0x7e) {
				return "", false
			}
			b.WriteRune(r)
		}
		i += end + 1
		lastEncodedEnd = i + 1
	}
	return b.String(), true
}
