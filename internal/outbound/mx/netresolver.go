package mx

import (
	"context"
	"fmt"
	"net"
	"strings"
	"sync"

	"github.com/miekg/dns"
)

// NetResolver answers in the shape of *net.Resolver (LookupTXT, LookupMX, LookupIPAddr,
// LookupAddr, errors as *net.DNSError), over a DNSResolver. It is what inbound verification
// (msgauth.Resolver: SPF, DKIM keys, DMARC policies) and the door ask: the same configured
// servers as outbound delivery, and answers cached by the DNSResolver's LookupCache, the
// one cache type of both directions.
//
// Why a second shape instead of the Resolver interface: the libraries of the inbound checks
// ask in net's shape and read net's error convention (the SPF library's resolver option,
// go-msgauth's DKIM LookupTXT), msgauth.Resolver and door.Resolver take a *net.Resolver as
// well, and none of them needs the AD bit or the canonical name that Resolver's Result
// carries for DANE and MTA-STS. So NetResolver only converts: records to net's types,
// errors to net's convention; the asking and the cache are the DNSResolver's.
//
// Errors follow net's convention: a name that does not exist, or has no record of the
// type, is IsNotFound; every other failure (timeout, SERVFAIL, a CNAME loop, a truncated
// or malformed answer, an answer of more than MaxRecords records) is IsTemporary.
type NetResolver struct {
	// DNS asks; its Cache, if set, keeps the answers (app gives it one with
	// MaxNegativeTTL 15 minutes, so that a DNS list's new listing is seen within that time
	// whatever its SOA says).
	DNS *DNSResolver
	// MaxRecords is the most records an answer may have; 0 means 100. Mail's records are
	// a handful per name (RFC 7208 §4.6.4 allows SPF 10 MX hosts); an answer of a thousand
	// comes from a broken or hostile server and is not worth parsing, so it fails as
	// temporary, like an answer that did not arrive.
	MaxRecords int
}

// LookupTXT returns the TXT records at name, each record's strings joined (RFC 7208 §3.3).
func (r *NetResolver) LookupTXT(ctx context.Context, name string) ([]string, error) {
	rrs, err := r.ask(ctx, name, dns.TypeTXT)
	if err != nil {
		return nil, err
	}
	out := make([]string, 0, len(rrs))
	for _, rr := range rrs {
		out = append(out, strings.Join(rr.(*dns.TXT).Txt, ""))
	}
	return out, nil
}

// LookupMX returns the MX records at name, in the order of the answer.
func (r *NetResolver) LookupMX(ctx context.Context, name string) ([]*net.MX, error) {
	rrs, err := r.ask(ctx, name, dns.TypeMX)
	if err != nil {
		return nil, err
	}
	out := make([]*net.MX, 0, len(rrs))
	for _, rr := range rrs {
		m := rr.(*dns.MX)
		out = append(out, &net.MX{Host: m.Mx, Pref: m.Preference})
	}
	return out, nil
}

// LookupIPAddr returns the AAAA and A records of host, asked at the same time.
func (r *NetResolver) LookupIPAddr(ctx context.Context, host string) ([]net.IPAddr, error) {
	var (
		wg   sync.WaitGroup
		rrs  [2][]dns.RR
		errs [2]error
	)
	for i, t := range []uint16{dns.TypeAAAA, dns.TypeA} {
		wg.Go(func() { rrs[i], errs[i] = r.ask(ctx, host, t) })
	}
	wg.Wait()
	var out []net.IPAddr
	for _, list := range rrs {
		for _, rr := range list {
			switch rr := rr.(type) {
			case *dns.A:
				out = append(out, net.IPAddr{IP: rr.A})
			case *dns.AAAA:
				out = append(out, net.IPAddr{IP: rr.AAAA})
			}
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
	rrs, err := r.ask(ctx, name, dns.TypePTR)
	if err != nil {
		return nil, err
	}
	out := make([]string, 0, len(rrs))
	for _, rr := range rrs {
		out = append(out, rr.(*dns.PTR).Ptr)
	}
	return out, nil
}

// ask asks through the DNSResolver (and its cache, if it has one) and turns its errors and
// empty answers into net's.
func (r *NetResolver) ask(ctx context.Context, name string, qtype uint16) ([]dns.RR, error) {
	rrs, _, err := r.DNS.lookup(ctx, name, qtype)
	typ := dns.TypeToString[qtype]
	switch {
	case IsNotFound(err):
		return nil, &net.DNSError{Err: "no such domain", Name: name, IsNotFound: true}
	case err != nil:
		return nil, &net.DNSError{Err: err.Error(), Name: name, IsTemporary: true}
	case len(rrs) == 0:
		return nil, &net.DNSError{Err: "no " + typ + " record", Name: name, IsNotFound: true}
	}
	maxRecords := r.MaxRecords
	if maxRecords <= 0 {
		maxRecords = 100
	}
	if len(rrs) > maxRecords {
		return nil, &net.DNSError{Err: fmt.Sprintf("answer of %d %s records, more than %d", len(rrs), typ, maxRecords), Name: name, IsTemporary: true}
	}
	return rrs, nil
}

// isNetNotFound reads net's convention.
func isNetNotFound(err error) bool {
	de, ok := err.(*net.DNSError)
	return ok && de.IsNotFound
}
