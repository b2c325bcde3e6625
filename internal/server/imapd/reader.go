package imapd

// The command reader: it frames one IMAP command off the wire, line by line and literal by
// literal (RFC 9051 §2.2.1 and §4.3), and hands the parser one token at a time.
//
// Rules this file keeps (the mistakes it exists to avoid, docs/architecture.md "IMAP: go-imap
// v2 or our own"):
//   - A literal's announced size is checked against what the command may still hold BEFORE
//     anything of it is read or allocated: "{4294967295}" is refused at once.
//   - A refused synchronizing literal gets its tagged answer and no continuation: the client
//     is waiting for "+" and abandons the command when it sees the tagged reply (RFC 9051
//     §7.5). A refused non-synchronizing literal closes the connection with BYE (RFC 7888 §4
//     leaves "read and discard" or "close"; reading megabytes we refused is no help).
//   - After any error inside a command the rest of that command is consumed (skipRest), so the
//     next read starts at a command boundary: octets of a non-synchronizing literal are never
//     parsed as commands.
//   - One command, literals included, holds at most Limits.MaxCommand octets. APPEND's message
//     literal is the exception: the session streams it under its own limit (APPENDLIMIT).

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"strconv"
)

// Limits bound what one command can make the server read and hold. Zero values get the
// defaults named on each field.
type Limits struct {
	MaxCommand   int // octets of one command, literals included, APPEND's message excluded (default 80 KiB)
	MaxDepth     int // nesting of parenthesised lists and search keys (default 32)
	MaxListItems int // items in one parenthesised list (default 1000)
	MaxSeqRanges int // ranges in one sequence set (default 1000)
}

// Defaults for the zero values of Limits.
const (
	DefaultMaxCommand   = 80 << 10
	DefaultMaxDepth     = 32
	DefaultMaxListItems = 1000
	DefaultMaxSeqRanges = 1000
)

func (l Limits) withDefaults() Limits {
	if l.MaxCommand <= 0 {
		l.MaxCommand = DefaultMaxCommand
	}
	if l.MaxDepth <= 0 {
		l.MaxDepth = DefaultMaxDepth
	}
	if l.MaxListItems <= 0 {
		l.MaxListItems = DefaultMaxListItems
	}
	if l.MaxSeqRanges <= 0 {
		l.MaxSeqRanges = DefaultMaxSeqRanges
	}
	return l
}

// Kind is the status an error is answered with.
type Kind int

const (
	// BAD: the command was not understood; the session goes on (RFC 9051 §7.1.5).
	BAD Kind = iota
	// NO: understood but refused; the session goes on (RFC 9051 §7.1.2).
	NO
	// BYE: the session ends after this answer (RFC 9051 §7.1.5).
	BYE
)

// Error is a protocol error that carries its reply: the status, an optional response code
// (RFC 9051 §7.1) and a text for the client. Cause, if set, is for the log only.
type Error struct {
	Kind  Kind
	Code  string // e.g. "TOOBIG", "TRYCREATE"; "" for none
	Text  string
	Cause error
}

func (e *Error) Error() string {
	s := e.Text
	if e.Code != "" {
		s = "[" + e.Code + "] " + s
	}
	if e.Cause != nil {
		s += ": " + e.Cause.Error()
	}
	return s
}

func (e *Error) Unwrap() error { return e.Cause }

func badf(text string) *Error { return &Error{Kind: BAD, Text: text} }

var (
	errTooLong     = &Error{Kind: BYE, Code: "TOOBIG", Text: "Command too long"}
	errLiteralBYE  = &Error{Kind: BYE, Code: "TOOBIG", Text: "Literal too large"}
	errLiteralSync = &Error{Kind: NO, Code: "TOOBIG", Text: "Literal too large"}
	errBareLF      = &Error{Kind: BAD, Text: "Lines end with CRLF"}
	errNUL         = &Error{Kind: BAD, Text: "NUL in command"}
)

// literalInfo describes a literal announced at the end of a line: "{n}", "{n+}" or "{n-}".
type literalInfo struct {
	size   int64
	sync   bool // "{n}": the client waits for a continuation request
	binary bool // literal8 "~{n}" (RFC 3516), only for APPEND
}

// trailingLiteral reports whether line (without its CRLF) ends with a literal announcement.
// A size that is no number of at most 10 digits, or above 2^32-1 (RFC 9051 number), is still
// an announcement, returned with ok and valid false: the client may send its octets anyway.
func trailingLiteral(line []byte) (li literalInfo, ok, valid bool) {
	if len(line) < 3 || line[len(line)-1] != '}' {
		return li, false, false
	}
	body := line[:len(line)-1]
	li.sync = true
	if c := body[len(body)-1]; c == '+' || c == '-' {
		li.sync = false
		body = body[:len(body)-1]
	}
	open := bytes.LastIndexByte(body, '{')
	if open < 0 {
		return li, false, false
	}
	digits := body[open+1:]
	if len(digits) == 0 {
		return li, false, false
	}
	for _, c := range digits {
		if c < '0' || c > '9' {
			return li, false, false
		}
	}
	// A literal announcement follows a space, "(" or the "~" of literal8, or starts an
	// argument list; elsewhere (an atom ending in "{5}" is not one, "{" is an atom-special)
	// the line is a syntax error, but the client may still mean a literal: treat it as one.
	if len(digits) > 10 {
		return li, true, false
	}
	n, err := strconv.ParseUint(string(digits), 10, 64)
	if err != nil || n > 1<<32-1 {
		return li, true, false
	}
	li.size = int64(n)
	return li, true, true
}

// reader reads commands. It is reset for each command; its buffers are reused.
type reader struct {
	br   *bufio.Reader
	lim  Limits
	cont func() error // sends a continuation request ("+ ...") for a synchronizing literal

	line []byte // the current line without CRLF; a literal's octets are not part of it
	pos  int    // next unread octet of line
	used int    // octets of this command read so far, CRLFs and literals included

	depth int // current nesting of lists and search keys
	// utf8Append: APPEND's message came as UTF8 (literal8), whose ")" follows it (RFC 6855 §4)
	utf8Append bool
}

func newReader(br *bufio.Reader, lim Limits, cont func() error) *reader {
	return &reader{br: br, lim: lim.withDefaults(), cont: cont}
}

// begin reads the first line of a command.
func (r *reader) begin() error {
	r.used = 0
	r.depth = 0
	r.utf8Append = false
	return r.readLine()
}

// readLine reads the next line of the current command into r.line.
func (r *reader) readLine() error {
	r.line = r.line[:0]
	r.pos = 0
	for {
		chunk, err := r.br.ReadSlice('\n')
		if len(r.line)+len(chunk)+r.used > r.lim.MaxCommand {
			return errTooLong
		}
		r.line = append(r.line, chunk...)
		if err == nil {
			break
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		return err
	}
	r.used += len(r.line)
	r.line = r.line[:len(r.line)-1] // LF
	if len(r.line) == 0 || r.line[len(r.line)-1] != '\r' {
		return errBareLF
	}
	r.line = r.line[:len(r.line)-1]
	if bytes.IndexByte(r.line, 0) >= 0 {
		return errNUL
	}
	return nil
}

// peek returns the next octet of the line, or 0 at its end.
func (r *reader) peek() byte {
	if r.pos < len(r.line) {
		return r.line[r.pos]
	}
	return 0
}

func (r *reader) atEOL() bool { return r.pos >= len(r.line) }

// literal reads the literal announced at r.pos, which must end the line, and the line after
// it. Its size is checked before anything is read.
func (r *reader) literal() (string, error) {
	li, ok, valid := trailingLiteral(r.line[r.pos:])
	if !ok || r.peek() != '{' || bytes.IndexByte(r.line[r.pos:], '}') != len(r.line)-r.pos-1 {
		return "", badf("Bad literal")
	}
	if !valid || li.size > int64(r.lim.MaxCommand-r.used) {
		if li.sync {
			return "", errLiteralSync
		}
		return "", errLiteralBYE
	}
	r.pos = len(r.line)
	if li.sync {
		if err := r.cont(); err != nil {
			return "", err
		}
	}
	b := make([]byte, li.size)
	if _, err := io.ReadFull(r.br, b); err != nil {
		return "", err
	}
	r.used += int(li.size)
	if err := r.readLine(); err != nil {
		return "", err
	}
	return string(b), nil
}

// appendLiteral reads the announcement of APPEND's message literal at r.pos, which must end
// the line, without reading its octets: the session checks the size against its own limit,
// sends the continuation itself and streams the octets (takeAppendLiteral).
func (r *reader) appendLiteral() (literalInfo, error) {
	rest := r.line[r.pos:]
	binary := false
	if len(rest) > 0 && rest[0] == '~' { // literal8, RFC 3516 BINARY
		binary = true
		rest = rest[1:]
	}
	li, ok, valid := trailingLiteral(rest)
	if !ok || rest[0] != '{' || bytes.IndexByte(rest, '}') != len(rest)-1 {
		return li, badf("Expected a literal")
	}
	if r.utf8Append && !binary {
		return li, badf("UTF8 takes a literal8") // RFC 6855 §4
	}
	li.binary = binary
	if !valid {
		if li.sync {
			return li, errLiteralSync
		}
		return li, errLiteralBYE
	}
	// r.pos stays at the announcement until the session takes the literal
	// (takeAppendLiteral): an APPEND refused before that (wrong state, too large) leaves it
	// for skipRest, which then skips the octets of a non-synchronizing literal.
	return li, nil
}

// takeAppendLiteral marks APPEND's announced literal as taken: the session reads its octets
// itself, then calls appendDone.
func (r *reader) takeAppendLiteral() { r.pos = len(r.line) }

// skipRest consumes what is left of the current command after an error, so that the next
// read starts at a command boundary. A trailing synchronizing literal ends the command (the
// client waits for a continuation it will not get); a non-synchronizing one is read and
// discarded if it fits the command's limit, else the connection must close (the error
// returned is then a BYE).
func (r *reader) skipRest() error {
	for {
		li, ok, valid := trailingLiteral(r.line[r.pos:])
		r.pos = len(r.line)
		if !ok || li.sync {
			return nil
		}
		if !valid || li.size > int64(r.lim.MaxCommand-r.used) {
			return errLiteralBYE
		}
		if _, err := io.CopyN(io.Discard, r.br, li.size); err != nil {
			return err
		}
		r.used += int(li.size)
		// A line with a bare LF or a NUL is still a line of this command: go on checking
		// it for a literal.
		if err := r.readLine(); err != nil && err != errBareLF && err != errNUL {
			return err
		}
	}
}
