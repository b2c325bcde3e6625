// Package address parses and normalizes mail addresses as they appear in SMTP paths.
//
// Only the plain mailbox of RFC 5321 §4.1.2 is accepted: Local-part "@" Domain, where the
// local part is a Dot-string or a Quoted-string and the domain is a host name. UTF-8 is
// allowed in both parts (SMTPUTF8, RFC 6531 §3.3). The routing syntaxes that mail servers
// historically honoured and that open relays were made of (source routes, '%' and '!' in the
// local part) are refused, and so are address literals: Petrel hosts named domains only.
//
// Normal form: the domain is lower-case IDNA A-labels (UTS #46 lookup mapping), so
// "Bücher.Example" and "xn--bcher-kva.example" are the same domain. The local part keeps its
// case in Address.Local (it is what the sender wrote) and is folded to lower case by Key and
// Base, which is how Petrel looks up accounts and aliases. Limits (RFC 5321 §4.5.3.1) are
// checked on the normal form, so Parse(a.String()) succeeds whenever Parse gave a.
//
// API CONTRACT: the exported signatures below are fixed; smtpd, deliver and cli code against
// them.
package address

import (
	"errors"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/net/idna"
)

// ErrSyntax is returned for an address that is not a plain local@domain mailbox.
var ErrSyntax = errors.New("address: bad syntax")

// Address is a mailbox with a normalized domain (lower-case, IDNA A-labels).
type Address struct {
	Local  string // as given (case preserved), unquoted
	Domain string
}

// Limits from RFC 5321 §4.5.3.1, in octets.
const (
	maxLocal   = 64  // §4.5.3.1.1
	maxDomain  = 255 // §4.5.3.1.2
	maxLabel   = 63  // RFC 1035 §2.3.4
	maxMailbox = 254 // §4.5.3.1.3: a path is at most 256 octets including "<" and ">"

	// maxInput bounds the text Parse looks at. Quoting, escapes and U-labels make the input
	// longer than the normal form that maxMailbox limits, but not four times longer.
	maxInput = 4 * maxMailbox
)

// Parse parses "local@domain" (no angle brackets). It refuses source routes ("@a:b@c"),
// '%' and '!' routing hacks, empty parts, address literals (we host named domains only), and
// over-long parts (RFC 5321 §4.5.3.1).
func Parse(s string) (Address, error) {
	if len(s) > maxInput {
		return Address{}, syntaxErr("address too long")
	}
	if !utf8.ValidString(s) {
		return Address{}, syntaxErr("invalid UTF-8")
	}
	if strings.HasPrefix(s, "@") {
		// A-d-l of RFC 5321 §4.1.2 ("@a,@b:user@c"); §C says to ignore the route, we refuse
		// it outright since only relays ever produced it.
		return Address{}, syntaxErr("source route or empty local part")
	}

	var local, rest string
	var err error
	if strings.HasPrefix(s, `"`) {
		local, rest, err = parseQuoted(s)
	} else {
		local, rest, err = parseDotString(s)
	}
	if err != nil {
		return Address{}, err
	}
	if local == "" {
		return Address{}, syntaxErr("empty local part")
	}
	// '%' (RFC 1123 §5.2.16 "percent hack") and '!' (UUCP bang paths) let a sender route
	// mail through us to a third host; we never interpret them, and accepting them would make
	// aliases and catch-alls ambiguous. '@' inside quotes is the same trick (RFC 5321 §3.6.1).
	if i := strings.IndexAny(local, "%!@"); i >= 0 {
		return Address{}, syntaxErr(fmt.Sprintf("routing character %q in local part", local[i]))
	}

	if !strings.HasPrefix(rest, "@") {
		return Address{}, syntaxErr("missing @")
	}
	domain, err := parseDomain(rest[1:])
	if err != nil {
		return Address{}, err
	}

	a := Address{Local: local, Domain: domain}
	if n := len(quoteLocal(local)); n > maxLocal {
		return Address{}, syntaxErr(fmt.Sprintf("local part is %d octets, max %d", n, maxLocal))
	}
	if n := len(a.String()); n > maxMailbox {
		return Address{}, syntaxErr(fmt.Sprintf("address is %d octets, max %d", n, maxMailbox))
	}
	return a, nil
}

// parseDotString reads a Dot-string local part (RFC 5321 §4.1.2) up to the first '@' and
// returns it and the remainder starting at '@'.
func parseDotString(s string) (local, rest string, err error) {
	at := strings.IndexByte(s, '@')
	if at < 0 {
		return "", "", syntaxErr("missing @")
	}
	local = s[:at]
	if !isDotString(local) {
		return "", "", syntaxErr("local part is not a dot-string")
	}
	return local, s[at:], nil
}

// isDotString reports whether s is Atom *("." Atom).
func isDotString(s string) bool {
	if s == "" {
		return false
	}
	for atom := range strings.SplitSeq(s, ".") {
		if atom == "" {
			return false // leading, trailing or doubled dot
		}
		for _, r := range atom {
			if !isAtext(r) {
				return false
			}
		}
	}
	return true
}

// isAtext reports whether r may appear in an Atom: RFC 5322 §3.2.3 atext, extended with
// UTF8-non-ascii by RFC 6531 §3.3. C1 controls are not text, whatever their encoding.
func isAtext(r rune) bool {
	switch {
	case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
		return true
	case r < utf8.RuneSelf:
		return strings.ContainsRune("!#$%&'*+-/=?^_`{|}~", r)
	default:
		return isUTF8Text(r)
	}
}

// isUTF8Text reports whether a non-ASCII rune is acceptable text in an address.
func isUTF8Text(r rune) bool {
	return r != utf8.RuneError && !unicode.IsControl(r)
}

// parseQuoted reads a Quoted-string local part (RFC 5321 §4.1.2) starting at s[0] == '"' and
// returns its unquoted value and the remainder after the closing quote.
func parseQuoted(s string) (local, rest string, err error) {
	var b strings.Builder
	for i := 1; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == '"':
			return b.String(), s[i+1:], nil
		case r == '\\':
			// quoted-pairSMTP = %d92 %d32-126
			if i+1 >= len(s) || s[i+1] < 32 || s[i+1] > 126 {
				return "", "", syntaxErr("bad quoted pair")
			}
			b.WriteByte(s[i+1])
			i += 2
			continue
		case isQtext(r):
			b.WriteRune(r)
		default:
			return "", "", syntaxErr("bad character in quoted string")
		}
		i += size
	}
	return "", "", syntaxErr("unterminated quoted string")
}

// isQtext reports whether r is qtextSMTP (RFC 5321 §4.1.2: %d32-33 / %d35-91 / %d93-126),
// extended with UTF8-non-ascii (RFC 6531 §3.3).
func isQtext(r rune) bool {
	if r < utf8.RuneSelf {
		return r >= 32 && r <= 126 && r != '"' && r != '\\'
	}
	return isUTF8Text(r)
}

// parseDomain checks a domain (RFC 5321 §4.1.2 Domain, RFC 6531 U-labels) and returns it in
// normal form: lower-case A-labels.
func parseDomain(s string) (string, error) {
	switch {
	case s == "":
		return "", syntaxErr("empty domain")
	case strings.HasPrefix(s, "["):
		return "", syntaxErr("address literals are not accepted")
	}
	// The lookup profile applies the UTS #46 mapping (case folding, full-width forms) and
	// STD3 rules, and validates existing xn-- labels.
	d, err := idna.Lookup.ToASCII(s)
	if err != nil {
		return "", syntaxErr("bad domain: " + err.Error())
	}
	if len(d) > maxDomain {
		return "", syntaxErr(fmt.Sprintf("domain is %d octets, max %d", len(d), maxDomain))
	}
	// Check the result ourselves too: the mapping turns some runes into dots, and the lookup
	// profile neither rejects empty labels nor checks lengths.
	for label := range strings.SplitSeq(d, ".") {
		if err := checkLabel(label); err != nil {
			return "", err
		}
	}
	return d, nil
}

// checkLabel checks one A-label against RFC 5321 §4.1.2 sub-domain = Let-dig [Ldh-str].
func checkLabel(label string) error {
	switch {
	case label == "":
		return syntaxErr("empty domain label (leading, trailing or doubled dot)")
	case len(label) > maxLabel:
		return syntaxErr(fmt.Sprintf("domain label is %d octets, max %d", len(label), maxLabel))
	case label[0] == '-' || label[len(label)-1] == '-':
		return syntaxErr("domain label starts or ends with '-'")
	}
	for i := 0; i < len(label); i++ {
		c := label[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return syntaxErr(fmt.Sprintf("bad character %q in domain", c))
		}
	}
	return nil
}

// String returns local@domain, quoting the local part when needed.
func (a Address) String() string {
	return quoteLocal(a.Local) + "@" + a.Domain
}

// Key is the lookup form: lower-case local@domain. The local part is quoted when it is not a
// dot-string, so a key is itself a valid address.
func (a Address) Key() string {
	return quoteLocal(strings.ToLower(a.Local)) + "@" + a.Domain
}

// Base strips a sub-address tag: "user+tag" → "user" (lower-case key form). Only the first
// '+' separates the tag; a local part that starts with '+' has no base and is kept whole.
func (a Address) Base() string {
	local := strings.ToLower(a.Local)
	if i := strings.IndexByte(local, '+'); i > 0 {
		local = local[:i]
	}
	return quoteLocal(local) + "@" + a.Domain
}

// quoteLocal returns the local part as it goes on the wire: as is when it is a dot-string,
// otherwise as a quoted string with '"' and '\' escaped (RFC 5321 §4.1.2 recommends the
// unquoted form whenever possible).
func quoteLocal(local string) string {
	if isDotString(local) {
		return local
	}
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range local {
		if r == '"' || r == '\\' {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	b.WriteByte('"')
	return b.String()
}

func syntaxErr(detail string) error {
	return fmt.Errorf("%w: %s", ErrSyntax, detail)
}
