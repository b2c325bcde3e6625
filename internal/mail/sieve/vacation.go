package sieve

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"mime"
	"net/mail"
	"strings"
	"time"
)

// VacationCheck says whether a vacation reply may go out at all (RFC 5230 §4.5, §4.6),
// before the once-per-period question. own are the recipient's addresses (its account
// address, the envelope recipient, and the vacation's :addresses). The reason is for the
// log; "" means the reply may go.
func VacationCheck(env Envelope, msg Message, own []string) string {
	from := strings.ToLower(env.From)
	if from == "" {
		return "null sender"
	}
	local, _, _ := strings.Cut(from, "@")
	// §4.6: mailing lists and system addresses answer automatically or not at all.
	switch {
	case strings.HasPrefix(local, "owner-"), strings.HasSuffix(local, "-request"),
		local == "mailer-daemon", local == "listserv", local == "majordomo":
		return "sender is a system or list address"
	}
	for _, o := range own {
		if strings.EqualFold(o, from) {
			return "sender is the recipient"
		}
	}
	for _, v := range msg.Header("Auto-Submitted") {
		if !strings.EqualFold(strings.TrimSpace(strings.SplitN(v, ";", 2)[0]), "no") {
			return "message is auto-submitted" // RFC 3834 §2
		}
	}
	for _, v := range msg.Header("Precedence") {
		switch strings.ToLower(strings.TrimSpace(v)) {
		case "bulk", "list", "junk":
			return "message is bulk or list mail"
		}
	}
	for _, h := range []string{"List-Id", "List-Help", "List-Subscribe", "List-Unsubscribe", "List-Post", "List-Owner", "List-Archive"} {
		if len(msg.Header(h)) > 0 {
			return "message comes from a list"
		}
	}
	// §4.5: only mail addressed to the user directly gets a reply (not Bcc to a list).
	for _, h := range []string{"To", "Cc", "Bcc", "Resent-To", "Resent-Cc", "Resent-Bcc"} {
		for _, v := range msg.Header(h) {
			for _, a := range parseAddresses(v) {
				for _, o := range own {
					if strings.EqualFold(a, o) {
						return ""
					}
				}
			}
		}
	}
	return "recipient not in To, Cc or Bcc"
}

// VacationReply builds the reply message (RFC 5230 §5): from is the address it speaks
// for (the :from, else the recipient), to the sender; it is sent with the null
// reverse-path (§5.1 "SHOULD"). The result has CRLF line endings.
func VacationReply(v *Vacation, msg Message, from, to string, now time.Time) string {
	subject := v.Subject
	if subject == "" {
		orig := ""
		if s := msg.Header("Subject"); len(s) > 0 {
			orig = decodeHeader(s[0])
		}
		subject = "Auto: " + orig // §5.2
	}
	var b strings.Builder
	header := func(name, value string) { b.WriteString(name + ": " + value + "\r\n") }
	header("From", headerSafe(from))
	header("To", "<"+headerSafe(to)+">")
	header("Subject", mime.QEncoding.Encode("utf-8", headerSafe(subject)))
	header("Date", now.Format(time.RFC1123Z))
	var id [12]byte
	rand.Read(id[:])
	domain := "localhost"
	if a, err := mail.ParseAddress(from); err == nil {
		if i := strings.LastIndexByte(a.Address, '@'); i >= 0 {
			domain = a.Address[i+1:]
		}
	}
	header("Message-ID", "<"+hex.EncodeToString(id[:])+"@"+domain+">")
	if ids := msg.Header("Message-ID"); len(ids) > 0 {
		orig := headerSafe(strings.TrimSpace(ids[0]))
		header("In-Reply-To", orig) // §5.7, §5.8
		refs := ""
		if r := msg.Header("References"); len(r) > 0 {
			refs = headerSafe(strings.TrimSpace(r[0])) + " "
		}
		header("References", refs+orig)
	}
	header("Auto-Submitted", "auto-replied (vacation)") // §5 and RFC 3834 §5
	header("MIME-Version", "1.0")
	if v.Mime {
		// §4.4: the reason is a MIME entity with its own header.
		b.WriteString(crlf(v.Reason))
		return b.String()
	}
	header("Content-Type", "text/plain; charset=utf-8")
	header("Content-Transfer-Encoding", "8bit")
	b.WriteString("\r\n")
	body := crlf(v.Reason)
	if !strings.HasSuffix(body, "\r\n") {
		body += "\r\n"
	}
	b.WriteString(body)
	return b.String()
}

// headerSafe keeps a value from a script or a message on one header line.
func headerSafe(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '\r' || r == '\n' {
			return ' '
		}
		return r
	}, s)
}

func crlf(s string) string {
	s = strings.ReplaceAll(s, "\r\n", "\n")
	return strings.ReplaceAll(s, "\n", "\r\n")
}

// Describe names a result for the log.
func (r Result) String() string {
	var parts []string
	for _, d := range r.Deliveries {
		parts = append(parts, fmt.Sprintf("fileinto %q %v", d.Mailbox, d.Flags))
	}
	for _, a := range r.Redirects {
		parts = append(parts, "redirect "+a)
	}
	if r.Reject {
		parts = append(parts, "reject")
	}
	if r.Vacation != nil {
		parts = append(parts, "vacation")
	}
	if len(parts) == 0 {
		return "discard"
	}
	return strings.Join(parts, ", ")
}
