package imapd

// Tokens of the command grammar (RFC 9051 §9, "Formal Syntax"): atoms, numbers, quoted
// strings, literals, astrings, nstrings, flags, dates. Each method reads from the reader's
// current position and returns a *Error (BAD unless it says otherwise) when the input does
// not match.

import (
	"strconv"
	"strings"
	"time"
)

// isAtomChar reports whether c is an ATOM-CHAR: any CHAR except atom-specials
// ("(" ")" "{" SP CTL list-wildcards quoted-specials resp-specials). Octets above 0x7f are
// accepted too: UTF-8 mailbox names and search strings (RFC 6855, RFC 9051 §5.1) arrive in
// atoms from some clients, and nothing in the grammar gives them another meaning.
func isAtomChar(c byte) bool {
	switch {
	case c <= ' ' || c == 0x7f:
		return false
	case c == '(' || c == ')' || c == '{' || c == '%' || c == '*' || c == '"' || c == '\\' || c == ']':
		return false
	}
	return true
}

// isAstringChar: ATOM-CHAR or resp-specials ("]").
func isAstringChar(c byte) bool { return isAtomChar(c) || c == ']' }

// isListChar: what a LIST pattern may hold unquoted (RFC 9051 list-char).
func isListChar(c byte) bool { return isAtomChar(c) || c == '%' || c == '*' || c == ']' }

func (r *reader) sp() error {
	if r.peek() != ' ' {
		return badf("Expected a space")
	}
	r.pos++
	return nil
}

// maybeSP consumes a space if one is next.
func (r *reader) maybeSP() bool {
	if r.peek() == ' ' {
		r.pos++
		return true
	}
	return false
}

func (r *reader) expect(c byte) error {
	if r.peek() != c {
		return badf("Expected " + strconv.QuoteRune(rune(c)))
	}
	r.pos++
	return nil
}

// end checks that the command ends here (the CRLF has already been consumed by readLine).
func (r *reader) end() error {
	if !r.atEOL() {
		return badf("Unexpected characters at end of command")
	}
	return nil
}

// span returns the longest run of octets matching ok at the current position.
func (r *reader) span(ok func(byte) bool) string {
	start := r.pos
	for r.pos < len(r.line) && ok(r.line[r.pos]) {
		r.pos++
	}
	return string(r.line[start:r.pos])
}

// atom reads an atom (1*ATOM-CHAR).
func (r *reader) atom() (string, error) {
	s := r.span(isAtomChar)
	if s == "" {
		return "", badf("Expected an atom")
	}
	return s, nil
}

// keyword reads an atom made of letters, digits, "." and "-" and returns it upper-cased:
// command names, search keys, fetch items, status items.
func (r *reader) keyword() string {
	start := r.pos
	for r.pos < len(r.line) {
		c := r.line[r.pos]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '-' || c == '=') {
			break
		}
		r.pos++
	}
	return strings.ToUpper(string(r.line[start:r.pos]))
}

// number reads a number (RFC 9051: 1*DIGIT fitting 32 bits unsigned).
func (r *reader) number() (uint32, error) {
	n, err := r.number64()
	if err != nil {
		return 0, err
	}
	if n > 1<<32-1 {
		return 0, badf("Number too large")
	}
	return uint32(n), nil
}

// number64 reads a number64 (RFC 9051: 1*DIGIT, at most 2^63-1).
func (r *reader) number64() (int64, error) {
	start := r.pos
	for r.pos < len(r.line) && '0' <= r.line[r.pos] && r.line[r.pos] <= '9' {
		r.pos++
	}
	if start == r.pos {
		return 0, badf("Expected a number")
	}
	n, err := strconv.ParseInt(string(r.line[start:r.pos]), 10, 64)
	if err != nil {
		return 0, badf("Number too large")
	}
	return n, nil
}

func (r *reader) nzNumber() (uint32, error) {
	n, err := r.number()
	if err == nil && n == 0 {
		err = badf("Expected a non-zero number")
	}
	return n, err
}

// quoted reads a quoted string (RFC 9051 quoted): DQUOTE *QUOTED-CHAR DQUOTE, where only
// quoted-specials (DQUOTE and "\") may be escaped.
func (r *reader) quoted() (string, error) {
	if err := r.expect('"'); err != nil {
		return "", err
	}
	start := r.pos
	// Fast path: no escapes.
	for r.pos < len(r.line) {
		switch r.line[r.pos] {
		case '"':
			s := string(r.line[start:r.pos])
			r.pos++
			return s, nil
		case '\\':
			return r.quotedSlow(start)
		case '\r', '\n':
			return "", badf("Bad quoted string")
		}
		r.pos++
	}
	return "", badf("Unterminated quoted string")
}

func (r *reader) quotedSlow(start int) (string, error) {
	b := make([]byte, 0, r.pos-start+16)
	b = append(b, r.line[start:r.pos]...)
	for r.pos < len(r.line) {
		c := r.line[r.pos]
		r.pos++
		switch c {
		case '"':
			return string(b), nil
		case '\\':
			if r.pos >= len(r.line) || (r.line[r.pos] != '"' && r.line[r.pos] != '\\') {
				return "", badf("Bad escape in quoted string")
			}
			b = append(b, r.line[r.pos])
			r.pos++
		default:
			b = append(b, c)
		}
	}
	return "", badf("Unterminated quoted string")
}

// str reads a string: quoted or literal.
func (r *reader) str() (string, error) {
	switch r.peek() {
	case '"':
		return r.quoted()
	case '{':
		return r.literal()
	}
	return "", badf("Expected a string")
}

// astring reads an astring: 1*ASTRING-CHAR or a string.
func (r *reader) astring() (string, error) {
	switch r.peek() {
	case '"':
		return r.quoted()
	case '{':
		return r.literal()
	}
	s := r.span(isAstringChar)
	if s == "" {
		return "", badf("Expected a string")
	}
	return s, nil
}

// nstring reads a string or NIL; NIL is returned as ok false.
func (r *reader) nstring() (s string, ok bool, err error) {
	switch r.peek() {
	case '"', '{':
		s, err = r.str()
		return s, err == nil, err
	}
	if a, _ := r.atom(); strings.EqualFold(a, "NIL") {
		return "", false, nil
	}
	return "", false, badf("Expected a string or NIL")
}

// mailbox reads a mailbox name (RFC 9051 mailbox: "INBOX" / astring); INBOX in any case is
// INBOX (RFC 9051 §5.1). The name is returned as sent: modified UTF-7 decoding is the
// session's business, since it depends on UTF8=ACCEPT (see DecodeMailbox).
func (r *reader) mailbox() (string, error) {
	s, err := r.astring()
	if err != nil {
		return "", err
	}
	if strings.EqualFold(s, "INBOX") {
		return "INBOX", nil
	}
	return s, nil
}

// listMailbox reads a LIST pattern: 1*list-char or a string.
func (r *reader) listMailbox() (string, error) {
	switch r.peek() {
	case '"', '{':
		return r.str()
	}
	s := r.span(isListChar)
	if s == "" {
		return "", badf("Expected a mailbox pattern")
	}
	return s, nil
}

// list reads a parenthesised list, calling item for each element; it enforces the list size
// and nesting limits. An empty list "()" is allowed when empty is true.
func (r *reader) list(empty bool, item func() error) error {
	if err := r.enter(); err != nil {
		return err
	}
	defer r.leave()
	return r.listItems(empty, item)
}

// listItems is list without a nesting level of its own, for callers that count one already.
func (r *reader) listItems(empty bool, item func() error) error {
	if err := r.expect('('); err != nil {
		return err
	}
	if r.peek() == ')' {
		r.pos++
		if !empty {
			return badf("Empty list")
		}
		return nil
	}
	for n := 1; ; n++ {
		if n > r.lim.MaxListItems {
			return badf("Too many items in list")
		}
		if err := item(); err != nil {
			return err
		}
		if r.peek() == ')' {
			r.pos++
			return nil
		}
		if err := r.sp(); err != nil {
			return err
		}
	}
}

// enter and leave track nesting depth (lists, search keys).
func (r *reader) enter() error {
	r.depth++
	if r.depth > r.lim.MaxDepth {
		return badf("Nesting too deep")
	}
	return nil
}

func (r *reader) leave() { r.depth-- }

// System flags, in the case RFC 9051 §2.3.2 writes them; flags are case-insensitive.
var systemFlags = []string{`\Seen`, `\Answered`, `\Flagged`, `\Deleted`, `\Draft`, `\Recent`}

// flag reads a flag: "\" atom (a system flag or flag-extension) or a keyword atom.
// System flags are returned in canonical case.
func (r *reader) flag() (string, error) {
	bs := false
	if r.peek() == '\\' {
		bs = true
		r.pos++
	}
	a, err := r.atom()
	if err != nil {
		return "", badf("Expected a flag")
	}
	if !bs {
		return a, nil
	}
	for _, f := range systemFlags {
		if strings.EqualFold(f[1:], a) {
			return f, nil
		}
	}
	return `\` + a, nil
}

// flagList reads "(" [flag *(SP flag)] ")".
func (r *reader) flagList() ([]string, error) {
	var flags []string
	err := r.list(true, func() error {
		f, err := r.flag()
		flags = append(flags, f)
		return err
	})
	return flags, err
}

var months = [...]string{"JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"}

// date reads a search date (RFC 9051 date: date-text or DQUOTE date-text DQUOTE, date-text =
// 1*2DIGIT "-" Mon "-" 4DIGIT), returned as midnight UTC of that day.
func (r *reader) date() (time.Time, error) {
	q := r.peek() == '"'
	if q {
		r.pos++
	}
	t, err := r.dateText(false)
	if err != nil {
		return t, err
	}
	if q {
		if err := r.expect('"'); err != nil {
			return t, err
		}
	}
	return t, nil
}

func (r *reader) dateText(fixed bool) (time.Time, error) {
	bad := badf("Bad date")
	var day int
	if fixed && r.peek() == ' ' { // date-day-fixed = (SP DIGIT) / 2DIGIT
		r.pos++
	}
	start := r.pos
	for r.pos < len(r.line) && r.pos-start < 2 && '0' <= r.peek() && r.peek() <= '9' {
		day = day*10 + int(r.peek()-'0')
		r.pos++
	}
	if r.pos == start || r.expect('-') != nil || r.pos+3 > len(r.line) {
		return time.Time{}, bad
	}
	mon := strings.ToUpper(string(r.line[r.pos : r.pos+3]))
	r.pos += 3
	month := 0
	for i, m := range months {
		if m == mon {
			month = i + 1
		}
	}
	if month == 0 || r.expect('-') != nil || r.pos+4 > len(r.line) {
		return time.Time{}, bad
	}
	year, err := strconv.Atoi(string(r.line[r.pos : r.pos+4]))
	if err != nil || year < 0 {
		return time.Time{}, bad
	}
	r.pos += 4
	t := time.Date(year, time.Month(month), day, 0, 0, 0, 0, time.UTC)
	if t.Day() != day {
		return time.Time{}, bad // 31-Feb and the like
	}
	return t, nil
}

// dateTime reads an APPEND date-time: DQUOTE date-day-fixed "-" date-month "-" date-year SP
// time SP zone DQUOTE, e.g. "17-Jul-1996 02:44:25 -0700" (RFC 9051 date-time).
func (r *reader) dateTime() (time.Time, error) {
	bad := badf("Bad date-time")
	if err := r.expect('"'); err != nil {
		return time.Time{}, err
	}
	d, err := r.dateText(true)
	if err != nil {
		return d, err
	}
	// " hh:mm:ss +zzzz"
	const tail = len(" 00:00:00 +0000")
	if r.pos+tail >= len(r.line) || r.line[r.pos+tail] != '"' {
		return time.Time{}, bad
	}
	s := string(r.line[r.pos : r.pos+tail])
	r.pos += tail + 1
	t, err := time.Parse(" 15:04:05 -0700", s)
	if err != nil {
		return time.Time{}, bad
	}
	return time.Date(d.Year(), d.Month(), d.Day(), t.Hour(), t.Minute(), t.Second(), 0, t.Location()), nil
}
