// Package deliver turns an accepted envelope and body into one store commit.
//
// Two steps, used by every protocol that accepts mail:
//   - Resolve maps one recipient address to local mailboxes, while the SMTP session is still
//     at RCPT, so unknown recipients are refused before any data is sent.
//   - Deliver parses the body once (the cached parse IMAP serves from), removes duplicate
//     targets, and commits the message for all of them in ONE store transaction. It returns
//     only after the store committed durably: a nil error is what allows "250 OK".
//
// Resolution order for local@domain (first match wins):
//  1. the domain must be hosted, else ErrNotHosted;
//  2. an account with that exact address;
//  3. an alias with that address: each target is resolved in turn by these same rules, so an
//     alias may point to another alias (up to maxAliasDepth levels; loops are refused);
//  4. sub-addressing: "user+tag" is looked up as "user" (rules 2 and 3);
//  5. the domain's catch-all account;
//  6. otherwise ErrUnknownUser.
//
// A successful resolution is reused for resolveCacheTTL (one second), so a change to
// accounts, aliases or catch-alls reaches RCPT within that time; a failed one is not reused.
//
// Reaches asks the same question for the SMTP sender policy: does mail for an address reach
// an account by name (rules 2-4, without the catch-all)? So aliases, +tags, depth limits and
// loops are known in one place only.
//
// Alias targets at other domains are forwarded through the outbound queue when forwarding is
// on (SetForwarding; Route returns them; forward.go); otherwise, like unknown targets, they
// are skipped with a warning.
//
// Remote recipients (Envelope.Remote, accepted by submission) are queued in the same store
// commit as the local ones (store.Delivery.Outbound; outbound.go).
//
// Mail from outside (Envelope.Classify) is scored by the junk classifier of each account it
// reaches, and an account's INBOX targets become its Junk on a junk verdict (junk.go).
package deliver

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"petrel/internal/lib/address"
	"petrel/internal/mail/junk"
	"petrel/internal/mail/message"
	"petrel/internal/store"
)

var (
	// ErrNotHosted means the recipient's domain is not one of ours.
	ErrNotHosted = errors.New("deliver: domain not hosted")
	// ErrUnknownUser means the domain is ours but no account, alias or catch-all takes the
	// address.
	ErrUnknownUser = errors.New("deliver: no such user")
	// ErrAliasLoop means alias resolution went round in a circle or deeper than allowed.
	ErrAliasLoop = errors.New("deliver: alias loop")
)

// maxAliasDepth is how many aliases may be chained (an alias whose target is an alias ...).
const maxAliasDepth = 5

// Store is the part of the store delivery needs.
type Store interface {
	Domain(ctx context.Context, name string) (store.Domain, error)
	AccountByAddress(ctx context.Context, address string) (store.Account, error)
	Alias(ctx context.Context, address string) (store.Alias, error)
	Deliver(ctx context.Context, d *store.Delivery) (store.Delivered, error)
	Quota(ctx context.Context, accountID int64) (store.Quota, error)
}

// Envelope is what delivery needs of an SMTP transaction.
type Envelope struct {
	MailFrom   string         // reverse-path, "" for the null sender
	Targets    []store.Target // from Resolve, for all recipients; duplicates are fine
	ReceivedAt time.Time
	// Remote are recipients at other domains, queued for outbound delivery in the same
	// commit; Ret and EnvID are the transaction's RFC 3461 parameters.
	Remote     []store.OutboundRecipient
	Ret, EnvID string
	// Forward are the forwards of the recipients (Route), queued in the same commit.
	Forward []Forward
	// Verified is what inbound verification found (mail from the MX port): a forwarded
	// copy carries it in an ARC set (SetSealer). nil: not verified, no ARC set.
	Verified *Verified
	// Submitted: the message came from one of our users (an authenticated submission), so
	// its forwards may go out as it does, signed with its domain's key (forward.go).
	Submitted bool
	// Charge is the sender's sending-limit charge, made in the same commit
	// (store.SendingCharge); over a limit nothing is delivered and the error is the
	// *store.LimitError. nil: nothing to charge.
	Charge *store.SendingCharge
	// Classify runs the junk classifier (SetJunk) for the local targets: mail from
	// outside, the MX port. Submitted mail and our own notices are not classified.
	Classify bool
	// To maps an account to the recipient address (RCPT TO) through which the message
	// reached it, the first one when several did: Sieve's envelope "to" (RFC 5228 §5.4) is
	// that address, an alias or a +tag, not the account's own, and vacation counts it as
	// one of the account's addresses (RFC 5230 §4.5). An account missing here was reached
	// by its own address.
	To map[int64]string
	// Pulled names the message of a pull source this is (internal/pull): the store records
	// its unique-id in the same commit and refuses it a second time (store.Delivery.Pulled).
	Pulled *store.PulledMessage
}

// recipient is the envelope recipient through which the message reached acct (Envelope.To).
func (env *Envelope) recipient(acct store.Account) string {
	if to := env.To[acct.ID]; to != "" {
		return to
	}
	return acct.Address
}

// Body is a spooled message body that can be read more than once (once to parse, once to
// store). Spool implements it.
type Body interface {
	io.ReaderAt
	Size() int64
}

// Deliverer resolves recipients and commits messages to the store.
type Deliverer struct {
	st    Store
	log   *slog.Logger
	cache *resolveCache // recent successful resolutions
	quota *quotaCache   // recent quota reads with room left (CheckQuota)
	out   outbound      // what queueing remote recipients needs (outbound.go)
	sieve *sieveRunner  // nil: no Sieve scripts run (sieve.go)
	fwd   *forwarding   // nil: no forwarding (forward.go)
	seal  Sealer        // adds ARC sets to forwarded copies (arc.go); nil: none
	junk  *junk.Filter  // classifies Envelope.Classify mail (junk.go); nil: none
}

// New returns a Deliverer over st.
func New(st Store, log *slog.Logger) *Deliverer {
	return &Deliverer{st: st, log: log, cache: newResolveCache(resolveCacheTTL), quota: newQuotaCache(quotaCacheTTL)}
}

// Resolve maps one recipient to the local mailboxes it delivers to (see the package comment
// for the rules). The result has no duplicates and is never empty when err is nil: a
// recipient that only forwards elsewhere (Route) is ErrUnknownUser here.
func (d *Deliverer) Resolve(ctx context.Context, rcpt address.Address) ([]store.Target, error) {
	rt, err := d.Route(ctx, rcpt)
	if err != nil {
		return nil, err
	}
	if len(rt.Targets) == 0 {
		return nil, ErrUnknownUser
	}
	return rt.Targets, nil
}

// route resolves rcpt by the rules of the package comment, through the cache.
func (d *Deliverer) route(ctx context.Context, rcpt address.Address) (Route, error) {
	key := rcpt.Key()
	if rt, ok := d.cache.get(key); ok {
		return rt, nil
	}
	r := resolution{d: d, ctx: ctx, forDelivery: true, forward: d.forwards()}
	if err := r.resolve(rcpt, 0, nil); err != nil {
		return Route{}, err
	}
	rt := Route{Targets: r.targets, Forward: r.forwards}
	d.cache.put(key, rt)
	return rt, nil
}

// Reaches reports whether mail for a reaches acct by name: a is the account's address, an
// alias that delivers to it (directly or through other aliases), or a +tag of either. A
// catch-all does not count: an account that receives every unknown address of a domain does
// not own those addresses. This is the test of the SMTP sender policy "own".
//
// Unlike Resolve it is not cached: it runs once per transaction, and the common case (the
// account's own address) needs no lookup at all.
func (d *Deliverer) Reaches(ctx context.Context, a address.Address, acct store.Account) (bool, error) {
	if a.Key() == acct.Address || BaseKey(a) == acct.Address {
		return true, nil
	}
	r := resolution{d: d, ctx: ctx, forDelivery: false}
	err := r.resolve(a, 0, nil)
	switch {
	case errors.Is(err, ErrNotHosted), errors.Is(err, ErrUnknownUser), errors.Is(err, ErrAliasLoop):
		return false, nil
	case err != nil:
		return false, err
	}
	for _, t := range r.targets {
		if t.AccountID == acct.ID {
			return true, nil
		}
	}
	return false, nil
}

// resolution collects the targets of one Resolve or Reaches call.
type resolution struct {
	d       *Deliverer
	ctx     context.Context
	targets []store.Target
	// forDelivery: Resolve, which falls back to the domain's catch-all and warns about alias
	// targets that take no mail; Reaches does neither.
	forDelivery bool
	// forward: alias targets at other domains are forwards (forward.go), collected here.
	forward  bool
	forwards []Forward
}

// resolve adds the targets of a to r. path holds the alias keys being expanded above this
// one, to refuse loops.
func (r *resolution) resolve(a address.Address, depth int, path []string) error {
	// Most mail is for an existing account, and an account implies a hosted domain (the store
	// refuses an account without its domain and a domain delete while accounts remain), so
	// the common case costs one lookup instead of two.
	if acct, err := r.d.st.AccountByAddress(r.ctx, a.Key()); err == nil {
		r.add(store.Target{AccountID: acct.ID, Mailbox: store.Inbox})
		return nil
	} else if !errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("deliver: account %s: %w", a.Key(), err)
	}
	dom, err := r.d.st.Domain(r.ctx, a.Domain)
	if errors.Is(err, store.ErrNotFound) {
		return ErrNotHosted
	}
	if err != nil {
		return fmt.Errorf("deliver: domain %s: %w", a.Domain, err)
	}

	keys := []string{a.Key()}
	if base := BaseKey(a); base != keys[0] {
		keys = append(keys, base)
	}
	for _, key := range keys {
		found, err := r.resolveKey(key, depth, path)
		if found || err != nil {
			return err
		}
	}

	// The catch-all comes last; resolving it like any address lets it name an alias, and
	// the path catches a catch-all that names an unknown address of its own domain.
	if r.forDelivery && dom.CatchAll != "" && !contains(path, "*@"+dom.Name) {
		ca, err := address.Parse(dom.CatchAll)
		if err != nil {
			r.d.log.Warn("bad catch-all address", "domain", dom.Name, "catchall", dom.CatchAll)
			return ErrUnknownUser
		}
		if depth >= maxAliasDepth {
			return ErrAliasLoop
		}
		return r.resolve(ca, depth+1, append(path[:len(path):len(path)], "*@"+dom.Name))
	}
	return ErrUnknownUser
}

// resolveKey tries key as an account, then as an alias. found reports whether either exists.
func (r *resolution) resolveKey(key string, depth int, path []string) (found bool, err error) {
	acct, err := r.d.st.AccountByAddress(r.ctx, key)
	if err == nil {
		r.add(store.Target{AccountID: acct.ID, Mailbox: store.Inbox})
		return true, nil
	}
	if !errors.Is(err, store.ErrNotFound) {
		return false, fmt.Errorf("deliver: account %s: %w", key, err)
	}

	alias, err := r.d.st.Alias(r.ctx, key)
	if errors.Is(err, store.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("deliver: alias %s: %w", key, err)
	}
	if contains(path, key) || depth >= maxAliasDepth {
		return true, ErrAliasLoop
	}
	path = append(path[:len(path):len(path)], key)
	before, fwdBefore := len(r.targets), len(r.forwards)
	for _, t := range alias.Targets {
		ta, err := address.Parse(t)
		if err == nil {
			err = r.resolve(ta, depth+1, path)
		}
		switch {
		case err == nil:
		case r.forward && errors.Is(err, ErrNotHosted):
			r.forwards = append(r.forwards, Forward{Address: ta.String(), Alias: key})
		case errors.Is(err, ErrNotHosted), errors.Is(err, ErrUnknownUser), errors.Is(err, address.ErrSyntax):
			// A dangling or remote target must not make the other targets lose mail.
			if r.forDelivery {
				r.d.log.Warn("alias target not deliverable", "alias", key, "target", t, "err", err)
			}
		default:
			return true, err
		}
	}
	if len(r.targets) == before && len(r.forwards) == fwdBefore {
		return true, ErrUnknownUser
	}
	return true, nil
}

func (r *resolution) add(t store.Target) {
	for _, have := range r.targets {
		if have == t {
			return
		}
	}
	r.targets = append(r.targets, t)
}

// BaseKey is the lookup key without a sub-address tag: "User+tag@d" → "user@d"
// (sub-addressing, RFC 5233 §1). An address whose local part starts with '+' keeps it.
// The SMTP sender policy uses it too, so that both agree on what a +tag is.
func BaseKey(a address.Address) string {
	local := strings.ToLower(a.Local)
	if i := strings.IndexByte(local, '+'); i > 0 {
		local = local[:i]
	}
	return local + "@" + a.Domain
}

func contains(l []string, s string) bool {
	for _, x := range l {
		if x == s {
			return true
		}
	}
	return false
}

// dedupeFlagged removes repeated targets (the first one's flags win).
func dedupeFlagged(targets []store.Target, flags [][]string) ([]store.Target, [][]string) {
	var outT []store.Target
	var outF [][]string
	seen := make(map[store.Target]bool, len(targets))
	for i, t := range targets {
		if t.Mailbox == "" {
			t.Mailbox = store.Inbox
		}
		if !seen[t] {
			seen[t] = true
			outT = append(outT, t)
			outF = append(outF, flags[i])
		}
	}
	return outT, outF
}

// CheckQuota reports store.ErrOverQuota if a message of size bytes (0 when not known yet:
// then one byte) would take the account of any target over its quota (RFC 9208). SMTP asks
// at RCPT, so that a full mailbox is refused before the body is sent; the store checks again
// in the commit, which is what makes the rule hold under concurrent deliveries. A read that
// left room is reused for quotaCacheTTL (cache.go says why that is safe); a refusal is
// always read afresh.
func (d *Deliverer) CheckQuota(ctx context.Context, targets []store.Target, size int64) error {
	added := map[int64]int64{}
	for _, t := range targets {
		added[t.AccountID]++
	}
	for id, n := range added {
		if q, ok := d.quota.get(id); ok && !q.Over(n, n*max(size, 1)) {
			continue
		}
		q, err := d.st.Quota(ctx, id)
		if err != nil {
			return fmt.Errorf("deliver: quota of account %d: %w", id, err)
		}
		d.quota.put(id, q)
		if q.Over(n, n*max(size, 1)) {
			return fmt.Errorf("deliver: account %d: %w", id, store.ErrOverQuota)
		}
	}
	return nil
}

// Deliver parses body and commits it once for every target of env (duplicates removed).
// It returns only after the store committed durably; on error nothing was delivered. If an
// account of a target is over quota, nothing is delivered and the error is a
// *store.QuotaError naming the accounts (the store refuses the whole commit).
// A body that does not parse is still delivered (the parse is best effort). Nothing reads
// body after Deliver returns (the store reads a delivery's body during its Deliver), so the
// caller may reuse its memory then.
func (d *Deliverer) Deliver(ctx context.Context, env Envelope, body Body) (store.Delivered, error) {
	targets := make([]store.Target, 0, len(env.Targets))
	for _, t := range env.Targets {
		if t.Mailbox == "" {
			t.Mailbox = store.Inbox
		}
		targets = append(targets, t)
	}
	targets = dedupe(targets)
	if len(targets) == 0 && len(env.Remote) == 0 && len(env.Forward) == 0 {
		return store.Delivered{}, errors.New("deliver: no targets")
	}
	if len(env.Forward) > 0 && !d.forwards() {
		return store.Delivered{}, errors.New("deliver: forwards without forwarding")
	}

	// The parse is for local copies (the store's cached parse, the classifier, Sieve): a
	// message only queued for other servers (a submission to remote recipients) needs none.
	var parsed store.ParsedMessage
	if len(targets) > 0 {
		var err error
		if parsed, err = message.ParseAt(body, body.Size()); err != nil {
			// Only reading the spool can fail here, and then storing it would fail as well.
			return store.Delivered{}, fmt.Errorf("deliver: reading body: %w", err)
		}
	}
	receivedAt := env.ReceivedAt
	if receivedAt.IsZero() {
		receivedAt = time.Now()
	}
	// The junk classifier first, as a spam filter runs before the user's rules: it moves
	// INBOX targets to Junk, and a Sieve fileinto still decides where the message goes.
	// Sieve reads the message as it came (body, parsed); stored and storedParsed carry the
	// classifier's X-Spam fields.
	var stored io.Reader = io.NewSectionReader(body, 0, body.Size())
	size, storedParsed := body.Size(), parsed
	var fields []store.AccountFields // each account's own verdict (junk.go)
	if env.Classify && d.junk != nil && parsed.Text != nil && len(targets) > 0 {
		c := d.classify(ctx, targets, body, parsed) // junk.go
		targets, stored, size, storedParsed, fields = c.targets, c.body, c.size, c.parsed, c.fields
	}
	var targetFlags [][]string
	var more []*store.Outbound
	if d.sieve != nil && len(targets) > 0 {
		o, err := d.applySieve(ctx, env, body, parsed, targets)
		if err != nil {
			return store.Delivered{}, err
		}
		targets, targetFlags = dedupeFlagged(o.targets, o.flags)
		more = o.more
	}
	out, err := d.outboundFor(ctx, env, body)
	if err != nil {
		return store.Delivered{}, err
	}
	if len(targets) == 0 && out == nil && len(more) == 0 {
		return store.Delivered{}, nil // every script discarded it
	}
	delivery := &store.Delivery{
		TargetFlags: targetFlags,
		More:        more,
		Outbound:    out,
		Charge:      env.Charge,
		Pulled:      env.Pulled,
		MailFrom:    env.MailFrom,
		Targets:     targets,
		Body:        stored,
		Size:        size,
		Parsed:      storedParsed,
		ReceivedAt:  receivedAt,
		// Mail from SMTP goes to INBOX when the mailbox a rule names has vanished: a
		// missing folder must not bounce it.
		InboxFallback: true,
	}
	var delivered store.Delivered
	if fd, ok := d.st.(store.FieldDeliverer); ok && len(fields) > 0 {
		delivered, err = fd.DeliverFields(ctx, delivery, fields)
	} else {
		delivered, err = d.st.Deliver(ctx, delivery)
	}
	if err != nil {
		if qe, ok := errors.AsType[*store.QuotaError](err); ok {
			for _, id := range qe.Accounts {
				d.quota.forget(id)
			}
		}
		return store.Delivered{}, fmt.Errorf("deliver: store: %w", err)
	}
	for _, t := range targets {
		// The cached quota reads follow this node's own deliveries (cache.go).
		d.quota.update(t.AccountID, func(q store.Quota) store.Quota {
			q.Usage.Messages++
			q.Usage.Size += size
			return q
		})
	}
	if out != nil && d.out.queued != nil {
		d.out.queued()
	}
	return delivered, nil
}
