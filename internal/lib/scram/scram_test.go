package scram

import (
	"encoding/base64"
	"encoding/hex"
	"testing"
)

// RFC 7677 §3: user "user", password "pencil", salt W22ZaJ0SNY7soEsUEjb6gQ==, i=4096; the
// server-final signature there follows from these keys. The expected values were computed
// independently (Python hashlib.pbkdf2_hmac and hmac).
func TestDeriveRFC7677(t *testing.T) {
	salt, _ := base64.StdEncoding.DecodeString("W22ZaJ0SNY7soEsUEjb6gQ==")
	k, err := Derive("pencil", salt, 4096)
	if err != nil {
		t.Fatal(err)
	}
	const authMessage = "n=user,r=rOprNGfwEbeRWgbNEkqO,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096,c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
	sig := base64.StdEncoding.EncodeToString(HMAC(k.ServerKey, []byte(authMessage)))
	if sig != "6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=" {
		t.Errorf("server signature %s", sig)
	}
	proof := HMAC(k.StoredKey, []byte(authMessage))
	for i := range proof {
		proof[i] ^= k.ClientKey[i]
	}
	if p := base64.StdEncoding.EncodeToString(proof); p != "dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=" {
		t.Errorf("client proof %s", p)
	}
}

func TestPrep(t *testing.T) {
	for in, want := range map[string]string{
		"pencil":          "pencil",
		"I\u00ADX":        "IX",   // soft hyphen mapped to nothing
		"a\u00A0b":        "a b",  // non-ASCII space
		"\u2168":          "IX",   // NFKC
		"\u00AA":          "a",    // NFKC
		"caf\u0065\u0301": "café", // NFKC composes
		"x\uFE0Fy":        "xy",   // variation selector
	} {
		if got := Prep(in); got != want {
			t.Errorf("Prep(%q) = %q (%s), want %q", in, got, hex.EncodeToString([]byte(got)), want)
		}
	}
}
