package door

import (
	"context"
	"net/netip"
	"strings"
	"sync"
	"time"

	"petrel/internal/store"
)

// Greylister refuses the first attempt of an unknown (client network, sender, recipient)
// triplet with a 4xx and accepts a retry that comes after MinDelay and within RetryWindow
// (the scheme of Harris's whitepaper, as postgrey and Postfix's postscreen apply it).
// Real MTAs retry; most spamware does not.
//
// The client is its /24 (IPv4) or /64 (IPv6), since large senders retry from another
// address of their pool. A triplet that passed once passes until it has not been seen for
// Expiry, and so does its client network: a server that proved it retries is not delayed
// again for other senders or recipients (the automatic pass list). Configured networks and
// sender domains, authenticated clients and clients on a DNSWL are never greylisted (the
// session decides the last two).
//
// A store failure lets the message through: greylisting delays mail, it must never lose it.
type Greylister struct {
	Store       store.Greylist
	MinDelay    time.Duration  // a retry sooner is refused again; 0 means 5m
	RetryWindow time.Duration  // a retry later starts over; 0 means 24h
	Expiry      time.Duration  // a passed entry not seen for this long is forgotten; 0 means 35 days
	PassNets    []netip.Prefix // clients never greylisted
	PassDomains []string       // sender domains never greylisted (lower case)
	Now         func() time.Time

	mu         sync.Mutex
	lastExpiry time.Time
	known      map[string]time.Time // client networks that passed, until when this is believed without asking the store
}

// knownFor is how long a passed network is believed without asking the store again: a busy
// sender then costs one store read a minute instead of one per recipient, and a network
// removed from the store (expired) is greylisted again at most this late.
const knownFor = time.Minute

// maxKnown bounds the memory of passed networks; a full map is emptied.
const maxKnown = 10000

// Defaults of Greylister.
const (
	DefaultGreyMinDelay    = 5 * time.Minute
	DefaultGreyRetryWindow = 24 * time.Hour
	DefaultGreyExpiry      = 35 * 24 * time.Hour
)

// GreyResult is the outcome of a greylisting check.
type GreyResult int

const (
	GreyPass    GreyResult = iota // known or configured: accept
	GreyPassNew                   // a retry after the delay: accept, and remember
	GreyWait                      // too early or first seen: 4xx
)

func (r GreyResult) String() string {
	switch r {
	case GreyPassNew:
		return "passed"
	case GreyWait:
		return "wait"
	}
	return "known"
}

func (g *Greylister) now() time.Time {
	if g.Now != nil {
		return g.Now()
	}
	return time.Now()
}

// ClientNet is the network greylisting treats as one client.
func ClientNet(ip netip.Addr) netip.Prefix {
	ip = ip.Unmap()
	bits := 64
	if ip.Is4() {
		bits = 24
	}
	p, _ := ip.Prefix(bits)
	return p
}

// Check decides about one recipient of a transaction from ip with reverse-path from.
func (g *Greylister) Check(ctx context.Context, ip netip.Addr, from, rcpt string) (GreyResult, error) {
	ip = ip.Unmap()
	for _, p := range g.PassNets {
		if p.Contains(ip) {
			return GreyPass, nil
		}
	}
	if i := strings.LastIndexByte(from, '@'); i >= 0 {
		dom := strings.ToLower(from[i+1:])
		for _, d := range g.PassDomains {
			if dom == d || strings.HasSuffix(dom, "."+d) {
				return GreyPass, nil
			}
		}
	}
	minDelay, window, expiry := g.MinDelay, g.RetryWindow, g.Expiry
	if minDelay <= 0 {
		minDelay = DefaultGreyMinDelay
	}
	if window <= 0 {
		window = DefaultGreyRetryWindow
	}
	if expiry <= 0 {
		expiry = DefaultGreyExpiry
	}
	now := g.now()
	g.expire(ctx, now, expiry)

	netKey := "ip|" + ClientNet(ip).String()
	if g.isKnown(netKey, now) {
		return GreyPass, nil
	}
	triKey := "t|" + ClientNet(ip).String() + "|" + strings.ToLower(from) + "|" + strings.ToLower(rcpt)
	entries, err := g.Store.GreyGet(ctx, []string{netKey, triKey})
	if err != nil {
		return GreyPass, err
	}
	var netE, triE *store.GreyEntry
	for i := range entries {
		switch entries[i].Key {
		case netKey:
			netE = &entries[i]
		case triKey:
			triE = &entries[i]
		}
	}
	fresh := func(e *store.GreyEntry) bool { return e != nil && e.Passed && now.Sub(e.Last) < expiry }
	switch {
	case fresh(netE) || fresh(triE):
		// Refresh what is known so that a regular sender is never forgotten; at most once
		// an hour, so a busy sender costs no write per message.
		var put []store.GreyEntry
		for _, e := range []*store.GreyEntry{netE, triE} {
			if fresh(e) && now.Sub(e.Last) > time.Hour {
				e.Last = now
				put = append(put, *e)
			}
		}
		if fresh(netE) {
			g.remember(netKey, now)
		}
		return GreyPass, g.Store.GreyPut(ctx, put)
	case triE == nil || now.Sub(triE.First) > window || now.Before(triE.First):
		// First attempt, or the last try came too late: start over.
		return GreyWait, g.Store.GreyPut(ctx, []store.GreyEntry{{Key: triKey, First: now, Last: now}})
	case now.Sub(triE.First) < minDelay:
		return GreyWait, nil
	}
	err = g.Store.GreyPut(ctx, []store.GreyEntry{
		{Key: triKey, First: triE.First, Last: now, Passed: true},
		{Key: netKey, First: now, Last: now, Passed: true},
	})
	if err == nil {
		g.remember(netKey, now)
	}
	return GreyPassNew, err
}

func (g *Greylister) isKnown(key string, now time.Time) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	until, ok := g.known[key]
	return ok && now.Before(until) && !now.Before(until.Add(-knownFor))
}

func (g *Greylister) remember(key string, now time.Time) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.known == nil || len(g.known) >= maxKnown {
		g.known = make(map[string]time.Time)
	}
	g.known[key] = now.Add(knownFor)
}

// expire deletes old entries at most once an hour, from whichever check comes first.
func (g *Greylister) expire(ctx context.Context, now time.Time, expiry time.Duration) {
	g.mu.Lock()
	due := now.Sub(g.lastExpiry) >= time.Hour
	if due {
		g.lastExpiry = now
	}
	g.mu.Unlock()
	if due {
		// A failure is retried at the next hour; the table only grows meanwhile.
		g.Store.GreyExpire(ctx, now.Add(-expiry))
	}
}
