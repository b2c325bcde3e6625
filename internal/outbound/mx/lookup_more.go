package mx

import (
	"context"
	"net/netip"
	"strings"

	"github.com/miekg/dns"
)

// Lookups that delivery does not need but `petrel check --dns` does: SRV, CNAME and PTR
// records, with the same error conventions as Resolver's.

// SRVRecord is one SRV record; Target has no trailing dot.
type SRVRecord struct {
	Priority, Weight, Port uint16
	Target                 string
}

// LookupSRV asks for the SRV records at name (e.g. "_imaps._tcp.example.org").
func (r *DNSResolver) LookupSRV(ctx context.Context, name string) ([]SRVRecord, Result, error) {
	rrs, res, err := r.lookup(ctx, name, dns.TypeSRV)
	var out []SRVRecord
	for _, rr := range rrs {
		s := rr.(*dns.SRV)
		out = append(out, SRVRecord{Priority: s.Priority, Weight: s.Weight, Port: s.Port, Target: strings.ToLower(strings.TrimSuffix(s.Target, "."))})
	}
	return out, res, err
}

// LookupCNAME returns the target of the CNAME record at name ("" when the name has none),
// without following it.
func (r *DNSResolver) LookupCNAME(ctx context.Context, name string) (string, Result, error) {
	rrs, res, err := r.lookup(ctx, name, dns.TypeCNAME)
	for _, rr := range rrs {
		return strings.ToLower(strings.TrimSuffix(rr.(*dns.CNAME).Target, ".")), res, err
	}
	return "", res, err
}

// LookupPTR returns the names of an address's PTR records (in-addr.arpa, ip6.arpa).
func (r *DNSResolver) LookupPTR(ctx context.Context, addr netip.Addr) ([]string, Result, error) {
	rev, err := dns.ReverseAddr(addr.Unmap().String())
	if err != nil {
		return nil, Result{}, &LookupError{Name: addr.String(), Type: "PTR", NotFound: true, Err: err}
	}
	rrs, res, err := r.lookup(ctx, rev, dns.TypePTR)
	var out []string
	for _, rr := range rrs {
		out = append(out, strings.ToLower(strings.TrimSuffix(rr.(*dns.PTR).Ptr, ".")))
	}
	return out, res, err
}
