// Package arc verifies and adds Authenticated Received Chain sets (RFC 8617).
//
// An ARC set is three header fields with one instance number i: the
// ARC-Authentication-Results (AAR) a handler wrote, its ARC-Message-Signature
// (AMS, a DKIM-like signature of the message as it left) and its ARC-Seal (AS,
// a signature over every set so far). A forwarder that breaks SPF and DKIM (a
// mailing list, an alias forwarding to another server) adds a set, so that the
// final receiver can see what the first receivers saw.
//
// Verify validates a message's chain (§5.2) and returns none, pass or fail for
// the "arc" method of Authentication-Results. Signer.Seal adds the next set
// (§5.1) to a message being forwarded, signed with a domain's DKIM key.
//
// # Why our own code
//
// No maintained Go module implements ARC (go-msgauth, which Petrel uses for
// DKIM, has none; the ones on the module proxy are unmaintained forks of
// years-old code). ARC needs DKIM's canonicalizations and key records but not
// its verifier: the AMS is a DKIM-Signature under another name with i= for an
// instance, and the seal hashes header fields in an order of its own, so
// go-msgauth's dkim package, whose verification takes whole DKIM-Signature
// fields only, cannot be reused. The cryptography is the standard library's
// (crypto/rsa, crypto/ed25519); this package only canonicalizes, hashes and
// orders. It is tested against dkimpy (Debian's python3-dkim), the reference
// implementation the ARC test suite came from, in both directions.
//
// # Bounds
//
// At most 50 sets (§4.2.1: a chain longer than that fails), header sections are
// the caller's (read bounded), and each set costs one key look-up and one
// signature check, so a verification costs at most 51 of each; a chain fails at
// the first broken seal without looking further.
package arc

import (
	"bytes"
	"crypto"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Status is a chain validation status (RFC 8617 §4.4), also the result of the
// "arc" method in Authentication-Results (§10.1).
type Status string

const (
	None Status = "none" // no ARC sets
	Pass Status = "pass"
	Fail Status = "fail"
)

// MaxInstances is the highest instance a chain may reach (RFC 8617 §4.2.1).
const MaxInstances = 50

const (
	aarName = "arc-authentication-results"
	amsName = "arc-message-signature"
	asName  = "arc-seal"
)

// field is one header field: its name as written and the whole field, name
// and CRLF included.
type field struct {
	name string
	raw  string
}

// splitHeader splits a header section (up to the empty line or the end) into
// fields. Lines may end in CRLF or LF; a continuation line before any field is
// ignored.
func splitHeader(hdr []byte) []field {
	var fields []field
	for len(hdr) > 0 {
		end := bytes.IndexByte(hdr, '\n') + 1
		if end == 0 {
			end = len(hdr)
		}
		line := hdr[:end]
		hdr = hdr[end:]
		if len(bytes.TrimRight(line, "\r\n")) == 0 {
			break // the empty line ending the section
		}
		if line[0] == ' ' || line[0] == '\t' {
			if n := len(fields); n > 0 {
				fields[n-1].raw += string(line)
			}
			continue
		}
		name, _, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			continue // not a field; nothing can sign it
		}
		fields = append(fields, field{name: string(bytes.TrimRight(name, " \t")), raw: string(line)})
	}
	return fields
}

// value is the field's value: after the colon, with the final line end.
func (f field) value() string {
	_, v, _ := strings.Cut(f.raw, ":")
	return v
}

// relaxedHeader is the relaxed header canonicalization of RFC 6376 §3.4.2:
// lower-case name, unfolded, runs of white space as one space, none around the
// value, ending in CRLF.
func relaxedHeader(raw string) string {
	name, value, _ := strings.Cut(raw, ":")
	var b strings.Builder
	b.Grow(len(raw))
	b.WriteString(strings.ToLower(strings.TrimRight(name, " \t")))
	b.WriteByte(':')
	space := false
	for i := 0; i < len(value); i++ {
		switch c := value[i]; c {
		case '\r', '\n':
		case ' ', '\t':
			space = true
		default:
			if space && b.Len() > len(name)+1 {
				b.WriteByte(' ')
			}
			space = false
			b.WriteByte(c)
		}
	}
	b.WriteString("\r\n")
	return b.String()
}

// canonHeader canonicalizes a field with the named algorithm; simple keeps it
// as it is (RFC 6376 §3.4.1).
func canonHeader(raw string, relaxed bool) string {
	if relaxed {
		return relaxedHeader(raw)
	}
	if !strings.HasSuffix(raw, "\n") {
		return raw + "\r\n"
	}
	return raw
}

// tags is a parsed tag-list (RFC 6376 §3.2).
type tags map[string]string

// parseTags reads a tag-list; a duplicate tag or a malformed entry is an error
// (§3.2: a tag-list with a duplicate tag is invalid). Values keep inner white
// space; callers strip it where the syntax allows none (b=, bh=, p=).
func parseTags(s string) (tags, error) {
	t := tags{}
	for _, part := range strings.Split(s, ";") {
		k, v, ok := strings.Cut(part, "=")
		if !ok {
			if strings.TrimSpace(part) == "" {
				continue
			}
			return nil, fmt.Errorf("malformed tag %q", strings.TrimSpace(part))
		}
		k = strings.TrimSpace(k)
		if k == "" {
			return nil, errors.New("empty tag name")
		}
		if _, dup := t[k]; dup {
			return nil, fmt.Errorf("duplicate tag %q", k)
		}
		t[k] = strings.TrimSpace(v)
	}
	return t, nil
}

// noSpace removes folding white space from a value (base64, tag lists).
func noSpace(s string) string {
	return strings.Map(func(r rune) rune {
		if r == ' ' || r == '\t' || r == '\r' || r == '\n' {
			return -1
		}
		return r
	}, s)
}

// instanceOf reads i= of an ARC field's value: the AAR's first tag, a tag of
// the AMS and AS. 0 means missing or invalid (RFC 8617 §4.2.1: 1 to 50).
func instanceOf(name, value string) int {
	var raw string
	if strings.EqualFold(name, aarName) {
		first, _, _ := strings.Cut(value, ";")
		k, v, ok := strings.Cut(first, "=")
		if !ok || strings.TrimSpace(k) != "i" {
			return 0
		}
		raw = v
	} else {
		t, err := parseTags(value)
		if err != nil {
			return 0
		}
		raw = t["i"]
	}
	n, err := strconv.Atoi(strings.TrimSpace(raw))
	if err != nil || n < 1 || n > MaxInstances {
		return 0
	}
	return n
}

// withoutB returns a signature field with the value of its b= tag emptied
// (RFC 6376 §3.7: "with the value of the b= tag ... deleted"). Only the tag
// named b counts; a "b=" inside another value is left alone.
func withoutB(raw string) string {
	colon := strings.IndexByte(raw, ':')
	if colon < 0 {
		return raw
	}
	pos := colon + 1
	for pos <= len(raw) {
		end := strings.IndexByte(raw[pos:], ';')
		if end < 0 {
			end = len(raw)
		} else {
			end += pos
		}
		k, _, ok := strings.Cut(raw[pos:end], "=")
		if ok && strings.TrimSpace(k) == "b" {
			eq := pos + strings.IndexByte(raw[pos:end], '=') + 1
			rest := raw[end:]
			if end == len(raw) && strings.HasSuffix(raw[pos:end], "\n") {
				// The last tag: keep the field's line end.
				rest = "\r\n"
				if !strings.HasSuffix(raw, "\r\n") {
					rest = "\n"
				}
			}
			return raw[:eq] + rest
		}
		pos = end + 1
	}
	return raw
}

// publicKey parses a DKIM key record (RFC 6376 §3.6.1): RSA (SubjectPublicKeyInfo,
// or a bare PKCS #1 key as some publish) of at least 1024 bits (RFC 8301), or
// Ed25519 (RFC 8463).
func publicKey(record string) (crypto.PublicKey, error) {
	t, err := parseTags(record)
	if err != nil {
		return nil, fmt.Errorf("key record: %w", err)
	}
	if v, ok := t["v"]; ok && v != "DKIM1" {
		return nil, errors.New("key record: not DKIM1")
	}
	p := noSpace(t["p"])
	if p == "" {
		return nil, errors.New("key revoked (empty p=)")
	}
	der, err := base64.StdEncoding.DecodeString(p)
	if err != nil {
		return nil, fmt.Errorf("key record: p=: %w", err)
	}
	switch k := t["k"]; k {
	case "", "rsa":
		var pub *rsa.PublicKey
		if key, err := x509.ParsePKIXPublicKey(der); err == nil {
			var ok bool
			if pub, ok = key.(*rsa.PublicKey); !ok {
				return nil, errors.New("key record: k=rsa but not an RSA key")
			}
		} else if pub, err = x509.ParsePKCS1PublicKey(der); err != nil {
			return nil, fmt.Errorf("key record: %w", err)
		}
		if pub.N.BitLen() < 1024 {
			return nil, errors.New("key record: RSA key shorter than 1024 bits")
		}
		return pub, nil
	case "ed25519":
		if len(der) != ed25519.PublicKeySize {
			return nil, errors.New("key record: bad Ed25519 key size")
		}
		return ed25519.PublicKey(der), nil
	default:
		return nil, fmt.Errorf("key record: unknown key type %q", k)
	}
}

// checkSignature verifies sig over the SHA-256 hash with the algorithm of a=.
func checkSignature(algo string, pub crypto.PublicKey, hashed, sig []byte) error {
	switch algo {
	case "rsa-sha256":
		k, ok := pub.(*rsa.PublicKey)
		if !ok {
			return errors.New("a=rsa-sha256 with a key that is not RSA")
		}
		return rsa.VerifyPKCS1v15(k, crypto.SHA256, hashed, sig)
	case "ed25519-sha256":
		k, ok := pub.(ed25519.PublicKey)
		if !ok {
			return errors.New("a=ed25519-sha256 with a key that is not Ed25519")
		}
		if !ed25519.Verify(k, hashed, sig) {
			return errors.New("ed25519 signature mismatch")
		}
		return nil
	}
	return fmt.Errorf("unsupported algorithm %q", algo)
}
