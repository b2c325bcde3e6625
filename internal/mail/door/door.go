// Package door decides what happens to a message at the SMTP door of the MX port (issue 13,
// part 2): reputation of the client IP in DNS lists (DNSBL/DNSWL), the sanity of its HELO
// name and of its reverse DNS, greylisting, and the one decision that combines these with
// SPF/DMARC results and external filters' verdicts into reject, tempfail, junk or accept.
//
// The checks only gather Findings; Decide alone turns findings into an action, so that the
// rules are in one place and the log line shows every reason that counted:
//
//   - a finding with Reject set refuses the message whatever the score (a zone configured
//     with action "reject", our own name claimed in HELO by a stranger, a filter's reject);
//   - a finding with TempFail set answers 4xx (greylisting, a filter's soft reject);
//   - otherwise the scores add up: at RejectScore or more the message is refused, at
//     JunkScore or more it goes to Junk, else it is accepted. Allow lists score negative.
//
// A DNS failure is never a listing: the check is recorded as an error (in the log) and
// scores nothing, so a broken list or resolver lets mail through rather than refusing it.
//
// The package knows no SMTP library and no store implementation: smtpd calls it at MAIL
// (connection checks), RCPT (greylisting) and after DATA (the final decision).
package door

import (
	"context"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Resolver is the DNS the checks ask; mx.NetResolver (with its cache) and *net.Resolver
// implement it. Errors follow net's convention: *net.DNSError with IsNotFound for a name
// or record that does not exist, anything else is a failure.
type Resolver interface {
	LookupIPAddr(ctx context.Context, host string) ([]net.IPAddr, error)
	LookupAddr(ctx context.Context, addr string) ([]string, error)
}

// Action is what happens to a message.
type Action int

const (
	Accept   Action = iota // deliver as usual
	Junk                   // deliver into the Junk mailbox
	Discard                // answer 250 and store nothing (a filter asked for it)
	TempFail               // 4xx: try again later
	Reject                 // 5xx: refused
)

func (a Action) String() string {
	switch a {
	case Junk:
		return "junk"
	case Discard:
		return "discard"
	case TempFail:
		return "tempfail"
	case Reject:
		return "reject"
	}
	return "accept"
}

// Finding is one thing a check found.
type Finding struct {
	Check    string  // "dnsbl:zen.spamhaus.org", "helo", "rdns", "spf", "milter:rspamd"...
	Result   string  // what it found, for the log: "127.0.0.2", "not-fqdn", "fail"
	Score    float64 // added to the message's score
	Reject   bool    // refuse whatever the score
	TempFail bool    // answer 4xx whatever the score (unless something rejects)
	Junk     bool    // file as junk whatever the score (a filter's quarantine or spam header)
	Discard  bool    // accept and drop (a milter's discard)
	Pass     bool    // an allow list vouches for the client: greylisting is skipped
	Error    bool    // the check could not be made (DNS failure); scores nothing
	// Reply is the text a refusal gives the client; "" for a generic one. Filters set it
	// (rspamd's and a milter's own reply text); checks of ours never show their config.
	Reply string
}

func (f Finding) String() string {
	s := f.Check + "=" + f.Result
	switch {
	case f.Reject:
		s += "(reject)"
	case f.TempFail:
		s += "(tempfail)"
	case f.Discard:
		s += "(discard)"
	case f.Junk:
		s += "(junk)"
	case f.Score != 0:
		s += "(" + strconv.FormatFloat(f.Score, 'g', 4, 64) + ")"
	}
	return s
}

// Decision is the outcome of Decide.
type Decision struct {
	Action  Action
	Score   float64
	Reasons []string // the findings that counted (score, reject, tempfail, error)
	Reply   string   // the client-visible text of a finding that decided a refusal, or ""
}

// Scores are the thresholds of Decide.
type Scores struct {
	Junk   float64 // at or above: Junk; 0 means DefaultJunkScore
	Reject float64 // at or above: Reject; 0 means DefaultRejectScore
}

// Default thresholds (the config's defaults).
const (
	DefaultJunkScore   = 5
	DefaultRejectScore = 10
)

// Decide combines findings into one decision.
func Decide(s Scores, findings []Finding) Decision {
	if s.Junk == 0 {
		s.Junk = DefaultJunkScore
	}
	if s.Reject == 0 {
		s.Reject = DefaultRejectScore
	}
	var d Decision
	reject, tempfail, junk, discard := false, false, false, false
	for _, f := range findings {
		if f.Error || f.Score != 0 || f.Reject || f.TempFail || f.Junk || f.Discard {
			d.Reasons = append(d.Reasons, f.String())
		}
		if f.Error {
			continue
		}
		d.Score += f.Score
		if f.Reject && !reject {
			reject = true
			d.Reply = f.Reply
		}
		if f.TempFail && !tempfail && !reject {
			tempfail = true
			d.Reply = f.Reply
		}
		junk = junk || f.Junk
		discard = discard || f.Discard
	}
	switch {
	case reject:
		d.Action = Reject
	case tempfail:
		d.Action = TempFail
	case discard:
		d.Action, d.Reply = Discard, ""
	case d.Score >= s.Reject:
		d.Action, d.Reply = Reject, ""
	case junk || d.Score >= s.Junk:
		d.Action, d.Reply = Junk, ""
	default:
		d.Reply = ""
	}
	return d
}

// ZoneAction is what a listing in a DNS list does.
type ZoneAction string

const (
	ZoneScore  ZoneAction = "score"  // add the zone's weight
	ZoneJunk   ZoneAction = "junk"   // add the weight and file as junk at least
	ZoneReject ZoneAction = "reject" // refuse
	ZonePass   ZoneAction = "pass"   // an allow list (DNSWL): add the weight (negative), skip greylisting
)

// Zone is one DNS list: a DNSBL (Spamhaus-style, RFC 5782) or a DNSWL.
type Zone struct {
	Name   string     // e.g. "zen.spamhaus.org"
	Weight float64    // added to the score when the client is listed
	Action ZoneAction // "" means ZoneScore
	// Codes are the answers that count as a listing; empty means any address in
	// 127.0.0.0/8 (RFC 5782 §2.1) other than the error codes in 127.255.255.0/24.
	Codes []netip.Addr
}

// Checks are the connection checks of the MX port. The zero value checks nothing.
type Checks struct {
	Resolver Resolver
	Timeout  time.Duration // all DNS work of one connection's checks; 0 means 10s
	Zones    []Zone
	HELO     bool // check the HELO/EHLO name
	RDNS     bool // check the client's reverse DNS
	// OwnNames and OwnIPs are ours: a stranger that claims them in HELO is forging.
	OwnNames []string
	OwnIPs   []netip.Addr
	Weights  Weights
}

// Weights are the scores of the HELO and reverse-DNS findings and of SPF and DMARC results.
type Weights struct {
	HELOInvalid   float64 // not a domain name nor an address literal (RFC 5321 §4.1.1.1)
	HELONotFQDN   float64 // a single label ("localhost", "PC123")
	HELOBareIP    float64 // an IP address without the brackets of an address literal
	HELOForged    float64 // our own name or address, from a client that is not us; ≥ reject score refuses
	NoPTR         float64 // the client IP has no PTR record
	PTRMismatch   float64 // no PTR name resolves back to the client IP
	SPFFail       float64
	SPFSoftFail   float64
	DMARCFail     float64 // DMARC fail under p=none (p=reject and quarantine act on their own)
	DMARCNoPolicy float64
}

// DefaultWeights are the weights when the config sets none: alone, the HELO and reverse-DNS
// findings of a badly configured but honest server stay under the junk score; a forged
// HELO refuses.
var DefaultWeights = Weights{
	HELOInvalid: 2, HELONotFQDN: 1, HELOBareIP: 1, HELOForged: DefaultRejectScore,
	NoPTR: 1.5, PTRMismatch: 0.5,
	SPFFail: 3, SPFSoftFail: 1, DMARCFail: 2,
}

// Connection runs the checks that depend on the client alone (the DNS lists and reverse
// DNS, in parallel) and on its HELO name.
func (c *Checks) Connection(ctx context.Context, ip netip.Addr, helo string) []Finding {
	if c == nil {
		return nil
	}
	timeout := c.Timeout
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	ip = ip.Unmap()
	// One slot per check, filled in parallel: the log follows the config's order, not the
	// order in which answers arrive.
	slots := make([]*Finding, len(c.Zones)+2)
	if c.HELO {
		if f, ok := c.checkHELO(ip, helo); ok {
			slots[0] = &f
		}
	}
	var wg sync.WaitGroup
	if c.Resolver != nil && ip.IsValid() {
		for i, z := range c.Zones {
			wg.Go(func() {
				if f, ok := c.lookupZone(ctx, z, ip); ok {
					slots[1+i] = &f
				}
			})
		}
		if c.RDNS {
			wg.Go(func() {
				f := c.reverseDNS(ctx, ip)
				slots[len(slots)-1] = &f
			})
		}
	}
	wg.Wait()
	var out []Finding
	for _, f := range slots {
		if f != nil {
			out = append(out, *f)
		}
	}
	return out
}

// ReverseName returns the name under zone at which a DNS list publishes ip (RFC 5782 §2.1
// for IPv4: the octets reversed; §2.4 for IPv6: the 32 nibbles reversed).
func ReverseName(ip netip.Addr, zone string) string {
	var b strings.Builder
	ip = ip.Unmap()
	if ip.Is4() {
		o := ip.As4()
		for i := 3; i >= 0; i-- {
			b.WriteString(strconv.Itoa(int(o[i])))
			b.WriteByte('.')
		}
	} else {
		const hex = "0123456789abcdef"
		o := ip.As16()
		for i := 15; i >= 0; i-- {
			b.WriteByte(hex[o[i]&0xf])
			b.WriteByte('.')
			b.WriteByte(hex[o[i]>>4])
			b.WriteByte('.')
		}
	}
	b.WriteString(strings.TrimSuffix(zone, "."))
	return b.String()
}

// refusedNet holds the answers by which Spamhaus says it refused the query (127.255.255.252
// typing error, .254 a public or open resolver, .255 too many queries): they are errors,
// not listings, or every client would be refused while the list refuses us.
var refusedNet = netip.MustParsePrefix("127.255.255.0/24")

var loopbackNet = netip.MustParsePrefix("127.0.0.0/8")

// lookupZone asks zone about ip; ok is false when ip is not listed.
func (c *Checks) lookupZone(ctx context.Context, z Zone, ip netip.Addr) (f Finding, ok bool) {
	kind := "dnsbl"
	if z.Action == ZonePass {
		kind = "dnswl"
	}
	f.Check = kind + ":" + z.Name
	addrs, err := c.Resolver.LookupIPAddr(ctx, ReverseName(ip, z.Name))
	if isNotFound(err) {
		return f, false
	}
	if err != nil {
		f.Result, f.Error = "error", true
		return f, true
	}
	var codes []string
	for _, a := range addrs {
		code, okAddr := netip.AddrFromSlice(a.IP)
		code = code.Unmap()
		if !okAddr || !code.Is4() {
			continue // a list answers A records; an AAAA says nothing
		}
		switch {
		case refusedNet.Contains(code):
			f.Result, f.Error = "refused-"+code.String(), true
			return f, true
		case !loopbackNet.Contains(code):
			// RFC 5782 §2.1: answers are in 127/8; anything else is a resolver that
			// rewrites NXDOMAIN, or a list that has been shut down and lists the world.
			f.Result, f.Error = "bad-answer-"+code.String(), true
			return f, true
		case len(z.Codes) == 0 || slices.Contains(z.Codes, code):
			codes = append(codes, code.String())
		}
	}
	if len(codes) == 0 {
		return f, false
	}
	slices.Sort(codes)
	f.Result = strings.Join(codes, ",")
	f.Score = z.Weight
	switch z.Action {
	case ZoneReject:
		f.Reject = true
	case ZoneJunk:
		f.Score = max(f.Score, DefaultJunkScore)
	case ZonePass:
		f.Pass = true
	}
	return f, true
}

// maxPTRNames bounds the names of a PTR answer that are resolved forward: a hostile
// reverse zone could list hundreds.
const maxPTRNames = 3

// reverseDNS checks that ip has a PTR record whose name resolves back to ip
// ("forward-confirmed reverse DNS", RFC 8601 §3 iprev).
func (c *Checks) reverseDNS(ctx context.Context, ip netip.Addr) Finding {
	f := Finding{Check: "rdns"}
	names, err := c.Resolver.LookupAddr(ctx, ip.String())
	switch {
	case isNotFound(err) || err == nil && len(names) == 0:
		f.Result, f.Score = "no-ptr", c.Weights.NoPTR
		return f
	case err != nil:
		f.Result, f.Error = "error", true
		return f
	}
	failed := false
	for _, name := range names[:min(len(names), maxPTRNames)] {
		addrs, err := c.Resolver.LookupIPAddr(ctx, name)
		if err != nil && !isNotFound(err) {
			failed = true
			continue
		}
		for _, a := range addrs {
			if got, ok := netip.AddrFromSlice(a.IP); ok && got.Unmap() == ip {
				f.Result = strings.TrimSuffix(name, ".")
				return f
			}
		}
	}
	if failed {
		f.Result, f.Error = "error", true
		return f
	}
	f.Result, f.Score = "not-confirmed:"+strings.TrimSuffix(names[0], "."), c.Weights.PTRMismatch
	return f
}

// checkHELO judges the HELO/EHLO argument; ok is false when there is nothing to say.
func (c *Checks) checkHELO(ip netip.Addr, helo string) (f Finding, ok bool) {
	f.Check = "helo"
	claimed := netip.Addr{}
	switch {
	case strings.HasPrefix(helo, "[") && strings.HasSuffix(helo, "]"):
		// An address literal (RFC 5321 §4.1.3).
		lit := strings.TrimSuffix(strings.TrimPrefix(helo, "["), "]")
		lit, v6 := strings.CutPrefix(lit, "IPv6:")
		a, err := netip.ParseAddr(lit)
		if err != nil || a.Is6() != v6 || a.Zone() != "" {
			f.Result, f.Score = "invalid", c.Weights.HELOInvalid
			return f, true
		}
		claimed = a
	default:
		if a, err := netip.ParseAddr(helo); err == nil {
			// RFC 5321 §4.1.3 wants brackets around an address; spamware often sends it bare.
			if c.ours(a) && a != ip && !ip.IsLoopback() {
				f.Result, f.Score = "forged:"+helo, c.Weights.HELOForged
				f.Reject = f.Score >= DefaultRejectScore
				return f, true
			}
			f.Result, f.Score = "bare-ip", c.Weights.HELOBareIP
			return f, true
		}
		if !validDomain(helo) {
			f.Result, f.Score = "invalid", c.Weights.HELOInvalid
			return f, true
		}
		if c.ourName(helo) && !c.ours(ip) && !ip.IsLoopback() {
			f.Result, f.Score = "forged:"+helo, c.Weights.HELOForged
			f.Reject = f.Score >= DefaultRejectScore
			return f, true
		}
		if !strings.Contains(strings.TrimSuffix(helo, "."), ".") {
			f.Result, f.Score = "not-fqdn", c.Weights.HELONotFQDN
			return f, true
		}
		return f, false
	}
	if c.ours(claimed) && claimed != ip && !ip.IsLoopback() {
		f.Result, f.Score = "forged:"+helo, c.Weights.HELOForged
		f.Reject = f.Score >= DefaultRejectScore
		return f, true
	}
	return f, false
}

func (c *Checks) ours(a netip.Addr) bool { return slices.Contains(c.OwnIPs, a.Unmap()) }

func (c *Checks) ourName(name string) bool {
	name = strings.TrimSuffix(name, ".")
	for _, n := range c.OwnNames {
		if strings.EqualFold(n, name) {
			return true
		}
	}
	return false
}

// validDomain reports whether s is a domain name in the letters-digits-hyphen syntax of
// RFC 5321 §4.1.2 (Domain), with a final dot allowed. Underscores are accepted: real
// hosts send them, and they harm nobody here.
func validDomain(s string) bool {
	s = strings.TrimSuffix(s, ".")
	if s == "" || len(s) > 253 {
		return false
	}
	for label := range strings.SplitSeq(s, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for i := 0; i < len(label); i++ {
			ch := label[i]
			if !('a' <= ch && ch <= 'z' || 'A' <= ch && ch <= 'Z' || '0' <= ch && ch <= '9' || ch == '-' || ch == '_') {
				return false
			}
		}
	}
	return true
}

// AuthFindings turns SPF and DMARC results (RFC 8601 result names) into findings; the
// DMARC policies reject and quarantine are acted on by the verification itself.
func (w Weights) AuthFindings(spf, dmarc string) []Finding {
	var out []Finding
	switch spf {
	case "fail":
		out = append(out, Finding{Check: "spf", Result: spf, Score: w.SPFFail})
	case "softfail":
		out = append(out, Finding{Check: "spf", Result: spf, Score: w.SPFSoftFail})
	}
	switch dmarc {
	case "fail":
		out = append(out, Finding{Check: "dmarc", Result: dmarc, Score: w.DMARCFail})
	case "none":
		if w.DMARCNoPolicy != 0 {
			out = append(out, Finding{Check: "dmarc", Result: dmarc, Score: w.DMARCNoPolicy})
		}
	}
	return out
}

func isNotFound(err error) bool {
	de, ok := err.(*net.DNSError)
	return ok && de.IsNotFound
}

// Reasons formats findings for the log.
func Reasons(fs []Finding) string {
	s := make([]string, len(fs))
	for i, f := range fs {
		s[i] = f.String()
	}
	return strings.Join(s, " ")
}
