package address

import (
	"errors"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	long63 := strings.Repeat("a", 63)
	tests := []struct {
		in      string
		local   string // expected Local; ignored on error
		domain  string
		wantErr bool
	}{
		// Plain addresses.
		{in: "user@example.com", local: "user", domain: "example.com"},
		{in: "User.Name@Example.COM", local: "User.Name", domain: "example.com"},
		{in: "user+tag@example.com", local: "user+tag", domain: "example.com"},
		{in: "a@b", local: "a", domain: "b"},
		{in: "x@mail-1.example.org", local: "x", domain: "mail-1.example.org"},
		{in: "#$&'*+-/=?^_`{|}~@example.com", local: "#$&'*+-/=?^_`{|}~", domain: "example.com"},
		{in: "1@123.example", local: "1", domain: "123.example"},

		// Quoted local parts (RFC 5321 §4.1.2).
		{in: `"john doe"@example.com`, local: "john doe", domain: "example.com"},
		{in: `"abc"@example.com`, local: "abc", domain: "example.com"},
		{in: `"a\"b"@example.com`, local: `a"b`, domain: "example.com"},
		{in: `"a\\b"@example.com`, local: `a\b`, domain: "example.com"},
		{in: `"a..b"@example.com`, local: "a..b", domain: "example.com"},
		{in: `"a\b"@example.com`, local: "ab", domain: "example.com"},

		// SMTPUTF8 (RFC 6531) and IDNA.
		{in: "θσερ@example.com", local: "θσερ", domain: "example.com"},
		{in: "user@Bücher.example", local: "user", domain: "xn--bcher-kva.example"},
		{in: "user@xn--bcher-kva.example", local: "user", domain: "xn--bcher-kva.example"},
		{in: "用户@例子.广告", local: "用户", domain: "xn--fsqu00a.xn--4rr70v"},
		{in: "user@ＥＸＡＭＰＬＥ.com", local: "user", domain: "example.com"}, // full-width mapped
		{in: `"δ x"@example.com`, local: "δ x", domain: "example.com"},

		// Relay tricks.
		{in: "@a,@b:user@c", wantErr: true},
		{in: "@a:user@c", wantErr: true},
		{in: "user%other.example@example.com", wantErr: true},
		{in: "host!user@example.com", wantErr: true},
		{in: `"user@other.example"@example.com`, wantErr: true},
		{in: `"user%other"@example.com`, wantErr: true},
		{in: `"host!user"@example.com`, wantErr: true},
		{in: "user@other.example@example.com", wantErr: true},
		{in: "user@[192.0.2.1]", wantErr: true},
		{in: "user@[IPv6:2001:db8::1]", wantErr: true},

		// Empty parts and bad syntax.
		{in: "", wantErr: true},
		{in: "@", wantErr: true},
		{in: "@example.com", wantErr: true},
		{in: "user@", wantErr: true},
		{in: "user", wantErr: true},
		{in: `""@example.com`, wantErr: true},
		{in: "<user@example.com>", wantErr: true},
		{in: " user@example.com", wantErr: true},
		{in: "user@example.com ", wantErr: true},
		{in: "us er@example.com", wantErr: true},
		{in: ".user@example.com", wantErr: true},
		{in: "user.@example.com", wantErr: true},
		{in: "us..er@example.com", wantErr: true},
		{in: `"unterminated@example.com`, wantErr: true},
		{in: `"a"b@example.com`, wantErr: true},
		{in: `"a\` + "\x01" + `"@example.com`, wantErr: true},
		{in: "\"a\tb\"@example.com", wantErr: true},
		{in: "us\x00er@example.com", wantErr: true},
		{in: "us\u0085er@example.com", wantErr: true}, // C1 control
		{in: "us\xffer@example.com", wantErr: true},   // invalid UTF-8
		{in: "user@exa mple.com", wantErr: true},
		{in: "user@example.com.", wantErr: true},
		{in: "user@.example.com", wantErr: true},
		{in: "user@example..com", wantErr: true},
		{in: "user@-example.com", wantErr: true},
		{in: "user@example-.com", wantErr: true},
		{in: "user@exa_mple.com", wantErr: true},
		{in: "user@example.com:25", wantErr: true},
		{in: "user@xn--zz.example", wantErr: true}, // invalid punycode

		// Limits (RFC 5321 §4.5.3.1).
		{in: strings.Repeat("a", 64) + "@example.com", local: strings.Repeat("a", 64), domain: "example.com"},
		{in: strings.Repeat("a", 65) + "@example.com", wantErr: true},
		{in: `"` + strings.Repeat("a", 63) + ` "@example.com`, wantErr: true},                                               // 64 unquoted, 66 quoted
		{in: `"` + strings.Repeat("a", 61) + ` "@example.com`, local: strings.Repeat("a", 61) + " ", domain: "example.com"}, // 64 quoted
		{in: "u@" + long63 + ".com", local: "u", domain: long63 + ".com"},
		{in: "u@" + long63 + "a.com", wantErr: true},
		{in: "u@" + strings.Repeat(long63+".", 4) + "com", wantErr: true},      // 259 octets
		{in: "u@" + strings.Repeat("a.", 126) + "com", wantErr: true},          // 257 octets
		{in: `"` + strings.Repeat(`\a`, 400) + `"@example.com`, wantErr: true}, // over maxInput
	}
	for _, tt := range tests {
		a, err := Parse(tt.in)
		if tt.wantErr {
			if err == nil {
				t.Errorf("Parse(%q) = %+v, want error", tt.in, a)
			} else if !errors.Is(err, ErrSyntax) {
				t.Errorf("Parse(%q) error %v does not wrap ErrSyntax", tt.in, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("Parse(%q): %v", tt.in, err)
			continue
		}
		if a.Local != tt.local || a.Domain != tt.domain {
			t.Errorf("Parse(%q) = %q @ %q, want %q @ %q", tt.in, a.Local, a.Domain, tt.local, tt.domain)
		}
	}
}

func TestStringKeyBase(t *testing.T) {
	tests := []struct {
		in, str, key, base string
	}{
		{"User@Example.COM", "User@example.com", "user@example.com", "user@example.com"},
		{"User+Tag@example.com", "User+Tag@example.com", "user+tag@example.com", "user@example.com"},
		{"user+a+b@example.com", "user+a+b@example.com", "user+a+b@example.com", "user@example.com"},
		{"+tag@example.com", "+tag@example.com", "+tag@example.com", "+tag@example.com"},
		{"user+@example.com", "user+@example.com", "user+@example.com", "user@example.com"},
		{`"abc"@example.com`, "abc@example.com", "abc@example.com", "abc@example.com"},
		{`"John Doe"@example.com`, `"John Doe"@example.com`, `"john doe"@example.com`, `"john doe"@example.com`},
		{`"John Doe+x"@example.com`, `"John Doe+x"@example.com`, `"john doe+x"@example.com`, `"john doe"@example.com`},
		{`"a+b c"@example.com`, `"a+b c"@example.com`, `"a+b c"@example.com`, "a@example.com"},
		{`"a\"b"@example.com`, `"a\"b"@example.com`, `"a\"b"@example.com`, `"a\"b"@example.com`},
		{`"a.\\"@example.com`, `"a.\\"@example.com`, `"a.\\"@example.com`, `"a.\\"@example.com`},
		{"ÜSER@Bücher.example", "ÜSER@xn--bcher-kva.example", "üser@xn--bcher-kva.example", "üser@xn--bcher-kva.example"},
	}
	for _, tt := range tests {
		a, err := Parse(tt.in)
		if err != nil {
			t.Errorf("Parse(%q): %v", tt.in, err)
			continue
		}
		if got := a.String(); got != tt.str {
			t.Errorf("Parse(%q).String() = %q, want %q", tt.in, got, tt.str)
		}
		if got := a.Key(); got != tt.key {
			t.Errorf("Parse(%q).Key() = %q, want %q", tt.in, got, tt.key)
		}
		if got := a.Base(); got != tt.base {
			t.Errorf("Parse(%q).Base() = %q, want %q", tt.in, got, tt.base)
		}
		checkRoundTrip(t, tt.in, a)
	}
}

// checkRoundTrip checks that the String, Key and Base forms of a parsed address parse again
// to the same address.
func checkRoundTrip(t *testing.T, in string, a Address) {
	t.Helper()
	b, err := Parse(a.String())
	if err != nil {
		t.Fatalf("Parse(%q) ok, but Parse(String() = %q): %v", in, a.String(), err)
	}
	if b != a || b.Key() != a.Key() {
		t.Fatalf("Parse(%q) = %+v, but Parse(%q) = %+v", in, a, a.String(), b)
	}
	for _, s := range []string{a.Key(), a.Base()} {
		c, err := Parse(s)
		if err != nil {
			// Lower-casing can make a form longer (U+023A is 2 octets, its lower case 3),
			// so that form may exceed a limit; a form no longer than String() must parse.
			if len(s) <= len(a.String()) {
				t.Fatalf("Parse(%q) ok, but Parse(%q): %v", in, s, err)
			}
			continue
		}
		if c.Key() != s {
			t.Fatalf("Parse(%q) ok, Key/Base %q parses to key %q", in, s, c.Key())
		}
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"user@example.com",
		"User+Tag@Example.COM",
		`"john doe"@example.com`,
		`"a\"b\\c"@example.com`,
		"@a,@b:user@c",
		"user%host@example.com",
		"user@[192.0.2.1]",
		"用户@例子.广告",
		"user@xn--bcher-kva.example",
		"user@ＥＸＡＭＰＬＥ.com",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		a, err := Parse(s)
		if err != nil {
			if !errors.Is(err, ErrSyntax) {
				t.Fatalf("Parse(%q): error %v does not wrap ErrSyntax", s, err)
			}
			return
		}
		if a.Local == "" || a.Domain == "" {
			t.Fatalf("Parse(%q) = %+v with an empty part", s, a)
		}
		checkRoundTrip(t, s, a)
	})
}
