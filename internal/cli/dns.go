package cli

import (
	"fmt"
	"strings"

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
RFC 8314; only for the listeners configured, implicit TLS preferred), the autoconfig CNAME, and
the TXT records for SPF, DKIM (every selector of the domain's keys) and DMARC. The hostname
itself needs A/AAAA records, which are not DOMAIN's to print. For the development instance the
ports are its loopback ports and the records are for tests only.`,
		run: dnsRecords,
	}}
}

// srvService is one RFC 6186 / RFC 8314 service and the listeners that offer it.
type srvService struct {
	name     string // e.g. "_submissions._tcp"
	priority int    // RFC 8314 §5.1: implicit TLS is preferred (lower) over STARTTLS
	addrs    []string
	why      string
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
		keys, err := app.DKIMKeys(c.Data).SigningKeys(e.Ctx, d)
		if err != nil {
			return err
		}
		return writeZone(e, c, d, keys)
	})
}

// writeZone prints the records of domain d; fully qualified names, so the lines paste into
// any zone regardless of its $ORIGIN.
func writeZone(e *Env, c *config.Config, d string, keys []msgauth.Key) error {
	w := e.Stdout
	host := strings.TrimSuffix(strings.ToLower(c.Hostname), ".") + "."
	fmt.Fprintf(w, "; DNS records for %s, served by %s\n", d, host)
	if c.Dev {
		fmt.Fprintf(w, "; development instance: %s and every port below are loopback (127.0.0.1); for tests only\n", host)
	} else {
		fmt.Fprintf(w, "; %s needs its own A/AAAA records (and a PTR record for each address)\n", host)
	}

	fmt.Fprintln(w, "\n; Mail for the domain goes to this host (RFC 5321 §5.1).")
	fmt.Fprintf(w, "%s. IN MX 10 %s\n", d, host)

	fmt.Fprintln(w, "\n; Mail clients find the services (RFC 6186, RFC 8314): priority, weight, port, host.")
	services := []srvService{
		{"_submissions._tcp", 0, c.SMTP.Submissions, "submission, implicit TLS"},
		{"_submission._tcp", 10, c.SMTP.Submission, "submission, STARTTLS"},
		// IMAP has no listener yet: _imaps._tcp (993) and _imap._tcp (143) are printed once
		// the configuration has one, like the services below.
		{"_pop3s._tcp", 0, c.POP3.ListenTLS, "POP3, implicit TLS"},
		{"_pop3._tcp", 10, c.POP3.Listen, "POP3, STLS"},
	}
	for _, s := range services {
		for _, port := range app.ListenPorts(s.addrs) {
			fmt.Fprintf(w, "%s.%s. IN SRV %d 1 %d %s ; %s\n", s.name, d, s.priority, port, host, s.why)
		}
	}
	fmt.Fprintln(w, "; No IMAP listener is configured, so no _imaps._tcp or _imap._tcp record.")

	fmt.Fprintln(w, "\n; Thunderbird's autoconfig looks up autoconfig.DOMAIN (served with the HTTP listener of issue 10).")
	fmt.Fprintf(w, "autoconfig.%s. IN CNAME %s\n", d, host)

	recs, err := msgauth.Records(d, keys)
	if err != nil {
		return err
	}
	fmt.Fprintln(w, "\n; Sender authentication: SPF (RFC 7208), DKIM (RFC 6376), DMARC (RFC 7489).")
	for _, r := range recs {
		fmt.Fprintf(w, "; %s\n%s\n", r.Why, r.Zone())
	}
	if len(keys) == 0 {
		fmt.Fprintf(w, "; %s has no DKIM key yet: make one with `petrel dkim keygen %s`, then print these records again.\n", d, d)
	}
	fmt.Fprintln(w, "\n; MTA-STS (RFC 8461) records arrive with outbound delivery; nothing to publish for it yet.")
	return nil
}
