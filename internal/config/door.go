package config

import (
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strings"
	"time"
)

// Door configures the checks at the door of the MX port (smtp.listen) and the external
// filters (issue 13). Each check can be switched off; DNS lists do nothing until zones are
// listed, greylisting is off by default. The DNS of the checks is [mail_auth]'s resolver.
type Door struct {
	// enabled: run the door on the MX port at all. Default true.
	Enabled bool `toml:"enabled"`
	// helo: judge the HELO/EHLO name (syntax, a bare IP, our own name claimed by another
	// host). Default true.
	HELO bool `toml:"helo"`
	// rdns: look up the client's PTR record and whether it resolves back. Default true.
	RDNS bool `toml:"rdns"`
	// junk_score, reject_score: the score of the findings at which a message goes to Junk,
	// or is refused. Defaults 5 and 10.
	JunkScore   float64 `toml:"junk_score"`
	RejectScore float64 `toml:"reject_score"`
	// dns_timeout: all DNS work of the checks of one connection. Default 10s.
	DNSTimeout Duration `toml:"dns_timeout"`
	// weights: the scores of the HELO, reverse DNS, SPF and DMARC findings.
	Weights DoorWeights `toml:"weights"`
	// dnsbl: DNS lists asked about the client IP ([[door.dnsbl]], one table each). Default none.
	DNSBL []DNSList `toml:"dnsbl"`
	// greylist: greylisting of (client network, sender, recipient).
	Greylist Greylist `toml:"greylist"`
	// milter: milters consulted during the session ([[door.milter]], in order). Default none.
	Milter []Milter `toml:"milter"`
	// rspamd: rspamd's HTTP protocol, consulted after DATA. Off while url is "".
	Rspamd Rspamd `toml:"rspamd"`
}

// DoorWeights are the scores of the built-in findings (see README for defaults).
type DoorWeights struct {
	HELOInvalid float64 `toml:"helo_invalid"`  // not a domain name nor an address literal; 2
	HELONotFQDN float64 `toml:"helo_not_fqdn"` // a single label; 1
	HELOBareIP  float64 `toml:"helo_bare_ip"`  // an address without brackets; 1
	HELOForged  float64 `toml:"helo_forged"`   // our name or address from elsewhere; 10 (refuses)
	NoPTR       float64 `toml:"no_ptr"`        // no PTR record; 1.5
	PTRMismatch float64 `toml:"ptr_mismatch"`  // the PTR name does not resolve back; 0.5
	SPFFail     float64 `toml:"spf_fail"`      // 3
	SPFSoftFail float64 `toml:"spf_softfail"`  // 1
	DMARCFail   float64 `toml:"dmarc_fail"`    // under p=none; 2
}

// DNSList is one DNSBL or DNSWL zone.
type DNSList struct {
	Zone string `toml:"zone"` // e.g. "zen.spamhaus.org"
	// weight: added to the score on a listing (negative for an allow list). Default 5.
	Weight *float64 `toml:"weight"`
	// action: "score" (add the weight; default), "junk" (Junk at least), "reject" (refuse),
	// "pass" (an allow list: no greylisting, weight added).
	Action string `toml:"action"`
	// codes: the answers that count (e.g. ["127.0.0.2", "127.0.0.3"]); default any
	// 127.0.0.0/8 answer but the 127.255.255.x errors.
	Codes []string `toml:"codes"`
}

// Greylist configures greylisting.
type Greylist struct {
	Enabled     bool     `toml:"enabled"`      // default false
	MinDelay    Duration `toml:"min_delay"`    // a retry sooner is refused again; default 5m
	RetryWindow Duration `toml:"retry_window"` // a retry later starts over; default 24h
	Expiry      Duration `toml:"expiry"`       // passed clients not seen this long are forgotten; default 840h (35 days)
	PassNets    []string `toml:"pass_networks"`
	PassDomains []string `toml:"pass_domains"` // sender domains (and their subdomains)
}

// Milter is one milter.
type Milter struct {
	Name string `toml:"name"` // for the log; default the address
	// address: "inet:HOST:PORT", "inet6:HOST:PORT" or "unix:/PATH" (Postfix's notation).
	Address string   `toml:"address"`
	Timeout Duration `toml:"timeout"` // each call (connecting included); default 30s
	// fail: "open" (a milter that is down or late is skipped; default) or "closed" (the
	// message is deferred with 451).
	Fail string `toml:"fail"`
}

// Rspamd is rspamd's HTTP protocol (/checkv2 of its normal or proxy worker).
type Rspamd struct {
	URL      string   `toml:"url"`      // e.g. "http://127.0.0.1:11333"; "" is off
	Password string   `toml:"password"` // sent as the Password header when set
	Timeout  Duration `toml:"timeout"`  // default 30s
	Fail     string   `toml:"fail"`     // "open" (default) or "closed"
}

func defaultDoor() Door {
	return Door{
		Enabled: true, HELO: true, RDNS: true, JunkScore: 5, RejectScore: 10, DNSTimeout: Duration{10 * time.Second},
		Weights: DoorWeights{HELOInvalid: 2, HELONotFQDN: 1, HELOBareIP: 1, HELOForged: 10, NoPTR: 1.5, PTRMismatch: 0.5,
			SPFFail: 3, SPFSoftFail: 1, DMARCFail: 2},
		Greylist: Greylist{MinDelay: Duration{5 * time.Minute}, RetryWindow: Duration{24 * time.Hour}, Expiry: Duration{35 * 24 * time.Hour}},
	}
}

// MilterAddress splits a milter address into a network and an address for net.Dial.
func MilterAddress(a string) (network, addr string, err error) {
	scheme, rest, ok := strings.Cut(a, ":")
	switch {
	case !ok:
	case scheme == "unix" || scheme == "local":
		if rest != "" {
			return "unix", rest, nil
		}
	case scheme == "inet" || scheme == "inet6":
		if _, port, err := net.SplitHostPort(rest); err == nil && port != "" {
			return "tcp", rest, nil
		}
	}
	return "", "", fmt.Errorf("%q is not inet:HOST:PORT or unix:/PATH", a)
}

func (c *Config) validateDoor() error {
	d := &c.Door
	bad := func(key, format string, args ...any) error {
		return &Error{File: c.File, Key: "door." + key, Msg: fmt.Sprintf(format, args...)}
	}
	if d.JunkScore <= 0 || d.RejectScore <= 0 {
		return bad("junk_score", "junk_score and reject_score must be positive")
	}
	if d.DNSTimeout.Duration <= 0 {
		return bad("dns_timeout", "must be positive")
	}
	for i, z := range d.DNSBL {
		if z.Zone == "" || strings.ContainsAny(z.Zone, " /:") {
			return bad(fmt.Sprintf("dnsbl[%d].zone", i), "%q is not a DNS zone", z.Zone)
		}
		switch z.Action {
		case "", "score", "junk", "reject", "pass":
		default:
			return bad(fmt.Sprintf("dnsbl[%d].action", i), "%q is not score, junk, reject or pass", z.Action)
		}
		for _, code := range z.Codes {
			if a, err := netip.ParseAddr(code); err != nil || !a.Is4() {
				return bad(fmt.Sprintf("dnsbl[%d].codes", i), "%q is not an IPv4 address", code)
			}
		}
	}
	g := &d.Greylist
	if g.MinDelay.Duration < 0 || g.RetryWindow.Duration <= g.MinDelay.Duration || g.Expiry.Duration <= 0 {
		return bad("greylist.retry_window", "needs 0 <= min_delay < retry_window and a positive expiry")
	}
	for _, n := range g.PassNets {
		if _, err := netip.ParsePrefix(n); err != nil {
			if _, err := netip.ParseAddr(n); err != nil {
				return bad("greylist.pass_networks", "%q is not an address or network", n)
			}
		}
	}
	return validateFilters(bad, d.Milter, d.Rspamd)
}

// validateFilters checks milters and rspamd, of [door] or [submission_filter]; bad names
// the key.
func validateFilters(bad func(key, format string, args ...any) error, milters []Milter, r Rspamd) error {
	for i, m := range milters {
		if _, _, err := MilterAddress(m.Address); err != nil {
			return bad(fmt.Sprintf("milter[%d].address", i), "%v", err)
		}
		if m.Timeout.Duration < 0 {
			return bad(fmt.Sprintf("milter[%d].timeout", i), "must not be negative")
		}
		if m.Fail != "" && m.Fail != "open" && m.Fail != "closed" {
			return bad(fmt.Sprintf("milter[%d].fail", i), "%q is not open or closed", m.Fail)
		}
	}
	if r.URL != "" {
		if u, err := url.Parse(r.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return bad("rspamd.url", "%q is not an http(s) URL", r.URL)
		}
		if r.Fail != "" && r.Fail != "open" && r.Fail != "closed" {
			return bad("rspamd.fail", "%q is not open or closed", r.Fail)
		}
		if r.Timeout.Duration < 0 {
			return bad("rspamd.timeout", "must not be negative")
		}
	}
	return nil
}

// SubmissionFilter configures external filters on the submission ports (smtp.submission,
// smtp.submissions): our own users' mail on its way out, which the MX port's door does not
// see. No DNS lists, HELO checks or greylisting there: the client has logged in.
type SubmissionFilter struct {
	// milter: milters consulted for submitted mail ([[submission_filter.milter]], in order),
	// with their own addresses and policies (an outbound rspamd, OpenDKIM, ...). Default
	// none.
	Milter []Milter `toml:"milter"`
	// rspamd: rspamd's HTTP protocol for submitted mail; the authenticated user is sent as
	// its User header, so rspamd applies its rules for outgoing mail. Off while url is "".
	Rspamd Rspamd `toml:"rspamd"`
	// spam: what happens to a submitted message a filter calls spam without refusing it
	// (rspamd's "add header" or "rewrite subject", a milter's quarantine): "reject" (550
	// 5.7.1, logged with the account; default: an account sending spam is usually a stolen
	// password, and what is refused cannot harm the domain's reputation) or "accept" (sent
	// anyway, logged). A filter's own reject or tempfail is always obeyed.
	Spam string `toml:"spam"`
}

func (c *Config) validateSubmissionFilter() error {
	f := &c.SubmissionFilter
	bad := func(key, format string, args ...any) error {
		return &Error{File: c.File, Key: "submission_filter." + key, Msg: fmt.Sprintf(format, args...)}
	}
	if f.Spam != "reject" && f.Spam != "accept" {
		return bad("spam", "%q is not reject or accept", f.Spam)
	}
	return validateFilters(bad, f.Milter, f.Rspamd)
}
