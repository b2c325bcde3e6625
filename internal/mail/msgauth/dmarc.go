package msgauth

import (
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/mail"
	"strings"

	"github.com/emersion/go-msgauth/dmarc"
	"golang.org/x/net/idna"
	"golang.org/x/net/publicsuffix"
)

// maxFromDomains bounds the distinct From domains evaluated for one message.
const maxFromDomains = 5

// checkDMARC evaluates DMARC for the message's From domains. A message has one From
// address; RFC 7489 §6.6.1 lets a receiver evaluate each domain of a From field with
// several, and so does this (also across several From fields, which RFC 5322 forbids but
// an attacker may send, hoping the MUA shows the other one): the strictest outcome wins.
func (v *Verifier) checkDMARC(ctx context.Context, res Resolver, fields []field, spfR SPFResult, dkimR []DKIMResult) DMARCResult {
	domains, err := fromDomains(fields)
	switch {
	case err != nil:
		return DMARCResult{Result: PermError, Disposition: Accept, Err: err}
	case len(domains) == 0:
		return DMARCResult{Result: PermError, Disposition: Accept, Err: errors.New("no From address")}
	case len(domains) > maxFromDomains:
		return DMARCResult{Result: PermError, Disposition: Accept, Err: fmt.Errorf("%d From domains", len(domains))}
	}
	var worst DMARCResult
	for i, d := range domains {
		r := v.evaluate(ctx, res, d, spfR, dkimR)
		if i == 0 || severity(r) > severity(worst) {
			worst = r
		}
	}
	return worst
}

// severity orders outcomes for checkDMARC: disposition first, then the result.
func severity(r DMARCResult) int {
	disp := map[Disposition]int{Accept: 0, Quarantine: 1, Reject: 2}[r.Disposition]
	res := map[Result]int{Pass: 0, None: 1, PermError: 2, TempError: 3, Fail: 4}[r.Result]
	return disp*10 + res
}

// evaluate is RFC 7489 §6.6.2 to §6.6.4 for one From domain.
func (v *Verifier) evaluate(ctx context.Context, res Resolver, from string, spfR SPFResult, dkimR []DKIMResult) DMARCResult {
	out := DMARCResult{From: from, Disposition: Accept}
	rec, recDomain, result, err := lookupPolicy(ctx, res, from)
	if rec == nil {
		out.Result, out.Err = result, err
		return out
	}
	out.RecordDomain = recDomain

	// Identifier alignment (RFC 7489 §3.1): strict means the same domain, relaxed the same
	// organizational domain.
	aligned := func(d string, mode dmarc.AlignmentMode) bool {
		d = normalizeDomain(d)
		if mode == dmarc.AlignmentStrict {
			return d == from
		}
		return d != "" && orgDomain(d) == orgDomain(from)
	}
	temp := false
	if aligned(spfR.Domain, rec.SPFAlignment) {
		switch spfR.Result {
		case Pass:
			out.Result = Pass
			return out
		case TempError:
			temp = true
		}
	}
	for _, d := range dkimR {
		if !aligned(d.Domain, rec.DKIMAlignment) {
			continue
		}
		switch d.Result {
		case Pass:
			out.Result = Pass
			return out
		case TempError:
			temp = true
		}
	}
	if temp {
		// An aligned identifier could not be checked: the message may well pass on a later
		// try (RFC 7489 §6.6.2 lets a receiver report temperror), so no policy is applied.
		out.Result = TempError
		out.Err = errors.New("an aligned SPF or DKIM check had a temporary error")
		return out
	}

	out.Result = Fail
	// RFC 7489 §6.3: sp= applies to subdomains of the organizational domain whose policy
	// was found there; a policy found at the From domain itself applies with p=.
	policy := rec.Policy
	if recDomain != from && rec.SubdomainPolicy != "" {
		policy = rec.SubdomainPolicy
	}
	out.Policy = Disposition(policy)
	out.Disposition = out.Policy
	// RFC 7489 §6.6.4: a message not sampled by pct gets the next policy down: quarantine
	// instead of reject, none instead of quarantine.
	pct := 100
	if rec.Percent != nil {
		pct = *rec.Percent
	}
	rnd := v.Rand
	if rnd == nil {
		rnd = randIntN
	}
	if pct < 100 && out.Disposition != Accept && rnd(100) >= pct {
		if out.Disposition == Reject {
			out.Disposition = Quarantine
		} else {
			out.Disposition = Accept
		}
	}
	return out
}

// lookupPolicy is RFC 7489 §6.6.3: the record at _dmarc.<From domain>, else at
// _dmarc.<organizational domain>. Without a record the result is none; with a DNS failure,
// temperror; with a record that does not parse, permerror.
func lookupPolicy(ctx context.Context, res Resolver, from string) (*dmarc.Record, string, Result, error) {
	domain := from
	for {
		txts, err := res.LookupTXT(ctx, "_dmarc."+domain)
		switch {
		case err == nil, isNotFound(err):
		case isTemporary(err):
			return nil, "", TempError, fmt.Errorf("DMARC policy of %s: %w", domain, err)
		default:
			// An answer that can never be used (too large): the domain's fault, not the
			// network's.
			return nil, "", PermError, fmt.Errorf("DMARC policy of %s: %w", domain, err)
		}
		var recs []string
		for _, t := range txts {
			// Step 2: keep only the records that begin with the version tag.
			if v, _, _ := strings.Cut(t, ";"); strings.EqualFold(strings.Join(strings.Fields(v), ""), "v=DMARC1") {
				recs = append(recs, t)
			}
		}
		switch {
		case len(recs) > 1:
			// Step 4: several records end policy discovery: DMARC does not apply.
			return nil, "", None, fmt.Errorf("%d DMARC records at %s", len(recs), domain)
		case len(recs) == 1:
			rec, err := dmarc.Parse(normalizeRecord(recs[0]))
			if err != nil {
				return nil, "", PermError, fmt.Errorf("DMARC record at %s: %w", domain, err)
			}
			return rec, domain, "", nil
		}
		org := orgDomain(domain)
		if org == domain {
			return nil, "", None, nil
		}
		domain = org // step 3: the organizational domain, once
	}
}

// normalizeRecord writes tag names and the keyword values of a DMARC record in the case
// go-msgauth's parser expects: the grammar's literals are case-insensitive (RFC 7489 §6.4
// uses ABNF, RFC 5234 §2.3), and "p=Reject" is seen in the wild. URIs are left alone.
func normalizeRecord(rec string) string {
	tags := strings.Split(rec, ";")
	for i, tag := range tags {
		k, v, ok := strings.Cut(tag, "=")
		if !ok {
			continue
		}
		k, v = strings.ToLower(strings.TrimSpace(k)), strings.TrimSpace(v)
		switch k {
		case "v":
			v = strings.ToUpper(v)
		case "p", "sp", "adkim", "aspf", "fo", "rf":
			v = strings.ToLower(v)
		}
		tags[i] = k + "=" + v
	}
	return strings.Join(tags, ";")
}

// orgDomain is the organizational domain (RFC 7489 §3.2): the public suffix plus one label.
// The public suffix list is the one compiled into golang.org/x/net/publicsuffix, so there
// is nothing to download or keep fresh at run time; a name unknown to the list falls under
// its default rule "*" (the last label is the suffix), so example.test gives example.test.
func orgDomain(d string) string {
	org, err := publicsuffix.EffectiveTLDPlusOne(d)
	if err != nil {
		return d // d is itself a public suffix (or empty)
	}
	return org
}

// normalizeDomain lower-cases d, drops a final dot and turns U-labels into A-labels, so
// that domains from DNS, signatures and headers compare equal.
func normalizeDomain(d string) string {
	d = strings.ToLower(strings.TrimSuffix(strings.TrimSpace(d), "."))
	if a, err := idna.Lookup.ToASCII(d); err == nil {
		return a
	}
	return d
}

// addressParser decodes RFC 2047 display names of any charset without failing: only the
// domain matters here, and an unknown charset must not hide it.
func addressParser() *mail.AddressParser {
	return &mail.AddressParser{WordDecoder: &mime.WordDecoder{
		CharsetReader: func(_ string, input io.Reader) (io.Reader, error) { return input, nil },
	}}
}

// fromDomains returns the distinct domains of the From fields' addresses.
func fromDomains(fields []field) ([]string, error) {
	var out []string
	seen := map[string]bool{}
	parser := addressParser()
	for _, f := range fields {
		if !strings.EqualFold(f.name, "From") {
			continue
		}
		addrs, err := parser.ParseList(f.value())
		if err != nil {
			return nil, fmt.Errorf("From: %w", err)
		}
		for _, a := range addrs {
			_, d, ok := strings.Cut(a.Address, "@")
			if d = normalizeDomain(d); !ok || d == "" {
				return nil, fmt.Errorf("From: no domain in %q", a.Address)
			}
			if !seen[d] {
				seen[d] = true
				out = append(out, d)
			}
		}
	}
	return out, nil
}
