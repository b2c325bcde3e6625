package app

import (
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"slices"
	"strings"

	"petrel/internal/config"
	"petrel/internal/outbound/mx"
)

// DNSLookup is what CheckDNS asks of DNS: the lookups of delivery's resolver and the SRV,
// CNAME and PTR ones (mx.DNSResolver has them all).
type DNSLookup interface {
	mx.Resolver
	LookupSRV(ctx context.Context, name string) ([]mx.SRVRecord, mx.Result, error)
	LookupCNAME(ctx context.Context, name string) (string, mx.Result, error)
	LookupPTR(ctx context.Context, addr netip.Addr) ([]string, mx.Result, error)
}

// CheckDNS asks DNS, through r, for the records `petrel dns` prints for every hosted domain
// (RecordsFor) and reports each one that is missing or differs: the MX (it must name the
// host), the host's A/AAAA records and the PTR record of each address, the RFC 6186 /
// RFC 8314 and Autodiscover SRV records, the autoconfig and MTA-STS policy hosts (a CNAME
// to the host, or the host's addresses), the SPF, DKIM (every selector), DMARC and MTA-STS
// TXT records, and the host's TLSA record.
func CheckDNS(ctx context.Context, cfg *config.Config, r DNSLookup) []Finding {
	if _, err := os.Stat(StorePath(cfg.Data)); err != nil && cfg.Store.Backend != "postgres" {
		return []Finding{{false, "dns: no store yet, so no hosted domains to check"}}
	}
	st, err := OpenConfiguredStore(ctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		return []Finding{{true, fmt.Sprintf("dns: cannot list the domains: %v", err)}}
	}
	defer st.Close()
	domains, err := st.Domains(ctx)
	if err != nil {
		return []Finding{{true, fmt.Sprintf("dns: cannot list the domains: %v", err)}}
	}
	dkim, err := OpenDKIMStore(cfg, st, false)
	if err != nil {
		return []Finding{{true, fmt.Sprintf("dns: %v", err)}}
	}
	c := &dnsCheck{ctx: ctx, r: r, host: strings.TrimSuffix(strings.ToLower(cfg.Hostname), ".")}
	addrs, _, err := r.LookupAddrs(ctx, c.host)
	if err != nil || len(addrs) == 0 {
		c.problem("dns: %s has no A or AAAA record (%v): nobody can reach the server by its name", c.host, lookupText(err))
	}
	c.hostAddrs = addrs
	// RFC 5321 §4.1.4 leaves reverse DNS to receivers, and most refuse or mark mail from an
	// address whose PTR does not name the host (issue 13's door checks do too).
	for _, a := range addrs {
		names, _, err := r.LookupPTR(ctx, a)
		switch {
		case slices.Contains(names, c.host):
		case len(names) > 0:
			c.problem("dns: PTR of %s is %v, want %s", a, names, c.host)
		default:
			c.problem("dns: PTR of %s is missing (%s): want %s", a, lookupText(err), c.host)
		}
	}
	for _, d := range domains {
		mxs, _, err := r.LookupMX(ctx, d.Name)
		var hosts []string
		for _, m := range mxs {
			hosts = append(hosts, m.Host)
		}
		if !slices.ContainsFunc(hosts, func(h string) bool { return strings.EqualFold(h, c.host) }) {
			c.problem("dns: MX of %s is %v (%s), want %s", d.Name, hosts, lookupText(err), c.host)
		}
		keys, err := dkim.Keys(ctx, d.Name)
		if err != nil {
			c.problem("dns: %s: %v", d.Name, err)
			continue
		}
		recs, err := RecordsFor(cfg, d.Name, keys)
		if err != nil {
			c.problem("dns: %s: %v", d.Name, err)
			continue
		}
		for _, s := range slices.Concat(recs.Services, recs.Autodiscover) {
			c.srv(s)
		}
		c.hostAlias(recs.Autoconfig)
		for _, rec := range recs.Auth {
			c.txt(rec.Name, rec.Text)
		}
		if m := recs.MTASTS; m != nil {
			c.hostAlias(m.PolicyHost)
			c.txt(m.TXTName, m.TXT)
		}
		for _, t := range recs.TLSA {
			c.tlsa(t)
		}
		if recs.TLSAError != nil {
			c.found = append(c.found, Finding{false, fmt.Sprintf("dns: %s: %v", d.Name, recs.TLSAError)})
		}
	}
	return c.found
}

// dnsCheck compares records one at a time and collects what differs.
type dnsCheck struct {
	ctx       context.Context
	r         DNSLookup
	host      string
	hostAddrs []netip.Addr
	found     []Finding
}

func (c *dnsCheck) problem(format string, args ...any) {
	c.found = append(c.found, Finding{true, fmt.Sprintf(format, args...)})
}

// txt checks a TXT record. A record of the same kind (the text up to its first ';' or
// space: "v=spf1", "v=DKIM1", "v=DMARC1", "v=STSv1") that says something else differs;
// with none, the record is missing.
func (c *dnsCheck) txt(name, want string) {
	txts, _, err := c.r.LookupTXT(c.ctx, name)
	if slices.Contains(txts, want) {
		return
	}
	kind := strings.Fields(strings.SplitN(want, ";", 2)[0])[0]
	var same []string
	for _, t := range txts {
		if strings.HasPrefix(t, kind) {
			same = append(same, t)
		}
	}
	if len(same) > 0 {
		c.problem("dns: TXT %s is %q, petrel dns says %q", name, same, want)
	} else {
		c.problem("dns: TXT %s is missing (%s): publish %q", name, lookupText(err), want)
	}
}

// srv checks that one SRV record is published as petrel dns prints it.
func (c *dnsCheck) srv(want SRVRecord) {
	got, _, err := c.r.LookupSRV(c.ctx, want.Name)
	w := mx.SRVRecord{Priority: uint16(want.Priority), Weight: uint16(want.Weight), Port: uint16(want.Port), Target: want.Target}
	if slices.Contains(got, w) {
		return
	}
	text := func(s mx.SRVRecord) string { return fmt.Sprintf("%d %d %d %s", s.Priority, s.Weight, s.Port, s.Target) }
	if len(got) == 0 {
		c.problem("dns: SRV %s is missing (%s): publish %q", want.Name, lookupText(err), text(w))
		return
	}
	var have []string
	for _, s := range got {
		have = append(have, text(s))
	}
	c.problem("dns: SRV %s is %q, petrel dns says %q", want.Name, have, text(w))
}

// hostAlias checks a name that must lead to the host (autoconfig, the MTA-STS policy
// host): a CNAME to it, as petrel dns prints, or addresses of the host's own.
func (c *dnsCheck) hostAlias(name string) {
	target, _, err := c.r.LookupCNAME(c.ctx, name)
	switch {
	case target == c.host:
		return
	case target != "":
		c.problem("dns: CNAME %s is %s, petrel dns says %s", name, target, c.host)
		return
	}
	addrs, _, aerr := c.r.LookupAddrs(c.ctx, name)
	if len(addrs) == 0 {
		if err == nil {
			err = aerr
		}
		c.problem("dns: CNAME %s is missing (%s): publish %s", name, lookupText(err), c.host)
		return
	}
	for _, a := range addrs {
		if !slices.Contains(c.hostAddrs, a) {
			c.problem("dns: %s has addresses %v, not the host's %v: petrel dns says CNAME %s", name, addrs, c.hostAddrs, c.host)
			return
		}
	}
}

// tlsa checks the host's DANE record: a published TLSA set without it makes validating
// senders refuse the host's certificate (RFC 7672 §2.2).
func (c *dnsCheck) tlsa(want TLSARecord) {
	got, _, err := c.r.LookupTLSA(c.ctx, want.Name)
	var have []string
	for _, t := range got {
		v := TLSARecord{Usage: t.Usage, Selector: t.Selector, MatchingType: t.MatchingType, Data: hex.EncodeToString(t.Data)}.Value()
		if v == want.Value() {
			return
		}
		have = append(have, v)
	}
	if len(have) == 0 {
		c.problem("dns: TLSA %s is missing (%s): publish %q", want.Name, lookupText(err), want.Value())
		return
	}
	c.problem("dns: TLSA %s is %q, petrel dns says %q: senders that use DANE will refuse the certificate", want.Name, have, want.Value())
}

func lookupText(err error) string {
	switch {
	case err == nil:
		return "no such record"
	case mx.IsNotFound(err):
		return "no such name"
	}
	return err.Error()
}
