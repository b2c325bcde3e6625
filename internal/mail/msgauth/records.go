package msgauth

import (
	"fmt"
	"strings"
)

// Record is one DNS TXT record an operator publishes for a domain.
type Record struct {
	Name string // fully qualified, without the final dot
	Text string // the record's text; a zone file wants it cut by SplitTXT (see Zone)
	Why  string // one line for the operator
}

// Zone is the record in zone-file form.
func (r Record) Zone() string {
	return ZoneTXT(r.Name, r.Text)
}

// Records are the TXT records a domain served by this host needs for SPF, DKIM and DMARC
// (`petrel dns DOMAIN` prints them; MTA-STS belongs to the outbound package):
//
//   - SPF (RFC 7208): "v=spf1 mx -all": mail comes from the domain's MX hosts, nothing else
//     may claim the domain. A set-up that relays through a smart host must add that host.
//   - DKIM (RFC 6376 §3.6.1): one record per key, at selector._domainkey.domain.
//   - DMARC (RFC 7489 §6.3): p=quarantine, aligned mail passes through DKIM alone, and a
//     forged From lands in the recipient's junk folder; raise to p=reject once mail is seen
//     to pass. No rua=: Petrel does not read aggregate reports.
func Records(domain string, keys []Key) ([]Record, error) {
	domain = strings.ToLower(strings.TrimSuffix(domain, "."))
	out := []Record{{
		Name: domain,
		Text: "v=spf1 mx -all",
		Why:  "SPF: only the domain's MX hosts send its mail (add a smart host if you relay through one)",
	}}
	for _, k := range keys {
		if !strings.EqualFold(k.Domain, domain) {
			return nil, fmt.Errorf("msgauth: key %s is not for %s", k.RecordName(), domain)
		}
		text, err := k.Record()
		if err != nil {
			return nil, err
		}
		out = append(out, Record{Name: k.RecordName(), Text: text, Why: "DKIM " + string(k.Algorithm()) + " key, selector " + k.Selector})
	}
	out = append(out, Record{
		Name: "_dmarc." + domain,
		Text: "v=DMARC1; p=quarantine",
		Why:  "DMARC: mail failing SPF and DKIM alignment goes to junk; raise to p=reject when all is well",
	})
	return out, nil
}
