package deliver

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"petrel/internal/mail/sieve"
	"petrel/internal/outbound/dsn"
	"petrel/internal/store"
)

// Sieve at delivery (issue 13): each local account a message reaches through INBOX runs its
// active script, which decides that account's mailboxes and flags, discards or rejects
// the message, redirects it, or answers it (vacation). Everything a script decides for all
// recipients goes into the ONE store commit of the delivery: the mailboxes with their
// flags (Delivery.TargetFlags) and the outgoing messages (Delivery.More). Three small
// writes come before it, each its own commit: creating a mailbox for fileinto :create, the
// vacation log (test-and-set, so concurrent deliveries answer once), and the sending
// charge of redirects. A delivery that then fails has answered nobody yet; the client's
// retry finds the log entry and does not answer again (a lost reply rather than two).
//
// Rules:
//   - A script that fails (a limit, a runtime error) or cannot be read keeps the message in
//     INBOX (RFC 5228 §2.10.6) and logs why.
//   - reject: a message for that account alone is refused at SMTP time (*RejectError: the
//     session answers 550 5.7.1, RFC 5429 §2.1); with other recipients, that account's copy
//     is dropped and a DSN goes to the sender (none to the null sender).
//   - redirect keeps the original envelope sender (RFC 5228 §4.2), except that verified
//     mail from outside leaves from an SRS address of the account's domain with an ARC set
//     (forward.go, arc.go) when forwarding is on, and is charged to the
//     account's sending limits; over them, the redirects are dropped and the message is
//     kept. A copy carries "Delivered-To: <account>" and a message that already carries the
//     account's Delivered-To is not redirected again, which ends redirect loops between
//     accounts.
//   - vacation: only when sieve.VacationCheck allows (no lists, bulk, auto-submitted mail,
//     null or own sender, mail not addressed to the account) and the vacation log says none
//     went to that sender within :days; sent from the null reverse-path.

// SieveStore is what running scripts needs of the store.
type SieveStore interface {
	ActiveSieveScript(ctx context.Context, accountID int64) (store.SieveScript, error)
	VacationReply(ctx context.Context, accountID int64, handle, sender string, now time.Time, period time.Duration) (bool, error)
	AccountByID(ctx context.Context, id int64) (store.Account, error)
	CreateMailbox(ctx context.Context, accountID int64, name string) (store.Mailbox, error)
	SendingOverride(ctx context.Context, accountID int64) (store.SendingLimits, error)
	ChargeSending(ctx context.Context, accountID int64, now time.Time, messages, recipients int, limits store.SendingLimits) (store.SendingUsage, error)
}

// SieveConfig turns Sieve on for a Deliverer.
type SieveConfig struct {
	Store    SieveStore
	Limits   sieve.Limits
	Sending  store.SendingLimits // the default sending limits, applied to redirects
	Hostname string              // the Reporting-MTA of a rejection's DSN
	Now      func() time.Time    // nil: time.Now
	// ActiveTTL is how long an account's active script is used before it is read again
	// (default one second; negative: read at every delivery).
	ActiveTTL time.Duration
}

// RejectError is the error of a delivery a Sieve script rejected; nothing was delivered.
type RejectError struct {
	Reason string // one line of printable ASCII, for the SMTP reply
}

func (e *RejectError) Error() string { return "deliver: rejected by sieve: " + e.Reason }

// SetSieve makes Deliver run each recipient's active script.
func (d *Deliverer) SetSieve(c *SieveConfig) {
	d.sieve = &sieveRunner{cfg: *c, cache: map[string]*sieve.Script{}, active: map[int64]activeEntry{}}
}

// sieveRunner keeps the parsed scripts: a script is parsed once per content, not per
// delivery; and each account's active script is looked up at most once per
// activeCacheTTL, so that a change made over ManageSieve or the CLI applies within that
// time (like a change of aliases at RCPT) and a busy inbox costs no store reads for it.
type sieveRunner struct {
	cfg    SieveConfig
	mu     sync.Mutex
	cache  map[string]*sieve.Script // by content
	active map[int64]activeEntry    // by account
}

// activeEntry is an account's active script as last read: none (script nil, no error),
// or the script with its name and the account.
type activeEntry struct {
	acct    store.Account
	name    string
	content string
	none    bool
	read    time.Time // when it was read from the store
}

const activeCacheTTL = time.Second

// activeScript returns the account's active script (none: ok false), through the cache.
func (s *sieveRunner) activeScript(ctx context.Context, accountID int64) (activeEntry, error) {
	now := time.Now()
	ttl := s.cfg.ActiveTTL
	if ttl == 0 {
		ttl = activeCacheTTL
	}
	s.mu.Lock()
	e, hit := s.active[accountID]
	s.mu.Unlock()
	if hit && now.Sub(e.read) < ttl {
		return e, nil
	}
	e = activeEntry{read: now}
	sc, err := s.cfg.Store.ActiveSieveScript(ctx, accountID)
	switch {
	case errors.Is(err, store.ErrNotFound):
		e.none = true
	case err != nil:
		return e, err
	default:
		if e.acct, err = s.cfg.Store.AccountByID(ctx, accountID); err != nil {
			return e, err
		}
		e.name, e.content = sc.Name, sc.Content
	}
	s.mu.Lock()
	if len(s.active) >= maxCachedScripts {
		s.active = map[int64]activeEntry{}
	}
	s.active[accountID] = e
	s.mu.Unlock()
	return e, nil
}

// maxCachedScripts bounds the parse cache; past it, the cache starts over.
const maxCachedScripts = 1024

func (s *sieveRunner) now() time.Time {
	if s.cfg.Now != nil {
		return s.cfg.Now()
	}
	return time.Now()
}

func (s *sieveRunner) script(content string) (*sieve.Script, error) {
	s.mu.Lock()
	sc := s.cache[content]
	s.mu.Unlock()
	if sc != nil {
		return sc, nil
	}
	sc, err := sieve.Parse(content, s.cfg.Limits)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	if len(s.cache) >= maxCachedScripts {
		s.cache = map[string]*sieve.Script{}
	}
	s.cache[content] = sc
	s.mu.Unlock()
	return sc, nil
}

// sieveOutcome is what the scripts of all recipients decided.
type sieveOutcome struct {
	targets []store.Target
	flags   [][]string // per target; nil entry: none
	more    []*store.Outbound
}

// applySieve runs the scripts of the accounts among targets and returns the targets with
// their flags and the messages to queue. A *RejectError means the message is refused
// whole.
func (d *Deliverer) applySieve(ctx context.Context, env Envelope, body Body, parsed store.ParsedMessage, targets []store.Target) (sieveOutcome, error) {
	out := sieveOutcome{}
	var msg *sieve.HeaderMessage
	accounts := 0
	seen := map[int64]bool{}
	for _, t := range targets {
		if !seen[t.AccountID] {
			seen[t.AccountID] = true
			accounts++
		}
	}
	done := map[int64]bool{}
	for _, t := range targets {
		if done[t.AccountID] {
			continue
		}
		if t.Mailbox != store.Inbox {
			// A rule elsewhere chose the mailbox: no script.
			out.targets = append(out.targets, t)
			out.flags = append(out.flags, nil)
			continue
		}
		acctTargets, flags, more, err := d.runAccount(ctx, env, body, parsed, t.AccountID, &msg, accounts == 1 && len(env.Remote) == 0)
		if err != nil {
			return sieveOutcome{}, err
		}
		done[t.AccountID] = true
		out.targets = append(out.targets, acctTargets...)
		out.flags = append(out.flags, flags...)
		out.more = append(out.more, more...)
	}
	return out, nil
}

// runAccount runs one account's script. alone: the message has no other recipient, so a
// rejection is the SMTP reply.
func (d *Deliverer) runAccount(ctx context.Context, env Envelope, body Body, parsed store.ParsedMessage,
	accountID int64, msg **sieve.HeaderMessage, alone bool) ([]store.Target, [][]string, []*store.Outbound, error) {
	s := d.sieve
	keep := []store.Target{{AccountID: accountID, Mailbox: store.Inbox}}
	keepFlags := [][]string{nil}
	active, err := s.activeScript(ctx, accountID)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("deliver: sieve script of account %d: %w", accountID, err)
	}
	if active.none {
		return keep, keepFlags, nil, nil
	}
	acct := active.acct
	script, err := s.script(active.content)
	if err != nil {
		d.log.Warn("sieve script does not parse; message kept", "account", acct.Address, "script", active.name, "err", err)
		return keep, keepFlags, nil, nil
	}
	if *msg == nil {
		*msg = newSieveMessage(body, parsed)
	}
	senv := sieve.Envelope{From: env.MailFrom, To: env.recipient(acct)}
	res, err := script.Run(senv, *msg, s.cfg.Limits)
	if err != nil {
		d.log.Warn("sieve script failed; message kept", "account", acct.Address, "script", active.name, "err", err)
		return keep, keepFlags, nil, nil
	}

	if res.Reject {
		reason := smtpText(res.Reason)
		d.log.Info("sieve: message rejected", "account", acct.Address, "reason", reason)
		if alone {
			return nil, nil, nil, &RejectError{Reason: reason}
		}
		bounce, err := d.rejectBounce(env, body, acct.Address, reason)
		if err != nil {
			d.log.Warn("sieve: cannot build the rejection's DSN", "account", acct.Address, "err", err)
		}
		return nil, nil, bounce, nil
	}

	var targets []store.Target
	var flags [][]string
	for _, dl := range res.Deliveries {
		if dl.Create && !strings.EqualFold(dl.Mailbox, store.Inbox) {
			if _, err := s.cfg.Store.CreateMailbox(ctx, accountID, dl.Mailbox); err != nil && !errors.Is(err, store.ErrExists) {
				// An invalid name falls back to INBOX like a missing mailbox does.
				d.log.Warn("sieve: fileinto :create failed", "account", acct.Address, "mailbox", dl.Mailbox, "err", err)
			}
		}
		targets = append(targets, store.Target{AccountID: accountID, Mailbox: dl.Mailbox})
		flags = append(flags, dl.Flags)
	}

	var more []*store.Outbound
	if len(res.Redirects) > 0 {
		out, err := d.redirects(ctx, env, body, acct, res.Redirects, *msg)
		if err != nil {
			return nil, nil, nil, err
		}
		if out == nil && len(targets) == 0 {
			// The redirect cannot go: the message must not vanish.
			targets, flags = keep, keepFlags
		}
		if out != nil {
			more = append(more, out)
		}
	}
	if res.Vacation != nil {
		reply, err := d.vacation(ctx, env, acct, res.Vacation, *msg)
		if err != nil {
			return nil, nil, nil, err
		}
		if reply != nil {
			more = append(more, reply)
		}
	}
	return targets, flags, more, nil
}

// redirects builds the copy for res.Redirects, charged to the account's sending limits;
// nil when it may not go (a loop, a limit).
func (d *Deliverer) redirects(ctx context.Context, env Envelope, body Body, acct store.Account, to []string, msg *sieve.HeaderMessage) (*store.Outbound, error) {
	s := d.sieve
	for _, v := range msg.Header("Delivered-To") {
		if strings.EqualFold(strings.Trim(strings.TrimSpace(v), "<>"), acct.Address) {
			d.log.Warn("sieve: redirect loop; message kept", "account", acct.Address)
			return nil, nil
		}
	}
	var rcpts []store.OutboundRecipient
	for _, a := range to {
		_, domain, _ := strings.Cut(a, "@")
		rcpts = append(rcpts, store.OutboundRecipient{Address: a, Domain: strings.ToLower(domain)})
	}
	override, err := s.cfg.Store.SendingOverride(ctx, acct.ID)
	if err != nil {
		return nil, fmt.Errorf("deliver: sending limits of %s: %w", acct.Address, err)
	}
	_, err = s.cfg.Store.ChargeSending(ctx, acct.ID, s.now(), 1, len(rcpts), override.Apply(s.cfg.Sending))
	if le := (*store.LimitError)(nil); errors.As(err, &le) {
		d.log.Warn("sieve: redirect over the sending limit; message kept", "account", acct.Address, "err", le)
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("deliver: charging redirect of %s: %w", acct.Address, err)
	}
	skip := returnPathLen(body)
	size := body.Size() - skip
	mark := "Delivered-To: " + acct.Address + "\r\n"
	from := env.MailFrom
	_, domain, _ := strings.Cut(acct.Address, "@")
	if env.Verified != nil && from != "" && d.forwards() {
		// Mail from outside leaves from an SRS address of the account's domain, as an
		// alias's forward does, so that SPF passes at the next hop and a bounce comes back
		// through Route (RFC 5228 §4.2 lets the implementation choose the envelope sender).
		from = d.fwd.cfg.SRS.Forward(from, domain)
	}
	out, outSize := d.sealed(ctx, env, domain, func() io.Reader {
		return io.MultiReader(strings.NewReader(mark), io.NewSectionReader(body, skip, size))
	}, int64(len(mark))+size)
	return &store.Outbound{
		MailFrom:   from,
		Recipients: rcpts,
		Body:       out,
		Size:       outSize,
	}, nil
}

// vacation decides whether a vacation reply goes out and builds it.
func (d *Deliverer) vacation(ctx context.Context, env Envelope, acct store.Account, v *sieve.Vacation, msg *sieve.HeaderMessage) (*store.Outbound, error) {
	s := d.sieve
	to := env.recipient(acct)
	own := append([]string{acct.Address, to}, v.Addresses...)
	if why := sieve.VacationCheck(sieve.Envelope{From: env.MailFrom, To: to}, msg, own); why != "" {
		d.log.Info("sieve: no vacation reply", "account", acct.Address, "reason", why)
		return nil, nil
	}
	now := s.now()
	due, err := s.cfg.Store.VacationReply(ctx, acct.ID, v.Handle, env.MailFrom, now, time.Duration(v.Days)*24*time.Hour)
	if err != nil {
		return nil, fmt.Errorf("deliver: vacation log of %s: %w", acct.Address, err)
	}
	if !due {
		return nil, nil
	}
	from := v.From
	if from == "" {
		from = acct.Address
	}
	reply := sieve.VacationReply(v, msg, from, env.MailFrom, now)
	_, domain, _ := strings.Cut(env.MailFrom, "@")
	return &store.Outbound{
		MailFrom:   "", // RFC 5230 §5.1
		Recipients: []store.OutboundRecipient{{Address: env.MailFrom, Domain: strings.ToLower(domain)}},
		Body:       strings.NewReader(reply),
		Size:       int64(len(reply)),
	}, nil
}

// rejectBounce is the DSN for a rejection that could not be the SMTP reply (RFC 5429
// §2.1.1); none to the null sender.
func (d *Deliverer) rejectBounce(env Envelope, body Body, rcpt, reason string) ([]*store.Outbound, error) {
	if env.MailFrom == "" {
		return nil, nil
	}
	host := d.sieve.cfg.Hostname
	if host == "" {
		host = "localhost"
	}
	var b bytes.Buffer
	skip := returnPathLen(body)
	err := dsn.Write(&b, &dsn.Report{
		ReportingMTA: host,
		To:           env.MailFrom,
		EnvelopeID:   env.EnvID,
		ArrivalDate:  env.ReceivedAt,
		Date:         d.sieve.now(),
		Recipients: []dsn.Recipient{{
			Address: rcpt, Action: dsn.Failed, Status: "5.7.1", Reason: "rejected by the recipient's filter: " + reason,
		}},
		Return: dsn.ReturnHeaders,
	}, io.NewSectionReader(body, skip, body.Size()-skip))
	if err != nil {
		return nil, err
	}
	_, domain, _ := strings.Cut(env.MailFrom, "@")
	return []*store.Outbound{{
		MailFrom:   "",
		Recipients: []store.OutboundRecipient{{Address: env.MailFrom, Domain: strings.ToLower(domain)}},
		Body:       bytes.NewReader(b.Bytes()),
		Size:       int64(b.Len()),
	}}, nil
}

// smtpText makes a rejection reason fit an SMTP reply line: printable ASCII, bounded.
func smtpText(s string) string {
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r > 0x7e {
			return ' '
		}
		return r
	}, s)
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 200 {
		s = s[:200]
	}
	if s == "" {
		s = "rejected"
	}
	return s
}

// maxSieveHeader and maxSieveBody bound what a script's tests see of a message.
const (
	maxSieveHeader = 256 << 10
	maxSieveBody   = 1 << 20
)

// newSieveMessage is the message as scripts see it: the header section read from the
// body, and the body from the parse delivery made anyway.
func newSieveMessage(body Body, parsed store.ParsedMessage) *sieve.HeaderMessage {
	// One read of the first bytes holds the header section of most mail; a longer one is
	// read again with room for it.
	limit := min(body.Size(), maxSieveHeader)
	buf := make([]byte, min(limit, 8<<10))
	var head []byte
	for {
		n, _ := body.ReadAt(buf, 0)
		buf = buf[:n]
		end := headerEnd(buf)
		if end >= 0 || int64(len(buf)) >= limit || n < cap(buf) {
			if end < 0 {
				end = len(buf)
			}
			head = buf[:end]
			break
		}
		buf = make([]byte, min(limit, 4*int64(len(buf))))
	}
	m := sieve.NewHeaderMessage(head, body.Size())
	headLen := int64(len(head))
	m.BodyFunc = func(transform string, types []string) string {
		if transform == sieve.BodyRaw {
			n := min(body.Size()-headLen, maxSieveBody)
			buf := make([]byte, max(n, 0))
			k, _ := body.ReadAt(buf, headLen)
			return string(buf[:k])
		}
		// :text and :content: the decoded text parts (RFC 5173 §5.2; a :content list that
		// names non-text types finds nothing here).
		if transform == sieve.BodyContent && !wantsText(types) {
			return ""
		}
		if parsed.Text == nil {
			return ""
		}
		t := parsed.Text.Body
		if len(t) > maxSieveBody {
			t = t[:maxSieveBody]
		}
		return t
	}
	return m
}

// headerEnd is the length of the header section at the start of b, its empty line
// included, or -1 when b holds no empty line.
func headerEnd(b []byte) int {
	if len(b) > 0 && b[0] == '\n' {
		return 1
	}
	if bytes.HasPrefix(b, []byte("\r\n")) {
		return 2
	}
	for i := 0; ; {
		j := bytes.IndexByte(b[i:], '\n')
		if j < 0 {
			return -1
		}
		i += j + 1
		switch {
		case bytes.HasPrefix(b[i:], []byte("\r\n")):
			return i + 2
		case bytes.HasPrefix(b[i:], []byte("\n")):
			return i + 1
		}
	}
}

func wantsText(types []string) bool {
	for _, t := range types {
		t = strings.ToLower(t)
		if t == "" || t == "text" || strings.HasPrefix(t, "text/") {
			return true
		}
	}
	return false
}
