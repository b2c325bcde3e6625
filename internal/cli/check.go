package cli

import (
	"flag"
	"fmt"
	"time"

	"petrel/internal/app"
	"petrel/internal/outbound/mx"
)

func checkCommands() []command {
	return []command{
		{noun: "check", args: "[--dns] [--resolver HOST:PORT]", help: "report every problem a start would run into, without starting", run: checkRun, flags: checkFlags,
			more: `Reads the config and the store without starting a listener or writing anything: the user
to switch to, the certificate and key (readable, a pair, naming the host name, not about
to expire), the data directory and the store's schema, each hosted domain's DKIM keys, and
every listen address (free and bindable; not while a server runs on the data directory).
With --dns it also asks DNS (--resolver, else dns.resolver, else /etc/resolv.conf) for every
record ` + "`petrel dns`" + ` prints for each hosted domain: MX, the RFC 6186/8314 and Autodiscover
SRV records, autoconfig, SPF, DKIM, DMARC, MTA-STS (the TXT record and the policy host) and
the host's TLSA record; and for the host's A/AAAA records and the PTR record of each address.
It lists each one that is missing or differs.
Exits with status 1 if a start would fail or a record is wrong.`},
	}
}

func checkFlags() *flag.FlagSet {
	fs := flag.NewFlagSet("check", flag.ContinueOnError)
	fs.Bool("dns", false, "also compare the published DNS records with what petrel dns prints")
	fs.String("resolver", "", "DNS server to ask, host:port (default: those of /etc/resolv.conf)")
	return fs
}

func checkRun(e *Env, args []string) error {
	fset := checkFlags()
	if err := parseFlags(fset, args, 0, "check [--dns] [--resolver HOST:PORT]"); err != nil {
		return err
	}
	c, err := e.config()
	if err != nil {
		return err // the config itself: file:line: key: reason
	}
	findings := app.Check(e.Ctx, c, time.Now())
	if fset.Lookup("dns").Value.String() == "true" {
		var r *mx.DNSResolver
		if addr := fset.Lookup("resolver").Value.String(); addr != "" {
			r = &mx.DNSResolver{Servers: []string{addr}}
		} else if addr := c.DNS.Resolver; addr != "" {
			r = &mx.DNSResolver{Servers: []string{addr}}
		} else if r, err = mx.SystemResolver(); err != nil {
			return err
		}
		findings = append(findings, app.CheckDNS(e.Ctx, c, r)...)
	}
	problems := 0
	for _, f := range findings {
		if f.Problem {
			problems++
			fmt.Fprintln(e.Stdout, "problem: "+f.Text)
		} else {
			fmt.Fprintln(e.Stdout, "warning: "+f.Text)
		}
	}
	if problems > 0 {
		return fmt.Errorf("%d problems: a start would fail or mail would break", problems)
	}
	fmt.Fprintln(e.Stdout, "ok: nothing in the way of a start")
	return nil
}
