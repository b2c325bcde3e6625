package imapd

// The response writer. Responses are written into a bufio.Writer that the session flushes
// once per command (or when it fills), so that a FETCH of many messages goes out in few TLS
// records (docs/architecture.md, "IMAP: go-imap v2 or our own": one flush per command, not
// per line). Nothing here uses fmt: numbers are appended with strconv into a scratch array.

import (
	"bufio"
	"io"
	"strconv"
	"strings"
	"time"
)

// respWriter writes the parts of responses (RFC 9051 §7 and response syntax in §9).
type respWriter struct {
	bw      *bufio.Writer
	scratch [32]byte
	utf8    bool // UTF8=ACCEPT or IMAP4rev2 enabled: 8-bit text may be quoted (RFC 6855 §3)
}

func (w *respWriter) str(s string)  { w.bw.WriteString(s) }
func (w *respWriter) byte(c byte)   { w.bw.WriteByte(c) }
func (w *respWriter) sp()           { w.bw.WriteByte(' ') }
func (w *respWriter) crlf()         { w.bw.WriteString("\r\n") }
func (w *respWriter) num(n uint32)  { w.bw.Write(strconv.AppendUint(w.scratch[:0], uint64(n), 10)) }
func (w *respWriter) num64(n int64) { w.bw.Write(strconv.AppendInt(w.scratch[:0], n, 10)) }

// status writes a complete status response: tag (or "*"), OK/NO/BAD/BYE/PREAUTH, an
// optional [code] and the text.
func (w *respWriter) status(tag, status, code, text string) {
	w.str(tag)
	w.sp()
	w.str(status)
	w.sp()
	if code != "" {
		w.byte('[')
		w.str(code)
		w.str("] ")
	}
	w.str(text)
	w.crlf()
}

// errorReply writes the response an *Error carries: tagged NO/BAD, or untagged BYE.
func (w *respWriter) errorReply(tag string, e *Error) {
	switch {
	case e.Kind == BYE:
		w.status("*", "BYE", e.Code, e.Text)
	case tag == "":
		w.status("*", "BAD", e.Code, e.Text)
	case e.Kind == NO:
		w.status(tag, "NO", e.Code, e.Text)
	default:
		w.status(tag, "BAD", e.Code, e.Text)
	}
}

// quotable reports whether s may be sent as a quoted string: no CR, LF or NUL, and no 8-bit
// octets unless UTF-8 is enabled (RFC 9051 quoted, RFC 6855 §3), and not too long to read
// comfortably on one line.
func (w *respWriter) quotable(s string) bool {
	if len(s) > 1000 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '\r' || c == '\n' || c == 0 || (c >= 0x80 && !w.utf8) {
			return false
		}
	}
	return true
}

// string writes s as a quoted string, or as a literal when it cannot be quoted.
func (w *respWriter) string(s string) {
	if !w.quotable(s) {
		w.literalString(s)
		return
	}
	w.byte('"')
	for i := 0; i < len(s); i++ {
		if c := s[i]; c == '"' || c == '\\' {
			w.byte('\\')
		}
		w.byte(s[i])
	}
	w.byte('"')
}

// nstring writes s, or NIL when ok is false.
func (w *respWriter) nstring(s string, ok bool) {
	if !ok {
		w.str("NIL")
		return
	}
	w.string(s)
}

// literalString writes s as a literal.
func (w *respWriter) literalString(s string) {
	w.literalHeader(int64(len(s)))
	w.str(s)
}

// literalBytes writes b as a literal.
func (w *respWriter) literalBytes(b []byte) {
	w.literalHeader(int64(len(b)))
	w.bw.Write(b)
}

// literalHeader writes "{n}" CRLF; n octets must follow.
func (w *respWriter) literalHeader(n int64) {
	w.byte('{')
	w.num64(n)
	w.str("}\r\n")
}

// literal writes n octets from r as a literal. A short r is an error: the client counts
// octets, and the session must end the connection rather than let it lose its place.
func (w *respWriter) literal(n int64, r io.Reader) error {
	w.literalHeader(n)
	_, err := io.CopyN(w.bw, r, n)
	return err
}

// mailbox writes a mailbox name: UTF-8 when enabled, else modified UTF-7 (RFC 3501 §5.1.3).
func (w *respWriter) mailbox(name string) {
	if !w.utf8 {
		name = EncodeMUTF7(name)
	}
	if isAtom(name) && !strings.EqualFold(name, "NIL") {
		w.str(name) // an astring may be an atom; clients show "INBOX" and "Sent" alike
		return
	}
	w.string(name)
}

// flags writes "(" flag *(SP flag) ")".
func (w *respWriter) flags(flags []string) {
	w.byte('(')
	for i, f := range flags {
		if i > 0 {
			w.sp()
		}
		w.str(f)
	}
	w.byte(')')
}

// dateTime writes an INTERNALDATE: DQUOTE "dd-Mon-yyyy hh:mm:ss +zzzz" DQUOTE.
func (w *respWriter) dateTime(t time.Time) {
	w.bw.Write(t.AppendFormat(w.scratch[:0], `"02-Jan-2006 15:04:05 -0700"`))
}

// isAtom reports whether s can be sent as an atom.
func isAtom(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isAtomChar(s[i]) || s[i] >= 0x80 {
			return false
		}
	}
	return true
}
