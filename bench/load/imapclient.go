package load

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
)

// imapClient is the small IMAP4rev1 client (RFC 3501) the scenarios need:
// greeting, STARTTLS, LOGIN or AUTHENTICATE PLAIN (with SASL-IR when offered,
// RFC 4959), SELECT, FETCH, STORE, SEARCH, APPEND, EXPUNGE, IDLE (RFC 2177),
// NOOP, LOGOUT.
//
// It reads responses without building a parse tree: a response is its text
// (literal contents removed, their "{N}" announcements kept) plus the size of
// each literal. Literal contents are streamed through a check (every line ends
// with CRLF) and dropped, so fetching a message allocates nothing per message
// and the tool's own CPU stays small next to the server's.
type imapClient struct {
	conn net.Conn
	r    *bufio.Reader
	w    *bufio.Writer
	tag  int
	caps map[string]bool // upper case; replaced by every CAPABILITY response
	resp imapResponse    // the response being read, reused by the next read
}

// imapResponse is one response read by imapClient.readResponse. It is
// reused by the next read: callers keep nothing of it.
type imapResponse struct {
	text []byte       // the response without CRLFs and literal contents
	lits []imapLit    // the literals, in order
	bad  *verifyError // the first failed check on a literal, if any
}

// imapLit is what the client keeps of a literal.
type imapLit struct {
	size int64
}

// imapStatusError is a tagged NO or BAD.
type imapStatusError struct {
	cmd    string
	status string // NO or BAD
	text   string
}

func (e *imapStatusError) Error() string { return fmt.Sprintf("%s: %s %s", e.cmd, e.status, e.text) }

// maxIMAPResponse bounds one response's text (without literal contents):
// a SEARCH of 100,000 messages is about 600 KB.
const maxIMAPResponse = 8 << 20

// IMAPAuth is how the IMAP scenarios log in.
type IMAPAuth int

const (
	// IMAPLogin sends LOGIN user pass (RFC 3501 §6.2.3).
	IMAPLogin IMAPAuth = iota
	// IMAPPlain sends AUTHENTICATE PLAIN (RFC 4616), with the initial
	// response on the command line when the server offers SASL-IR.
	IMAPPlain
)

// String returns the mode as the -auth flag names it.
func (a IMAPAuth) String() string {
	if a == IMAPPlain {
		return "plain"
	}
	return "login"
}

// dialIMAP connects, reads the greeting and, for StartTLS, upgrades with
// STARTTLS (RFC 3501 §6.2.1). The capabilities are known when it returns.
func dialIMAP(ctx context.Context, t Target) (*imapClient, error) {
	conn, err := t.dial(ctx)
	if err != nil {
		return nil, err
	}
	c := &imapClient{conn: conn, r: bufio.NewReaderSize(conn, 16<<10), w: bufio.NewWriterSize(conn, 4<<10)}
	resp, err := c.readResponse()
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("greeting: %w", err)
	}
	if !bytes.HasPrefix(resp.text, []byte("* OK")) && !bytes.HasPrefix(resp.text, []byte("* PREAUTH")) {
		conn.Close()
		return nil, fmt.Errorf("greeting: %q", truncate(string(resp.text), 80))
	}
	c.noteCaps(resp.text)
	if t.TLS == StartTLS {
		if _, err := c.simple("STARTTLS"); err != nil {
			conn.Close()
			return nil, err
		}
		tc := tls.Client(conn, t.tlsConfig())
		if err := tc.HandshakeContext(ctx); err != nil {
			tc.Close()
			return nil, fmt.Errorf("starttls handshake: %w", err)
		}
		// RFC 3501 §6.2.1: capabilities from before TLS are forgotten, and
		// nothing buffered before the handshake is used after it.
		c.conn, c.caps = tc, nil
		c.r = bufio.NewReaderSize(tc, 16<<10)
		c.w = bufio.NewWriterSize(tc, 4<<10)
	}
	if c.caps == nil {
		if _, err := c.simple("CAPABILITY"); err != nil {
			c.Close()
			return nil, err
		}
	}
	return c, nil
}

func (c *imapClient) Close() error { return c.conn.Close() }

// noteCaps takes the capability list from a "* CAPABILITY ..." response or
// a "[CAPABILITY ...]" response code anywhere in a status response.
func (c *imapClient) noteCaps(text []byte) {
	var list []byte
	if rest, ok := bytes.CutPrefix(text, []byte("* CAPABILITY ")); ok {
		list = rest
	} else if i := bytes.Index(text, []byte("[CAPABILITY ")); i >= 0 {
		list = text[i+len("[CAPABILITY "):]
		if j := bytes.IndexByte(list, ']'); j >= 0 {
			list = list[:j]
		}
	} else {
		return
	}
	c.caps = map[string]bool{}
	for _, f := range strings.Fields(string(list)) {
		c.caps[strings.ToUpper(f)] = true
	}
}

// readResponse reads one response: a line, and for each literal it
// announces ("{N}" or "~{N}" at the end of a line), the literal and the rest
// of the response after it.
func (c *imapClient) readResponse() (*imapResponse, error) {
	resp := &c.resp
	resp.text, resp.lits, resp.bad = resp.text[:0], resp.lits[:0], nil
	for {
		line, err := c.r.ReadSlice('\n')
		for errors.Is(err, bufio.ErrBufferFull) {
			resp.text = append(resp.text, line...)
			if len(resp.text) > maxIMAPResponse {
				return nil, errors.New("response too long")
			}
			line, err = c.r.ReadSlice('\n')
		}
		if err != nil {
			return nil, err
		}
		resp.text = append(resp.text, line...)
		if !bytes.HasSuffix(resp.text, []byte("\r\n")) {
			return nil, fmt.Errorf("response line not terminated by CRLF: %q", truncate(string(resp.text), 80))
		}
		resp.text = resp.text[:len(resp.text)-2]
		size, ok := literalAt(resp.text)
		if !ok {
			return resp, nil
		}
		resp.lits = append(resp.lits, imapLit{size: size})
		if err := c.readLiteral(size, resp); err != nil {
			return nil, err
		}
	}
}

// literalAt returns the size of the literal announced at the end of a
// response line: "{123}" (RFC 3501 §4.3) or "~{123}" (RFC 3516 literal8).
func literalAt(text []byte) (int64, bool) {
	if len(text) < 3 || text[len(text)-1] != '}' {
		return 0, false
	}
	i := bytes.LastIndexByte(text, '{')
	if i < 0 {
		return 0, false
	}
	n, err := strconv.ParseInt(string(text[i+1:len(text)-1]), 10, 64)
	if err != nil || n < 0 {
		return 0, false
	}
	return n, true
}

// readLiteral reads size octets, checking that every LF in them follows a
// CR (message literals are mail, RFC 5322 §2.3), and drops them.
func (c *imapClient) readLiteral(size int64, resp *imapResponse) error {
	var prev byte = '\n'
	for left := size; left > 0; {
		buf, err := c.r.Peek(int(min(left, int64(c.r.Size()))))
		if len(buf) == 0 && err != nil {
			return fmt.Errorf("literal: %w (%d of %d octets)", err, size-left, size)
		}
		if resp.bad == nil && hasBareLF(prev, buf) {
			resp.bad = &verifyError{"literal: line not terminated by CRLF"}
		}
		prev = buf[len(buf)-1]
		n, _ := c.r.Discard(len(buf))
		left -= int64(n)
	}
	return nil
}

// hasBareLF reports whether buf holds an LF not preceded by CR; prev is the
// byte before buf.
func hasBareLF(prev byte, buf []byte) bool {
	for i := bytes.IndexByte(buf, '\n'); i >= 0; {
		before := prev
		if i > 0 {
			before = buf[i-1]
		}
		if before != '\r' {
			return true
		}
		j := bytes.IndexByte(buf[i+1:], '\n')
		if j < 0 {
			return false
		}
		i += 1 + j
	}
	return false
}

// send writes one command with a fresh tag and returns the tag. The command
// is not logged or echoed in errors: it may hold a password.
func (c *imapClient) send(format string, args ...any) (string, error) {
	c.tag++
	tag := "a" + strconv.Itoa(c.tag)
	c.w.WriteString(tag)
	c.w.WriteByte(' ')
	fmt.Fprintf(c.w, format, args...)
	c.w.WriteString("\r\n")
	return tag, c.w.Flush()
}

// finish reads responses up to the tagged completion of tag, handing every
// untagged response to each (which may be nil) and noting capabilities. It
// returns the completion's text after "OK", or an *imapStatusError.
func (c *imapClient) finish(name, tag string, each func(*imapResponse) error) (string, error) {
	var firstErr error
	for {
		resp, err := c.readResponse()
		if err != nil {
			return "", fmt.Errorf("%s: %w", name, err)
		}
		text := resp.text
		if rest, ok := bytes.CutPrefix(text, []byte(tag+" ")); ok {
			c.noteCaps(rest)
			status, after, _ := bytes.Cut(rest, []byte(" "))
			if string(status) != "OK" {
				return "", &imapStatusError{cmd: name, status: string(status), text: truncate(string(after), 120)}
			}
			return string(after), firstErr
		}
		if bytes.HasPrefix(text, []byte("+")) {
			return "", fmt.Errorf("%s: unexpected continuation request", name)
		}
		if !bytes.HasPrefix(text, []byte("* ")) {
			return "", fmt.Errorf("%s: bad response %q", name, truncate(string(text), 80))
		}
		if bytes.HasPrefix(text, []byte("* BYE")) && name != "LOGOUT" {
			return "", fmt.Errorf("%s: %s", name, truncate(string(text), 120))
		}
		c.noteCaps(text)
		if each != nil {
			if err := each(resp); err != nil && firstErr == nil {
				firstErr = err
			}
		}
	}
}

// simple sends a command without arguments and waits for its completion.
func (c *imapClient) simple(name string) (string, error) {
	tag, err := c.send("%s", name)
	if err != nil {
		return "", fmt.Errorf("%s: %w", name, err)
	}
	return c.finish(name, tag, nil)
}

// waitContinuation reads up to the continuation request "+ ..." of a
// command; untagged responses before it are skipped. A tagged reply instead
// is the command's refusal.
func (c *imapClient) waitContinuation(name, tag string) error {
	for {
		resp, err := c.readResponse()
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		switch {
		case bytes.HasPrefix(resp.text, []byte("+")):
			return nil
		case bytes.HasPrefix(resp.text, []byte(tag+" ")):
			rest := string(resp.text[len(tag)+1:])
			status, after, _ := strings.Cut(rest, " ")
			return &imapStatusError{cmd: name, status: status, text: truncate(after, 120)}
		case !bytes.HasPrefix(resp.text, []byte("* ")):
			return fmt.Errorf("%s: bad response %q", name, truncate(string(resp.text), 80))
		}
	}
}

// quote returns s as an IMAP quoted string (RFC 3501 §4.3). Strings with CR,
// LF or NUL cannot be quoted; none of the tool's user names, passwords or
// mailbox names need that.
func quote(s string) (string, error) {
	if strings.ContainsAny(s, "\r\n\x00") {
		return "", errors.New("cannot send CR, LF or NUL in a quoted string")
	}
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`)
	return `"` + r.Replace(s) + `"`, nil
}

func (c *imapClient) login(a Account, how IMAPAuth) error {
	if how == IMAPPlain {
		ir := base64.StdEncoding.EncodeToString([]byte("\x00" + a.User + "\x00" + a.Pass))
		if c.caps["SASL-IR"] {
			tag, err := c.send("AUTHENTICATE PLAIN %s", ir)
			if err != nil {
				return fmt.Errorf("AUTHENTICATE: %w", err)
			}
			_, err = c.finish("AUTHENTICATE", tag, nil)
			return err
		}
		tag, err := c.send("AUTHENTICATE PLAIN")
		if err != nil {
			return fmt.Errorf("AUTHENTICATE: %w", err)
		}
		if err := c.waitContinuation("AUTHENTICATE", tag); err != nil {
			return err
		}
		c.w.WriteString(ir + "\r\n")
		if err := c.w.Flush(); err != nil {
			return fmt.Errorf("AUTHENTICATE: %w", err)
		}
		_, err = c.finish("AUTHENTICATE", tag, nil)
		return err
	}
	user, err := quote(a.User)
	if err != nil {
		return fmt.Errorf("LOGIN: user name: %w", err)
	}
	pass, err := quote(a.Pass)
	if err != nil {
		return fmt.Errorf("LOGIN: password: %w", err)
	}
	tag, err := c.send("LOGIN %s %s", user, pass)
	if err != nil {
		return fmt.Errorf("LOGIN: %w", err)
	}
	_, err = c.finish("LOGIN", tag, nil)
	return err
}

// selectMailbox selects mailbox and returns its message count (the EXISTS
// response, RFC 3501 §7.3.1).
func (c *imapClient) selectMailbox(mailbox string) (int, error) {
	q, err := quote(mailbox)
	if err != nil {
		return 0, err
	}
	tag, err := c.send("SELECT %s", q)
	if err != nil {
		return 0, fmt.Errorf("SELECT: %w", err)
	}
	exists := -1
	_, err = c.finish("SELECT", tag, func(r *imapResponse) error {
		if n, ok := untaggedNumber(r.text, "EXISTS"); ok {
			exists = n
		}
		return nil
	})
	if err == nil && exists < 0 {
		err = &verifyError{"SELECT: no EXISTS response"}
	}
	return exists, err
}

// untaggedNumber parses "* N NAME" (EXISTS, EXPUNGE, FETCH ...).
func untaggedNumber(text []byte, name string) (int, bool) {
	rest, ok := bytes.CutPrefix(text, []byte("* "))
	if !ok {
		return 0, false
	}
	num, after, ok := bytes.Cut(rest, []byte(" "))
	if !ok || !(bytes.Equal(after, []byte(name)) || bytes.HasPrefix(after, []byte(name+" "))) {
		return 0, false
	}
	n, err := strconv.Atoi(string(num))
	return n, err == nil
}

// fetchItem returns the number after NAME in a FETCH response's text, e.g.
// "UID" or "RFC822.SIZE" (RFC 3501 §7.4.2).
func fetchItem(text []byte, name string) (int64, bool) {
	i := bytes.Index(text, []byte(" "+name+" "))
	if i < 0 {
		i = bytes.Index(text, []byte("("+name+" "))
		if i < 0 {
			return 0, false
		}
	}
	rest := text[i+len(name)+2:]
	end := 0
	for end < len(rest) && rest[end] >= '0' && rest[end] <= '9' {
		end++
	}
	n, err := strconv.ParseInt(string(rest[:end]), 10, 64)
	return n, err == nil
}

// fetched is one message of a FETCH of bodies.
type fetched struct {
	uid  int64
	size int64 // octets of the BODY[] literal
}

// fetchBodies sends "[UID ]FETCH set (UID RFC822.SIZE BODY.PEEK[])" and
// checks each message: the body is a literal whose size equals RFC822.SIZE
// and whose lines end with CRLF. Good messages go to good, failed checks to
// bad; either way the response was read to its end and the connection stays
// in step.
func (c *imapClient) fetchBodies(uid bool, set string, good func(fetched), bad func(error)) error {
	cmd := "FETCH"
	if uid {
		cmd = "UID FETCH"
	}
	tag, err := c.send("%s %s (UID RFC822.SIZE BODY.PEEK[])", cmd, set)
	if err != nil {
		return fmt.Errorf("%s: %w", cmd, err)
	}
	_, err = c.finish(cmd, tag, func(r *imapResponse) error {
		if _, ok := untaggedNumber(r.text, "FETCH"); !ok {
			return nil // EXISTS, flag updates, ...
		}
		if r.bad != nil {
			bad(r.bad)
			return nil
		}
		size, okSize := fetchItem(r.text, "RFC822.SIZE")
		u, okUID := fetchItem(r.text, "UID")
		switch {
		case !okSize || !okUID || len(r.lits) != 1 || !bytes.Contains(r.text, []byte("BODY[] {")):
			bad(&verifyError{fmt.Sprintf("%s: FETCH response without UID, RFC822.SIZE or one BODY[] literal: %q", cmd, truncate(string(r.text), 120))})
		case r.lits[0].size != size:
			bad(&verifyError{fmt.Sprintf("%s: UID %d: BODY[] has %d octets, RFC822.SIZE says %d", cmd, u, r.lits[0].size, size)})
		default:
			good(fetched{uid: u, size: size})
		}
		return nil
	})
	return err
}

// idle starts IDLE (RFC 2177) and returns once the server accepted it.
func (c *imapClient) idle() (tag string, err error) {
	tag, err = c.send("IDLE")
	if err != nil {
		return "", fmt.Errorf("IDLE: %w", err)
	}
	return tag, c.waitContinuation("IDLE", tag)
}

// done ends the IDLE of tag and reads its completion.
func (c *imapClient) done(tag string) error {
	c.w.WriteString("DONE\r\n")
	if err := c.w.Flush(); err != nil {
		return fmt.Errorf("DONE: %w", err)
	}
	_, err := c.finish("IDLE", tag, nil)
	return err
}

// appendMessage appends msg to mailbox (appendMany), handing untagged responses to each.
func (c *imapClient) appendMessage(mailbox string, msg []byte, each func(*imapResponse) error) error {
	return c.appendMany(mailbox, [][]byte{msg}, each)
}

// command sends a command line and reads its completion, handing untagged
// responses to each.
func (c *imapClient) command(each func(*imapResponse) error, format string, args ...any) error {
	name := format
	if i := strings.IndexAny(format, " %"); i > 0 {
		name = format[:i]
	}
	if name == "UID" {
		rest := strings.TrimPrefix(format, "UID ")
		if i := strings.IndexAny(rest, " %"); i > 0 {
			rest = rest[:i]
		}
		name = "UID " + rest
	}
	tag, err := c.send(format, args...)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	_, err = c.finish(name, tag, each)
	return err
}

func (c *imapClient) logout() error {
	_, err := c.simple("LOGOUT")
	if err != nil && errors.Is(err, io.EOF) {
		return nil // a server may close right after its tagged OK
	}
	return err
}
