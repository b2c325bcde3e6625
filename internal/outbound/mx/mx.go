// Package mx finds where mail for a domain goes and how the connection must be secured:
// the route of one delivery attempt.
//
// # What a route is
//
// Router.Route(ctx, domain) returns the hosts to try, in order, each with its addresses and
// its TLS requirement, or an *Error that says whether the failure is temporary (try again
// later) or permanent (bounce), with the enhanced status code (RFC 3463) for the DSN. The
// SMTP client (package smtpclient) walks the hosts; this package does no SMTP.
//
// The rules, with where they come from:
//   - MX records in preference order, equal preferences shuffled (RFC 5321 §5.1). No MX
//     records (NODATA): the domain itself is the only host, the "implicit MX" (RFC 5321
//     §5.1). NXDOMAIN: permanent (5.1.2). A null MX, a single MX ".", is a permanent
//     refusal (RFC 7505 §3, 5.1.10).
//   - CNAMEs are followed, the domain's and the MX targets' (RFC 5321 §5.1 treats the name a
//     CNAME leads to "as if it were the initial domain"; RFC 2181 §10.3 forbids MX targets
//     that are aliases, but senders follow them), at most maxCNAMEs; a loop is a temporary
//     error, like any other DNS misconfiguration that its owner may fix.
//   - An MX target that is an IP address ("10 192.0.2.1") is not a host name (RFC 1035 §3.3.9)
//     and is skipped, as Postfix does; a domain that is an address literal ("[192.0.2.1]",
//     RFC 5321 §4.1.3) is its own single host.
//   - Our own host names and addresses: MX hosts at or below our own preference are dropped
//     (RFC 5321 §5.1) so mail does not loop back to us; nothing left is a permanent 5.4.6.
//   - A host whose address lookup fails temporarily is skipped; if no host has an address,
//     the error is temporary when any lookup was (4.4.3), else permanent (5.4.4).
//   - At most maxHosts hosts, and the addresses of each, both families, IPv6 first.
//
// # TLS: MTA-STS and DANE
//
// Each host carries the TLS its connection needs (TLSPolicy):
//   - DANE (RFC 7672) when the MX answer and the host's address answer were DNSSEC-authentic
//     (the configured resolver set AD: Petrel trusts a validating resolver on a trusted path
//     instead of validating itself) and an authentic TLSA RRset exists at _PORT._tcp.HOST:
//     STARTTLS is required and the certificate must match a DANE-EE or DANE-TA record
//     (VerifyDANE). A TLSA lookup that fails makes the host unusable for this attempt
//     (§2.2: no fallback to unauthenticated delivery). DANE wins over MTA-STS for a host
//     (RFC 8461 §2).
//   - MTA-STS (RFC 8461): the STS value fetches and caches the domain's policy. In enforce
//     mode only MX hosts matching the policy are kept (none left: temporary, 4.7.5), and each
//     needs STARTTLS with a WebPKI certificate for its MX name. In testing mode the failures
//     are only reported (Host.STSViolation, and TLSTesting).
//   - Otherwise opportunistic STARTTLS.
//
// The policy cache (PolicyCache) is an interface so that the queue can keep policies in
// the store; MemoryCache serves until then.
package mx

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/net/idna"
)

// TLSPolicy is what a connection to a host must achieve.
type TLSPolicy int

const (
	// TLSOpportunistic: STARTTLS when offered, certificate not checked.
	TLSOpportunistic TLSPolicy = iota
	// TLSTesting: like opportunistic, but the certificate is checked against the MX name and
	// a failure is reported (MTA-STS testing mode).
	TLSTesting
	// TLSRequired: STARTTLS required, certificate not checked (DANE with only unusable TLSA
	// records, RFC 7672 §2.2).
	TLSRequired
	// TLSPKIX: STARTTLS required, WebPKI certificate for the host name (MTA-STS enforce,
	// smart hosts).
	TLSPKIX
	// TLSDANE: STARTTLS required, certificate matched against Host.TLSA.
	TLSDANE
)

func (p TLSPolicy) String() string {
	return [...]string{"opportunistic", "testing", "required", "pkix", "dane"}[p]
}

// Required reports whether the connection must not go on without TLS.
func (p TLSPolicy) Required() bool { return p >= TLSRequired }

// Route is where mail for one domain goes.
type Route struct {
	Domain   string // ASCII (A-label) form
	Implicit bool   // no MX records: the domain itself
	Hosts    []Host // in the order to try
	// Policy is the MTA-STS policy applied, nil if none.
	Policy *Policy
	// Skipped lists hosts left out, with why (for the log and the final error text).
	Skipped []string
}

// Host is one host to try.
type Host struct {
	Name  string // MX target as published, no trailing dot (an address literal for [IP] domains)
	Pref  int
	Addrs []netip.Addr
	TLS   TLSPolicy
	// TLSA are the usable DANE records when TLS is TLSDANE; DANENames are the reference
	// identifiers for DANE-TA name checks (RFC 7672 §3.2.2).
	TLSA      []TLSA
	DANENames []string
	// STSViolation says why the host fails an MTA-STS testing policy ("" if it does not).
	STSViolation string
}

// Error is a failed route: permanent (bounce) or temporary (retry later).
type Error struct {
	Permanent bool
	Code      string // enhanced status code, RFC 3463
	Msg       string
}

func (e *Error) Error() string { return e.Code + " " + e.Msg }

func permanent(code, format string, args ...any) *Error {
	return &Error{Permanent: true, Code: code, Msg: fmt.Sprintf(format, args...)}
}

func temporary(code, format string, args ...any) *Error {
	return &Error{Code: code, Msg: fmt.Sprintf(format, args...)}
}

const (
	maxHosts = 10 // MX hosts tried per attempt (Postfix: 5 addresses)
	maxAddrs = 4  // addresses per host
)

// Router computes routes. Only Resolver is required.
type Router struct {
	Resolver Resolver
	// Port is the destination port, for the TLSA name _PORT._tcp.HOST (default 25).
	Port int
	// STS applies MTA-STS when set.
	STS *STS
	// DANE enables TLSA lookups (only meaningful with a validating resolver).
	DANE bool
	// Self are our own host names, IsSelf recognizes our own addresses (both optional).
	Self   []string
	IsSelf func(netip.Addr) bool
	// Shuffle reorders equal-preference hosts (default math/rand/v2's); tests make it
	// deterministic.
	Shuffle func(n int, swap func(i, j int))
	// IPv4Only and IPv6Only restrict the address families.
	IPv4Only, IPv6Only bool
	Log                *slog.Logger
}

// Route finds the hosts for domain (the part after the @ of a recipient, or an address
// literal in brackets).
func (r *Router) Route(ctx context.Context, domain string) (*Route, error) {
	if strings.HasPrefix(domain, "[") {
		return r.literal(domain)
	}
	// U-labels of an SMTPUTF8 domain become A-labels (RFC 5890); empty labels and labels
	// over 63 bytes are refused here rather than sent to the resolver.
	profile := idna.New(idna.MapForLookup(), idna.BidiRule(), idna.VerifyDNSLength(true))
	ascii, err := profile.ToASCII(strings.TrimSuffix(domain, "."))
	if err != nil || ascii == "" {
		return nil, permanent("5.1.2", "bad destination domain %q", domain)
	}
	ascii = strings.ToLower(ascii)
	route := &Route{Domain: ascii}

	mxs, mxRes, err := r.Resolver.LookupMX(ctx, ascii)
	switch {
	case IsNotFound(err):
		return nil, permanent("5.1.2", "domain %s does not exist (DNS NXDOMAIN)", ascii)
	case err != nil:
		return nil, temporary("4.4.3", "MX lookup for %s: %v", ascii, err)
	}
	if len(mxs) == 1 && mxs[0].Host == "" {
		// RFC 7505 §4.1: "556 5.1.10 Recipient address has null MX".
		return nil, permanent("5.1.10", "domain %s accepts no mail (null MX, RFC 7505)", ascii)
	}
	var candidates []MXRecord
	if len(mxs) == 0 {
		route.Implicit = true
		candidates = []MXRecord{{Host: ascii}}
	}
	for _, m := range mxs {
		switch {
		case m.Host == "":
			route.Skipped = append(route.Skipped, "a null MX among other MX records")
		case isIPAddress(m.Host):
			route.Skipped = append(route.Skipped, fmt.Sprintf("MX %s: an IP address, not a host name", m.Host))
		default:
			candidates = append(candidates, m)
		}
	}
	if len(candidates) == 0 {
		return nil, temporary("4.4.4", "no usable MX host for %s: %s", ascii, strings.Join(route.Skipped, "; "))
	}
	r.order(candidates)
	if len(candidates) > maxHosts {
		candidates = candidates[:maxHosts]
	}

	var policy *Policy
	if r.STS != nil {
		var err error
		policy, err = r.STS.Policy(ctx, ascii)
		if err != nil && r.Log != nil {
			r.Log.Debug("MTA-STS", "domain", ascii, "err", err)
		}
		route.Policy = policy
	}

	hosts, err := r.resolveHosts(ctx, route, candidates, mxRes.Authentic)
	if err != nil {
		return nil, err
	}
	if hosts, err = r.dropSelf(ascii, hosts); err != nil {
		return nil, err
	}
	if policy != nil {
		hosts, err = applySTS(route, policy, hosts)
		if err != nil {
			return nil, err
		}
	}
	route.Hosts = hosts
	return route, nil
}

// order sorts by preference and shuffles runs of equal preference (RFC 5321 §5.1), so that
// load spreads over equal hosts.
func (r *Router) order(mxs []MXRecord) {
	slices.SortStableFunc(mxs, func(a, b MXRecord) int { return int(a.Pref) - int(b.Pref) })
	shuffle := r.Shuffle
	if shuffle == nil {
		shuffle = rand.Shuffle
	}
	for i := 0; i < len(mxs); {
		j := i + 1
		for j < len(mxs) && mxs[j].Pref == mxs[i].Pref {
			j++
		}
		run := mxs[i:j]
		shuffle(len(run), func(a, b int) { run[a], run[b] = run[b], run[a] })
		i = j
	}
}

// resolveHosts looks up the addresses (and TLSA records) of the candidates, all at once.
func (r *Router) resolveHosts(ctx context.Context, route *Route, mxs []MXRecord, mxAuthentic bool) ([]Host, error) {
	type result struct {
		host     Host
		notFound bool
		err      error
	}
	results := make([]result, len(mxs))
	var wg sync.WaitGroup
	for i, m := range mxs {
		wg.Go(func() {
			h, err := r.resolveHost(ctx, m, mxAuthentic)
			results[i] = result{host: h, notFound: IsNotFound(err), err: err}
		})
	}
	wg.Wait()
	var hosts []Host
	temp := false
	for _, res := range results {
		switch {
		case res.err != nil:
			temp = temp || !res.notFound
			route.Skipped = append(route.Skipped, res.err.Error())
		case len(res.host.Addrs) == 0:
			route.Skipped = append(route.Skipped, fmt.Sprintf("%s: no address", res.host.Name))
		default:
			hosts = append(hosts, res.host)
		}
	}
	if len(hosts) > 0 {
		return hosts, nil
	}
	why := strings.Join(route.Skipped, "; ")
	if temp {
		return nil, temporary("4.4.3", "no reachable host for %s: %s", route.Domain, why)
	}
	if route.Implicit {
		return nil, permanent("5.4.4", "%s has no MX and no address: %s", route.Domain, why)
	}
	return nil, permanent("5.4.4", "no MX host of %s has an address: %s", route.Domain, why)
}

func (r *Router) resolveHost(ctx context.Context, m MXRecord, mxAuthentic bool) (Host, error) {
	h := Host{Name: m.Host, Pref: int(m.Pref)}
	addrs, res, err := r.Resolver.LookupAddrs(ctx, m.Host)
	if err != nil {
		return h, err
	}
	for _, a := range addrs {
		if a.Is4() && r.IPv6Only || a.Is6() && r.IPv4Only {
			continue
		}
		h.Addrs = append(h.Addrs, a)
	}
	// IPv6 first (RFC 6724 §6, rule 6 in spirit), the resolver's order within a family.
	slices.SortStableFunc(h.Addrs, func(a, b netip.Addr) int {
		if a.Is6() != b.Is6() {
			if a.Is6() {
				return -1
			}
			return 1
		}
		return 0
	})
	if len(h.Addrs) > maxAddrs {
		h.Addrs = h.Addrs[:maxAddrs]
	}
	if !r.DANE || !mxAuthentic || !res.Authentic || len(h.Addrs) == 0 {
		return h, nil // RFC 7672 §2.2.1/§2.2.2: DANE needs secure MX and address answers
	}
	return h, r.lookupDANE(ctx, &h, res.Canonical)
}

// lookupDANE finds the host's TLSA records (RFC 7672 §2.2): at the name its address CNAME
// chain ends at first, then at the MX name itself (§2.2.2). A failed lookup is an error: a
// host that may have DANE must not be used without it.
func (r *Router) lookupDANE(ctx context.Context, h *Host, canonical string) error {
	port := r.Port
	if port == 0 {
		port = 25
	}
	bases := []string{h.Name}
	if canonical != "" && canonical != h.Name {
		bases = []string{canonical, h.Name}
	}
	for _, base := range bases {
		records, res, err := r.Resolver.LookupTLSA(ctx, "_"+strconv.Itoa(port)+"._tcp."+base)
		switch {
		case IsNotFound(err):
			continue
		case err != nil:
			return fmt.Errorf("%s: TLSA lookup failed, not delivering without DANE (RFC 7672 §2.2): %w", h.Name, err)
		case len(records) == 0 || !res.Authentic:
			continue // NODATA, or an insecure answer that cannot be trusted: no DANE here
		}
		for _, t := range records {
			if t.Usable() {
				h.TLSA = append(h.TLSA, t)
			}
		}
		if len(h.TLSA) == 0 {
			h.TLS = TLSRequired // RFC 7672 §2.2: unusable records still mean "TLS required"
			return nil
		}
		h.TLS = TLSDANE
		h.DANENames = []string{base}
		if base != h.Name {
			h.DANENames = append(h.DANENames, h.Name)
		}
		return nil
	}
	return nil
}

// dropSelf applies RFC 5321 §5.1: if we are one of the MX hosts, only hosts of a more
// preferred (lower) value than our own may be used.
func (r *Router) dropSelf(domain string, hosts []Host) ([]Host, error) {
	own := -1
	for _, h := range hosts {
		self := slices.ContainsFunc(r.Self, func(s string) bool { return strings.EqualFold(strings.TrimSuffix(s, "."), h.Name) })
		if r.IsSelf != nil {
			self = self || slices.ContainsFunc(h.Addrs, r.IsSelf)
		}
		if self && (own < 0 || h.Pref < own) {
			own = h.Pref
		}
	}
	if own < 0 {
		return hosts, nil
	}
	var keep []Host
	for _, h := range hosts {
		if h.Pref < own {
			keep = append(keep, h)
		}
	}
	if len(keep) == 0 {
		return nil, permanent("5.4.6", "mail for %s loops back to myself", domain)
	}
	return keep, nil
}

// applySTS keeps the hosts the policy allows and sets their TLS requirement.
func applySTS(route *Route, p *Policy, hosts []Host) ([]Host, error) {
	var keep []Host
	for _, h := range hosts {
		match := p.Matches(h.Name)
		if h.TLS == TLSDANE { // DANE wins (RFC 8461 §2)
			keep = append(keep, h)
			continue
		}
		switch {
		case p.Mode == ModeEnforce && !match:
			route.Skipped = append(route.Skipped, fmt.Sprintf("%s: not in the MTA-STS policy", h.Name))
			continue
		case p.Mode == ModeEnforce:
			h.TLS = TLSPKIX
		case !match:
			h.STSViolation = "not in the MTA-STS policy"
			h.TLS = max(h.TLS, TLSTesting)
		default:
			h.TLS = max(h.TLS, TLSTesting)
		}
		keep = append(keep, h)
	}
	if len(keep) == 0 {
		// RFC 8461 §5.1: a temporary failure, the policy or the MX may change.
		return nil, temporary("4.7.5", "no MX host of %s matches its MTA-STS policy (%s)", route.Domain, strings.Join(p.MX, ", "))
	}
	return keep, nil
}

// literal routes an address-literal domain, "[192.0.2.1]" or "[IPv6:2001:db8::1]" (RFC 5321
// §4.1.3).
func (r *Router) literal(domain string) (*Route, error) {
	inner := strings.TrimSuffix(strings.TrimPrefix(domain, "["), "]")
	if v6, ok := strings.CutPrefix(inner, "IPv6:"); ok {
		inner = v6
	} else if strings.Contains(inner, ":") {
		return nil, permanent("5.1.2", "bad address literal %s", domain)
	}
	a, err := netip.ParseAddr(inner)
	if err != nil || !strings.HasSuffix(domain, "]") || a.Zone() != "" {
		return nil, permanent("5.1.2", "bad address literal %s", domain)
	}
	if r.IsSelf != nil && r.IsSelf(a) {
		return nil, permanent("5.4.6", "mail for %s loops back to myself", domain)
	}
	return &Route{Domain: domain, Hosts: []Host{{Name: domain, Addrs: []netip.Addr{a.Unmap()}}}}, nil
}

func isIPAddress(host string) bool {
	_, err := netip.ParseAddr(host)
	return err == nil
}

// AsError finds an *Error in err's chain.
func AsError(err error) (*Error, bool) {
	var e *Error
	ok := errors.As(err, &e)
	return e, ok
}
