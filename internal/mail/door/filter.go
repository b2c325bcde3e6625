package door

import (
	"bytes"
	"context"
	"io"
	"net/netip"
	"strings"
)

// External filters (issue 13, part 3): a milter or rspamd, consulted by the session at each
// stage of a transaction. A filter's verdicts become Findings like any check's, so Decide
// weighs them with the rest, and its header changes are applied to the stored message
// before the one store commit.

// Filter is an external filter.
type Filter interface {
	Name() string // for the log: "milter:rspamd", "rspamd"
	// Begin opens the conversation for one transaction and passes the connection's facts
	// (a milter's connect and helo stages). ctx bounds the call.
	Begin(ctx context.Context, c ConnInfo) (FilterSession, error)
}

// ConnInfo is what a filter learns about the client.
type ConnInfo struct {
	IP       netip.Addr
	Port     uint16
	Hostname string // the client's forward-confirmed PTR name, or "" (then "[ip]" is sent)
	Helo     string
	User     string // the authenticated user, "" on the MX port
	QueueID  string // the transaction id of our log and Received field
	Ours     string // our host name
}

// FilterSession is one transaction's conversation. Every method is bounded by its ctx; the
// session calls them in order and Close at the end, whatever happened.
type FilterSession interface {
	Mail(ctx context.Context, from string) (Verdict, error)
	Rcpt(ctx context.Context, rcpt string) (Verdict, error)
	// Data passes the header section (with its empty line) and the body, and ends the
	// message: the verdict is the filter's last word.
	Data(ctx context.Context, header []byte, body io.Reader) (Verdict, error)
	Close() error
}

// UnknownCommander is an optional interface of a FilterSession: a filter that wants to see
// the SMTP commands the server does not know (a milter's SMFIC_UNKNOWN), within a
// transaction. The server answers such a command 500 whatever the filter says; what it
// finds otherwise (an error under its fail policy, a quarantine) counts for the message.
type UnknownCommander interface {
	Unknown(ctx context.Context, line string) (Verdict, error)
}

// FilterAction is what a filter asks for.
type FilterAction int

const (
	FilterContinue   FilterAction = iota // no objection; ask again at the next stage
	FilterAccept                         // accept: the filter wants to see no more of this transaction
	FilterReject                         // 5xx
	FilterTempFail                       // 4xx
	FilterDiscard                        // accept and drop
	FilterQuarantine                     // deliver into Junk
)

// Verdict is a filter's answer at one stage.
type Verdict struct {
	Action FilterAction
	Code   int    // the SMTP code the filter chose (milter SMFIR_REPLYCODE), 0 for ours
	Text   string // its reply text, "" for ours
	Score  float64
	Result string      // for the log: rspamd's action, the milter's reply
	Mods   []HeaderMod // header changes, at Data only
}

// Finding returns the verdict as a finding of check (the filter's name).
func (v Verdict) Finding(check string) (Finding, bool) {
	f := Finding{Check: check, Result: v.Result, Reply: v.Text}
	switch v.Action {
	case FilterReject:
		f.Reject = true
	case FilterTempFail:
		f.TempFail = true
	case FilterDiscard:
		f.Discard = true
	case FilterQuarantine:
		f.Junk = true
	default:
		return f, v.Result != ""
	}
	if f.Result == "" {
		f.Result = [...]string{"continue", "accept", "reject", "tempfail", "discard", "quarantine"}[v.Action]
	}
	return f, true
}

// HeaderOp is a header change.
type HeaderOp int

const (
	HeaderAdd    HeaderOp = iota // append the field at the end of the header section
	HeaderInsert                 // insert the field before the Index-th field (0: first)
	HeaderChange                 // replace the Index-th (1-based) field of Name; Value "" deletes it
)

// HeaderMod is one header change a filter asks for.
type HeaderMod struct {
	Op    HeaderOp
	Name  string
	Value string
	Index int
}

// maxModValue bounds a header value a filter may add (a milter packet can carry 64 MiB).
const maxModValue = 16 << 10

// ApplyHeaderMods returns the header section hdr (fields and the empty line that ends it,
// CRLF line ends) with mods applied in order. A mod whose name is not a valid field name,
// or whose value is too long, is skipped; values are refolded with CRLF so that the stored
// message keeps strict line ends.
func ApplyHeaderMods(hdr []byte, mods []HeaderMod) []byte {
	if len(mods) == 0 {
		return hdr
	}
	fields, end := splitFields(hdr)
	for _, m := range mods {
		if !validFieldName(m.Name) || len(m.Value) > maxModValue {
			continue
		}
		field := []byte(m.Name + ": " + cleanValue(m.Value) + "\r\n")
		switch m.Op {
		case HeaderAdd:
			fields = append(fields, field)
		case HeaderInsert:
			i := min(max(m.Index, 0), len(fields))
			fields = append(fields[:i], append([][]byte{field}, fields[i:]...)...)
		case HeaderChange:
			n, at := 0, -1
			for i, f := range fields {
				if name, _, ok := bytes.Cut(f, []byte(":")); ok && strings.EqualFold(strings.TrimRight(string(name), " \t"), m.Name) {
					n++
					if n == max(m.Index, 1) {
						at = i
						break
					}
				}
			}
			switch {
			case at >= 0 && m.Value == "":
				fields = append(fields[:at], fields[at+1:]...)
			case at >= 0:
				fields[at] = field
			case m.Value != "":
				// Sendmail's rule: changing a field that is not there adds it.
				fields = append(fields, field)
			}
		}
	}
	return append(bytes.Join(fields, nil), end...)
}

// StripSpamFields returns the header section hdr without the fields named X-Spam or
// X-Spam-*. Those are the verdicts spam filters write (ours, SpamAssassin's, rspamd's) and
// that mail clients and Sieve rules believe, so a sender's own "X-Spam-Flag: NO" or
// "X-Spam-Status: No" must not reach the mailbox: the MX port removes them from every
// message before the filters and the classifier add theirs.
func StripSpamFields(hdr []byte) []byte {
	if !bytes.Contains(bytes.ToLower(hdr), []byte("x-spam")) {
		return hdr
	}
	fields, end := splitFields(hdr)
	out := make([]byte, 0, len(hdr))
	for _, f := range fields {
		name, _, _ := bytes.Cut(f, []byte(":"))
		name = bytes.ToLower(bytes.TrimRight(name, " \t"))
		if string(name) == "x-spam" || bytes.HasPrefix(name, []byte("x-spam-")) {
			continue
		}
		out = append(out, f...)
	}
	return append(out, end...)
}

// splitFields cuts a header section into its fields (each with its continuation lines and
// final CRLF) and what follows them (the empty line).
func splitFields(hdr []byte) (fields [][]byte, end []byte) {
	for len(hdr) > 0 {
		if bytes.HasPrefix(hdr, []byte("\r\n")) {
			return fields, hdr
		}
		n := 0
		for {
			i := bytes.Index(hdr[n:], []byte("\r\n"))
			if i < 0 {
				n = len(hdr)
				break
			}
			n += i + 2
			if n >= len(hdr) || hdr[n] != ' ' && hdr[n] != '\t' {
				break
			}
		}
		if len(fields) > 0 && (hdr[0] == ' ' || hdr[0] == '\t') {
			fields[len(fields)-1] = append(fields[len(fields)-1], hdr[:n]...)
		} else {
			fields = append(fields, hdr[:n:n])
		}
		hdr = hdr[n:]
	}
	return fields, nil
}

// validFieldName: printable ASCII without colon (RFC 5322 §3.6.8).
func validFieldName(name string) bool {
	if name == "" || len(name) > 128 {
		return false
	}
	for i := 0; i < len(name); i++ {
		if name[i] <= ' ' || name[i] >= 0x7f || name[i] == ':' {
			return false
		}
	}
	return true
}

// cleanValue makes a filter's value one header field body with CRLF folding: any line end
// becomes CRLF followed by a tab unless the next line starts with white space, other
// control characters become spaces.
func cleanValue(v string) string {
	v = strings.TrimLeft(v, " \t")
	var b strings.Builder
	lines := strings.FieldsFunc(strings.ReplaceAll(v, "\r\n", "\n"), func(r rune) bool { return r == '\n' || r == '\r' })
	for i, l := range lines {
		if strings.TrimSpace(l) == "" {
			continue
		}
		if i > 0 && b.Len() > 0 {
			b.WriteString("\r\n")
			if l[0] != ' ' && l[0] != '\t' {
				b.WriteByte('\t')
			}
		}
		b.WriteString(strings.Map(func(r rune) rune {
			if r < ' ' && r != '\t' || r == 0x7f {
				return ' '
			}
			return r
		}, l))
	}
	return b.String()
}
