package app

import (
	"net"
	"net/netip"
	"strings"

	"petrel/internal/config"
	"petrel/internal/mail/door"
	"petrel/internal/mail/milter"
	"petrel/internal/mail/rspamd"
	"petrel/internal/outbound/mx"
	"petrel/internal/server/smtpd"
	"petrel/internal/store"
)

// door builds the door of the MX listener from [door]: the connection checks over the
// inbound resolver, greylisting over the store (when the store keeps its state), and the
// milters and rspamd in the order of the config. nil when the door is off.
func (a *App) door(res *mx.NetResolver) *smtpd.Door {
	cfg := a.cfg.Door
	if !cfg.Enabled {
		return nil
	}
	w := cfg.Weights
	checks := &door.Checks{
		Resolver: res,
		Timeout:  cfg.DNSTimeout.Duration,
		HELO:     cfg.HELO,
		RDNS:     cfg.RDNS,
		OwnNames: append([]string{a.cfg.Hostname}, a.cfg.Domains...),
		OwnIPs:   ownIPs(a.cfg.SMTP.Listen),
		Weights: door.Weights{HELOInvalid: w.HELOInvalid, HELONotFQDN: w.HELONotFQDN, HELOBareIP: w.HELOBareIP,
			HELOForged: w.HELOForged, NoPTR: w.NoPTR, PTRMismatch: w.PTRMismatch,
			SPFFail: w.SPFFail, SPFSoftFail: w.SPFSoftFail, DMARCFail: w.DMARCFail},
	}
	for _, z := range cfg.DNSBL {
		zone := door.Zone{Name: z.Zone, Weight: door.DefaultJunkScore, Action: door.ZoneAction(z.Action)}
		if z.Weight != nil {
			zone.Weight = *z.Weight
		}
		for _, c := range z.Codes {
			zone.Codes = append(zone.Codes, netip.MustParseAddr(c)) // validated by config
		}
		checks.Zones = append(checks.Zones, zone)
	}
	d := &smtpd.Door{Checks: checks, Scores: door.Scores{Junk: cfg.JunkScore, Reject: cfg.RejectScore}}
	if g := cfg.Greylist; g.Enabled {
		gs, ok := a.store.(store.Greylist)
		if !ok {
			a.log.Warn("greylisting is configured but the store cannot keep its state; greylisting is off")
		} else {
			gl := &door.Greylister{Store: gs, MinDelay: g.MinDelay.Duration, RetryWindow: g.RetryWindow.Duration, Expiry: g.Expiry.Duration}
			for _, n := range g.PassNets {
				p, err := netip.ParsePrefix(n)
				if err != nil {
					a := netip.MustParseAddr(n) // validated by config
					p = netip.PrefixFrom(a, a.BitLen())
				}
				gl.PassNets = append(gl.PassNets, p)
			}
			for _, dom := range g.PassDomains {
				gl.PassDomains = append(gl.PassDomains, strings.ToLower(strings.TrimSuffix(dom, ".")))
			}
			d.Greylist = gl
		}
	}
	d.Filters = filterHooks(cfg.Milter, cfg.Rspamd)
	return d
}

// submissionDoor builds the filters of the submission listeners from [submission_filter]:
// only external filters (the client has logged in), with [door]'s scores and the spam
// policy. nil when no filter is configured.
func (a *App) submissionDoor() *smtpd.Door {
	cfg := a.cfg.SubmissionFilter
	hooks := filterHooks(cfg.Milter, cfg.Rspamd)
	if len(hooks) == 0 {
		return nil
	}
	return &smtpd.Door{Filters: hooks, Scores: door.Scores{Junk: a.cfg.Door.JunkScore, Reject: a.cfg.Door.RejectScore},
		SpamAccept: cfg.Spam == "accept"}
}

// filterHooks are the milters and rspamd of a config section, in its order.
func filterHooks(milters []config.Milter, r config.Rspamd) []smtpd.FilterHook {
	var hooks []smtpd.FilterHook
	for _, m := range milters {
		network, addr, _ := config.MilterAddress(m.Address) // validated by config
		name := m.Name
		if name == "" {
			name = m.Address
		}
		hooks = append(hooks, smtpd.FilterHook{Filter: milter.New(name, network, addr),
			Timeout: m.Timeout.Duration, FailOpen: m.Fail != "closed"})
	}
	if r.URL != "" {
		hooks = append(hooks, smtpd.FilterHook{Filter: rspamd.New(r.URL, r.Password, nil),
			Timeout: r.Timeout.Duration, FailOpen: r.Fail != "closed"})
	}
	return hooks
}

// ownIPs are the specific addresses the MX listens on (not the wildcards).
func ownIPs(listen []string) []netip.Addr {
	var out []netip.Addr
	for _, l := range listen {
		host, _, err := net.SplitHostPort(l)
		if err != nil {
			continue
		}
		if a, err := netip.ParseAddr(host); err == nil && !a.IsUnspecified() {
			out = append(out, a.Unmap())
		}
	}
	return out
}
