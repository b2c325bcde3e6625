// Package scram holds the SCRAM-SHA-256 arithmetic (RFC 5802 §3, RFC 7677) and the password
// preparation that the server (internal/auth) and the clients (pop3client, outbox) must do
// identically: a difference of one mapping step would lock a user out of SCRAM only.
package scram

import (
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/sha256"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// Keys are the values derived from a password and a salt.
type Keys struct {
	ClientKey []byte // HMAC(SaltedPassword, "Client Key"); only the client keeps it
	StoredKey []byte // H(ClientKey)
	ServerKey []byte // HMAC(SaltedPassword, "Server Key")
}

// Derive computes the keys: SaltedPassword := Hi(Prep(password), salt, i), Hi being PBKDF2
// with HMAC-SHA-256. The password must already be prepared with Prep.
func Derive(prepared string, salt []byte, iterations int) (Keys, error) {
	salted, err := pbkdf2.Key(sha256.New, prepared, salt, iterations, sha256.Size)
	if err != nil {
		return Keys{}, err
	}
	ck := HMAC(salted, []byte("Client Key"))
	sk := sha256.Sum256(ck)
	return Keys{ClientKey: ck, StoredKey: sk[:], ServerKey: HMAC(salted, []byte("Server Key"))}, nil
}

// HMAC is HMAC-SHA-256.
func HMAC(key, msg []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write(msg)
	return m.Sum(nil)
}

// Prep applies the mapping and normalization steps of SASLprep (RFC 4013 §2.1-2.2), which
// SCRAM clients apply to passwords and names (RFC 5802 §2.2): characters "commonly mapped to
// nothing" (RFC 3454 B.1) are removed, non-ASCII spaces become U+0020, and the result is
// NFKC-normalized. Printable ASCII is unchanged. Refusing prohibited characters is the
// caller's business.
func Prep(s string) string {
	ascii := true
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			ascii = false
			break
		}
	}
	if ascii {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		switch {
		case mappedToNothing(r):
		case r != ' ' && unicode.Is(unicode.Zs, r):
			b.WriteByte(' ')
		default:
			b.WriteRune(r)
		}
	}
	return norm.NFKC.String(b.String())
}

// mappedToNothing reports whether r is in RFC 3454 table B.1.
func mappedToNothing(r rune) bool {
	switch r {
	case 0x00AD, 0x034F, 0x1806, 0x180B, 0x180C, 0x180D, 0x200B, 0x200C, 0x200D, 0x2060, 0xFEFF:
		return true
	}
	return r >= 0xFE00 && r <= 0xFE0F
}
