package app

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strings"

	"petrel/internal/config"
	"petrel/internal/mail/msgauth"
	"petrel/internal/outbound/mx"
)

// CheckDNS asks DNS, through r, for the records `petrel dns` prints for every hosted domain
// and reports each one that is missing or differs: the MX (it must name the host), the
// host's A/AAAA records, and the SPF, DKIM (every selector) and DMARC TXT records. The SRV,
// autoconfig CNAME, PTR, MTA-STS and TLSA records are not compared yet.
func CheckDNS(ctx context.Context, cfg *config.Config, r mx.Resolver) []Finding {
	var found []Finding
	problem := func(format string, args ...any) { found = append(found, Finding{true, fmt.Sprintf(format, args...)}) }
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
	host := strings.TrimSuffix(strings.ToLower(cfg.Hostname), ".")
	addrs, _, err := r.LookupAddrs(ctx, host)
	if err != nil || len(addrs) == 0 {
		problem("dns: %s has no A or AAAA record (%v): nobody can reach the server by its name", host, lookupText(err))
	}
	for _, d := range domains {
		mxs, _, err := r.LookupMX(ctx, d.Name)
		var hosts []string
		for _, m := range mxs {
			hosts = append(hosts, m.Host)
		}
		if !slices.ContainsFunc(hosts, func(h string) bool { return strings.EqualFold(h, host) }) {
			problem("dns: MX of %s is %v (%s), want %s", d.Name, hosts, lookupText(err), host)
		}
		keys, err := DKIMKeys(cfg.Data).SigningKeys(ctx, d.Name)
		if err != nil {
			problem("dns: %s: %v", d.Name, err)
			continue
		}
		recs, err := msgauth.Records(d.Name, keys)
		if err != nil {
			problem("dns: %s: %v", d.Name, err)
			continue
		}
		for _, rec := range recs {
			txts, _, err := r.LookupTXT(ctx, rec.Name)
			if slices.Contains(txts, rec.Text) {
				continue
			}
			// A record of the same kind that says something else differs; none is missing.
			kind := strings.SplitN(rec.Text, ";", 2)[0]
			kind = strings.Fields(kind)[0]
			var same []string
			for _, t := range txts {
				if strings.HasPrefix(t, kind) {
					same = append(same, t)
				}
			}
			if len(same) > 0 {
				problem("dns: TXT %s is %q, petrel dns says %q", rec.Name, same, rec.Text)
			} else {
				problem("dns: TXT %s is missing (%s): publish %q", rec.Name, lookupText(err), rec.Text)
			}
		}
	}
	return found
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
