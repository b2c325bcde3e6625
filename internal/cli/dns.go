package cli

import (
	"fmt"

	"petrel/internal/app"
	"petrel/internal/config"
	"petrel/internal/mail/msgauth"
	"petrel/internal/store"
)

func dnsCommands() []command {
	return []command{{
		noun: "dns", args: "DOMAIN",
		help: "print the DNS records DOMAIN needs, as zone-file lines",
		more: `
Prints, ready to paste into the zone of DOMAIN: the MX record (to the configured hostname), the
SRV records that let mail clients find the submission, IMAP and POP3 services (RFC 6186,
RFC 8314; only for the listeners configured, implicit TLS preferred, IMAP before POP3), the
autoconfig CNAME and Autodiscover SRV record of the client set-up documents, the TXT records
for SPF, DKIM (every selector of the domain's keys) and DMARC, and the MTA-STS records whose id
matches the policy the HTTPS listener serves. The hostname
itself needs A/AAAA records, which are not DOMAIN's to print. For the development instance the
ports are its loopback ports and the records are for tests only.`,
		run: dnsRecords,
	}}
}

func dnsRecords(e *Env, args []string) error {
	if err := exactArgs(args, 1, "dns DOMAIN"); err != nil {
		return err
	}
	d, err := normDomain(args[0])
	if err != nil {
		return err
	}
	c, err := e.config()
	if err != nil {
		return err
	}
	return e.withStore(func(st store.Store) error {
		if err := e.requireDomain(st, d); err != nil {
			return err
		}
		keys, err := domainKeys(e, c, st, d)
		if err != nil {
			return err
		}
		return writeZone(e, c, d, keys)
	})
}

// writeZone prints the records of domain d (app.RecordsFor); fully qualified names, so the
// lines paste into any zone regardless of its $ORIGIN.
func writeZone(e *Env, c *config.Config, d string, keys []msgauth.Key) error {
	recs, err := app.RecordsFor(c, d, keys)
	if err != nil {
		return err
	}
	w := e.Stdout
	host := recs.Host + "."
	fmt.Fprintf(w, "; DNS records for %s, served by %s\n", d, host)
	if c.Dev {
		fmt.Fprintf(w, "; development instance: %s and every port below are loopback (127.0.0.1); for tests only\n", host)
	} else {
		fmt.Fprintf(w, "; %s needs its own A/AAAA records (and a PTR record for each address)\n", host)
	}

	fmt.Fprintln(w, "\n; Mail for the domain goes to this host (RFC 5321 §5.1).")
	fmt.Fprintf(w, "%s. IN MX 10 %s\n", d, host)

	fmt.Fprintln(w, "\n; Mail clients find the services (RFC 6186, RFC 8314): priority, weight, port, host.")
	for _, s := range recs.Services {
		fmt.Fprintf(w, "%s. IN SRV %d %d %d %s. ; %s\n", s.Name, s.Priority, s.Weight, s.Port, s.Target, s.Why)
	}

	fmt.Fprintln(w, "\n; Client set-up documents, served by the HTTP listener: Thunderbird asks autoconfig.DOMAIN,")
	fmt.Fprintln(w, "; Outlook finds the Autodiscover host by SRV (the certificate must cover these names).")
	fmt.Fprintf(w, "%s. IN CNAME %s\n", recs.Autoconfig, host)
	for _, s := range recs.Autodiscover {
		fmt.Fprintf(w, "%s. IN SRV %d %d %d %s.\n", s.Name, s.Priority, s.Weight, s.Port, s.Target)
	}

	fmt.Fprintln(w, "\n; Sender authentication: SPF (RFC 7208), DKIM (RFC 6376), DMARC (RFC 7489).")
	for _, r := range recs.Auth {
		fmt.Fprintf(w, "; %s\n%s\n", r.Why, r.Zone())
	}
	if len(keys) == 0 {
		fmt.Fprintf(w, "; %s has no DKIM key yet: make one with `petrel dkim keygen %s`, then print these records again.\n", d, d)
	}
	if m := recs.MTASTS; m != nil {
		fmt.Fprintln(w, "\n; MTA-STS (RFC 8461): senders fetch https://mta-sts.DOMAIN/.well-known/mta-sts.txt (served by")
		fmt.Fprintln(w, "; the HTTPS listener on port 443; the certificate must cover mta-sts.DOMAIN); the id changes")
		fmt.Fprintln(w, "; with the policy (http.mta_sts_mode, mta_sts_max_age, hostname): print these records again then.")
		fmt.Fprintf(w, "%s. IN CNAME %s\n", m.PolicyHost, host)
		fmt.Fprintln(w, msgauth.ZoneTXT(m.TXTName, m.TXT))
	} else {
		fmt.Fprintln(w, "\n; MTA-STS is off (http.mta_sts_mode, or no HTTPS listener): no record to publish.")
	}
	if len(recs.TLSA) > 0 {
		fmt.Fprintln(w, "\n; DANE (RFC 7672): senders that validate DNSSEC check the host's certificate against this key")
		fmt.Fprintln(w, "; (3 1 1: the SHA-256 of tls.cert's public key); publish it only in a DNSSEC-signed zone, and")
		fmt.Fprintln(w, "; the new record before a certificate with a new key goes in.")
		for _, t := range recs.TLSA {
			fmt.Fprintf(w, "%s. IN TLSA %s\n", t.Name, t.Value())
		}
	}
	if recs.TLSAError != nil {
		fmt.Fprintf(w, "\n; No DANE (TLSA) record: %v\n", recs.TLSAError)
	}
	return nil
}
