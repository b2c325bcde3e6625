package smtpclient

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"time"
)

// Reply is an SMTP reply, from the server or made up by Petrel for a failure that never
// reached one (routing, connection, TLS, protocol violations).
type Reply struct {
	Code     int    // 2xx, 4xx or 5xx
	Enhanced string // enhanced status code "5.1.1" (RFC 3463), "" if none
	Text     string // the text of all lines, joined by "\n", enhanced codes removed
	// Local: Petrel made this reply; the bounce reports it as our diagnosis, not as the
	// remote server's words (RFC 3464 §2.3.6: Diagnostic-Code is what the remote MTA said).
	Local bool
}

// Delivered, Temporary and Permanent classify the reply by its first digit (RFC 5321 §4.2.1).
func (r Reply) Delivered() bool { return r.Code/100 == 2 }
func (r Reply) Temporary() bool { return r.Code/100 == 4 }
func (r Reply) Permanent() bool { return r.Code/100 == 5 }

func (r Reply) String() string {
	s := strconv.Itoa(r.Code)
	if r.Enhanced != "" {
		s += " " + r.Enhanced
	}
	return s + " " + strings.ReplaceAll(r.Text, "\n", " ")
}

func local(code int, enhanced, format string, args ...any) Reply {
	return Reply{Code: code, Enhanced: enhanced, Text: fmt.Sprintf(format, args...), Local: true}
}

// Limits on what a server can make us read.
const (
	maxReplyLine  = 2048 // RFC 5321 §4.5.3.1.5 says 512 octets; be lenient, but bounded
	maxReplyLines = 200
)

// errProtocol marks a server that does not speak SMTP.
var errProtocol = errors.New("protocol error")

// conn is one SMTP connection: bounded reply reading, buffered writes, a deadline per
// command (RFC 5321 §4.5.3.2) and the server's EHLO keywords.
type conn struct {
	nc  net.Conn // the connection, TLS after STARTTLS
	raw net.Conn // the TCP connection under it: closing it ends any blocked read or write
	// broken: a read or write failed; the session is closed without QUIT
	broken bool
	r      *bufio.Reader
	w      *bufio.Writer
	ext    map[string]string // EHLO keyword (upper case) -> parameters
	tls    bool
	helo   bool // the server refused EHLO and took HELO: no extensions
	// authing: inside an AUTH exchange, where client lines are credentials
	authing bool
	// trace logs the dialogue at debug level (nil: off): commands with AUTH data redacted,
	// and replies; never the message.
	trace func(dir, line string)
}

// traceTo returns a tracer writing to log when it logs at debug level.
func traceTo(log *slog.Logger, remote string) func(dir, line string) {
	if !log.Enabled(context.Background(), slog.LevelDebug) {
		return nil
	}
	return func(dir, line string) { log.Debug("smtp "+dir, "remote", remote, "line", line) }
}

func newConn(nc, raw net.Conn) *conn {
	return &conn{nc: nc, raw: raw, r: bufio.NewReaderSize(nc, 4096), w: bufio.NewWriterSize(nc, 16<<10)}
}

// failed marks the connection broken when err is not nil.
func (c *conn) failed(err error) error {
	if err != nil {
		c.broken = true
	}
	return err
}

// send writes one command line without flushing (PIPELINING groups several, RFC 2920).
func (c *conn) send(timeout time.Duration, line string) error {
	if c.trace != nil {
		shown := line
		if strings.HasPrefix(line, "AUTH ") {
			shown = "AUTH ..." // the mechanism's data is a credential
		} else if c.authing {
			shown = "..."
		}
		c.trace("C:", shown)
	}
	c.nc.SetWriteDeadline(time.Now().Add(timeout))
	_, err := c.w.WriteString(line + "\r\n")
	return c.failed(err)
}

func (c *conn) flush(timeout time.Duration) error {
	c.nc.SetWriteDeadline(time.Now().Add(timeout))
	return c.failed(c.w.Flush())
}

// cmd sends one command and reads its reply.
func (c *conn) cmd(timeout time.Duration, line string) (Reply, error) {
	if err := c.send(timeout, line); err != nil {
		return Reply{}, err
	}
	if err := c.flush(timeout); err != nil {
		return Reply{}, err
	}
	return c.readReply(timeout)
}

// readReply reads one (possibly multi-line) reply within timeout. The lines must all carry
// the same code (RFC 5321 §4.2.1); a line too long, too many lines, or anything that is not
// a reply is errProtocol.
func (c *conn) readReply(timeout time.Duration) (Reply, error) {
	c.nc.SetReadDeadline(time.Now().Add(timeout))
	var rep Reply
	var lines []string
	for n := 0; ; n++ {
		if n >= maxReplyLines {
			c.broken = true
			return Reply{}, fmt.Errorf("%w: reply of more than %d lines", errProtocol, maxReplyLines)
		}
		line, err := c.readLine()
		if err != nil {
			return Reply{}, c.failed(err)
		}
		if len(line) < 3 || len(line) > 3 && line[3] != ' ' && line[3] != '-' {
			c.broken = true
			return Reply{}, fmt.Errorf("%w: not a reply: %q", errProtocol, truncate(line))
		}
		code, err := strconv.Atoi(line[:3])
		if err != nil || code < 200 || code > 599 || n > 0 && code != rep.Code {
			c.broken = true
			return Reply{}, fmt.Errorf("%w: not a reply: %q", errProtocol, truncate(line))
		}
		rep.Code = code
		text := ""
		if len(line) > 4 {
			text = line[4:]
		}
		// RFC 2034 §4: every line of the reply starts with the enhanced code, whose class
		// matches the reply's.
		if e, rest, ok := enhancedCode(text, code); ok {
			if n == 0 {
				rep.Enhanced = e
			}
			text = rest
		}
		lines = append(lines, text)
		if len(line) == 3 || line[3] == ' ' {
			break
		}
	}
	rep.Text = strings.Join(lines, "\n")
	if c.trace != nil {
		c.trace("S:", rep.String())
	}
	return rep, nil
}

// readLine reads a CRLF (or bare LF) terminated line of at most maxReplyLine bytes.
func (c *conn) readLine() (string, error) {
	b, err := c.r.ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) || len(b) > maxReplyLine {
		return "", fmt.Errorf("%w: reply line longer than %d bytes", errProtocol, maxReplyLine)
	}
	if err != nil {
		return "", err
	}
	b = bytes.TrimSuffix(bytes.TrimSuffix(b, []byte("\n")), []byte("\r"))
	if bytes.IndexFunc(b, func(r rune) bool { return r < 0x20 && r != '\t' || r == 0x7f }) >= 0 {
		return "", fmt.Errorf("%w: control characters in a reply: %q", errProtocol, truncate(string(b)))
	}
	return string(b), nil
}

// enhancedCode splits "5.1.1 text" into the code and the text (RFC 3463 §2: class.subject.
// detail, subject and detail of 1-3 digits).
func enhancedCode(text string, code int) (string, string, bool) {
	e, rest, _ := strings.Cut(text, " ")
	parts := strings.Split(e, ".")
	if len(parts) != 3 || parts[0] != strconv.Itoa(code/100) {
		return "", text, false
	}
	for _, p := range parts[1:] {
		if len(p) < 1 || len(p) > 3 || strings.Trim(p, "0123456789") != "" {
			return "", text, false
		}
	}
	return e, rest, true
}

// parseEHLO keeps the keywords of an EHLO reply (RFC 5321 §4.1.1.1), the first line being
// the greeting.
func parseEHLO(r Reply) map[string]string {
	ext := map[string]string{}
	lines := strings.Split(r.Text, "\n")
	for _, l := range lines[1:] {
		k, v, _ := strings.Cut(strings.TrimSpace(l), " ")
		if k != "" {
			ext[strings.ToUpper(k)] = v
		}
	}
	return ext
}

func (c *conn) has(ext string) bool {
	_, ok := c.ext[ext]
	return ok
}

// maxSize is the server's SIZE limit (RFC 1870 §4), 0 if none is announced.
func (c *conn) maxSize() int64 {
	n, _ := strconv.ParseInt(c.ext["SIZE"], 10, 64)
	return n
}

func truncate(s string) string {
	if len(s) > 100 {
		return s[:100] + "..."
	}
	return s
}

// ioReply turns a network or protocol error into the reply that stands for it.
func ioReply(step string, err error) Reply {
	switch {
	case errors.Is(err, errProtocol):
		return local(451, "4.5.0", "%s: %v", step, err)
	case errors.Is(err, os.ErrDeadlineExceeded):
		return local(451, "4.4.2", "%s: timeout", step)
	default:
		return local(451, "4.4.2", "%s: connection lost: %v", step, err)
	}
}
