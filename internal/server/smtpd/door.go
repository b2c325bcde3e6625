package smtpd

import (
	"context"
	"io"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-smtp"

	"petrel/internal/mail/deliver"
	"petrel/internal/mail/door"
	"petrel/internal/mail/msgauth"
)

// The door of the MX port (issue 13, parts 2 and 3): connection checks, greylisting and
// external filters, each stage at the SMTP command where its answer can still refuse:
//
//   - MAIL: the connection checks (DNS lists, HELO, reverse DNS) run once per session, and
//     a finding that rejects refuses the transaction; the filters open their conversation
//     (connect, helo) and see the sender.
//   - RCPT: greylisting of the triplet, unless an allow list (DNSWL) vouched for the client
//     or it authenticated; then the filters see the recipient. A refusal here refuses that
//     recipient only.
//   - After DATA, before the commit: the filters see the header and body; Decide combines
//     every finding of the session and transaction with SPF and DMARC into one action,
//     logged with its reasons on the transaction's log line. Header changes of the filters
//     are applied to the stored message.
//
// A filter's every call is bounded by its Timeout; an error or a timeout applies its
// policy: fail-open forgets the filter for the rest of the transaction (logged), fail-closed
// answers 451. Either way the session answers in time.

// Door configures the door of a RoleMX listener, or the filters of a submission listener:
// there only Filters, Scores and SpamAccept count (the client has logged in: no connection
// checks, no greylisting).
type Door struct {
	Checks   *door.Checks     // connection checks; nil: none
	Greylist *door.Greylister // nil: no greylisting
	Scores   door.Scores      // Decide's thresholds
	Filters  []FilterHook     // external filters, consulted in order
	// SpamAccept, on a submission listener: a message the filters call spam (Decide's
	// Junk) is sent anyway and logged; otherwise it is refused with 550 5.7.1. Outgoing
	// mail has no Junk mailbox to go to: the sender's own account is what sends it.
	SpamAccept bool
}

// FilterHook is an external filter with its policy.
type FilterHook struct {
	Filter   door.Filter
	Timeout  time.Duration // each call; 0 means DefaultFilterTimeout
	FailOpen bool          // a filter that fails or is late is skipped (true) or the message is deferred (false)
}

// DefaultFilterTimeout bounds each call to a filter.
const DefaultFilterTimeout = 30 * time.Second

// activeFilter is a filter's conversation in one transaction. mu guards sess: the
// connection's end (Logout) may close it while a BDAT Data still runs.
type activeFilter struct {
	hook FilterHook
	mu   sync.Mutex
	sess door.FilterSession // nil once done
}

// session returns the conversation, nil once it is over.
func (af *activeFilter) session() door.FilterSession {
	af.mu.Lock()
	defer af.mu.Unlock()
	return af.sess
}

// connFindings runs the connection checks once per session.
func (s *session) connFindings(ctx context.Context) []door.Finding {
	s.mu.Lock()
	done, fs := s.doorDone, s.doorConn
	s.mu.Unlock()
	if done {
		return fs
	}
	fs = s.srv.cfg.Door.Checks.Connection(ctx, s.remote, s.helo)
	s.mu.Lock()
	s.doorDone, s.doorConn = true, fs
	s.mu.Unlock()
	return fs
}

// doorMail is the door at MAIL: nil lets the transaction start.
func (s *session) doorMail(tx *transaction, authenticated bool) *smtp.SMTPError {
	d := s.srv.cfg.Door
	ctx := s.srv.ctx
	if !authenticated && d.Checks != nil {
		if fs := s.connFindings(ctx); len(fs) > 0 {
			if dec := door.Decide(d.Scores, fs); dec.Action == door.Reject {
				s.decided(tx, dec)
				return reply(550, 5, 7, 1, "message refused by policy") // the reasons go to the log only
			}
		}
	}
	ci := door.ConnInfo{IP: s.remote, Port: s.remotePort, Helo: s.helo, QueueID: tx.id, Ours: s.srv.cfg.Hostname}
	s.mu.Lock()
	if s.account != nil {
		ci.User = s.account.Address // rspamd applies its outbound rules to an authenticated user
	}
	s.mu.Unlock()
	for _, h := range d.Filters {
		af := &activeFilter{hook: h}
		tx.filters = append(tx.filters, af)
		v, err := af.call(ctx, func(ctx context.Context) (door.Verdict, error) {
			sess, err := h.Filter.Begin(ctx, ci)
			if err != nil {
				return door.Verdict{}, err
			}
			af.mu.Lock()
			af.sess = sess
			af.mu.Unlock()
			return sess.Mail(ctx, tx.from)
		})
		if refuse := s.filterVerdict(tx, af, v, err, "mail"); refuse != nil {
			return refuse
		}
	}
	return nil
}

// doorRcpt is the door at RCPT, for a recipient that resolved.
func (s *session) doorRcpt(tx *transaction, rcpt string, authenticated bool) *smtp.SMTPError {
	d := s.srv.cfg.Door
	ctx := s.srv.ctx
	if g := d.Greylist; g != nil && !authenticated && !s.vouched() {
		res, err := g.Check(ctx, s.remote, tx.from, rcpt)
		if err != nil {
			s.log.Warn("greylisting failed, passing the message", "msgid", tx.id, "err", err)
		}
		s.mu.Lock()
		tx.greylist = res.String()
		s.mu.Unlock()
		if res == door.GreyWait {
			return reply(451, 4, 7, 1, "greylisted, please try again later") // RFC 6647 §2.1
		}
	}
	for _, af := range tx.filters {
		sess := af.session()
		if sess == nil {
			continue
		}
		v, err := af.call(ctx, func(ctx context.Context) (door.Verdict, error) { return sess.Rcpt(ctx, rcpt) })
		if refuse := s.filterVerdict(tx, af, v, err, "rcpt"); refuse != nil {
			return refuse
		}
	}
	return nil
}

// doorUnknown passes a command the server did not know to the filters of the open
// transaction that want it (door.UnknownCommander; a milter's SMFIC_UNKNOWN). go-smtp
// answers it 500 whatever they say.
func (s *session) doorUnknown(tx *transaction, line string) {
	for _, af := range tx.filters {
		uc, ok := af.session().(door.UnknownCommander)
		if !ok {
			continue
		}
		v, err := af.call(s.srv.ctx, func(ctx context.Context) (door.Verdict, error) { return uc.Unknown(ctx, line) })
		s.filterVerdict(tx, af, v, err, "unknown")
	}
}

// vouched reports whether an allow list listed the client.
func (s *session) vouched() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, f := range s.doorConn {
		if f.Pass {
			return true
		}
	}
	return false
}

// doorData is the door after DATA: the filters see the message, then one decision. It
// returns the action, the filters' header changes, or the refusal.
func (s *session) doorData(ctx context.Context, tx *transaction, spool *deliver.Spool, traceLen int64) (door.Action, []door.HeaderMod, *smtp.SMTPError) {
	d := s.srv.cfg.Door
	var mods []door.HeaderMod
	if len(tx.filters) > 0 {
		hdr, err := headerSection(spool, traceLen, s.maxHeaderBytes())
		if err != nil {
			return 0, nil, reply(552, 5, 3, 4, "message header too large")
		}
		bodyOff := traceLen + int64(len(hdr))
		for _, af := range tx.filters {
			sess := af.session()
			if sess == nil {
				continue
			}
			body := io.NewSectionReader(spool, bodyOff, spool.Size()-bodyOff)
			v, err := af.call(ctx, func(ctx context.Context) (door.Verdict, error) { return sess.Data(ctx, hdr, body) })
			if err == nil {
				mods = append(mods, v.Mods...)
			}
			if refuse := s.filterVerdict(tx, af, v, err, "data"); refuse != nil {
				return 0, nil, refuse
			}
		}
	}
	s.mu.Lock()
	fs := append([]door.Finding(nil), s.doorConn...)
	s.mu.Unlock()
	fs = append(fs, tx.found...)
	if v := tx.verdict; v != nil && d.Checks != nil {
		fs = append(fs, d.Checks.Weights.AuthFindings(string(v.SPF.Result), string(v.DMARC.Result))...)
	}
	dec := door.Decide(d.Scores, fs)
	s.decided(tx, dec)
	switch dec.Action {
	case door.Reject:
		return 0, nil, filterReply(550, 5, 7, 1, dec.Reply, "message refused as spam")
	case door.TempFail:
		return 0, nil, filterReply(451, 4, 7, 1, dec.Reply, "message deferred, try again later")
	case door.Junk:
		if s.srv.cfg.Role != RoleMX {
			// Outgoing spam: refused (the account is probably not in its owner's hands), or
			// sent as the operator chose; either way the log line names the account.
			s.mu.Lock()
			user := ""
			if s.account != nil {
				user = s.account.Address
			}
			s.mu.Unlock()
			s.srv.log.Warn("submitted message called spam by the filters", "msgid", tx.id, "account", user,
				"reasons", door.Reasons(fs), "sent", d.SpamAccept)
			if !d.SpamAccept {
				return 0, nil, reply(550, 5, 7, 1, "message refused as spam")
			}
			return door.Accept, mods, nil
		}
	}
	return dec.Action, mods, nil
}

// call runs one stage of a filter within its timeout.
func (af *activeFilter) call(ctx context.Context, stage func(context.Context) (door.Verdict, error)) (door.Verdict, error) {
	timeout := af.hook.Timeout
	if timeout <= 0 {
		timeout = DefaultFilterTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	v, err := stage(ctx)
	if err == nil && ctx.Err() != nil {
		err = ctx.Err()
	}
	return v, err
}

// filterVerdict records a filter's answer at a stage and returns the reply that refuses
// the command, or nil.
func (s *session) filterVerdict(tx *transaction, af *activeFilter, v door.Verdict, err error, stage string) *smtp.SMTPError {
	name := af.hook.Filter.Name()
	if err != nil {
		s.log.Warn("filter failed", "msgid", tx.id, "filter", name, "stage", stage, "err", err, "fail_open", af.hook.FailOpen)
		af.close()
		if af.hook.FailOpen {
			tx.found = append(tx.found, door.Finding{Check: name, Result: "error", Error: true})
			return nil
		}
		tx.found = append(tx.found, door.Finding{Check: name, Result: "error", TempFail: true})
		s.decided(tx, door.Decide(s.srv.cfg.Door.Scores, tx.found))
		return reply(451, 4, 3, 0, "temporary failure, try again later")
	}
	f, ok := v.Finding(name)
	if v.Action == door.FilterAccept {
		af.close() // the filter wants no more of this transaction
	}
	if !ok {
		return nil
	}
	if stage == "unknown" && (f.Reject || f.TempFail) {
		return nil // the command is refused anyway (500); the message is not
	}
	if stage == "rcpt" && (f.Reject || f.TempFail) {
		// A refused recipient is that recipient's business; the message goes on.
		if f.Reject {
			return filterReply(550, 5, 7, 1, f.Reply, "recipient refused by policy")
		}
		return filterReply(451, 4, 7, 1, f.Reply, "recipient deferred, try again later")
	}
	tx.found = append(tx.found, f)
	if stage == "mail" && (f.Reject || f.TempFail) {
		s.decided(tx, door.Decide(s.srv.cfg.Door.Scores, tx.found))
		if f.Reject {
			return filterReply(550, 5, 7, 1, f.Reply, "message refused by policy")
		}
		return filterReply(451, 4, 7, 1, f.Reply, "message deferred, try again later")
	}
	return nil
}

// decided records the decision for the transaction's log line.
func (s *session) decided(tx *transaction, dec door.Decision) {
	s.mu.Lock()
	tx.decision = &dec
	s.mu.Unlock()
}

func (af *activeFilter) close() {
	af.mu.Lock()
	sess := af.sess
	af.sess = nil
	af.mu.Unlock()
	if sess != nil {
		sess.Close()
	}
}

// closeFilters ends the filters' conversations of tx.
func (tx *transaction) closeFilters() {
	for _, af := range tx.filters {
		af.close()
	}
}

// filterReply builds a refusal with a filter's text when it gave one: a leading enhanced
// status code of the right class in it is used (RFC 3463), the rest is the text.
func filterReply(code, class, subject, detail int, text, fallback string) *smtp.SMTPError {
	text = strings.Map(func(r rune) rune {
		if r < ' ' || r == 0x7f {
			return ' '
		}
		return r
	}, strings.TrimSpace(text))
	if len(text) > 200 {
		text = text[:200]
	}
	if first, rest, ok := strings.Cut(text, " "); ok {
		if p := strings.Split(first, "."); len(p) == 3 && p[0] == strconv.Itoa(class) {
			s, err1 := strconv.Atoi(p[1])
			dd, err2 := strconv.Atoi(p[2])
			if err1 == nil && err2 == nil && s < 1000 && dd < 1000 && s >= 0 && dd >= 0 {
				subject, detail, text = s, dd, strings.TrimSpace(rest)
			}
		}
	}
	if text == "" {
		text = fallback
	}
	return reply(code, class, subject, detail, text)
}

// maxHeaderBytes bounds the header section read for filters and for Authentication-Results.
func (s *session) maxHeaderBytes() int {
	if v := s.srv.cfg.Verify; v != nil && v.MaxHeaderBytes > 0 {
		return v.MaxHeaderBytes
	}
	return msgauth.DefaultMaxHeaderBytes
}
