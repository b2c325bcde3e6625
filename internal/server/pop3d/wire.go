package pop3d

import (
	"bufio"
	"bytes"
	"errors"
	"strings"
)

var errSyntax = errors.New("syntax error")

// parseCommand splits one command line into its keyword, upper-cased, and the rest of the
// line after the single space that follows the keyword (RFC 1939 §3: a keyword of three or
// four characters, arguments separated by single spaces). The rest is returned verbatim
// because PASS takes the whole rest as its argument, spaces included (RFC 1939 §7, PASS).
// A trailing CRLF or bare LF is removed; any other control character is a syntax error.
func parseCommand(line []byte) (keyword, rest string, err error) {
	line = bytes.TrimSuffix(line, []byte("\n"))
	line = bytes.TrimSuffix(line, []byte("\r"))
	for _, c := range line {
		if c < 0x20 || c == 0x7f {
			return "", "", errSyntax
		}
	}
	kw, arg, _ := bytes.Cut(line, []byte(" "))
	if len(kw) < 3 || len(kw) > 4 {
		return "", "", errSyntax
	}
	for _, c := range kw {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z') {
			return "", "", errSyntax
		}
	}
	return strings.ToUpper(string(kw)), string(arg), nil
}

// parseNumber parses a decimal argument: a message number or TOP's line count (RFC 1939 §5).
// Only digits are accepted, at most nine, so the value always fits an int.
func parseNumber(s string) (int, bool) {
	if len(s) == 0 || len(s) > 9 {
		return 0, false
	}
	n := 0
	for _, c := range []byte(s) {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, true
}

// dotWriter writes a message body as a multi-line response (RFC 1939 §3): a line starting
// with "." gets another "." in front. With lines >= 0 it writes only the header, the empty
// line ending it and that many body lines (TOP, RFC 1939 §7), discarding the rest. Bodies are
// stored with CRLF line endings; finish adds a CRLF if the body did not end with one, then the
// terminating ".".
type dotWriter struct {
	w         *bufio.Writer
	lineStart bool // the next byte starts a line
	lineLen   int  // bytes of the current line written so far, terminator included
	tail      [2]byte
	n         int64 // body bytes written (before stuffing)

	top    bool // TOP: stop after the header and bodyLines lines of the body
	inBody bool // TOP: the empty line ending the header has been written
	lines  int  // TOP: body lines still to write
	done   bool // TOP: everything wanted has been written; the rest is discarded
}

func newDotWriter(w *bufio.Writer, topLines int) *dotWriter {
	d := &dotWriter{w: w, lineStart: true}
	if topLines >= 0 {
		d.top = true
		d.lines = topLines
	}
	return d
}

func (d *dotWriter) Write(p []byte) (int, error) {
	total := len(p)
	for len(p) > 0 && !d.done {
		if d.lineStart && p[0] == '.' {
			if err := d.w.WriteByte('.'); err != nil {
				return 0, err
			}
		}
		seg := p
		i := bytes.IndexByte(p, '\n')
		if i >= 0 {
			seg = p[:i+1]
		}
		if _, err := d.w.Write(seg); err != nil {
			return 0, err
		}
		d.n += int64(len(seg))
		if len(seg) >= 2 {
			d.tail = [2]byte{seg[len(seg)-2], seg[len(seg)-1]}
		} else {
			d.tail = [2]byte{d.tail[1], seg[0]}
		}
		d.lineLen += len(seg)
		d.lineStart = i >= 0
		if d.lineStart {
			d.endLine()
		}
		p = p[len(seg):]
	}
	return total, nil
}

// endLine is called after each complete line; it drives TOP's stop condition.
func (d *dotWriter) endLine() {
	empty := d.lineLen <= 2 && (d.lineLen == 1 || d.tail[0] == '\r')
	d.lineLen = 0
	if !d.top {
		return
	}
	switch {
	case d.inBody:
		d.lines--
	case empty:
		d.inBody = true
	default:
		return
	}
	if d.inBody && d.lines <= 0 {
		d.done = true
	}
}

// finish ends the multi-line response.
func (d *dotWriter) finish() error {
	if d.n > 0 && d.tail != [2]byte{'\r', '\n'} {
		if _, err := d.w.WriteString("\r\n"); err != nil {
			return err
		}
	}
	_, err := d.w.WriteString(".\r\n")
	return err
}
