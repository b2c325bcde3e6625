package auth

import (
	"encoding/base64"
	"strings"
	"testing"
)

func TestNormalizePassword(t *testing.T) {
	tests := []struct {
		in, want string
		ok       bool
	}{
		{"pencil", "pencil", true},
		{"with space", "with space", true},
		{"ümlaut", "ümlaut", true},
		{"u\u0308mlaut", "ümlaut", true}, // NFKC composes
		{"ﬁx", "fix", true},              // NFKC compatibility mapping, as SASLprep
		{"a\u00A0b", "a b", true},        // non-ASCII space -> SPACE (RFC 4013 §2.1)
		{"a\u200Bb\u00ADc", "abc", true}, // mapped to nothing (RFC 3454 B.1)
		{"I\u2168", "IIX", true},         // Roman numeral nine
		{"", "", false},
		{"\u200B", "", false}, // maps to empty
		{"tab\there", "", false},
		{"nul\x00", "", false},
		{"del\x7f", "", false},
		{"c1\u0085", "", false},
		{"bad\xffutf8", "", false},
		{strings.Repeat("x", maxPasswordLen), strings.Repeat("x", maxPasswordLen), true},
		{strings.Repeat("x", maxPasswordLen+1), "", false},
	}
	for _, tt := range tests {
		got, err := normalizePassword(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("normalizePassword(%q) = %q, %v; want %q, ok=%v", tt.in, got, err, tt.want, tt.ok)
		}
	}
}

func TestNewCredentials(t *testing.T) {
	cred, err := NewCredentials("correct horse")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(cred.PasswordHash, "$argon2id$v=19$m=19456,t=2,p=1$") {
		t.Errorf("PasswordHash = %q", cred.PasswordHash)
	}
	p, err := parseArgon2id(cred.PasswordHash)
	if err != nil {
		t.Fatal(err)
	}
	if len(p.salt) != saltLen || len(p.hash) != argonKeyLen {
		t.Errorf("salt %d, hash %d octets", len(p.salt), len(p.hash))
	}
	if !p.verify("correct horse") || p.verify("correct horsE") {
		t.Error("argon2id verify does not tell the right password from a wrong one")
	}

	k, err := parseSCRAMKeys(cred.SCRAMSHA256)
	if err != nil {
		t.Fatal(err)
	}
	if k.iterations != scramIterations || len(k.salt) != saltLen || k.String() != cred.SCRAMSHA256 {
		t.Errorf("SCRAM keys %q parsed to %+v", cred.SCRAMSHA256, k)
	}
	want, _ := deriveSCRAMKeys("correct horse", k.salt, k.iterations)
	if want.String() != cred.SCRAMSHA256 {
		t.Errorf("SCRAM keys %q, derived again %q", cred.SCRAMSHA256, want)
	}

	again, _ := NewCredentials("correct horse")
	if again.PasswordHash == cred.PasswordHash || again.SCRAMSHA256 == cred.SCRAMSHA256 {
		t.Error("two hashes of one password are equal: salts are not random")
	}
	if _, err := NewCredentials("bad\npassword"); err == nil {
		t.Error("NewCredentials accepted a control character")
	}
	if _, err := NewCredentials(""); err == nil {
		t.Error("NewCredentials accepted an empty password")
	}
}

// TestSCRAMKeysRFC7677 checks key derivation against the RFC 7677 §3 example, whose
// ServerSignature and ClientProof are checked in TestSCRAMRFC7677.
func TestSCRAMKeysRFC7677(t *testing.T) {
	salt, _ := base64.StdEncoding.DecodeString("W22ZaJ0SNY7soEsUEjb6gQ==")
	k, err := deriveSCRAMKeys("pencil", salt, 4096)
	if err != nil {
		t.Fatal(err)
	}
	// Computed independently with Python's hashlib.pbkdf2_hmac and hmac.
	const want = "SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$" +
		"WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU="
	if got := k.String(); got != want {
		t.Errorf("keys = %q\nwant   %q", got, want)
	}
}

func TestParseArgon2idRejects(t *testing.T) {
	good := "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0c2FsdA$" + strings.Repeat("A", 43)
	if _, err := parseArgon2id(good); err != nil {
		t.Fatalf("good hash refused: %v", err)
	}
	for _, s := range []string{
		"",
		"plain",
		"$argon2i$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0c2FsdA$" + strings.Repeat("A", 43),
		"$argon2id$v=16$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0c2FsdA$" + strings.Repeat("A", 43),
		"$argon2id$v=19$m=4194304,t=2,p=1$c2FsdHNhbHRzYWx0c2FsdA$" + strings.Repeat("A", 43), // 4 GiB
		"$argon2id$v=19$m=19456,t=1000,p=1$c2FsdHNhbHRzYWx0c2FsdA$" + strings.Repeat("A", 43),
		"$argon2id$v=19$m=19456,t=2,p=0$c2FsdHNhbHRzYWx0c2FsdA$" + strings.Repeat("A", 43),
		"$argon2id$v=19$m=19456,t=2,p=300$c2FsdHNhbHRzYWx0c2FsdA$" + strings.Repeat("A", 43),
		"$argon2id$v=19$m=19456,t=2,p=1,x=1$c2FsdHNhbHRzYWx0c2FsdA$" + strings.Repeat("A", 43),
		"$argon2id$v=19$m=19456,t=2,p=1$!!$" + strings.Repeat("A", 43),
		"$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0c2FsdA$AAAA",
		"$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0c2FsdA",
	} {
		if _, err := parseArgon2id(s); err == nil {
			t.Errorf("parseArgon2id(%q) accepted", s)
		}
	}
}

func TestParseSCRAMKeysRejects(t *testing.T) {
	for _, s := range []string{
		"",
		"SCRAM-SHA-1$4096:c2FsdA==$AAAA:AAAA",
		"SCRAM-SHA-256$0:c2FsdA==$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=",
		"SCRAM-SHA-256$4096:$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=",
		"SCRAM-SHA-256$4096:c2FsdA==$AAAA:wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=",
		"SCRAM-SHA-256$4096:c2FsdA==$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=",
	} {
		if _, err := parseSCRAMKeys(s); err == nil {
			t.Errorf("parseSCRAMKeys(%q) accepted", s)
		}
	}
}
