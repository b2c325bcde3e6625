package managesieve

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// The ManageSieve wire format (RFC 5804 §4): a command is an atom followed by arguments,
// each a quoted string, a literal ("{N+}" CRLF and N octets; the synchronizing "{N}" is
// taken as well, since ManageSieve has no continuation for it) or a number.

// errTooLong ends the session: a line or literal beyond the limits.
var errTooLong = errors.New("command too long")

// syntaxError is a malformed command; the session answers NO and goes on.
type syntaxError struct{ msg string }

func (e syntaxError) Error() string { return e.msg }

type argument struct {
	s       string
	literal bool
	number  bool
}

// readCommand reads one command: its name (upper-cased) and arguments. maxLine bounds the
// text outside literals, maxLiteral each literal.
func readCommand(r *bufio.Reader, maxLine, maxLiteral int) (string, []argument, error) {
	return read(r, maxLine, maxLiteral, true)
}

// readResponse reads a client's line of a SASL exchange: strings only, no command name.
func readResponse(r *bufio.Reader, maxLine, maxLiteral int) ([]argument, error) {
	_, args, err := read(r, maxLine, maxLiteral, false)
	return args, err
}

func read(r *bufio.Reader, maxLine, maxLiteral int, named bool) (string, []argument, error) {
	var args []argument
	var name string
	used := 0
	var perr error // a syntax error: the rest of the line is still read
	for {
		line, err := readLine(r, maxLine-used)
		if err != nil {
			return "", nil, err
		}
		used += len(line)
		rest := strings.TrimRight(line, "\r\n")
		if !named && used == len(line) {
			rest = " " + rest
		} else if name == "" && len(args) == 0 {
			var ok bool
			name, rest, ok = cutAtom(rest)
			if !ok {
				if strings.TrimSpace(rest) == "" {
					return "", nil, syntaxError{"empty command"}
				}
				perr = syntaxError{"a command starts with its name"}
			}
		}
		lit := -1
		for perr == nil && rest != "" {
			if rest[0] != ' ' {
				perr = syntaxError{"arguments are separated by one space"}
				break
			}
			rest = rest[1:]
			switch {
			case strings.HasPrefix(rest, `"`):
				s, n, err := quoted(rest)
				if err != nil {
					perr = err
					break
				}
				args = append(args, argument{s: s})
				rest = rest[n:]
			case strings.HasPrefix(rest, "{"):
				end := strings.IndexByte(rest, '}')
				if end < 0 || end != len(rest)-1 {
					perr = syntaxError{"a literal's length must end the line"}
					break
				}
				n, err := strconv.Atoi(strings.TrimSuffix(rest[1:end], "+"))
				if err != nil || n < 0 {
					perr = syntaxError{"bad literal length"}
					break
				}
				if n > maxLiteral {
					return "", nil, errTooLong
				}
				lit, rest = n, ""
			default:
				atom, r2, _ := cutAtom(rest)
				if _, err := strconv.ParseUint(atom, 10, 32); err != nil || atom == "" {
					perr = syntaxError{fmt.Sprintf("unexpected %q", first(rest))}
					break
				}
				args = append(args, argument{s: atom, number: true})
				rest = r2
			}
		}
		if lit < 0 {
			if perr != nil {
				return strings.ToUpper(name), nil, perr
			}
			return strings.ToUpper(name), args, nil
		}
		buf := make([]byte, lit)
		if _, err := io.ReadFull(r, buf); err != nil {
			return "", nil, err
		}
		args = append(args, argument{s: string(buf), literal: true})
	}
}

func first(s string) string {
	if len(s) > 10 {
		return s[:10]
	}
	return s
}

// readLine reads one line up to max bytes, CRLF (or LF) included.
func readLine(r *bufio.Reader, max int) (string, error) {
	var b []byte
	for {
		chunk, err := r.ReadSlice('\n')
		b = append(b, chunk...)
		if len(b) > max {
			return "", errTooLong
		}
		if err == bufio.ErrBufferFull {
			continue
		}
		if err != nil {
			return "", err
		}
		return string(b), nil
	}
}

func cutAtom(s string) (atom, rest string, ok bool) {
	i := 0
	for i < len(s) && isAtomChar(s[i]) {
		i++
	}
	return s[:i], s[i:], i > 0
}

func isAtomChar(c byte) bool {
	return c > ' ' && c < 0x7f && !strings.ContainsRune(`"{}()%*\`, rune(c))
}

// quoted decodes a quoted string at the start of s and returns its length in s.
func quoted(s string) (string, int, error) {
	var b strings.Builder
	for i := 1; i < len(s); i++ {
		switch c := s[i]; c {
		case '"':
			return b.String(), i + 1, nil
		case '\\':
			if i+1 >= len(s) || s[i+1] != '"' && s[i+1] != '\\' {
				return "", 0, syntaxError{`only \" and \\ may be escaped`}
			}
			i++
			b.WriteByte(s[i])
		default:
			b.WriteByte(c)
		}
	}
	return "", 0, syntaxError{"string not closed"}
}

// quote writes s as a quoted string if it can be one (RFC 5804 §4: no CR, LF or NUL, at
// most 1024 octets), else as a literal.
func quote(s string) string {
	if len(s) <= 1024 && !strings.ContainsAny(s, "\r\n\x00") {
		return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
	}
	return "{" + strconv.Itoa(len(s)) + "}\r\n" + s
}
