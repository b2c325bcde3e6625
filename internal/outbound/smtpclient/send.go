package smtpclient

import (
	"bufio"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"petrel/internal/lib/scram"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/emersion/go-sasl"
	"golang.org/x/net/idna"
)

// Send delivers msg over the session, moving on to the route's next hosts when the current
// one fails before the message could have been delivered (see the package comment). After
// Send the session may still be used for another message if Usable says so.
func (s *Session) Send(ctx context.Context, msg *Message) Result {
	res := Result{Recipients: make([]Reply, len(msg.Recipients))}
	pending := s.precheck(msg, res.Recipients)
	for len(pending) > 0 {
		if s.conn == nil {
			if err := s.connectNext(ctx); err != nil {
				var e *Error
				errors.As(err, &e)
				for _, i := range pending {
					res.Recipients[i] = e.Reply
				}
				break
			}
		}
		if !s.checkServer(msg, pending, res.Recipients) {
			break
		}
		pending = s.eligible(msg, pending, res.Recipients)
		if len(pending) == 0 {
			break
		}
		chunk := pending[:min(len(pending), s.c.cfg.MaxRecipients)]
		tx := s.transaction(ctx, msg, chunk)
		for _, i := range chunk {
			res.Recipients[i] = tx.replies[i]
		}
		delivered := tx.delivered()
		if delivered > 0 || (!tx.hostFailed && res.Host == "") {
			// The host whose replies these are, also when it refused every recipient: the
			// DSN names it as Remote-MTA (RFC 3464 §2.3.5).
			res.Host, res.Addr, res.TLS, res.DSN = s.cur.host.Name, s.cur.addr, s.tlsDesc, s.dsn
		}
		// What goes again: recipients over the limit, those refused with 452 "too many
		// recipients" when others went through (on this connection), and those a failing
		// host left undecided (on the next host).
		next := slices.Clone(pending[len(chunk):])
		if tx.hostFailed {
			next = append(next, tx.retry...)
		} else if delivered > 0 {
			for _, i := range chunk {
				// 452 is also "mailbox full" (4.2.2) and "no storage" (4.3.1).
				if r := tx.replies[i]; r.Code == 452 && (r.Enhanced == "4.5.3" || r.Enhanced == "") {
					next = append(next, i)
				}
			}
		}
		if tx.hostFailed {
			s.trace = append(s.trace, fmt.Sprintf("%s: %s", s.cur.name(), tx.hostReply))
			s.c.cfg.Log.Debug("outbound host failed in a transaction", "host", s.cur.name(), "reply", tx.hostReply.String())
			s.drop()
			if len(s.targets) == 0 {
				// The replies of the last host stand; the recipients it never saw share
				// its failure.
				for _, i := range next {
					if res.Recipients[i].Code == 0 {
						res.Recipients[i] = tx.hostReply
					}
				}
				break
			}
		}
		pending = next
		if ctx.Err() != nil {
			break
		}
	}
	for i, r := range res.Recipients {
		if r.Code == 0 { // left when the context ended the attempt
			res.Recipients[i] = local(451, "4.4.7", "delivery attempt interrupted: %v", context.Cause(ctx))
		}
	}
	res.TLSReport, res.TLSFailed, res.Trace = s.report, s.tlsFail, s.trace
	return res
}

// Usable reports whether the session still has a connection for another message.
func (s *Session) Usable() bool { return s.conn != nil }

// Ready checks a session that waited idle before it carries another message: the server
// must answer RSET (RFC 5321 §4.1.1.5) with 250. A server may close an idle connection at
// any time (RFC 5321 §4.5.3.2.7 gives it 5 minutes; many take less), and a message sent into
// a closed one would fail its host for this attempt; after one round trip the caller knows
// to open a new session instead. A session that fails is closed.
func (s *Session) Ready() bool {
	s.reset()
	return s.conn != nil
}

// precheck refuses what no server can take (addresses that would break the command line)
// and returns the indexes of the other recipients.
func (s *Session) precheck(msg *Message, replies []Reply) []int {
	var pending []int
	badFrom := !safeAddress(msg.From)
	for i, r := range msg.Recipients {
		switch {
		case badFrom:
			replies[i] = local(553, "5.1.7", "bad sender address %q", msg.From)
		case !safeAddress(r.Addr) || r.Addr == "":
			replies[i] = local(553, "5.1.3", "bad recipient address %q", r.Addr)
		default:
			pending = append(pending, i)
		}
	}
	return pending
}

// safeAddress refuses anything that could end or extend an SMTP command line.
func safeAddress(a string) bool {
	return !strings.ContainsFunc(a, func(r rune) bool { return r < 0x20 || r == 0x7f || r == '<' || r == '>' }) &&
		len(a) <= 512
}

// checkServer applies the whole-message rules against the current server; false when
// nothing can be sent there (the replies are set).
func (s *Session) checkServer(msg *Message, pending []int, replies []Reply) bool {
	cn := s.conn
	fail := func(r Reply) bool {
		for _, i := range pending {
			replies[i] = r
		}
		return false
	}
	// RFC 6531 §3.2: without SMTPUTF8 at the server, a message that needs it is not sent.
	if !cn.has("SMTPUTF8") {
		if _, ok := asciiAddress(msg.From); !ok {
			return fail(local(553, "5.6.7", "%s does not support SMTPUTF8, needed for the sender address (RFC 6531)", s.cur.host.Name))
		}
		if msg.UTF8Headers {
			return fail(local(554, "5.6.9", "%s does not support SMTPUTF8, needed for the UTF-8 header fields (RFC 6532)", s.cur.host.Name))
		}
	}
	// RFC 6152 §3: refuse rather than convert (the DKIM signature would break).
	if msg.EightBit && !cn.has("8BITMIME") {
		return fail(local(554, "5.6.3", "%s does not support 8BITMIME and the message has 8-bit content", s.cur.host.Name))
	}
	if max := cn.maxSize(); max > 0 && msg.Size > max {
		return fail(local(552, "5.3.4", "message of %d bytes exceeds the size limit of %s (%d bytes)", msg.Size, s.cur.host.Name, max))
	}
	return true
}

// eligible fails the non-ASCII recipients when the server lacks SMTPUTF8 and returns the
// others.
func (s *Session) eligible(msg *Message, pending []int, replies []Reply) []int {
	if s.conn.has("SMTPUTF8") {
		return pending
	}
	var out []int
	for _, i := range pending {
		if _, ok := asciiAddress(msg.Recipients[i].Addr); ok {
			out = append(out, i)
		} else {
			replies[i] = local(553, "5.6.7", "%s does not support SMTPUTF8, needed for this address (RFC 6531)", s.cur.host.Name)
		}
	}
	return out
}

// asciiAddress returns addr in ASCII when it can be written so: the domain's U-labels as
// A-labels (RFC 5890), the local part unchanged. A non-ASCII local part needs SMTPUTF8.
func asciiAddress(addr string) (string, bool) {
	if isASCII(addr) {
		return addr, true
	}
	at := strings.LastIndexByte(addr, '@')
	if at < 0 || !isASCII(addr[:at]) {
		return "", false
	}
	domain, err := idna.Lookup.ToASCII(addr[at+1:])
	if err != nil {
		return "", false
	}
	return addr[:at+1] + domain, true
}

// wireAddress is addr as the current server can take it: as is with SMTPUTF8, else in
// ASCII (callers have checked that it can be).
func (s *Session) wireAddress(addr string) string {
	if s.conn.has("SMTPUTF8") {
		return addr
	}
	a, _ := asciiAddress(addr)
	return a
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// txResult is the outcome of one transaction.
type txResult struct {
	replies map[int]Reply
	// hostFailed: the host failed before the message could have been delivered, and the
	// recipients in retry may go to the next host. hostReply says how.
	hostFailed bool
	hostReply  Reply
	retry      []int
}

// delivered counts the recipients that got the message.
func (tx txResult) delivered() int {
	n := 0
	for _, r := range tx.replies {
		if r.Delivered() {
			n++
		}
	}
	return n
}

// transaction runs MAIL, RCPT for each of idx, DATA, the body. With PIPELINING the commands
// up to DATA go in one write (RFC 2920 §3.1: DATA last in the group).
func (s *Session) transaction(ctx context.Context, msg *Message, idx []int) txResult {
	cn := s.conn
	t := s.c.t
	pipelining := cn.has("PIPELINING")
	tx := txResult{replies: map[int]Reply{}}
	// fail sets rep for the recipients in which (nil: all) and, for a temporary failure
	// of the host, marks them for the next host.
	fail := func(rep Reply, which []int, hostLevel bool) txResult {
		if which == nil {
			which = idx
		}
		for _, i := range which {
			tx.replies[i] = rep
		}
		if hostLevel && !rep.Permanent() {
			tx.hostFailed, tx.hostReply, tx.retry = true, rep, which
		}
		return tx
	}
	stop := context.AfterFunc(ctx, func() { cn.raw.Close() })
	defer stop()

	utf8 := cn.has("SMTPUTF8") && (!isASCII(msg.From) || msg.UTF8Headers || !allASCII(msg, idx))
	mail := s.mailCommand(msg, utf8)
	rcpts := make([]string, len(idx))
	for k, i := range idx {
		rcpts[k] = s.rcptCommand(msg.Recipients[i])
	}
	if pipelining {
		cn.send(t.Mail, mail)
		for _, r := range rcpts {
			cn.send(t.Rcpt, r)
		}
		cn.send(t.DataInit, "DATA")
		if err := cn.flush(t.Mail); err != nil {
			return fail(ioReply("MAIL", err), nil, true)
		}
	}
	// step reads the reply of a pipelined command, or sends the command and reads it.
	step := func(timeout time.Duration, line string) (Reply, error) {
		if pipelining {
			return cn.readReply(timeout)
		}
		return cn.cmd(timeout, line)
	}

	mr, err := step(t.Mail, mail)
	if err != nil {
		return fail(ioReply("MAIL FROM", err), nil, true)
	}
	if !mr.Delivered() {
		if pipelining { // the RCPT and DATA replies still come: read them to stay in step
			for range rcpts {
				if _, err := cn.readReply(t.Rcpt); err != nil {
					s.drop()
					return fail(mr, nil, true)
				}
			}
			if dr, err := cn.readReply(t.DataInit); err != nil || dr.Code == 354 {
				s.drop() // a 354 after a failed MAIL: the session is out of step
				return fail(mr, nil, true)
			}
		}
		s.reset()
		// A 4xx to MAIL is the host's trouble (RFC 5321 §4.2.5: e.g. 421, 451): next host.
		return fail(mr, nil, true)
	}
	var accepted []int
	for k, i := range idx {
		rr, err := step(t.Rcpt, rcpts[k])
		if err != nil {
			return fail(ioReply("RCPT TO", err), nil, true)
		}
		tx.replies[i] = rr
		if rr.Delivered() {
			accepted = append(accepted, i)
		}
		if rr.Code == 421 { // closing: the rest cannot be answered
			s.drop()
			return fail(rr, nil, true)
		}
	}
	if len(accepted) == 0 && !pipelining {
		s.reset()
		return tx
	}
	dr, err := step(t.DataInit, "DATA")
	if err != nil {
		return fail(ioReply("DATA", err), accepted, true)
	}
	if dr.Code != 354 {
		s.reset()
		if len(accepted) == 0 {
			return tx // the expected answer to a pipelined DATA without recipients
		}
		return fail(dr, accepted, true)
	}
	if len(accepted) == 0 {
		// RFC 2920 §3.1: a server that answers 354 although every RCPT failed gets an
		// empty message, which it must refuse.
		cn.cmd(t.DataEnd, ".")
		s.reset()
		return tx
	}

	// The body. Each write has the data block timeout (RFC 5321 §4.5.3.2.5).
	if s.dw == nil { // buffers kept for the session's next messages
		s.dw, s.readBuf = bufio.NewWriterSize(nil, 32<<10), make([]byte, 32<<10)
	}
	dw := s.dw
	dw.Reset(deadlineWriter{cn: cn, timeout: t.DataBlock})
	err = writeData(dw, io.NewSectionReader(msg.Body, 0, 1<<62), s.readBuf)
	if err == nil {
		err = dw.Flush()
	}
	if err != nil {
		// Before the final ".": nothing was delivered, the next host may take it.
		s.drop()
		return fail(ioReply("DATA content", err), accepted, true)
	}
	fr, err := cn.readReply(t.DataEnd)
	if err != nil {
		// The final "." went out: the server may have accepted the message. Retry later
		// (a duplicate at worst), not on another host now (RFC 1047).
		rep := ioReply("after the end of DATA", err)
		rep.Text += " (the message may have been delivered)"
		s.drop()
		return fail(rep, accepted, false)
	}
	if fr.Code == 421 {
		s.drop()
	}
	return fail(fr, accepted, false)
}

// deadlineWriter sets the data block timeout before each write of the body.
type deadlineWriter struct {
	cn      *conn
	timeout time.Duration
}

func (w deadlineWriter) Write(p []byte) (int, error) {
	if err := w.cn.w.Flush(); err != nil { // anything the command buffer still holds
		return 0, w.cn.failed(err)
	}
	w.cn.nc.SetWriteDeadline(time.Now().Add(w.timeout))
	n, err := w.cn.nc.Write(p)
	return n, w.cn.failed(err)
}

// reset abandons a transaction (RSET, RFC 5321 §4.1.1.5); a session that cannot is dropped.
func (s *Session) reset() {
	if s.conn == nil {
		return
	}
	if r, err := s.conn.cmd(s.c.t.Mail, "RSET"); err != nil || !r.Delivered() {
		s.drop()
	}
}

func allASCII(msg *Message, idx []int) bool {
	for _, i := range idx {
		if !isASCII(msg.Recipients[i].Addr) {
			return false
		}
	}
	return true
}

func (s *Session) mailCommand(msg *Message, utf8 bool) string {
	cn := s.conn
	var b strings.Builder
	b.WriteString("MAIL FROM:<" + s.wireAddress(msg.From) + ">")
	if cn.has("SIZE") && msg.Size > 0 {
		b.WriteString(" SIZE=" + strconv.FormatInt(msg.Size, 10))
	}
	if msg.EightBit && cn.has("8BITMIME") {
		b.WriteString(" BODY=8BITMIME")
	}
	if utf8 {
		b.WriteString(" SMTPUTF8")
	}
	if cn.has("DSN") {
		if msg.Ret == "FULL" || msg.Ret == "HDRS" {
			b.WriteString(" RET=" + msg.Ret)
		}
		if msg.EnvID != "" {
			b.WriteString(" ENVID=" + xtext(msg.EnvID))
		}
	}
	return b.String()
}

func (s *Session) rcptCommand(r Recipient) string {
	line := "RCPT TO:<" + s.wireAddress(r.Addr) + ">"
	if s.conn.has("DSN") {
		if n := strings.ToUpper(strings.ReplaceAll(r.Notify, " ", "")); n != "" && validNotify(n) {
			line += " NOTIFY=" + n
		}
		if r.ORcpt != "" {
			line += " ORCPT=" + orcpt(r)
		}
	}
	return line
}

// validNotify accepts NEVER alone or a list of SUCCESS, FAILURE, DELAY (RFC 3461 §4.1).
func validNotify(n string) bool {
	if n == "NEVER" {
		return true
	}
	for _, v := range strings.Split(n, ",") {
		if v != "SUCCESS" && v != "FAILURE" && v != "DELAY" {
			return false
		}
	}
	return true
}

// orcpt formats the ORCPT value: "rfc822;" and the xtext of an ASCII address (RFC 3461
// §4.2), or "utf-8;" and the utf-8-addr-xtext of an internationalized one (RFC 6533 §3),
// which servers with and without SMTPUTF8 can read.
func orcpt(r Recipient) string {
	typ := strings.ToLower(r.ORcptType)
	if typ == "" || typ == "utf-8" || !isASCII(typ) || strings.ContainsAny(typ, " ;=+") {
		typ = "rfc822"
	}
	if typ == "rfc822" && !isASCII(r.ORcpt) {
		var b strings.Builder
		for _, c := range r.ORcpt {
			// QCHAR of RFC 6533 §3: printable ASCII but "+", "=" and "\".
			if c > ' ' && c <= '~' && c != '+' && c != '=' && c != '\\' {
				b.WriteRune(c)
			} else {
				fmt.Fprintf(&b, "\\x{%X}", c)
			}
		}
		return "utf-8;" + b.String()
	}
	return typ + ";" + xtext(r.ORcpt)
}

// xtext encodes s (RFC 3461 §4): printable ASCII but "+" and "=" as is, the rest "+HH".
func xtext(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c > ' ' && c <= '~' && c != '+' && c != '=' {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "+%02X", c)
		}
	}
	return b.String()
}

// auth logs in to a smart host (RFC 4954), only over TLS: SCRAM-SHA-256 when offered (the
// password never leaves us, and the server proves it knows it), else PLAIN.
func (cn *conn) auth(timeout time.Duration, user, pass string) (Reply, error) {
	if !cn.tls {
		err := errors.New("AUTH refused without TLS")
		return local(451, "4.7.0", "%v", err), err
	}
	mechs := strings.Fields(strings.ToUpper(cn.ext["AUTH"]))
	var c sasl.Client
	var sc *scram.Client
	switch {
	case contains(mechs, "SCRAM-SHA-256"):
		sc = scram.NewClient(user, pass)
		c = sc
	case contains(mechs, "PLAIN"):
		c = sasl.NewPlainClient("", user, pass)
	default:
		err := errors.New("the smart host offers neither AUTH SCRAM-SHA-256 nor PLAIN")
		return local(451, "4.7.0", "%v", err), err
	}
	mech, ir, err := c.Start()
	if err != nil {
		return local(451, "4.7.0", "AUTH: %v", err), err
	}
	cn.authing = true
	defer func() { cn.authing = false }()
	line := "AUTH " + mech
	if ir != nil {
		enc := base64.StdEncoding.EncodeToString(ir)
		if enc == "" {
			enc = "=" // an empty initial response (RFC 4954 §4)
		}
		line += " " + enc
	}
	r, err := cn.cmd(timeout, line)
	for n := 0; err == nil && r.Code == 334 && n < 10; n++ {
		chal, derr := base64.StdEncoding.DecodeString(strings.TrimSpace(r.Text))
		if derr != nil {
			cn.cmd(timeout, "*")
			return local(451, "4.7.0", "AUTH: bad challenge"), derr
		}
		resp, nerr := c.Next(chal)
		if nerr != nil {
			cn.cmd(timeout, "*") // cancel (RFC 4954 §4)
			return local(451, "4.7.0", "AUTH: %v", nerr), nerr
		}
		r, err = cn.cmd(timeout, base64.StdEncoding.EncodeToString(resp))
	}
	if err != nil {
		return ioReply("AUTH", err), err
	}
	if r.Code != 235 {
		// Wrong credentials are a configuration error the operator fixes: keep the mail.
		rep := r
		rep.Code, rep.Local = 451, true
		rep.Text = "AUTH refused by the smart host: " + r.String()
		rep.Enhanced = "4.7.8"
		return rep, errors.New("AUTH refused")
	}
	if sc != nil && !sc.ServerVerified() {
		err := errors.New("the smart host accepted SCRAM without proving its identity")
		return local(451, "4.7.0", "AUTH: %v", err), err
	}
	return r, nil
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
