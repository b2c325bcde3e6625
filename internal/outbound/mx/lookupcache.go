package mx

import (
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"
)

// LookupCache keeps a DNSResolver's answers (DNSResolver.Cache): answers with records for
// their smallest TTL and negative answers (NXDOMAIN, NODATA) for the negative TTL of their
// SOA (RFC 2308 §5), both capped; a negative answer without an SOA and a failure are never
// kept, so a broken server is asked again at the next attempt. Result (the AD bit, the canonical name)
// is kept with the records: DANE reads it, and it is what the answer said when it was fresh.
//
// It is the one DNS cache: outbound delivery's resolver has one, and so has the resolver
// under NetResolver, which answers the inbound checks; each keeps its own (a different
// server may be configured for each, and their bounds differ: see app).
//
// Why: outbound delivery asks MX, AAAA, A and the MTA-STS TXT record of a domain for every
// message to it, and a busy destination (the big mailbox providers) receives most messages;
// without a cache those queries cost a third of the CPU of relaying a message to a loopback
// MX (docs/benchmarks.md). The inbound checks ask the same few senders' SPF, DKIM and DMARC
// records for every message they send, and nearly every DNSBL and DNSWL query of the door is
// answered NXDOMAIN: without the negative cache each connection of a busy sender would ask
// every list again.
type LookupCache struct {
	// MaxTTL caps how long an answer is kept; 0 means 1 hour.
	MaxTTL time.Duration
	// MaxNegativeTTL caps how long a negative answer is kept; 0 means 5 minutes (a new
	// domain's MX is seen within that time). Negative: negative answers are not kept.
	MaxNegativeTTL time.Duration
	// MaxEntries bounds the cache; 0 means 10000. A full cache drops its expired entries,
	// and all of them if none has expired.
	MaxEntries int
	// MaxRecords: an answer of more records is not kept (0 means 100; see
	// NetResolver.MaxRecords): one from a broken or hostile server must not fill memory.
	MaxRecords int
	// Now is the clock; nil means time.Now.
	Now func() time.Time

	mu sync.Mutex
	m  map[cacheKey]lookupEntry
}

// cacheKey is a question: the name in lower case without the trailing dot.
type cacheKey struct {
	qtype uint16
	name  string
}

type lookupEntry struct {
	rrs     []dns.RR // nil for a negative answer
	res     Result
	err     *LookupError // an NXDOMAIN's error, returned as a copy; nil otherwise
	expires time.Time
}

func (c *LookupCache) now() time.Time {
	if c.Now != nil {
		return c.Now()
	}
	return time.Now()
}

func lookupKey(name string, qtype uint16) cacheKey {
	return cacheKey{qtype, strings.ToLower(strings.TrimSuffix(name, "."))}
}

// get returns a kept answer; ok is false when there is none (or it expired).
func (c *LookupCache) get(name string, qtype uint16) (rrs []dns.RR, res Result, err error, ok bool) {
	c.mu.Lock()
	e, found := c.m[lookupKey(name, qtype)]
	c.mu.Unlock()
	if !found || !c.now().Before(e.expires) {
		return nil, Result{}, nil, false
	}
	if e.err != nil {
		le := *e.err
		return nil, e.res, &le, true
	}
	return e.rrs, e.res, nil, true
}

// put keeps an answer of resolve for as long as its TTLs allow.
func (c *LookupCache) put(name string, qtype uint16, rrs []dns.RR, res Result, err error) {
	maxTTL, maxNeg, maxRecords := c.MaxTTL, c.MaxNegativeTTL, c.MaxRecords
	if maxTTL <= 0 {
		maxTTL = time.Hour
	}
	if maxNeg == 0 {
		maxNeg = 5 * time.Minute
	}
	maxNeg = min(maxNeg, maxTTL)
	if maxRecords <= 0 {
		maxRecords = 100
	}
	e := lookupEntry{rrs: rrs, res: res}
	var ttl time.Duration
	switch {
	case err != nil && !IsNotFound(err):
		return // a failure: ask again next time
	case err != nil:
		le, ok := err.(*LookupError)
		if !ok {
			return
		}
		e.rrs, e.err = nil, le
		ttl = min(res.NegativeTTL, maxNeg)
	case len(rrs) == 0:
		ttl = min(res.NegativeTTL, maxNeg) // NODATA
	case len(rrs) > maxRecords:
		return
	default:
		ttl = maxTTL
		for _, rr := range rrs {
			ttl = min(ttl, time.Duration(rr.Header().Ttl)*time.Second)
		}
	}
	if ttl <= 0 {
		return
	}
	now := c.now()
	e.expires = now.Add(ttl)
	maxEntries := c.MaxEntries
	if maxEntries <= 0 {
		maxEntries = 10000
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = make(map[cacheKey]lookupEntry)
	}
	makeRoom(c.m, maxEntries, now)
	c.m[lookupKey(name, qtype)] = e
}

// makeRoom keeps a cache under max entries: when full, it drops the expired ones, and all
// of them if none has expired (a cache full of live entries is being flooded with names;
// starting over is cheaper than choosing).
func makeRoom(m map[cacheKey]lookupEntry, max int, now time.Time) {
	if len(m) < max {
		return
	}
	for k, e := range m {
		if !now.Before(e.expires) {
			delete(m, k)
		}
	}
	if len(m) >= max {
		clear(m)
	}
}
