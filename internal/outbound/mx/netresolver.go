package mx

import (
	"context"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"
)

// NetResolver answers in the shape of *net.Resolver (LookupTXT, LookupMX, LookupIPAddr,
// LookupAddr, errors as *net.DNSError), over a DNSResolver, with a cache that keeps each
// answer for its TTL. It is what inbound verification (msgauth.Resolver: SPF, DKIM keys,
// DMARC policies) asks: the same configured servers as outbound delivery, and a cache
// because the same few senders' records are asked for every message they send.
//
// Errors follow net's convention: a name that does not exist, or has no record of the
// type, is IsNotFound; every other failure (timeout, SERVFAIL, a CNAME loop, a truncated
// or malformed answer, an answer of more than MaxRecords records) is IsTemporary. Answers
// with records are cached for their TTL; negative answers (NXDOMAIN, NODATA) for the
// negative TTL of the SOA in their authority section (RFC 2308 §5), capped by
// MaxNegativeTTL, and not at all without an SOA; failures are never cached. The negative
// cache matters to DNS lists: nearly every client is not listed, so nearly every DNSBL and
// DNSWL query of the door is answered NXDOMAIN, and without it each connection of a busy
// sender would ask every zone again.
type NetResolver struct {
	DNS *DNSResolver
	// MaxTTL caps how long an answer is kept; 0 means 1 hour. Negative: no cache.
	MaxTTL time.Duration
	// MaxNegativeTTL caps how long a negative answer is kept; 0 means 15 minutes (a DNS
	// list's new listing is seen within that time whatever its SOA says). Negative: negative
	// answers are not cached.
	MaxNegativeTTL time.Duration
	// MaxEntries bounds the cache; 0 means 10000. A full cache drops its expired entries,
	// and all of them if none has expired.
	MaxEntries int
	// MaxRecords is the most records an answer may have; 0 means 100. Mail's records are
	// a handful per name (RFC 7208 §4.6.4 allows SPF 10 MX hosts); an answer of a thousand
	// comes from a broken or hostile server and is not worth parsing, so it fails as
	// temporary, like an answer that did not arrive.
	MaxRecords int
	// Now is the clock; nil means time.Now.
	Now func() time.Time

	mu    sync.Mutex
	cache map[cacheKey]cacheEntry
}

type cacheKey struct {
	qtype uint16
	name  string
}

type cacheEntry struct {
	value   any           // []string, []*net.MX or []net.IPAddr; nil for a negative answer
	err     *net.DNSError // a negative answer's error (IsNotFound), returned as a copy
	expires time.Time
}

func (r *NetResolver) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

// LookupTXT returns the TXT records at name, each record's strings joined (RFC 7208 §3.3).
func (r *NetResolver) LookupTXT(ctx context.Context, name string) ([]string, error) {
	v, err := r.cached(ctx, name, dns.TypeTXT, func(rrs []dns.RR) any {
		out := make([]string, 0, len(rrs))
		for _, rr := range rrs {
			out = append(out, strings.Join(rr.(*dns.TXT).Txt, ""))
		}
		return out
	})
	if err != nil {
		return nil, err
	}
	return slices.Clone(v.([]string)), nil
}

// LookupMX returns the MX records at name, in the order of the answer.
func (r *NetResolver) LookupMX(ctx context.Context, name string) ([]*net.MX, error) {
	v, err := r.cached(ctx, name, dns.TypeMX, func(rrs []dns.RR) any {
		out := make([]*net.MX, 0, len(rrs))
		for _, rr := range rrs {
			m := rr.(*dns.MX)
			out = append(out, &net.MX{Host: m.Mx, Pref: m.Preference})
		}
		return out
	})
	if err != nil {
		return nil, err
	}
	return slices.Clone(v.([]*net.MX)), nil
}

// LookupIPAddr returns the AAAA and A records of host, asked at the same time.
func (r *NetResolver) LookupIPAddr(ctx context.Context, host string) ([]net.IPAddr, error) {
	var (
		wg   sync.WaitGroup
		vals [2]any
		errs [2]error
	)
	for i, t := range []uint16{dns.TypeAAAA, dns.TypeA} {
		wg.Go(func() {
			vals[i], errs[i] = r.cached(ctx, host, t, func(rrs []dns.RR) any {
				out := make([]net.IPAddr, 0, len(rrs))
				for _, rr := range rrs {
					switch rr := rr.(type) {
					case *dns.A:
						out = append(out, net.IPAddr{IP: rr.A})
					case *dns.AAAA:
						out = append(out, net.IPAddr{IP: rr.AAAA})
					}
				}
				return out
			})
		})
	}
	wg.Wait()
	var out []net.IPAddr
	for _, v := range vals {
		if v != nil {
			out = append(out, v.([]net.IPAddr)...)
		}
	}
	switch {
	case len(out) > 0:
		return out, nil
	case isNetNotFound(errs[0]) && isNetNotFound(errs[1]):
		return nil, errs[1]
	case errs[1] != nil && !isNetNotFound(errs[1]):
		return nil, errs[1]
	}
	return nil, errs[0]
}

// LookupAddr returns the names of the PTR records of addr (an IP address).
func (r *NetResolver) LookupAddr(ctx context.Context, addr string) ([]string, error) {
	name, err := dns.ReverseAddr(addr)
	if err != nil {
		return nil, &net.DNSError{Err: "not an IP address", Name: addr, IsNotFound: true}
	}
	v, err := r.cached(ctx, name, dns.TypePTR, func(rrs []dns.RR) any {
		out := make([]string, 0, len(rrs))
		for _, rr := range rrs {
			out = append(out, rr.(*dns.PTR).Ptr)
		}
		return out
	})
	if err != nil {
		return nil, err
	}
	return slices.Clone(v.([]string)), nil
}

// cached answers from the cache or asks, converting the records with conv.
func (r *NetResolver) cached(ctx context.Context, name string, qtype uint16, conv func([]dns.RR) any) (any, error) {
	key := cacheKey{qtype, strings.ToLower(strings.TrimSuffix(name, "."))}
	now := r.now()
	if r.MaxTTL >= 0 {
		r.mu.Lock()
		e, ok := r.cache[key]
		r.mu.Unlock()
		if ok && now.Before(e.expires) {
			if e.err != nil {
				err := *e.err
				return nil, &err
			}
			return e.value, nil
		}
	}
	rrs, res, err := r.DNS.lookup(ctx, name, qtype)
	typ := dns.TypeToString[qtype]
	switch {
	case IsNotFound(err):
		return nil, r.negative(key, now, res, &net.DNSError{Err: "no such domain", Name: name, IsNotFound: true})
	case err != nil:
		return nil, &net.DNSError{Err: err.Error(), Name: name, IsTemporary: true}
	case len(rrs) == 0:
		return nil, r.negative(key, now, res, &net.DNSError{Err: "no " + typ + " record", Name: name, IsNotFound: true})
	}
	maxRecords := r.MaxRecords
	if maxRecords <= 0 {
		maxRecords = 100
	}
	if len(rrs) > maxRecords {
		return nil, &net.DNSError{Err: fmt.Sprintf("answer of %d %s records, more than %d", len(rrs), typ, maxRecords), Name: name, IsTemporary: true}
	}
	value := conv(rrs)
	if r.MaxTTL >= 0 {
		ttl := r.MaxTTL
		if ttl == 0 {
			ttl = time.Hour
		}
		for _, rr := range rrs {
			ttl = min(ttl, time.Duration(rr.Header().Ttl)*time.Second)
		}
		r.store(key, cacheEntry{value: value, expires: now.Add(ttl)}, now)
	}
	return value, nil
}

// negative caches the negative answer err for its SOA's negative TTL (RFC 2308 §5), capped
// by MaxNegativeTTL and MaxTTL, and returns it.
func (r *NetResolver) negative(key cacheKey, now time.Time, res Result, err *net.DNSError) error {
	limit := r.MaxNegativeTTL
	if limit == 0 {
		limit = 15 * time.Minute
	}
	if r.MaxTTL > 0 {
		limit = min(limit, r.MaxTTL)
	}
	if r.MaxTTL >= 0 && limit > 0 && res.NegativeTTL > 0 {
		kept := *err
		r.store(key, cacheEntry{err: &kept, expires: now.Add(min(res.NegativeTTL, limit))}, now)
	}
	return err
}

// store keeps e until it expires; an entry that expires at once is not kept.
func (r *NetResolver) store(key cacheKey, e cacheEntry, now time.Time) {
	if !now.Before(e.expires) {
		return
	}
	maxEntries := r.MaxEntries
	if maxEntries <= 0 {
		maxEntries = 10000
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cache == nil {
		r.cache = make(map[cacheKey]cacheEntry)
	}
	makeRoom(r.cache, maxEntries, now, func(e cacheEntry) time.Time { return e.expires })
	r.cache[key] = e
}

// makeRoom keeps a cache under max entries: when full, it drops the expired ones, and all
// of them if none has expired (a cache full of live entries is being flooded with names;
// starting over is cheaper than choosing).
func makeRoom[E any](m map[cacheKey]E, max int, now time.Time, expires func(E) time.Time) {
	if len(m) < max {
		return
	}
	for k, e := range m {
		if !now.Before(expires(e)) {
			delete(m, k)
		}
	}
	if len(m) >= max {
		clear(m)
	}
}

// isNetNotFound reads net's convention.
func isNetNotFound(err error) bool {
	de, ok := err.(*net.DNSError)
	return ok && de.IsNotFound
}
