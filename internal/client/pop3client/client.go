// Package pop3client is a POP3 client (RFC 1939) with the extensions a careful downloader
// needs: CAPA and response codes (RFC 2449), STLS (RFC 2595), SASL AUTH (RFC 5034) with PLAIN
// and SCRAM-SHA-256 (RFC 5802, RFC 7677), and APOP when the greeting offers a timestamp.
//
// Implementation notes (invariants a contributor must not break):
//   - Every read and write on the connection has a deadline: the connection is wrapped so that
//     each Read and Write call first sets one Options.Timeout ahead. A server that stops
//     talking in the middle of a body therefore fails the call after Timeout, not never.
//   - Cancelling the context given to Dial closes the connection, which fails any call.
//   - After STLS nothing read before the handshake is kept (RFC 2595 §4).
//   - Multi-line bodies are streamed to an io.Writer, dot-unstuffed (RFC 1939 §3); no body is
//     ever held in memory whole.
//   - After any transport or framing error the Client is unusable (Err returns the cause):
//     the position in the response stream is unknown, so a later reply could be misread.
package pop3client

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"petrel/internal/client/wire"
	"petrel/internal/lib/deadline"
	"strconv"
	"strings"
	"time"
)

// TLSMode says how the connection is protected.
type TLSMode int

const (
	ImplicitTLS TLSMode = iota // TLS from the first byte (port 995)
	StartTLS                   // plaintext greeting, then STLS (port 110); fails if not offered
	NoTLS                      // plaintext throughout; the caller must have allowed it explicitly
)

// Options configures a connection. Zero values get the defaults named on each field.
type Options struct {
	TLS     TLSMode
	TLSConf *tls.Config   // used for ImplicitTLS and StartTLS; must set ServerName or a verifier
	Timeout time.Duration // deadline of each read and write on the wire (default 1m)
	// DialTimeout bounds the TCP connect and the TLS handshake (default 30s).
	DialTimeout time.Duration
}

// DefaultTimeout is the default per-read/per-write deadline.
const DefaultTimeout = time.Minute

// maxLine bounds a status line or a line of a listing. RFC 2449 §4 allows 512 octets for a
// response line; SASL challenges can be longer, so we allow more but never unbounded.
const maxLine = 64 << 10

// Error is a negative reply (-ERR) from the server.
type Error struct {
	Command string // the command that failed, without arguments ("PASS", "RETR")
	Code    string // RFC 2449 §8 response code without brackets ("IN-USE", "AUTH", "SYS/TEMP"), or ""
	Text    string // the rest of the reply
}

func (e *Error) Error() string {
	if e.Code != "" {
		return fmt.Sprintf("pop3 %s: -ERR [%s] %s", e.Command, e.Code, e.Text)
	}
	return fmt.Sprintf("pop3 %s: -ERR %s", e.Command, e.Text)
}

// Temporary reports whether the server said the failure is temporary: the maildrop is in use
// (RFC 2449 §8.1.2), a login is too soon (§8.1.1), or the server has trouble (RFC 3206 SYS/TEMP).
func (e *Error) Temporary() bool {
	return e.Code == "IN-USE" || e.Code == "LOGIN-DELAY" || e.Code == "SYS/TEMP"
}

// ErrProtocol marks a reply that is not POP3 (it is wire.ErrProtocol, shared by every client).
var ErrProtocol = wire.ErrProtocol

// Client is one POP3 connection. It is not safe for concurrent use.
type Client struct {
	conn    net.Conn // the deadline-setting wrapper around the TCP or TLS connection
	raw     net.Conn // what conn wraps; replaced by the TLS conn after STLS
	r       *bufio.Reader
	w       *bufio.Writer
	timeout time.Duration
	stop    func() bool // stops the context watcher

	greeting string            // text of the +OK greeting
	capa     map[string]string // CAPA result: upper-case name → arguments; nil until Capabilities
	tls      bool              // the connection is TLS-protected
	err      error             // sticky transport or framing error
}

// Dial connects to addr ("host:port"), reads the greeting and, in StartTLS mode, upgrades with
// STLS. ctx bounds the whole life of the connection: cancelling it closes the connection.
func Dial(ctx context.Context, addr string, o Options) (*Client, error) {
	if o.DialTimeout <= 0 {
		o.DialTimeout = 30 * time.Second
	}
	d := net.Dialer{Timeout: o.DialTimeout}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	c, err := NewClient(conn, o)
	if err != nil {
		conn.Close()
		return nil, err
	}
	c.stop = context.AfterFunc(ctx, func() { c.raw.Close() })
	return c, nil
}

// NewClient runs the start of a session on an established connection: the TLS handshake in
// ImplicitTLS mode, the greeting, and STLS in StartTLS mode. On error the caller closes conn.
func NewClient(conn net.Conn, o Options) (*Client, error) {
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.DialTimeout <= 0 {
		o.DialTimeout = 30 * time.Second
	}
	c := &Client{timeout: o.Timeout}
	if o.TLS != NoTLS && o.TLSConf == nil {
		return nil, errors.New("pop3: TLS mode without a TLS configuration")
	}
	if o.TLS == ImplicitTLS {
		tc, err := handshake(conn, o.TLSConf, o.DialTimeout)
		if err != nil {
			return nil, err
		}
		conn, c.tls = tc, true
	}
	c.setConn(conn)
	line, err := c.readStatus("greeting")
	if err != nil {
		return nil, err
	}
	c.greeting = line
	if o.TLS == StartTLS {
		if err := c.startTLS(o.TLSConf, o.DialTimeout); err != nil {
			return nil, err
		}
	}
	return c, nil
}

func handshake(conn net.Conn, conf *tls.Config, timeout time.Duration) (*tls.Conn, error) {
	tc := tls.Client(conn, conf)
	conn.SetDeadline(time.Now().Add(timeout))
	if err := tc.Handshake(); err != nil {
		return nil, fmt.Errorf("pop3: TLS handshake: %w", err)
	}
	conn.SetDeadline(time.Time{})
	return tc, nil
}

func (c *Client) setConn(conn net.Conn) {
	c.raw = conn
	c.conn = deadline.Conn{Conn: conn, Timeout: c.timeout}
	c.r = bufio.NewReaderSize(c.conn, 32<<10)
	c.w = bufio.NewWriterSize(c.conn, 4<<10)
}

// startTLS runs STLS (RFC 2595 §4). The server must offer it: silently continuing in
// plaintext is exactly the downgrade STARTTLS stripping attacks rely on.
func (c *Client) startTLS(conf *tls.Config, timeout time.Duration) error {
	if _, err := c.cmd("STLS", "STLS"); err != nil {
		return fmt.Errorf("%w (the server does not offer TLS)", err)
	}
	if c.r.Buffered() > 0 {
		// Bytes after the +OK and before our handshake were injected by someone.
		c.fail(fmt.Errorf("%w: data after STLS response", ErrProtocol))
		return c.err
	}
	tc, err := handshake(c.raw, conf, timeout)
	if err != nil {
		c.fail(err)
		return err
	}
	c.tls = true
	c.setConn(tc) // fresh buffers: nothing from before the handshake survives
	c.capa = nil  // RFC 2595 §4: capabilities may change after TLS
	return nil
}

// Greeting returns the text of the server's greeting (without "+OK ").
func (c *Client) Greeting() string { return c.greeting }

// TLS reports whether the connection is protected by TLS.
func (c *Client) TLS() bool { return c.tls }

// TLSState returns the TLS connection state, ok false on a plaintext connection.
func (c *Client) TLSState() (tls.ConnectionState, bool) {
	tc, ok := c.raw.(*tls.Conn)
	if !ok {
		return tls.ConnectionState{}, false
	}
	return tc.ConnectionState(), true
}

// Err returns the error that made the client unusable, or nil.
func (c *Client) Err() error { return c.err }

// Close closes the connection without QUIT: the server must not apply deletions (RFC 1939 §6).
func (c *Client) Close() error {
	if c.stop != nil {
		c.stop()
	}
	return c.raw.Close()
}

func (c *Client) fail(err error) {
	if c.err == nil {
		c.err = err
	}
}

// send writes one command line and flushes.
func (c *Client) send(line string) error {
	if c.err != nil {
		return c.err
	}
	if strings.ContainsAny(line, "\r\n") {
		return fmt.Errorf("pop3: command contains a line break")
	}
	c.w.WriteString(line)
	c.w.WriteString("\r\n")
	if err := c.w.Flush(); err != nil {
		c.fail(err)
		return err
	}
	return nil
}

// readLine reads one line of at most maxLine octets and returns it without CRLF (a bare LF
// is accepted as the end of a line: some servers send it and it is unambiguous here).
func (c *Client) readLine() (string, error) {
	if c.err != nil {
		return "", c.err
	}
	var buf []byte
	for {
		chunk, err := c.r.ReadSlice('\n')
		buf = append(buf, chunk...)
		if err == nil {
			break
		}
		if errors.Is(err, bufio.ErrBufferFull) && len(buf) < maxLine {
			continue
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			err = fmt.Errorf("%w: line longer than %d octets", ErrProtocol, maxLine)
		} else if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		c.fail(err)
		return "", err
	}
	buf = buf[:len(buf)-1]
	if n := len(buf); n > 0 && buf[n-1] == '\r' {
		buf = buf[:n-1]
	}
	return string(buf), nil
}

// readStatus reads a status line: the text after "+OK" on success, an *Error on "-ERR".
func (c *Client) readStatus(cmd string) (string, error) {
	line, err := c.readLine()
	if err != nil {
		return "", err
	}
	ok, text, err := ParseStatus(line)
	if err != nil {
		c.fail(err)
		return "", err
	}
	if !ok {
		e := &Error{Command: cmd}
		e.Code, e.Text = splitCode(text)
		return "", e
	}
	return text, nil
}

// ParseStatus parses a status line (RFC 1939 §3): "+OK" or "-ERR", optionally followed by a
// space and text. ok tells which. Anything else is ErrProtocol.
func ParseStatus(line string) (ok bool, text string, err error) {
	var rest string
	switch {
	case strings.HasPrefix(line, "+OK"):
		ok, rest = true, line[3:]
	case strings.HasPrefix(line, "-ERR"):
		rest = line[4:]
	default:
		return false, "", fmt.Errorf("%w: bad status line %q", ErrProtocol, truncate(line))
	}
	if rest != "" && rest[0] != ' ' {
		return false, "", fmt.Errorf("%w: bad status line %q", ErrProtocol, truncate(line))
	}
	return ok, strings.TrimPrefix(rest, " "), nil
}

// splitCode separates an RFC 2449 §8 response code ("[IN-USE] text") from the text.
func splitCode(text string) (code, rest string) {
	if !strings.HasPrefix(text, "[") {
		return "", text
	}
	end := strings.IndexByte(text, ']')
	if end < 0 {
		return "", text
	}
	return text[1:end], strings.TrimPrefix(text[end+1:], " ")
}

func truncate(s string) string {
	if len(s) > 80 {
		return s[:80] + "..."
	}
	return s
}

// cmd sends a command and reads its status line. name is the verb used in errors, so that
// arguments (passwords) never appear in an error message.
func (c *Client) cmd(name, line string) (string, error) {
	if err := c.send(line); err != nil {
		return "", err
	}
	return c.readStatus(name)
}

// Capabilities runs CAPA (RFC 2449 §5) once and caches the result: upper-case capability name
// → its arguments. A server without CAPA (RFC 1939 only) yields an empty map, not an error.
func (c *Client) Capabilities() (map[string]string, error) {
	if c.capa != nil {
		return c.capa, nil
	}
	capa := map[string]string{}
	if _, err := c.cmd("CAPA", "CAPA"); err != nil {
		var pe *Error
		if errors.As(err, &pe) {
			c.capa = capa
			return capa, nil
		}
		return nil, err
	}
	err := c.readListing(func(line string) error {
		name, args, _ := strings.Cut(line, " ")
		capa[strings.ToUpper(name)] = args
		return nil
	})
	if err != nil {
		return nil, err
	}
	c.capa = capa
	return capa, nil
}

// readListing reads the lines of a multi-line response up to the terminating ".", unstuffed.
func (c *Client) readListing(fn func(line string) error) error {
	for {
		line, err := c.readLine()
		if err != nil {
			return err
		}
		if line == "." {
			return nil
		}
		line = strings.TrimPrefix(line, ".") // RFC 1939 §3 byte-stuffing
		if err := fn(line); err != nil {
			c.fail(err)
			return err
		}
	}
}

// Stat runs STAT: the number of messages and their total size.
func (c *Client) Stat() (count int, size int64, err error) {
	text, err := c.cmd("STAT", "STAT")
	if err != nil {
		return 0, 0, err
	}
	f := strings.Fields(text)
	if len(f) < 2 {
		c.fail(fmt.Errorf("%w: bad STAT reply %q", ErrProtocol, truncate(text)))
		return 0, 0, c.err
	}
	count, err1 := strconv.Atoi(f[0])
	size, err2 := strconv.ParseInt(f[1], 10, 64)
	if err1 != nil || err2 != nil || count < 0 || size < 0 {
		c.fail(fmt.Errorf("%w: bad STAT reply %q", ErrProtocol, truncate(text)))
		return 0, 0, c.err
	}
	return count, size, nil
}

// MessageSize is one line of LIST.
type MessageSize struct {
	Num  int
	Size int64
}

// List runs LIST without an argument: the size of every message not marked deleted.
func (c *Client) List() ([]MessageSize, error) {
	if _, err := c.cmd("LIST", "LIST"); err != nil {
		return nil, err
	}
	var out []MessageSize
	err := c.readListing(func(line string) error {
		num, arg, err := ParseListLine(line)
		if err != nil {
			return err
		}
		size, err := strconv.ParseInt(arg, 10, 64)
		if err != nil || size < 0 {
			return fmt.Errorf("%w: bad LIST line %q", ErrProtocol, truncate(line))
		}
		out = append(out, MessageSize{Num: num, Size: size})
		return nil
	})
	return out, err
}

// MessageUID is one line of UIDL.
type MessageUID struct {
	Num int
	UID string
}

// ErrNoUIDL is returned by UIDL when the server does not implement it (it is optional,
// RFC 1939 §7).
var ErrNoUIDL = errors.New("pop3: server does not support UIDL")

// UIDL runs UIDL without an argument: the unique-id of every message not marked deleted.
func (c *Client) UIDL() ([]MessageUID, error) {
	if _, err := c.cmd("UIDL", "UIDL"); err != nil {
		var pe *Error
		if errors.As(err, &pe) {
			return nil, fmt.Errorf("%w (%s)", ErrNoUIDL, pe.Text)
		}
		return nil, err
	}
	var out []MessageUID
	seen := map[string]bool{}
	err := c.readListing(func(line string) error {
		num, uid, err := ParseListLine(line)
		if err != nil {
			return err
		}
		if !validUID(uid) {
			return fmt.Errorf("%w: bad unique-id in UIDL line %q", ErrProtocol, truncate(line))
		}
		// RFC 1939 §7: unique-ids are unique within the maildrop. A server that breaks this
		// would make us skip or delete the wrong message, so refuse to go on.
		if seen[uid] {
			return fmt.Errorf("%w: unique-id %q appears twice", ErrProtocol, uid)
		}
		seen[uid] = true
		out = append(out, MessageUID{Num: num, UID: uid})
		return nil
	})
	return out, err
}

// ParseListLine splits a LIST or UIDL line "msg-number SP argument".
func ParseListLine(line string) (num int, arg string, err error) {
	n, arg, ok := strings.Cut(line, " ")
	if !ok {
		return 0, "", fmt.Errorf("%w: bad listing line %q", ErrProtocol, truncate(line))
	}
	num, err = strconv.Atoi(n)
	if err != nil || num < 1 || n[0] == '+' {
		return 0, "", fmt.Errorf("%w: bad message number in %q", ErrProtocol, truncate(line))
	}
	// Some servers pad with more spaces or add fields after the size; take the first word.
	arg = strings.TrimLeft(arg, " ")
	if i := strings.IndexByte(arg, ' '); i >= 0 {
		arg = arg[:i]
	}
	return num, arg, nil
}

// validUID checks RFC 1939 §7: 1 to 70 characters in the range 0x21 to 0x7E. We accept up
// to 512 (the line limit) because some servers exceed 70, but never spaces or controls: the
// unique-id is a key in our state file.
func validUID(s string) bool {
	if s == "" || len(s) > 512 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x21 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

// Retr runs RETR n and streams the message, dot-unstuffed, to w. It returns the number of
// bytes written. The message arrives with the server's line endings (CRLF on the wire).
func (c *Client) Retr(n int, w io.Writer) (int64, error) {
	if _, err := c.cmd("RETR", "RETR "+strconv.Itoa(n)); err != nil {
		return 0, err
	}
	return c.readBody(w)
}

// Pipelining reports whether the server announced PIPELINING (RFC 2449 §6.6), so that
// SendRetr may run ahead of RecvRetr.
func (c *Client) Pipelining() bool {
	capa, err := c.Capabilities()
	if err != nil {
		return false
	}
	_, ok := capa["PIPELINING"]
	return ok
}

// SendRetr sends RETR n without waiting for the answer; RecvRetr reads the answers in the
// order the commands went out. With one RETR always in flight, the server prepares the next
// message while the caller writes and fsyncs the current one. Only with Pipelining.
func (c *Client) SendRetr(n int) error {
	return c.send("RETR " + strconv.Itoa(n))
}

// RecvRetr reads the answer to the oldest RETR sent with SendRetr (see Retr).
func (c *Client) RecvRetr(w io.Writer) (int64, error) {
	if _, err := c.readStatus("RETR"); err != nil {
		return 0, err
	}
	return c.readBody(w)
}

// Top runs TOP n lines (RFC 1939 §7, optional): the header and the first lines of the body.
func (c *Client) Top(n, lines int, w io.Writer) (int64, error) {
	if _, err := c.cmd("TOP", "TOP "+strconv.Itoa(n)+" "+strconv.Itoa(lines)); err != nil {
		return 0, err
	}
	return c.readBody(w)
}

// readBody copies a multi-line response to w (RFC 1939 §3): a line starting with "." has it
// removed; a line that is exactly "." ends the response. Lines of any length are streamed: the
// stuffing rule only applies at the start of a line. If w fails, the rest of the response is
// still read, so that the connection stays usable, and w's error is returned.
func (c *Client) readBody(w io.Writer) (int64, error) {
	if c.err != nil {
		return 0, c.err
	}
	var written int64
	var werr error
	atStart := true
	for {
		chunk, err := c.r.ReadSlice('\n')
		if err != nil && !errors.Is(err, bufio.ErrBufferFull) {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			c.fail(err)
			return written, err
		}
		complete := err == nil
		if atStart && len(chunk) > 0 && chunk[0] == '.' {
			if complete && (string(chunk) == ".\r\n" || string(chunk) == ".\n") {
				return written, werr
			}
			chunk = chunk[1:]
		}
		if werr == nil && len(chunk) > 0 {
			var n int
			n, werr = w.Write(chunk)
			written += int64(n)
		}
		atStart = complete
	}
}

// Dele runs DELE n: the server marks the message and removes it at QUIT (RFC 1939 §5).
func (c *Client) Dele(n int) error {
	_, err := c.cmd("DELE", "DELE "+strconv.Itoa(n))
	return err
}

// DeleMany marks several messages, pipelining the commands when the server offers
// PIPELINING (RFC 2449 §6.6). It stops at the first -ERR and returns it.
func (c *Client) DeleMany(nums []int) error {
	capa, err := c.Capabilities()
	if err != nil {
		return err
	}
	if _, ok := capa["PIPELINING"]; !ok {
		for _, n := range nums {
			if err := c.Dele(n); err != nil {
				return err
			}
		}
		return nil
	}
	const window = 64 // bounded so that neither side's buffers fill up
	for len(nums) > 0 {
		batch := nums[:min(window, len(nums))]
		nums = nums[len(batch):]
		if c.err != nil {
			return c.err
		}
		for _, n := range batch {
			c.w.WriteString("DELE " + strconv.Itoa(n) + "\r\n")
		}
		if err := c.w.Flush(); err != nil {
			c.fail(err)
			return err
		}
		var first error
		for range batch {
			if _, err := c.readStatus("DELE"); err != nil {
				var pe *Error
				if !errors.As(err, &pe) {
					return err
				}
				if first == nil {
					first = err
				}
			}
		}
		if first != nil {
			return first
		}
	}
	return nil
}

// Noop runs NOOP.
func (c *Client) Noop() error {
	_, err := c.cmd("NOOP", "NOOP")
	return err
}

// Rset runs RSET: unmarks every message marked deleted.
func (c *Client) Rset() error {
	_, err := c.cmd("RSET", "RSET")
	return err
}

// Quit runs QUIT and closes the connection. In the TRANSACTION state the server now removes
// the messages marked deleted (RFC 1939 §6); an error means they may not have been removed.
func (c *Client) Quit() error {
	_, err := c.cmd("QUIT", "QUIT")
	c.Close()
	return err
}
