// Package dsn writes delivery status notifications (bounces) and holds the rules for when
// to send one. The queue calls it; it knows nothing of the queue or the store.
//
// # The message
//
// A DSN is an RFC 6522 multipart/report with report-type=delivery-status and three parts:
//
//  1. text/plain for people: what happened to which recipient, and the far side's reply;
//  2. message/delivery-status (RFC 3464 §2) for programs: Reporting-MTA, Original-Envelope-Id
//     and Arrival-Date, then per recipient Final-Recipient, Original-Recipient (from ORCPT),
//     Action, Status (the RFC 3463 enhanced code), Remote-MTA, Diagnostic-Code (the far
//     side's reply), Last-Attempt-Date and, for delays, Will-Retry-Until;
//  3. the original message (message/rfc822) for RET=FULL, or its header section
//     (text/rfc822-headers) for RET=HDRS (RFC 3461 §4.3), never more than a size bound: a
//     message over the bound is returned as its header section, itself cut at the bound.
//
// It is sent with the null reverse path (RFC 5321 §4.5.5, RFC 3464 §2), From
// MAILER-DAEMON at our host, and Auto-Submitted: auto-replied (RFC 3834 §5). When the
// original transaction used SMTPUTF8, or an address is not ASCII, the RFC 6533 types are
// used instead: message/global-delivery-status, utf-8 address types, message/global and
// message/global-headers.
//
// # When to send one
//
// Wants says whether a recipient's NOTIFY (RFC 3461 §4.1) asks for a DSN of an action;
// without NOTIFY, failures and delays are reported, successes not. Decide says where a
// notice about a failed message goes, and keeps bounces from looping:
//
//   - never a DSN to the null reverse path (RFC 5321 §4.5.5, RFC 3461 §6.2);
//   - no DSN for a message that is itself a bounce or an automatic reply: null sender,
//     Auto-Submitted: auto-replied, or a multipart/report delivery-status (RFC 3834 §2,
//     RFC 3464 §4). Such a failure goes to the postmaster instead, as a "double bounce";
//   - a double bounce that fails is dropped (it carries DoubleBounceHeader), so two
//     servers can never bounce mail at each other for ever.
//
// Mail that is merely automatic, Auto-Submitted: auto-generated (mailing lists, alerts)
// with a real reverse path, is bounced as usual: its reverse path is where the list
// processes bounces.
package dsn

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/textproto"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"
)

// Action is what happened to a recipient (RFC 3464 §2.3.3).
type Action string

const (
	Failed    Action = "failed"    // permanent failure, or the retry time ran out
	Delayed   Action = "delayed"   // still trying: a warning
	Delivered Action = "delivered" // delivered to a mailbox here
	Relayed   Action = "relayed"   // handed to a server that does not speak DSN
	Expanded  Action = "expanded"  // delivered to a list or alias expanding to several
)

// Notify is the NOTIFY parameter of one recipient (RFC 3461 §4.1). The zero value is
// "not given".
type Notify uint8

const (
	NotifyNever Notify = 1 << iota
	NotifySuccess
	NotifyFailure
	NotifyDelay
)

// ParseNotify reads a NOTIFY value as the SMTP command carries it ("SUCCESS,FAILURE",
// "NEVER"), case-insensitively. "" gives the zero Notify. NEVER with anything else is an
// error (RFC 3461 §4.1).
func ParseNotify(s string) (Notify, error) {
	if s == "" {
		return 0, nil
	}
	var n Notify
	for _, w := range strings.Split(s, ",") {
		switch strings.ToUpper(strings.TrimSpace(w)) {
		case "NEVER":
			n |= NotifyNever
		case "SUCCESS":
			n |= NotifySuccess
		case "FAILURE":
			n |= NotifyFailure
		case "DELAY":
			n |= NotifyDelay
		default:
			return 0, fmt.Errorf("dsn: unknown NOTIFY keyword %q", w)
		}
	}
	if n&NotifyNever != 0 && n != NotifyNever {
		return 0, errors.New("dsn: NOTIFY=NEVER with other keywords")
	}
	return n, nil
}

// Wants reports whether a recipient with this NOTIFY asks for a DSN about action. Without
// NOTIFY, RFC 3461 §4.1 lets the MTA act as for FAILURE,DELAY; that is what we do (delay
// warnings still only if the queue is configured to send them).
func (n Notify) Wants(a Action) bool {
	if n == 0 {
		n = NotifyFailure | NotifyDelay
	}
	switch a {
	case Failed:
		return n&NotifyFailure != 0
	case Delayed:
		return n&NotifyDelay != 0
	case Delivered, Relayed, Expanded:
		return n&NotifySuccess != 0
	}
	return false
}

// Return is the RET parameter of the transaction (RFC 3461 §4.3).
type Return int

const (
	ReturnDefault Return = iota // not given: full message for failures, headers for the rest
	ReturnFull
	ReturnHeaders
)

// ParseReturn reads a RET value as the SMTP command carries it ("FULL", "HDRS", or ""),
// case-insensitively.
func ParseReturn(s string) (Return, error) {
	switch strings.ToUpper(s) {
	case "":
		return ReturnDefault, nil
	case "FULL":
		return ReturnFull, nil
	case "HDRS":
		return ReturnHeaders, nil
	}
	return ReturnDefault, fmt.Errorf("dsn: unknown RET value %q", s)
}

// Decision says where a notice about an undeliverable message goes.
type Decision int

const (
	ToSender     Decision = iota // a DSN to the reverse path
	ToPostmaster                 // a double bounce: the failed message was itself a bounce
	Discard                      // a double bounce failed: log it, send nothing
)

func (d Decision) String() string {
	return [...]string{"to sender", "to postmaster", "discard"}[d]
}

// DoubleBounceHeader marks a double bounce, so that its own failure is dropped (Decide).
const DoubleBounceHeader = "X-Petrel-Double-Bounce"

// Header is the part of a parsed header section Decide reads: net/mail.Header,
// net/textproto.MIMEHeader and go-message's textproto.Header all have it.
type Header interface {
	Get(key string) string
}

// Decide applies the loop rules (see the package comment) to a message that could not be
// delivered: reversePath is its MAIL FROM ("" for <>), h its header section.
func Decide(reversePath string, h Header) Decision {
	if h.Get(DoubleBounceHeader) != "" && reversePath == "" {
		return Discard
	}
	if reversePath == "" || IsAutoReply(h) {
		return ToPostmaster
	}
	return ToSender
}

// IsAutoReply reports whether a message is a bounce or another automatic reply, which must
// not be answered automatically (RFC 3834 §2): Auto-Submitted other than "no" and
// "auto-generated", or a multipart/report of type delivery-status (RFC 3464, RFC 6533).
func IsAutoReply(h Header) bool {
	as := strings.ToLower(strings.TrimSpace(h.Get("Auto-Submitted")))
	as, _, _ = strings.Cut(as, ";")
	as = strings.TrimSpace(as)
	if as != "" && as != "no" && as != "auto-generated" {
		return true
	}
	mt, params, err := mime.ParseMediaType(h.Get("Content-Type"))
	if err == nil && mt == "multipart/report" {
		rt := strings.ToLower(params["report-type"])
		return rt == "delivery-status" || rt == "global-delivery-status"
	}
	return false
}

// Recipient is what happened to one recipient of the original message.
type Recipient struct {
	Address string // the address delivery was tried for (Final-Recipient)
	// ORCPT (RFC 3461 §4.2), already decoded from xtext (go-smtp's RcptOptions gives it
	// so): its address type ("rfc822", "utf-8") and address. Empty without ORCPT.
	OriginalType string
	Original     string

	Action Action
	Status string // enhanced status code, "5.1.1" (RFC 3463); a default per Action if empty

	RemoteMTA  string // host name of the server that answered; "" if none was reached
	Diagnostic string // its reply, "550 5.1.1 <bob@example.net>: no such user"
	Reason     string // our account when there is no reply: "connection refused", "no MX"

	LastAttempt    time.Time
	WillRetryUntil time.Time // for Delayed
}

// Report is one DSN: about one original message, to its sender. The queue sends it with
// the null reverse path, MAIL FROM:<> (RFC 3464 §2, RFC 5321 §4.5.5), to RCPT TO:<To>, and
// with NOTIFY=NEVER should the far side speak DSN: a notification never asks for another.
type Report struct {
	ReportingMTA string // our host name: From MAILER-DAEMON@ReportingMTA, Reporting-MTA
	To           string // the original reverse path (or the postmaster, for a double bounce)
	EnvelopeID   string // ENVID (RFC 3461 §4.4), decoded; "" if none
	ArrivalDate  time.Time
	Recipients   []Recipient
	Return       Return
	SMTPUTF8     bool // the original used SMTPUTF8: RFC 6533 types (also forced by a non-ASCII address)
	DoubleBounce bool // this report is about a failed bounce and goes to the postmaster

	Date      time.Time // of the DSN; the queue passes its clock's now
	MessageID string    // without brackets; "" makes a random one at ReportingMTA
	// MaxOriginal bounds the returned message or header section; 0 means DefaultMaxOriginal.
	MaxOriginal int
}

// DefaultMaxOriginal bounds the returned original: enough for any ordinary message, and a
// bounce storm cannot fill mailboxes with copies of large attachments.
const DefaultMaxOriginal = 256 << 10

// maxDiagnostic bounds the far side's reply quoted in a DSN.
const maxDiagnostic = 2000

var statusRE = regexp.MustCompile(`^[245]\.[0-9]{1,3}\.[0-9]{1,3}$`)

// Write writes the DSN for r to w, with the original message (header and body, as stored)
// read from original. Only what is returned is read: the header section for RET=HDRS, at
// most MaxOriginal+1 bytes otherwise.
func Write(w io.Writer, r *Report, original io.Reader) error {
	if err := r.check(); err != nil {
		return err
	}
	utf8Mode := r.SMTPUTF8 || !isASCII(r.To)
	for _, rc := range r.Recipients {
		if !isASCII(rc.Address) || !isASCII(rc.Original) {
			utf8Mode = true
		}
	}
	max := r.MaxOriginal
	if max <= 0 {
		max = DefaultMaxOriginal
	}
	ret, returned, truncated, origHeader, err := readOriginal(original, r.returnFor(), max)
	if err != nil {
		return fmt.Errorf("dsn: reading the original message: %w", err)
	}
	// message/rfc822 may only be 7bit or 8bit here (RFC 2046 §5.2.1), so a line over RFC
	// 5322's 998 octets cannot be carried: return the header section instead, or nothing.
	tail := "The message follows."
	switch {
	case hasLongLine(returned) && ret == ReturnFull && !hasLongLine(origHeader):
		ret, returned = ReturnHeaders, origHeader
		tail = "The message has lines too long to return whole; its header section follows."
	case hasLongLine(returned):
		returned = nil
		tail = "The message is not returned: it has lines too long to carry."
	case truncated:
		tail = "The message was too large to return whole; its header section follows."
	case ret == ReturnHeaders:
		tail = "The header section of the message follows."
	}

	var body bytes.Buffer
	mw := multipart.NewWriter(&body) // random boundary: the original cannot contain it by design

	msgID := r.MessageID
	if msgID == "" {
		var b [12]byte
		if _, err := rand.Read(b[:]); err != nil {
			return err
		}
		msgID = hex.EncodeToString(b[:]) + "@" + r.ReportingMTA
	}

	var hdr strings.Builder
	hdr.WriteString("From: Mail Delivery System <MAILER-DAEMON@" + r.ReportingMTA + ">\r\n")
	hdr.WriteString("To: <" + r.To + ">\r\n")
	hdr.WriteString("Subject: " + r.subject() + "\r\n")
	hdr.WriteString("Date: " + r.Date.Format(time.RFC1123Z) + "\r\n")
	hdr.WriteString("Message-ID: <" + msgID + ">\r\n")
	if id := origMessageID(origHeader); id != "" {
		// Lets the sender's mail program show the bounce next to what it sent.
		hdr.WriteString("In-Reply-To: " + id + "\r\nReferences: " + id + "\r\n")
	}
	hdr.WriteString("Auto-Submitted: auto-replied\r\n") // RFC 3834 §5, RFC 3464 §2
	if r.DoubleBounce {
		hdr.WriteString(DoubleBounceHeader + ": yes\r\n")
	}
	hdr.WriteString("MIME-Version: 1.0\r\n")
	reportType := "delivery-status"
	if utf8Mode {
		reportType = "global-delivery-status" // RFC 6533 §6.3
	}
	hdr.WriteString("Content-Type: multipart/report; report-type=" + reportType + ";\r\n\tboundary=\"" + mw.Boundary() + "\"\r\n")
	hdr.WriteString("\r\n")
	hdr.WriteString("This is a delivery status notification (RFC 3464) in MIME format.\r\n")

	// Part 1: for people.
	text := r.humanText(tail)
	charset := "us-ascii"
	if !isASCII(text) {
		charset = "utf-8"
	}
	pw, err := mw.CreatePart(textproto.MIMEHeader{
		"Content-Type":              {"text/plain; charset=" + charset},
		"Content-Transfer-Encoding": {cte(text)},
		"Content-Description":       {"Notification"},
	})
	if err != nil {
		return err
	}
	io.WriteString(pw, text)

	// Part 2: for programs.
	statusType := "message/delivery-status"
	if utf8Mode {
		statusType = "message/global-delivery-status"
	}
	status := r.statusFields(utf8Mode)
	pw, err = mw.CreatePart(textproto.MIMEHeader{
		"Content-Type":              {statusType},
		"Content-Transfer-Encoding": {cte(status)},
		"Content-Description":       {"Delivery report"},
	})
	if err != nil {
		return err
	}
	io.WriteString(pw, status)

	// Part 3: what was sent.
	if len(returned) > 0 {
		ct := "message/rfc822"
		desc := "Undelivered message"
		if ret == ReturnHeaders {
			ct, desc = "text/rfc822-headers", "Header of the undelivered message"
		}
		if utf8Mode {
			// RFC 6533 §6.4 and §6.5.
			ct = map[string]string{"message/rfc822": "message/global", "text/rfc822-headers": "message/global-headers"}[ct]
		}
		if r.allDelivered() {
			desc = strings.Replace(desc, "Undelivered message", "Message", 1)
			desc = strings.Replace(desc, "of the undelivered", "of the", 1)
		}
		pw, err = mw.CreatePart(textproto.MIMEHeader{
			"Content-Type":              {ct},
			"Content-Transfer-Encoding": {cte(string(returned))},
			"Content-Description":       {desc},
		})
		if err != nil {
			return err
		}
		pw.Write(returned)
	}
	if err := mw.Close(); err != nil {
		return err
	}
	if _, err := io.WriteString(w, hdr.String()); err != nil {
		return err
	}
	_, err = w.Write(body.Bytes())
	return err
}

// check refuses reports that would make a broken or dangerous message: no recipients, or
// text that would end up in a header field with line breaks or control characters in it.
// Addresses are bounded by RFC 5321 §4.5.3.1.3 (a path is at most 256 octets); twice that
// is allowed for the ORCPT of another system.
func (r *Report) check() error {
	if len(r.Recipients) == 0 {
		return errors.New("dsn: report without recipients")
	}
	if r.To == "" {
		// RFC 5321 §4.5.5: never a DSN to the null reverse path. Decide says so before.
		return errors.New("dsn: report to the null reverse path")
	}
	if r.ReportingMTA == "" {
		return errors.New("dsn: no reporting MTA")
	}
	for _, s := range []string{r.ReportingMTA, r.To, r.MessageID} {
		if badText(s) || strings.ContainsAny(s, "<> ") {
			return fmt.Errorf("dsn: unusable text %q", s)
		}
	}
	if badText(r.EnvelopeID) {
		return fmt.Errorf("dsn: unusable envelope id %q", r.EnvelopeID)
	}
	for _, rc := range r.Recipients {
		if rc.Address == "" || badText(rc.Address) || badText(rc.Original) || badText(rc.OriginalType) || badText(rc.RemoteMTA) {
			return fmt.Errorf("dsn: bad recipient %q", rc.Address)
		}
		switch rc.Action {
		case Failed, Delayed, Delivered, Relayed, Expanded:
		default:
			return fmt.Errorf("dsn: unknown action %q", rc.Action)
		}
	}
	return nil
}

// badText reports control characters, invalid UTF-8, or more than 512 bytes.
func badText(s string) bool {
	if len(s) > 512 || !utf8.ValidString(s) {
		return true
	}
	for _, c := range s {
		if c < ' ' || c == 0x7f {
			return true
		}
	}
	return false
}

// returnFor resolves RET: without it, the full message for a failure (the sender may want
// to resend it) and the header section for a delay or success (they have it already).
func (r *Report) returnFor() Return {
	if r.Return != ReturnDefault {
		return r.Return
	}
	for _, rc := range r.Recipients {
		if rc.Action == Failed {
			return ReturnFull
		}
	}
	return ReturnHeaders
}

func (r *Report) has(a Action) bool {
	for _, rc := range r.Recipients {
		if rc.Action == a {
			return true
		}
	}
	return false
}

func (r *Report) allDelivered() bool {
	return !r.has(Failed) && !r.has(Delayed)
}

func (r *Report) subject() string {
	switch {
	case r.DoubleBounce:
		return "Undelivered Mail Returned to Sender (double bounce)"
	case r.has(Failed):
		return "Undelivered Mail Returned to Sender"
	case r.has(Delayed):
		return "Delayed Mail (still being retried)"
	}
	return "Successful Mail Delivery Report"
}

// humanText is part 1.
func (r *Report) humanText(tail string) string {
	var b strings.Builder
	b.WriteString("This is the mail system at host " + r.ReportingMTA + ".\r\n\r\n")
	switch {
	case r.DoubleBounce:
		b.WriteString("A delivery status notification could not be delivered to the sender\r\n" +
			"of the original message. It is returned to the postmaster.\r\n")
	case r.has(Failed):
		b.WriteString("Your message could not be delivered to one or more recipients.\r\n" +
			"This is a permanent error; the message will not be retried.\r\n")
	case r.has(Delayed):
		b.WriteString("Your message could not be delivered yet to one or more recipients.\r\n" +
			"The mail system will keep trying; you do not need to send it again.\r\n")
	default:
		b.WriteString("Your message was delivered to the recipients below.\r\n")
	}
	for _, rc := range r.Recipients {
		b.WriteString("\r\n<" + rc.Address + ">: " + string(rc.Action))
		var why string
		switch {
		case rc.Diagnostic != "" && rc.RemoteMTA != "":
			why = oneLine(rc.RemoteMTA, 255, true) + " said: " + oneLine(rc.Diagnostic, maxDiagnostic, true)
		case rc.Diagnostic != "":
			why = oneLine(rc.Diagnostic, maxDiagnostic, true)
		case rc.Reason != "":
			why = oneLine(rc.Reason, maxDiagnostic, true)
		}
		if why != "" {
			b.WriteString("\r\n    " + wrap(why, "\r\n    "))
		}
		if rc.Action == Delayed && !rc.WillRetryUntil.IsZero() {
			b.WriteString("\r\n    Retrying until " + rc.WillRetryUntil.Format(time.RFC1123Z) + ".")
		}
		b.WriteString("\r\n")
	}
	b.WriteString("\r\n" + tail + "\r\n")
	return b.String()
}

// statusFields is part 2 (RFC 3464 §2.2 and §2.3; RFC 6533 §6.2 for utf-8 addresses).
func (r *Report) statusFields(utf8Mode bool) string {
	var b strings.Builder
	field := func(name, value string) {
		b.WriteString(fold(name+": "+value) + "\r\n")
	}
	field("Reporting-MTA", "dns; "+r.ReportingMTA)
	if r.EnvelopeID != "" {
		field("Original-Envelope-Id", oneLine(r.EnvelopeID, 100, utf8Mode))
	}
	if !r.ArrivalDate.IsZero() {
		field("Arrival-Date", r.ArrivalDate.Format(time.RFC1123Z))
	}
	addrType := "rfc822"
	if utf8Mode {
		addrType = "utf-8"
	}
	for _, rc := range r.Recipients {
		b.WriteString("\r\n")
		if rc.Original != "" {
			t := rc.OriginalType
			if t == "" || (!isASCII(rc.Original) && strings.EqualFold(t, "rfc822")) {
				t = addrType
			}
			field("Original-Recipient", t+"; "+rc.Original)
		}
		field("Final-Recipient", addrType+"; "+rc.Address)
		field("Action", string(rc.Action))
		field("Status", statusCode(rc))
		if rc.RemoteMTA != "" {
			field("Remote-MTA", "dns; "+oneLine(rc.RemoteMTA, 255, utf8Mode))
		}
		switch {
		case rc.Diagnostic != "" && isSMTPReply(rc.Diagnostic):
			field("Diagnostic-Code", "smtp; "+oneLine(rc.Diagnostic, maxDiagnostic, utf8Mode))
		case rc.Diagnostic != "":
			field("Diagnostic-Code", "X-Petrel; "+oneLine(rc.Diagnostic, maxDiagnostic, utf8Mode))
		case rc.Reason != "":
			field("Diagnostic-Code", "X-Petrel; "+oneLine(rc.Reason, maxDiagnostic, utf8Mode))
		}
		if !rc.LastAttempt.IsZero() {
			field("Last-Attempt-Date", rc.LastAttempt.Format(time.RFC1123Z))
		}
		if rc.Action == Delayed && !rc.WillRetryUntil.IsZero() {
			field("Will-Retry-Until", rc.WillRetryUntil.Format(time.RFC1123Z))
		}
	}
	return b.String()
}

// statusCode is the recipient's enhanced code if well-formed and of the right class for
// its action (RFC 3464 §2.3.4: 5 for failed, 4 for delayed, 2 for success), else the
// class's generic code.
func statusCode(rc Recipient) string {
	want := map[Action]byte{Failed: '5', Delayed: '4'}[rc.Action]
	if want == 0 {
		want = '2'
	}
	if statusRE.MatchString(rc.Status) && rc.Status[0] == want {
		return rc.Status
	}
	return string(want) + ".0.0"
}

func isSMTPReply(s string) bool {
	return len(s) >= 3 && s[0] >= '2' && s[0] <= '5' && s[1] >= '0' && s[1] <= '9' && s[2] >= '0' && s[2] <= '9' &&
		(len(s) == 3 || s[3] == ' ' || s[3] == '-')
}

// oneLine makes text from the far side (or our errors) safe for a DSN: multi-line replies
// joined, control characters and, unless allowUTF8, non-ASCII replaced, cut to max bytes
// on a character boundary.
func oneLine(s string, max int, allowUTF8 bool) string {
	s = strings.Map(func(r rune) rune {
		switch {
		case r == utf8.RuneError:
			return '?'
		case r < ' ' || r == 0x7f:
			return ' '
		case r > 0x7e && !allowUTF8:
			return '?'
		}
		return r
	}, s)
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > max {
		cut := max
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut]
	}
	return s
}

// fold breaks a field longer than 78 characters at spaces (RFC 5322 §2.2.3; RFC 3464 §2.1
// fields follow the header syntax).
func fold(line string) string {
	return wrap(line, "\r\n ")
}

// wrap breaks line at spaces so that its lines stay near 78 characters, starting each new
// line with cont. A word too long for any line (hostile input) is cut every 900 bytes, so
// no line exceeds RFC 5322's 998.
func wrap(line, cont string) string {
	if len(line) <= 78 {
		return line
	}
	var b strings.Builder
	width := 0
	for i, word := range strings.Split(line, " ") {
		for len(word) > 900 {
			cut := 900
			for cut > 900-utf8.UTFMax && !utf8.RuneStart(word[cut]) {
				cut-- // keep a UTF-8 character whole; invalid bytes are cut anywhere
			}
			if width > 0 {
				b.WriteString(cont)
			}
			b.WriteString(word[:cut])
			word = word[cut:]
			width = 900
		}
		if i > 0 || width > 0 {
			if width+1+len(word) > 78 && width > 0 {
				b.WriteString(cont)
				width = len(cont) - 2
			} else if i > 0 {
				b.WriteByte(' ')
				width++
			}
		}
		b.WriteString(word)
		width += len(word)
	}
	return b.String()
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// cte is the Content-Transfer-Encoding for content as it is: 7bit or 8bit, never an
// encoding (RFC 2046 §5.2.1: message/rfc822 may only be 7bit, 8bit or binary).
func cte(s string) string {
	if isASCII(s) {
		return "7bit"
	}
	return "8bit"
}

// readOriginal reads what is returned of the original: its header section for
// ReturnHeaders, else the whole message when it fits max bytes, else (truncated) its header
// section. A header section over max is cut at the last line break before it. The header
// section is also returned alone, for In-Reply-To.
func readOriginal(r io.Reader, ret Return, max int) (Return, []byte, bool, []byte, error) {
	if r == nil {
		return ret, nil, false, nil, nil
	}
	br := bufio.NewReader(io.LimitReader(r, int64(max)+1))
	var hdr []byte
	for {
		line, err := br.ReadSlice('\n')
		hdr = append(hdr, line...)
		if err == bufio.ErrBufferFull {
			continue
		}
		if err == io.EOF || len(bytes.TrimRight(line, "\r\n")) == 0 {
			break
		}
		if err != nil {
			return ret, nil, false, nil, err
		}
	}
	full := hdr
	truncated := false
	if ret == ReturnFull {
		rest, err := io.ReadAll(br)
		if err != nil {
			return ret, nil, false, nil, err
		}
		full = append(full, rest...)
		if len(full) <= max {
			return ret, full, false, hdr, nil
		}
		truncated = true
	}
	if len(hdr) > max {
		hdr = hdr[:max]
		if i := bytes.LastIndexByte(hdr, '\n'); i >= 0 {
			hdr = hdr[:i+1]
		}
	}
	return ReturnHeaders, hdr, truncated, hdr, nil
}

// hasLongLine reports whether b has a line, counted between CRLFs, longer than 998 octets.
func hasLongLine(b []byte) bool {
	for len(b) > 998 {
		i := bytes.Index(b, []byte("\r\n"))
		if i < 0 || i > 998 {
			return true
		}
		b = b[i+2:]
	}
	return false
}

// origMessageID returns the Message-ID of the original header section if it is one
// well-formed msg-id, for In-Reply-To and References.
func origMessageID(hdr []byte) string {
	tp := textproto.NewReader(bufio.NewReader(io.MultiReader(bytes.NewReader(hdr), strings.NewReader("\r\n"))))
	h, err := tp.ReadMIMEHeader()
	if err != nil && len(h) == 0 {
		return ""
	}
	id := strings.TrimSpace(h.Get("Message-Id"))
	if len(id) < 3 || len(id) > 250 || id[0] != '<' || id[len(id)-1] != '>' || strings.ContainsAny(id[1:len(id)-1], "<> \t\r\n") || !isASCII(id) {
		return ""
	}
	return id
}
