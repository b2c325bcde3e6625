package deliver

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"time"

	"petrel/internal/lib/address"
	"petrel/internal/mail/srs"
	"petrel/internal/store"
)

// Forwarding: an alias target at a domain that is not ours is a forward. Its copy goes
// through the outbound queue in the same store commit as the local targets, with the
// envelope sender rewritten by SRS (package srs) to an address at the alias's domain, so
// that SPF passes at the next hop and a bounce comes back here, where Route reverses it to
// the original sender. Three bounds keep forwarding from being abused or looping:
//   - an SRS address we did not make (bad hash, expired) is refused at RCPT (ErrForgedSRS):
//     we reverse only our own, so we are no open relay for bounces;
//   - a message with more than MaxHops Received fields, or one that passed through this
//     host MaxPasses times already, is not forwarded again (ErrForwardLoop): a cycle of
//     aliases across servers (a@us -> b@them -> a@us) ends there (RFC 5321 §6.3);
//   - an alias forwards at most PerAliasHour messages per clock hour (ErrForwardRate), so a
//     flood to one alias cannot make us a flood source. Forwards are never charged to any
//     account's sending limits: nobody here sent them.
//
// A message submitted by one of our users (an authenticated submission from an address of
// ours) keeps its sender: SPF passes for it already, and its remote recipients and forwards go
// out as one queue entry, signed as submitted mail is. Mail from the MX port is never signed
// by us, even when its sender claims one of our domains: anyone can claim that. A bounce (null
// sender) stays a bounce.

var (
	// ErrForgedSRS means a recipient looks like an SRS address of ours that we did not make.
	ErrForgedSRS = errors.New("deliver: forged or expired SRS address")
	// ErrForwardLoop means a message to forward has been through too many hops, or through
	// this host too often.
	ErrForwardLoop = errors.New("deliver: forwarding loop")
	// ErrForwardRate means an alias has forwarded as much as it may this hour.
	ErrForwardRate = errors.New("deliver: forwarding rate of the alias reached")
)

// Forward is a remote address that mail for a local one goes to.
type Forward struct {
	Address string // where the copy goes
	// Alias is the local address that forwards (its lookup key): the SRS domain, the ORCPT
	// of the copy and what the rate counts. "" for a bounce to an SRS address (Route).
	Alias string
}

// Route is where mail for one recipient goes: local mailboxes and remote forwards.
type Route struct {
	Targets []store.Target
	Forward []Forward
}

// Forwarding configures forwarding (SetForwarding). The zero value forwards nothing.
type Forwarding struct {
	SRS *srs.Rewriter // nil: forwarding off; remote alias targets are skipped with a warning
	// Hostname is the name this host writes in its Received fields ("by NAME").
	Hostname string
	// MaxHops: a message with more Received fields is not forwarded (0: DefaultMaxHops).
	MaxHops int
	// MaxPasses: a message with this many Received fields of ours already is not forwarded
	// (0: DefaultMaxPasses).
	MaxPasses int
	// PerAliasHour bounds the messages one alias forwards per clock hour (0: no bound).
	PerAliasHour int
	Now          func() time.Time // nil: time.Now
}

const (
	// DefaultMaxHops is Postfix's hopcount_limit; RFC 5321 §6.3 asks for at least 100 only
	// of a relay that refuses, and a forwarder may stop earlier.
	DefaultMaxHops = 50
	// DefaultMaxPasses: the Received field of this pass plus two earlier ones. A message may
	// legitimately come back once (submitted here, forwarded by a list elsewhere to one of
	// our aliases); a third time it is going round.
	DefaultMaxPasses = 3
)

// forwarding is the Deliverer's forwarding state.
type forwarding struct {
	cfg Forwarding

	mu    sync.Mutex
	hour  time.Time      // the clock hour counts are for
	count map[string]int // alias key -> messages forwarded this hour
}

// SetForwarding turns forwarding on with f (f.SRS nil: off).
func (d *Deliverer) SetForwarding(f Forwarding) {
	if f.MaxHops <= 0 {
		f.MaxHops = DefaultMaxHops
	}
	if f.MaxPasses <= 0 {
		f.MaxPasses = DefaultMaxPasses
	}
	if f.Now == nil {
		f.Now = time.Now
	}
	d.fwd = &forwarding{cfg: f, count: map[string]int{}}
}

func (d *Deliverer) forwards() bool { return d.fwd != nil && d.fwd.cfg.SRS != nil }

// Route maps one recipient to where its mail goes: the local mailboxes (Resolve's) and,
// with forwarding on (SetForwarding), the remote addresses aliases forward to; an SRS address
// of ours (a bounce of a forwarded message) routes to the address it stands for. An alias
// whose targets are all remote routes to forwards alone.
func (d *Deliverer) Route(ctx context.Context, rcpt address.Address) (Route, error) {
	if d.forwards() && isSRS(rcpt.Local) {
		return d.reverseSRS(ctx, rcpt, 0)
	}
	return d.route(ctx, rcpt)
}

// isSRS: the local part starts like an SRS address (srs.Reverse decides the rest).
func isSRS(local string) bool {
	return len(local) > 5 && strings.EqualFold(local[:3], "SRS") && (local[3] == '0' || local[3] == '1')
}

// reverseSRS routes a bounce to an SRS address at one of our domains to the address it
// stands for. depth counts reversals: an SRS1 address of ours may name an SRS0 address of
// ours (the message was forwarded here twice).
func (d *Deliverer) reverseSRS(ctx context.Context, rcpt address.Address, depth int) (Route, error) {
	if _, err := d.st.Domain(ctx, rcpt.Domain); errors.Is(err, store.ErrNotFound) {
		return Route{}, ErrNotHosted
	} else if err != nil {
		return Route{}, fmt.Errorf("deliver: domain %s: %w", rcpt.Domain, err)
	}
	orig, err := d.fwd.cfg.SRS.Reverse(rcpt.String())
	switch {
	case errors.Is(err, srs.ErrNotSRS):
		return d.route(ctx, rcpt) // an account that happens to be called srs0-something
	case err != nil:
		return Route{}, ErrForgedSRS
	}
	a, err := address.Parse(orig)
	if err != nil {
		return Route{}, ErrUnknownUser
	}
	if isSRS(a.Local) && depth < 1 {
		if rt, err := d.reverseSRS(ctx, a, depth+1); !errors.Is(err, ErrNotHosted) {
			return rt, err
		}
	}
	rt, err := d.route(ctx, a)
	if errors.Is(err, ErrNotHosted) {
		return Route{Forward: []Forward{{Address: a.String()}}}, nil
	}
	return rt, err
}

// outboundFor builds the one queued copy of a delivery: for the remote recipients of a
// submission (outbound) and for the forwards. Forwards of mail from elsewhere go out as they
// came, from an SRS address (forwardOutbound); forwards of a submission from one of our
// addresses, or of one with remote recipients of its own, join the submitted copy with its
// sender.
func (d *Deliverer) outboundFor(ctx context.Context, env Envelope, body Body) (*store.Outbound, error) {
	if len(env.Forward) == 0 {
		return d.outbound(ctx, env, body)
	}
	if err := d.checkForward(env, body); err != nil {
		return nil, err
	}
	own := false
	if _, domain, ok := strings.Cut(env.MailFrom, "@"); ok && env.Submitted {
		_, err := d.st.Domain(ctx, strings.ToLower(domain))
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return nil, fmt.Errorf("deliver: domain %s: %w", domain, err)
		}
		own = err == nil
	}
	if len(env.Remote) == 0 && !own {
		return d.forwardOutbound(ctx, env, body), nil
	}
	// One entry has one sender: rewriting it for the forwards would rewrite it for the
	// submitted recipients too, whose SPF it already passes or fails as submitted.
	remote := env.Remote[:len(env.Remote):len(env.Remote)]
	for _, r := range forwardRecipients(env.Forward) {
		if !slices.ContainsFunc(remote, func(o store.OutboundRecipient) bool { return strings.EqualFold(o.Address, r.Address) }) {
			remote = append(remote, r)
		}
	}
	env.Remote = remote
	return d.outbound(ctx, env, body)
}

// forwardOutbound builds the queued copy for env's forwards when they do not go with the
// submitted copy (see the comment at the top): the message as it came, minus the
// Return-Path, from the SRS address of the first forwarding alias's domain, with an ARC set
// of that domain when the message was verified on arrival (arc.go).
func (d *Deliverer) forwardOutbound(ctx context.Context, env Envelope, body Body) *store.Outbound {
	skip := returnPathLen(body)
	from := env.MailFrom
	var domain string
	if env.Forward[0].Alias != "" {
		_, domain, _ = strings.Cut(env.Forward[0].Alias, "@")
	}
	if from != "" && domain != "" {
		from = d.fwd.cfg.SRS.Forward(from, domain)
	}
	size := body.Size() - skip
	out, outSize := d.sealed(ctx, env, domain, func() io.Reader { return io.NewSectionReader(body, skip, size) }, size)
	return &store.Outbound{
		MailFrom:   from,
		Recipients: forwardRecipients(env.Forward),
		Body:       out,
		Size:       outSize,
	}
}

// forwardRecipients are the queue's recipients for forwards: the alias is the original
// recipient (RFC 3461 §4.2), so that a bounce names the address the sender used.
func forwardRecipients(fs []Forward) []store.OutboundRecipient {
	var out []store.OutboundRecipient
	seen := map[string]bool{}
	for _, f := range fs {
		a, err := address.Parse(f.Address)
		if err != nil || seen[a.Key()] {
			continue
		}
		seen[a.Key()] = true
		r := store.OutboundRecipient{Address: a.String(), Domain: strings.ToLower(a.Domain)}
		if f.Alias != "" {
			r.ORcpt, r.ORcptType = f.Alias, "rfc822"
		}
		out = append(out, r)
	}
	return out
}

// checkForward applies the loop and rate bounds to a message with forwards, and counts it
// against the rate of its aliases.
func (d *Deliverer) checkForward(env Envelope, body Body) error {
	f := d.fwd
	hops, ours := countReceived(io.NewSectionReader(body, 0, body.Size()), f.cfg.Hostname)
	if hops > f.cfg.MaxHops || ours >= f.cfg.MaxPasses {
		return fmt.Errorf("%w: %d Received fields, %d of them ours", ErrForwardLoop, hops, ours)
	}
	if f.cfg.PerAliasHour <= 0 {
		return nil
	}
	hour := f.cfg.Now().UTC().Truncate(time.Hour)
	f.mu.Lock()
	defer f.mu.Unlock()
	if !hour.Equal(f.hour) {
		f.hour, f.count = hour, map[string]int{}
	}
	var aliases []string
	for _, fw := range env.Forward {
		if fw.Alias != "" && !contains(aliases, fw.Alias) {
			aliases = append(aliases, fw.Alias)
		}
	}
	for _, a := range aliases {
		if f.count[a] >= f.cfg.PerAliasHour {
			return fmt.Errorf("%w: %s", ErrForwardRate, a)
		}
	}
	for _, a := range aliases {
		f.count[a]++
	}
	return nil
}

// countReceived counts the Received fields of a header section, and those whose "by" names
// host.
func countReceived(r io.Reader, host string) (all, ours int) {
	br := bufio.NewReaderSize(r, 4096)
	by := []byte("by " + strings.ToLower(host))
	var field []byte // the Received field being read, unfolded enough to find "by host"
	flush := func() {
		if field != nil && host != "" && bytes.Contains(bytes.ToLower(field), by) {
			ours++
		}
		field = nil
	}
	for n := 0; n < maxHeaderScan; {
		line, err := br.ReadSlice('\n')
		n += len(line)
		if err != nil && err != bufio.ErrBufferFull {
			break
		}
		switch {
		case len(bytes.TrimRight(line, "\r\n")) == 0:
			flush()
			return all, ours
		case line[0] == ' ' || line[0] == '\t':
			if field != nil && len(field) < 4096 {
				field = append(field, line...)
			}
		default:
			flush()
			if hasName(line, "received:") {
				all++
				field = append([]byte{}, line...)
			}
		}
		for err == bufio.ErrBufferFull { // the rest of a long line
			line, err = br.ReadSlice('\n')
			n += len(line)
		}
	}
	flush()
	return all, ours
}
