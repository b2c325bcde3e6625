package load

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/base64"
	"fmt"
	"net"
	"net/textproto"
	"strings"
	"time"

	"github.com/emersion/go-smtp"
)

// pipeClient is the smtp scenario's client with -pipelining: MAIL, the RCPTs and DATA go
// in one write and their replies are read together (RFC 2920 §3.1), so a message costs
// two round trips instead of four. go-smtp's client sends each command on its own and
// does not hand out its connection, so this mode speaks SMTP itself: greeting, EHLO,
// STARTTLS, AUTH PLAIN, then the transactions. Clients that pipeline are common (msmtp,
// Postfix's smtp client, most MTAs); with it, the load tool spends less of a shared
// machine's CPU per message, and so do the servers it measures.
type pipeClient struct {
	nc net.Conn
	r  *textproto.Reader
	w  *bufio.Writer
}

func newPipeClient(nc net.Conn) *pipeClient {
	return &pipeClient{nc: nc, r: textproto.NewReader(bufio.NewReader(nc)), w: bufio.NewWriter(nc)}
}

// reply reads one reply: its code and text (lines joined by newlines).
func (c *pipeClient) reply() (int, string, error) {
	return c.r.ReadResponse(0)
}

// cmd sends one command and reads its reply, which must have code want.
func (c *pipeClient) cmd(want int, line string) (string, error) {
	if _, err := c.w.WriteString(line + "\r\n"); err != nil {
		return "", err
	}
	if err := c.w.Flush(); err != nil {
		return "", err
	}
	code, msg, err := c.reply()
	if err != nil {
		return "", err
	}
	if code != want {
		return "", &smtp.SMTPError{Code: code, Message: msg}
	}
	return msg, nil
}

// connectPipelined opens a session ready for MAIL FROM, as connect does, and checks
// that the server offers PIPELINING.
func (r *smtpRun) connectPipelined(ctx context.Context) (*pipeClient, error) {
	t0 := time.Now()
	t := r.cfg.Target
	nc, err := t.dial(ctx)
	if err != nil {
		return nil, err
	}
	c := newPipeClient(nc)
	fail := func(step string, err error) (*pipeClient, error) {
		nc.Close()
		return nil, fmt.Errorf("%s: %w", step, err)
	}
	if code, msg, err := c.reply(); err != nil || code != 220 {
		if err == nil {
			err = &smtp.SMTPError{Code: code, Message: msg}
		}
		return fail("greeting", err)
	}
	helo := r.cfg.HelloAs
	if helo == "" {
		helo = "localhost"
	}
	ext, err := c.cmd(250, "EHLO "+helo)
	if err != nil {
		return fail("EHLO", err)
	}
	if t.TLS == StartTLS {
		if _, err := c.cmd(220, "STARTTLS"); err != nil {
			return fail("STARTTLS", err)
		}
		tc := tls.Client(nc, t.tlsConfig())
		if err := tc.HandshakeContext(ctx); err != nil {
			return fail("tls handshake", err)
		}
		nc = tc
		c = newPipeClient(tc)
		if ext, err = c.cmd(250, "EHLO "+helo); err != nil {
			return fail("EHLO after STARTTLS", err)
		}
	}
	if !hasExtension(ext, "PIPELINING") {
		return fail("EHLO", fmt.Errorf("the server does not offer PIPELINING"))
	}
	if a := r.cfg.Auth; a != nil {
		resp := base64.StdEncoding.EncodeToString([]byte("\x00" + a.User + "\x00" + a.Pass))
		if _, err := c.cmd(235, "AUTH PLAIN "+resp); err != nil {
			return fail("AUTH PLAIN", err)
		}
	}
	r.conn.merge([]time.Duration{time.Since(t0)})
	return c, nil
}

// hasExtension reports whether the EHLO reply text (lines after the greeting line) names
// the extension.
func hasExtension(ehlo, name string) bool {
	for _, line := range strings.Split(ehlo, "\n")[1:] {
		if f := strings.Fields(line); len(f) > 0 && strings.EqualFold(f[0], name) {
			return true
		}
	}
	return false
}

// pipelinedTransaction is transaction with MAIL, RCPT and DATA pipelined.
func (r *smtpRun) pipelinedTransaction(c *pipeClient, i int) (time.Duration, error) {
	rcpts := r.cfg.recipients(i)
	t0 := time.Now()
	fmt.Fprintf(c.w, "MAIL FROM:<%s> SIZE=%d\r\n", r.cfg.From, r.cfg.Size)
	for _, to := range rcpts {
		fmt.Fprintf(c.w, "RCPT TO:<%s>\r\n", to)
	}
	c.w.WriteString("DATA\r\n")
	if err := c.w.Flush(); err != nil {
		return 0, fmt.Errorf("MAIL FROM: %w", err)
	}
	// Every pipelined command gets its reply; all are read to stay in step.
	mailCode, mailMsg, err := c.reply()
	if err != nil {
		return 0, fmt.Errorf("MAIL FROM: %w", err)
	}
	var ok, refused []string
	for _, to := range rcpts {
		code, msg, err := c.reply()
		if err != nil {
			return 0, fmt.Errorf("RCPT TO <%s>: %w", to, err)
		}
		if code/100 == 2 {
			ok = append(ok, to)
		} else {
			refused = append(refused, fmt.Sprintf("<%s>: %d %s", to, code, msg))
		}
	}
	dataCode, dataMsg, err := c.reply()
	if err != nil {
		return 0, fmt.Errorf("DATA: %w", err)
	}
	if dataCode == 354 && (mailCode/100 != 2 || len(ok) == 0) {
		// Out of step with what the other replies said: send an empty message, which
		// the server must refuse (RFC 2920 §3.1), and give up on the session.
		c.w.WriteString(".\r\n")
		c.w.Flush()
		c.reply()
		return 0, fmt.Errorf("DATA: 354 after MAIL %d and %d accepted recipients", mailCode, len(ok))
	}
	switch {
	case mailCode/100 != 2:
		return 0, fmt.Errorf("MAIL FROM: %w", &smtp.SMTPError{Code: mailCode, Message: mailMsg})
	case len(ok) == 0:
		return 0, allRefusedError(refused)
	case dataCode != 354:
		return 0, fmt.Errorf("DATA: %w", &smtp.SMTPError{Code: dataCode, Message: dataMsg})
	}
	for _, e := range refused {
		r.errs.add("message %d: RCPT TO %s", i, e)
	}
	dw := textproto.NewWriter(c.w).DotWriter()
	n, err := r.msg.write(dw, i, rcpts)
	if err == nil {
		err = dw.Close() // the final dot; DotWriter flushes c.w
	}
	if err != nil {
		return 0, fmt.Errorf("DATA: writing: %w", err)
	}
	code, msg, err := c.reply()
	if err != nil {
		return 0, fmt.Errorf("DATA: %w", err)
	}
	if code != 250 {
		return 0, fmt.Errorf("DATA: %w", &smtp.SMTPError{Code: code, Message: msg})
	}
	d := time.Since(t0)
	r.accepted1(n, ok)
	return d, nil
}

// Reset abandons a transaction (RSET).
func (c *pipeClient) Reset() error {
	_, err := c.cmd(250, "RSET")
	return err
}

// Quit ends the session (QUIT) and closes the connection.
func (c *pipeClient) Quit() error {
	_, err := c.cmd(221, "QUIT")
	c.nc.Close()
	return err
}

// Close closes the connection.
func (c *pipeClient) Close() error { return c.nc.Close() }
