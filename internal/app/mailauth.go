package app

import (
	"fmt"
	"time"

	"petrel/internal/mail/msgauth"
	"petrel/internal/outbound/mx"
	"petrel/internal/server/smtpd"
	"petrel/internal/store"
)

// inboundResolver is the DNS of the inbound checks (SPF/DKIM/DMARC and the door) from
// [mail_auth]: the configured server (or /etc/resolv.conf) with an answer cache. Both
// share it, so a client's PTR asked by the door is in the cache when SPF asks again.
func (a *App) inboundResolver() (*mx.NetResolver, error) {
	cfg := a.cfg.MailAuth
	addr := a.cfg.MailAuthResolver()
	dns := &mx.DNSResolver{Servers: []string{addr}}
	if addr == "" {
		sys, err := mx.SystemResolver()
		switch {
		case err != nil && !a.cfg.Dev:
			return nil, fmt.Errorf("mail_auth: %v (set dns.resolver)", err)
		case err != nil:
			// Lookups fail as temperror, which the development instance accepts.
			a.log.Warn("inbound mail checks have no DNS resolver", "err", err)
			dns = &mx.DNSResolver{}
		default:
			dns = sys
		}
	}
	// A query gets a fifth of the message's DNS time, so that a server that does not answer
	// leaves time for the other look-ups (each is tried twice).
	dns.Timeout = max(time.Second, cfg.DNSTimeout.Duration/5)
	if t := a.cfg.DNS.Timeout.Duration; t > 0 {
		dns.Timeout = t
	}
	if cfg.DNSCache > 0 {
		// A DNS list's new listing is seen within 15 minutes whatever its SOA says.
		dns.Cache = &mx.LookupCache{MaxEntries: cfg.DNSCache, MaxNegativeTTL: 15 * time.Minute}
	}
	return &mx.NetResolver{DNS: dns}, nil
}

// inboundVerification builds the SPF/DKIM/DMARC checks of the MX listener: one
// msgauth.Verifier for every session. nil when verification is off.
func (a *App) inboundVerification(res *mx.NetResolver) *smtpd.Verification {
	cfg := a.cfg.MailAuth
	if !cfg.Verify {
		return nil
	}
	return &smtpd.Verification{
		Verifier: &msgauth.Verifier{
			Resolver:   res,
			AuthServID: a.cfg.Hostname,
			Timeout:    cfg.DNSTimeout.Duration,
		},
		AuthServID:     a.cfg.Hostname,
		DeferTempError: cfg.DeferTempError,
	}
}

// sendingLimits is the [sending] default over the overrides and counters in the store.
func (a *App) sendingLimits() *smtpd.SendingLimits {
	s := a.cfg.Sending
	return &smtpd.SendingLimits{Store: a.store, Default: store.SendingLimits{
		HourMessages: s.HourMessages, HourRecipients: s.HourRecipients,
		DayMessages: s.DayMessages, DayRecipients: s.DayRecipients,
	}, HardDaily: s.Policy == "hard"}
}
