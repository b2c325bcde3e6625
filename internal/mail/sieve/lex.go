package sieve

import (
	"fmt"
	"strconv"
	"strings"
)

// tokenKind is the kind of a lexical token (RFC 5228 §8.1).
type tokenKind int

const (
	tEOF tokenKind = iota
	tIdent
	tTag    // ":name"
	tNumber // with its K/M/G quantifier applied
	tString // quoted or multi-line, decoded
	tPunct  // one of [ ] ( ) , ; { }
)

type token struct {
	kind tokenKind
	text string // identifier or tag name (lower-case), string value, punctuation
	num  int64
	line int
}

// Error is a script error: where (line, 1-based) and why. A parse error and a runtime
// error both use it; a runtime error's line is the command that failed.
type Error struct {
	Line   int
	Reason string
}

func (e *Error) Error() string { return fmt.Sprintf("line %d: %s", e.Line, e.Reason) }

func errorf(line int, format string, args ...any) *Error {
	return &Error{Line: line, Reason: fmt.Sprintf(format, args...)}
}

// lexer splits a script into tokens. It never allocates more than the script's size
// (plus token headers), so a script's size bounds its memory.
type lexer struct {
	src  string
	pos  int
	line int
}

func (l *lexer) next() (token, error) {
	if err := l.skipSpace(); err != nil {
		return token{}, err
	}
	if l.pos >= len(l.src) {
		return token{kind: tEOF, line: l.line}, nil
	}
	c := l.src[l.pos]
	line := l.line
	switch {
	case strings.IndexByte("[](),;{}", c) >= 0:
		l.pos++
		return token{kind: tPunct, text: string(c), line: line}, nil
	case c == '"':
		s, err := l.quoted()
		return token{kind: tString, text: s, line: line}, err
	case c == ':':
		l.pos++
		id := l.ident()
		if id == "" {
			return token{}, errorf(line, "a tag needs a name after ':'")
		}
		return token{kind: tTag, text: strings.ToLower(id), line: line}, nil
	case c >= '0' && c <= '9':
		return l.number()
	case isIdentStart(c):
		id := strings.ToLower(l.ident())
		if id == "text" && l.pos < len(l.src) && l.src[l.pos] == ':' {
			l.pos++
			s, err := l.multiline(line)
			return token{kind: tString, text: s, line: line}, err
		}
		return token{kind: tIdent, text: id, line: line}, nil
	}
	return token{}, errorf(line, "unexpected character %q", c)
}

func isIdentStart(c byte) bool {
	return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}

func (l *lexer) ident() string {
	start := l.pos
	for l.pos < len(l.src) {
		c := l.src[l.pos]
		if !isIdentStart(c) && !(c >= '0' && c <= '9') {
			break
		}
		l.pos++
	}
	return l.src[start:l.pos]
}

func (l *lexer) skipSpace() error {
	for l.pos < len(l.src) {
		c := l.src[l.pos]
		switch {
		case c == '\n':
			l.line++
			l.pos++
		case c == ' ' || c == '\t' || c == '\r':
			l.pos++
		case c == '#':
			for l.pos < len(l.src) && l.src[l.pos] != '\n' {
				l.pos++
			}
		case c == '/' && strings.HasPrefix(l.src[l.pos:], "/*"):
			start := l.line
			end := strings.Index(l.src[l.pos+2:], "*/")
			if end < 0 {
				return errorf(start, "comment not closed")
			}
			l.line += strings.Count(l.src[l.pos:l.pos+2+end], "\n")
			l.pos += end + 4
		default:
			return nil
		}
	}
	return nil
}

// maxNumber bounds numbers so that a quantifier cannot overflow (RFC 5228 §2.4.1 leaves
// the range to the implementation; 2^53 is far above any message size).
const maxNumber = 1 << 53

func (l *lexer) number() (token, error) {
	line := l.line
	start := l.pos
	for l.pos < len(l.src) && l.src[l.pos] >= '0' && l.src[l.pos] <= '9' {
		l.pos++
	}
	n, err := strconv.ParseInt(l.src[start:l.pos], 10, 64)
	if err != nil || n > maxNumber {
		return token{}, errorf(line, "number too large")
	}
	if l.pos < len(l.src) {
		mult := int64(0)
		switch l.src[l.pos] {
		case 'k', 'K':
			mult = 1 << 10
		case 'm', 'M':
			mult = 1 << 20
		case 'g', 'G':
			mult = 1 << 30
		}
		if mult != 0 {
			l.pos++
			if n > maxNumber/mult {
				return token{}, errorf(line, "number too large")
			}
			n *= mult
		}
	}
	return token{kind: tNumber, num: n, line: line}, nil
}

// quoted reads a quoted string: "\" escapes any character (RFC 5228 §2.4.2); CRLF may
// appear inside.
func (l *lexer) quoted() (string, error) {
	line := l.line
	l.pos++ // opening quote
	var b strings.Builder
	for l.pos < len(l.src) {
		c := l.src[l.pos]
		switch c {
		case '"':
			l.pos++
			return b.String(), nil
		case '\\':
			if l.pos+1 < len(l.src) {
				l.pos++
				c = l.src[l.pos]
			}
		}
		if c == '\n' {
			l.line++
		}
		b.WriteByte(c)
		l.pos++
	}
	return "", errorf(line, "string not closed")
}

// multiline reads the rest of a "text:" string (RFC 5228 §2.4.2): up to a line holding a
// single ".", with ".." at a line start standing for ".".
func (l *lexer) multiline(line int) (string, error) {
	// Spaces and a comment may follow "text:" on its line.
	for l.pos < len(l.src) && (l.src[l.pos] == ' ' || l.src[l.pos] == '\t') {
		l.pos++
	}
	if l.pos < len(l.src) && l.src[l.pos] == '#' {
		for l.pos < len(l.src) && l.src[l.pos] != '\n' {
			l.pos++
		}
	}
	if l.pos < len(l.src) && l.src[l.pos] == '\r' {
		l.pos++
	}
	if l.pos >= len(l.src) || l.src[l.pos] != '\n' {
		return "", errorf(line, `"text:" must end its line`)
	}
	l.pos++
	l.line++
	var b strings.Builder
	for l.pos < len(l.src) {
		end := strings.IndexByte(l.src[l.pos:], '\n')
		if end < 0 {
			break
		}
		raw := l.src[l.pos : l.pos+end+1]
		l.pos += end + 1
		l.line++
		content := strings.TrimRight(raw, "\r\n")
		if content == "." {
			return b.String(), nil
		}
		if strings.HasPrefix(raw, "..") {
			raw = raw[1:]
		}
		b.WriteString(strings.TrimSuffix(strings.TrimSuffix(raw, "\n"), "\r"))
		b.WriteString("\r\n")
	}
	return "", errorf(line, `multi-line string not ended by a line with "."`)
}
