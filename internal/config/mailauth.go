package config

import (
	"fmt"
	"net"
	"time"
)

// MailAuth configures the checks of inbound mail on the MX port (issue 11): SPF (RFC 7208),
// DKIM (RFC 6376) and DMARC (RFC 7489), with the results in an Authentication-Results
// field (RFC 8601).
type MailAuth struct {
	// verify: check SPF, DKIM and DMARC of mail arriving on smtp.listen and add the
	// Authentication-Results field; DMARC p=reject is refused (550 5.7.1), quarantine goes
	// to Junk. Default true.
	Verify bool `toml:"verify"`
	// defer_temperror: answer 451 4.4.3 when a DNS failure keeps DMARC from being evaluated,
	// so that the sender retries; false accepts the message with dmarc=temperror. Default
	// true; false for the development instance, which may run without working DNS.
	DeferTempError bool `toml:"defer_temperror"`
	// resolver: host:port of the DNS server (a recursive resolver) the checks ask; "" reads
	// /etc/resolv.conf. Default "".
	Resolver string `toml:"resolver"`
	// dns_timeout: the DNS work for one message; RFC 7208 §4.6.4 asks for at least 20s.
	// Default 20s.
	DNSTimeout Duration `toml:"dns_timeout"`
	// dns_cache: DNS answers kept for their TTL (at most an hour), 0 for none. Default 10000.
	DNSCache int `toml:"dns_cache"`
}

// Sending limits per account (issue 11): a default for every account; `petrel account
// limits` sets an account's own. 0 means no limit.
type Sending struct {
	HourMessages   int `toml:"hour_messages"`   // messages per clock hour, default 0
	HourRecipients int `toml:"hour_recipients"` // recipients per clock hour, default 0
	DayMessages    int `toml:"day_messages"`    // messages per UTC day, default 0
	DayRecipients  int `toml:"day_recipients"`  // recipients per UTC day, default 0
	// policy: "soft" answers 451 4.7.1 to a message over any limit (the client retries
	// after the reset); "hard" answers 550 5.7.1 over a daily limit (the client gives up
	// and tells the user), hourly ones stay 451. Default "soft".
	Policy string `toml:"policy"`
}

// DNS is the one resolver setting of the server: [mail_auth] (inbound SPF/DKIM/DMARC) and
// [outbound] (MX, TLSA, MTA-STS) use it unless they set their own resolver, which they could
// before this section existed and still may.
type DNS struct {
	// resolver: host:port of a recursive resolver; "" reads /etc/resolv.conf. Default "".
	Resolver string `toml:"resolver"`
	// timeout: bound on one query to one server (each server is tried twice). Default 0:
	// outbound 5s, mail_auth a fifth of its dns_timeout (at least 1s).
	Timeout Duration `toml:"timeout"`
}

// MailAuthResolver is the resolver [mail_auth] uses: its own, else [dns]'s ("" for
// /etc/resolv.conf).
func (c *Config) MailAuthResolver() string {
	if c.MailAuth.Resolver != "" {
		return c.MailAuth.Resolver
	}
	return c.DNS.Resolver
}

// OutboundResolver is the resolver [outbound] uses: its own, else [dns]'s.
func (c *Config) OutboundResolver() string {
	if c.Outbound.Resolver != "" {
		return c.Outbound.Resolver
	}
	return c.DNS.Resolver
}

func defaultMailAuth() MailAuth {
	return MailAuth{Verify: true, DeferTempError: true, DNSTimeout: Duration{20 * time.Second}, DNSCache: 10000}
}

// validateMailAuth checks [mail_auth], [sending] and the connection rate of [limits].
func (c *Config) validateMailAuth() error {
	bad := func(key, format string, args ...any) error {
		return &Error{File: c.File, Key: key, Msg: fmt.Sprintf(format, args...)}
	}
	for key, r := range map[string]string{"mail_auth.resolver": c.MailAuth.Resolver, "dns.resolver": c.DNS.Resolver} {
		if r == "" {
			continue
		}
		if _, port, err := net.SplitHostPort(r); err != nil || port == "" {
			return bad(key, "%q is not host:port", r)
		}
	}
	if c.DNS.Timeout.Duration < 0 {
		return bad("dns.timeout", "must not be negative (0: each part's default)")
	}
	if c.MailAuth.DNSTimeout.Duration <= 0 {
		return bad("mail_auth.dns_timeout", "must be positive")
	}
	if c.MailAuth.DNSCache < 0 {
		return bad("mail_auth.dns_cache", "must not be negative")
	}
	if p := c.Sending.Policy; p != "soft" && p != "hard" {
		return bad("sending.policy", "must be \"soft\" or \"hard\", not %q", p)
	}
	for key, v := range map[string]int{
		"sending.hour_messages": c.Sending.HourMessages, "sending.hour_recipients": c.Sending.HourRecipients,
		"sending.day_messages": c.Sending.DayMessages, "sending.day_recipients": c.Sending.DayRecipients,
		"limits.max_connection_rate_per_ip": c.Limits.MaxConnectionRatePerIP,
	} {
		if v < 0 {
			return bad(key, "must not be negative (0: no limit)")
		}
	}
	return nil
}
