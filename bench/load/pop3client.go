package load

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
)

// pop3Client is the small POP3 client (RFC 1939) the scenarios need: greeting,
// STLS (RFC 2595), USER/PASS, STAT, LIST, RETR, DELE, NOOP, QUIT. Every read
// and write goes through Target.dial's deadline.
type pop3Client struct {
	conn net.Conn
	r    *bufio.Reader
}

// errResponse is a -ERR reply.
type errResponse struct {
	cmd  string
	text string
}

func (e *errResponse) Error() string { return fmt.Sprintf("%s: -ERR %s", e.cmd, e.text) }

// verifyError is a reply that broke the protocol or disagreed with an earlier
// one (RETR size differs from LIST). The connection is still in step.
type verifyError struct{ msg string }

func (e *verifyError) Error() string { return e.msg }

// maxLine bounds a reply line; RFC 1939 §3 allows 512 octets for responses,
// a message line may be 1000 (RFC 5322 §2.1.1). Longer message lines are
// read in pieces, other replies are refused.
const maxLine = 4096

// dialPOP3 connects, reads the greeting and, for StartTLS, upgrades with STLS.
func dialPOP3(ctx context.Context, t Target) (*pop3Client, error) {
	conn, err := t.dial(ctx)
	if err != nil {
		return nil, err
	}
	c := &pop3Client{conn: conn, r: bufio.NewReaderSize(conn, maxLine)}
	if _, err := c.reply("greeting"); err != nil {
		conn.Close()
		return nil, err
	}
	if t.TLS == StartTLS {
		if _, err := c.cmd("STLS"); err != nil {
			conn.Close()
			return nil, err
		}
		tc := tls.Client(conn, t.tlsConfig())
		if err := tc.HandshakeContext(ctx); err != nil {
			tc.Close()
			return nil, fmt.Errorf("stls handshake: %w", err)
		}
		// RFC 2595 §4: nothing read before the handshake may be used after it,
		// so the reader starts empty.
		c.conn = tc
		c.r = bufio.NewReaderSize(tc, maxLine)
	}
	return c, nil
}

func (c *pop3Client) Close() error { return c.conn.Close() }

// readLine returns one CRLF-terminated line without its CRLF.
func (c *pop3Client) readLine() (string, error) {
	line, err := c.r.ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) {
		return "", errors.New("reply line too long")
	}
	if err != nil {
		return "", err
	}
	if !bytes.HasSuffix(line, []byte("\r\n")) {
		return "", &verifyError{"reply line not terminated by CRLF"}
	}
	return string(line[:len(line)-2]), nil
}

// reply reads a status line and returns the text after "+OK".
func (c *pop3Client) reply(cmd string) (string, error) {
	line, err := c.readLine()
	if err != nil {
		return "", fmt.Errorf("%s: %w", cmd, err)
	}
	switch {
	case line == "+OK" || strings.HasPrefix(line, "+OK "):
		return strings.TrimPrefix(strings.TrimPrefix(line, "+OK"), " "), nil
	case line == "-ERR" || strings.HasPrefix(line, "-ERR "):
		return "", &errResponse{cmd: cmd, text: strings.TrimPrefix(strings.TrimPrefix(line, "-ERR"), " ")}
	default:
		return "", fmt.Errorf("%s: bad reply %q", cmd, truncate(line, 80))
	}
}

// cmd sends one command line and reads its status line. The command name
// (not its arguments, which may be a password) names it in errors.
func (c *pop3Client) cmd(format string, args ...any) (string, error) {
	name, _, _ := strings.Cut(format, " ")
	if _, err := fmt.Fprintf(c.conn, format+"\r\n", args...); err != nil {
		return "", fmt.Errorf("%s: %w", name, err)
	}
	return c.reply(name)
}

func (c *pop3Client) login(a Account) error {
	if _, err := c.cmd("USER %s", a.User); err != nil {
		return err
	}
	_, err := c.cmd("PASS %s", a.Pass)
	return err
}

// stat returns the number of messages and their total size (RFC 1939 §5).
func (c *pop3Client) stat() (count, size int64, err error) {
	text, err := c.cmd("STAT")
	if err != nil {
		return 0, 0, err
	}
	f := strings.Fields(text)
	if len(f) < 2 {
		return 0, 0, &verifyError{fmt.Sprintf("STAT: bad reply %q", truncate(text, 80))}
	}
	count, err1 := strconv.ParseInt(f[0], 10, 64)
	size, err2 := strconv.ParseInt(f[1], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, 0, &verifyError{fmt.Sprintf("STAT: bad reply %q", truncate(text, 80))}
	}
	return count, size, nil
}

// listEntry is one line of a LIST reply.
type listEntry struct {
	num  int
	size int64
}

// list returns the scan listing of every message (RFC 1939 §5 LIST).
func (c *pop3Client) list() ([]listEntry, error) {
	if _, err := c.cmd("LIST"); err != nil {
		return nil, err
	}
	var out []listEntry
	for {
		line, err := c.readLine()
		if err != nil {
			return nil, fmt.Errorf("LIST: %w", err)
		}
		if line == "." {
			return out, nil
		}
		var e listEntry
		if _, err := fmt.Sscanf(line, "%d %d", &e.num, &e.size); err != nil {
			return nil, fmt.Errorf("LIST: bad line %q", truncate(line, 80))
		}
		out = append(out, e)
	}
}

// retr retrieves message num, discarding its text, and returns its size in
// octets after dot-unstuffing, CRLFs included: the size LIST announces
// (RFC 1939 §11 notes the server counts it that way). It checks that every
// line ends with CRLF and that the reply ends with CRLF.CRLF. A *verifyError
// means the message was read to its end but failed a check.
func (c *pop3Client) retr(num int) (int64, error) {
	if _, err := c.cmd("RETR %d", num); err != nil {
		return 0, err
	}
	var (
		size    int64
		bad     error
		midLine bool // the previous piece did not end a line
		lastCR  bool // the previous piece ended with CR
	)
	for {
		piece, err := c.r.ReadSlice('\n')
		if err != nil && !errors.Is(err, bufio.ErrBufferFull) {
			return size, fmt.Errorf("RETR: %w (after %d octets, no CRLF.CRLF)", err, size)
		}
		full := err == nil
		if !midLine {
			if full && string(piece) == ".\r\n" {
				return size, bad
			}
			// RFC 1939 §3: a line starting with "." was dot-stuffed.
			if piece[0] == '.' {
				piece = piece[1:]
			}
		}
		size += int64(len(piece))
		if full {
			crlf := bytes.HasSuffix(piece, []byte("\r\n")) || (len(piece) == 1 && lastCR)
			if !crlf && bad == nil {
				bad = &verifyError{fmt.Sprintf("RETR %d: line not terminated by CRLF", num)}
			}
		}
		midLine = !full
		lastCR = len(piece) > 0 && piece[len(piece)-1] == '\r'
	}
}

func (c *pop3Client) quit() error {
	_, err := c.cmd("QUIT")
	return err
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
