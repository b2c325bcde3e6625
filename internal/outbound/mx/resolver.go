package mx

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"
)

// Resolver answers the DNS questions of outbound delivery. Names are ASCII (A-labels), with
// or without the trailing dot. CNAMEs are followed (with a bound); Result says where the
// chain ended and whether every answer on the way was DNSSEC-authentic.
//
// A name that exists without records of the type (NODATA) is an empty answer and no error.
// A name that does not exist (NXDOMAIN) is a *LookupError with NotFound set; every other
// failure (timeout, SERVFAIL, a truncated or malformed answer) is a *LookupError without it,
// which delivery treats as temporary.
type Resolver interface {
	LookupMX(ctx context.Context, name string) ([]MXRecord, Result, error)
	// LookupAddrs asks for AAAA and A records.
	LookupAddrs(ctx context.Context, name string) ([]netip.Addr, Result, error)
	LookupTXT(ctx context.Context, name string) ([]string, Result, error)
	LookupTLSA(ctx context.Context, name string) ([]TLSA, Result, error)
}

// MXRecord is one MX record; Host has no trailing dot ("" for the null MX ".").
type MXRecord struct {
	Pref uint16
	Host string
}

// Result tells how an answer was reached.
type Result struct {
	// Authentic: every response on the way (the CNAME chain too) carried the AD bit of the
	// configured validating resolver (RFC 4035 §3.2.3). DANE relies on it.
	Authentic bool
	// Canonical is the name after following CNAMEs (the queried name when there were none).
	Canonical string
	// NegativeTTL is how long a negative answer (NXDOMAIN or NODATA) may be cached: the
	// smaller of the TTL and the MINIMUM field of the SOA record in its authority section
	// (RFC 2308 §5). Zero when the answer had records or carried no SOA, which RFC 2308
	// §5 says must not be cached.
	NegativeTTL time.Duration
}

// LookupError is a failed lookup.
type LookupError struct {
	Name, Type string
	NotFound   bool // NXDOMAIN: the name does not exist
	Err        error
}

func (e *LookupError) Error() string {
	if e.NotFound {
		return fmt.Sprintf("DNS %s %s: no such domain", e.Type, e.Name)
	}
	return fmt.Sprintf("DNS %s %s: %v", e.Type, e.Name, e.Err)
}

func (e *LookupError) Unwrap() error { return e.Err }

// IsNotFound reports whether err is an NXDOMAIN answer.
func IsNotFound(err error) bool {
	var le *LookupError
	return errors.As(err, &le) && le.NotFound
}

// maxCNAMEs bounds a CNAME chain. RFC 1034 §3.6.2 forbids chains and loops in spirit but
// not in practice; resolvers follow about 8-16.
const maxCNAMEs = 10

// DNSResolver asks DNS servers (a recursive, ideally validating resolver) with miekg/dns.
type DNSResolver struct {
	// Servers are host:port addresses, tried in order.
	Servers []string
	// Timeout bounds one query to one server (default 5s); each server is tried twice.
	Timeout time.Duration
	// Cache, if set, keeps answers for their TTL (lookupcache.go). Outbound delivery asks the
	// same MX, address and MTA-STS names for every message to a domain.
	Cache *LookupCache
}

// SystemResolver reads the servers of /etc/resolv.conf (RFC 7672 and DESIGN: DANE trusts
// the AD bit, so for DANE this must be a validating resolver on a trusted path, e.g. a local
// unbound).
func SystemResolver() (*DNSResolver, error) {
	conf, err := dns.ClientConfigFromFile("/etc/resolv.conf")
	if err != nil {
		return nil, fmt.Errorf("reading resolver config: %w", err)
	}
	r := &DNSResolver{}
	for _, s := range conf.Servers {
		r.Servers = append(r.Servers, net.JoinHostPort(s, conf.Port))
	}
	if len(r.Servers) == 0 {
		return nil, errors.New("no name server in /etc/resolv.conf")
	}
	return r, nil
}

var _ Resolver = (*DNSResolver)(nil)

func (r *DNSResolver) LookupMX(ctx context.Context, name string) ([]MXRecord, Result, error) {
	rrs, res, err := r.lookup(ctx, name, dns.TypeMX)
	var out []MXRecord
	for _, rr := range rrs {
		mx := rr.(*dns.MX)
		out = append(out, MXRecord{Pref: mx.Preference, Host: strings.ToLower(strings.TrimSuffix(mx.Mx, "."))})
	}
	return out, res, err
}

func (r *DNSResolver) LookupTXT(ctx context.Context, name string) ([]string, Result, error) {
	rrs, res, err := r.lookup(ctx, name, dns.TypeTXT)
	var out []string
	for _, rr := range rrs {
		// The character strings of one record form one text (RFC 7208 §3.3, RFC 8461 §3.1).
		out = append(out, strings.Join(rr.(*dns.TXT).Txt, ""))
	}
	return out, res, err
}

func (r *DNSResolver) LookupTLSA(ctx context.Context, name string) ([]TLSA, Result, error) {
	rrs, res, err := r.lookup(ctx, name, dns.TypeTLSA)
	var out []TLSA
	for _, rr := range rrs {
		t := rr.(*dns.TLSA)
		data, herr := hex.DecodeString(t.Certificate)
		if herr != nil {
			continue // unusable record (RFC 7672 §2.2: ignored)
		}
		out = append(out, TLSA{Usage: t.Usage, Selector: t.Selector, MatchingType: t.MatchingType, Data: data})
	}
	return out, res, err
}

// LookupAddrs asks for AAAA and A at the same time. Addresses of one family are returned
// when the other family's lookup fails; the error is returned only when no address was
// found. NotFound is reported only when both say NXDOMAIN.
func (r *DNSResolver) LookupAddrs(ctx context.Context, name string) ([]netip.Addr, Result, error) {
	var wg sync.WaitGroup
	var (
		rrs [2][]dns.RR
		res [2]Result
		err [2]error
	)
	for i, t := range []uint16{dns.TypeAAAA, dns.TypeA} {
		wg.Go(func() { rrs[i], res[i], err[i] = r.lookup(ctx, name, t) })
	}
	wg.Wait()
	var out []netip.Addr
	for _, list := range rrs {
		for _, rr := range list {
			var ip net.IP
			switch rr := rr.(type) {
			case *dns.A:
				ip = rr.A
			case *dns.AAAA:
				ip = rr.AAAA
			}
			if a, ok := netip.AddrFromSlice(ip); ok {
				out = append(out, a.Unmap())
			}
		}
	}
	result := Result{Authentic: res[0].Authentic && res[1].Authentic, Canonical: res[1].Canonical}
	if result.Canonical == "" {
		result.Canonical = res[0].Canonical
	}
	switch {
	case len(out) > 0:
		return out, result, nil
	case err[0] == nil && err[1] == nil:
		return nil, result, nil
	case IsNotFound(err[0]) && IsNotFound(err[1]):
		return nil, result, err[1]
	case err[1] != nil && !IsNotFound(err[1]):
		return nil, result, err[1]
	case err[0] != nil && !IsNotFound(err[0]):
		return nil, result, err[0]
	}
	// One family NXDOMAIN, the other NODATA: the name exists (a resolver race); no address.
	return nil, result, nil
}

// lookup answers from the cache (if any) or asks (resolve).
func (r *DNSResolver) lookup(ctx context.Context, name string, qtype uint16) ([]dns.RR, Result, error) {
	if r.Cache == nil {
		return r.resolve(ctx, name, qtype)
	}
	if rrs, res, err, ok := r.Cache.get(name, qtype); ok {
		return rrs, res, err
	}
	rrs, res, err := r.resolve(ctx, name, qtype)
	r.Cache.put(name, qtype, rrs, res, err)
	return rrs, res, err
}

// resolve asks for qtype at name and follows CNAMEs, inside one answer (as recursive
// resolvers return the chain) and by asking again where an answer ends with a CNAME.
func (r *DNSResolver) resolve(ctx context.Context, name string, qtype uint16) ([]dns.RR, Result, error) {
	typ := dns.TypeToString[qtype]
	cur := strings.ToLower(dns.Fqdn(name))
	res := Result{Authentic: true}
	fail := func(notFound bool, err error) ([]dns.RR, Result, error) {
		res.Canonical = strings.TrimSuffix(cur, ".")
		return nil, res, &LookupError{Name: strings.TrimSuffix(cur, "."), Type: typ, NotFound: notFound, Err: err}
	}
	if _, ok := dns.IsDomainName(cur); !ok {
		return fail(true, errors.New("not a domain name"))
	}
	hops := 0
	for {
		m, err := r.exchange(ctx, cur, qtype)
		if err != nil {
			return fail(false, err)
		}
		res.Authentic = res.Authentic && m.AuthenticatedData
		// Walk the chain inside this answer. Records are matched by owner name, so records
		// for other names that a (hostile) server adds are ignored.
		queried := cur
		for {
			next := ""
			for _, rr := range m.Answer {
				if c, ok := rr.(*dns.CNAME); ok && strings.EqualFold(rr.Header().Name, cur) && qtype != dns.TypeCNAME {
					next = strings.ToLower(dns.Fqdn(c.Target))
					break
				}
			}
			if next == "" {
				break
			}
			if hops++; hops > maxCNAMEs {
				return fail(false, fmt.Errorf("CNAME chain longer than %d (a loop?)", maxCNAMEs))
			}
			cur = next
		}
		var out []dns.RR
		for _, rr := range m.Answer {
			if rr.Header().Rrtype == qtype && strings.EqualFold(rr.Header().Name, cur) {
				out = append(out, rr)
			}
		}
		switch {
		case len(out) > 0:
			res.Canonical = strings.TrimSuffix(cur, ".")
			return out, res, nil
		case m.Rcode == dns.RcodeNameError:
			// After a CNAME the rcode speaks of the last name of the chain (RFC 6604 §3).
			res.NegativeTTL = negativeTTL(m)
			return fail(true, nil)
		case cur != queried:
			continue // the answer stopped at a CNAME: ask for its target
		}
		res.Canonical = strings.TrimSuffix(cur, ".")
		res.NegativeTTL = negativeTTL(m)
		return nil, res, nil // NODATA
	}
}

// negativeTTL is the cache lifetime of the negative answer m (RFC 2308 §5): the smaller of
// the SOA record's own TTL and its MINIMUM field; 0 without an SOA in the authority
// section.
func negativeTTL(m *dns.Msg) time.Duration {
	for _, rr := range m.Ns {
		if soa, ok := rr.(*dns.SOA); ok {
			return time.Duration(min(soa.Hdr.Ttl, soa.Minttl)) * time.Second
		}
	}
	return 0
}

// exchange asks each server in turn, over UDP first and over TCP when the answer is
// truncated (RFC 7766 §5). An answer that is truncated over TCP too, or any rcode but
// NOERROR and NXDOMAIN, is an error.
func (r *DNSResolver) exchange(ctx context.Context, name string, qtype uint16) (*dns.Msg, error) {
	timeout := r.Timeout
	if timeout <= 0 {
		timeout = 5 * time.Second
	}
	q := new(dns.Msg)
	q.SetQuestion(name, qtype)
	q.RecursionDesired = true
	// AD in the query asks a validating resolver to report validation in the AD bit without
	// sending the DNSSEC records themselves (RFC 6840 §5.7).
	q.AuthenticatedData = true
	q.SetEdns0(1232, false) // the DNS flag day 2020 buffer size: no IP fragmentation
	if len(r.Servers) == 0 {
		return nil, errors.New("no DNS server configured")
	}
	var lastErr error
	for attempt := 0; attempt < 2; attempt++ {
		for _, server := range r.Servers {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			m, err := r.exchangeOne(ctx, q, server, timeout)
			if err == nil && (len(m.Question) != 1 || m.Question[0].Qtype != qtype || !strings.EqualFold(m.Question[0].Name, name)) {
				// miekg/dns matches the ID only; an answer to another question is not ours.
				err = fmt.Errorf("server %s answered another question", server)
			}
			if err != nil {
				lastErr = err
				continue
			}
			switch m.Rcode {
			case dns.RcodeSuccess, dns.RcodeNameError:
				return m, nil
			}
			lastErr = fmt.Errorf("server %s answered %s", server, dns.RcodeToString[m.Rcode])
		}
	}
	return nil, lastErr
}

func (r *DNSResolver) exchangeOne(ctx context.Context, q *dns.Msg, server string, timeout time.Duration) (*dns.Msg, error) {
	qctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	c := &dns.Client{Net: "udp", UDPSize: 1232, Timeout: timeout}
	m, _, err := c.ExchangeContext(qctx, q, server)
	if err == nil && !m.Truncated {
		return m, nil
	}
	if err != nil {
		return nil, fmt.Errorf("server %s: %w", server, err)
	}
	c = &dns.Client{Net: "tcp", Timeout: timeout}
	m, _, err = c.ExchangeContext(qctx, q, server)
	if err != nil {
		return nil, fmt.Errorf("server %s over TCP: %w", server, err)
	}
	if m.Truncated {
		return nil, fmt.Errorf("server %s: answer truncated over TCP", server)
	}
	return m, nil
}
