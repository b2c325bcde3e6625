package door_test

import (
	"context"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"petrel/internal/mail/door"
	"petrel/internal/mailtest"
	"petrel/internal/outbound/mx"
	"petrel/internal/store/sqlite"
)

// resolverFor is the resolver app gives the checks, pointed at a test DNS server.
func resolverFor(d *mailtest.DNS) *mx.NetResolver {
	return &mx.NetResolver{DNS: &mx.DNSResolver{Servers: []string{d.Addr}, Timeout: time.Second}} // no cache
}

func TestReverseName(t *testing.T) {
	for _, tc := range []struct{ ip, want string }{
		{"192.0.2.99", "99.2.0.192.bl.example"},
		{"::ffff:192.0.2.99", "99.2.0.192.bl.example"},
		// RFC 5782 §2.4's example.
		{"2001:db8:1:2:3:4:567:89ab", "b.a.9.8.7.6.5.0.4.0.0.0.3.0.0.0.2.0.0.0.1.0.0.0.8.b.d.0.1.0.0.2.bl.example"},
	} {
		if got := door.ReverseName(netip.MustParseAddr(tc.ip), "bl.example."); got != tc.want {
			t.Errorf("ReverseName(%s) = %s, want %s", tc.ip, got, tc.want)
		}
	}
}

func TestDNSLists(t *testing.T) {
	d := mailtest.StartDNS(t, mailtest.Zone{
		A: map[string][]string{
			"2.0.0.127.bl.example":      {"127.0.0.2", "127.0.0.4"},
			"2.0.0.127.refused.example": {"127.255.255.254"},
			"2.0.0.127.hijack.example":  {"198.51.100.7"},
			"2.0.0.127.codes.example":   {"127.0.0.10"},
			"2.0.0.127.wl.example":      {"127.0.2.3"},
			"b.a.9.8.7.6.5.0.4.0.0.0.3.0.0.0.2.0.0.0.1.0.0.0.8.b.d.0.1.0.0.2.bl.example": {"127.0.0.3"},
		},
		Fail: map[string]mailtest.Failure{"2.0.0.127.broken.example": mailtest.ServFail},
	})
	c := &door.Checks{Resolver: resolverFor(d), Zones: []door.Zone{
		{Name: "bl.example", Weight: 4},
		{Name: "refused.example", Weight: 4},
		{Name: "hijack.example", Weight: 4},
		{Name: "broken.example", Weight: 4},
		{Name: "codes.example", Weight: 4, Codes: []netip.Addr{netip.MustParseAddr("127.0.0.2")}},
		{Name: "wl.example", Weight: -3, Action: door.ZonePass},
	}}
	fs := c.Connection(context.Background(), netip.MustParseAddr("127.0.0.2"), "mx.example.org")
	got := door.Reasons(fs)
	want := "dnsbl:bl.example=127.0.0.2,127.0.0.4(4) dnsbl:refused.example=refused-127.255.255.254 " +
		"dnsbl:hijack.example=bad-answer-198.51.100.7 dnsbl:broken.example=error dnswl:wl.example=127.0.2.3(-3)"
	if got != want {
		t.Errorf("findings:\n got %s\nwant %s", got, want)
	}
	dec := door.Decide(door.Scores{}, fs)
	if dec.Action != door.Accept || dec.Score != 1 {
		t.Errorf("decision %+v, want accept with score 1 (errors score nothing)", dec)
	}
	passed := false
	for _, f := range fs {
		passed = passed || f.Pass
	}
	if !passed {
		t.Error("the DNSWL listing does not pass greylisting")
	}
	// An address nobody lists finds nothing.
	if fs := c.Connection(context.Background(), netip.MustParseAddr("127.0.0.9"), "mx.example.org"); len(fs) != 0 {
		t.Errorf("unlisted client: %s", door.Reasons(fs))
	}
	// IPv6 by nibbles, and a reject zone.
	c.Zones = []door.Zone{{Name: "bl.example", Action: door.ZoneReject}}
	fs = c.Connection(context.Background(), netip.MustParseAddr("2001:db8:1:2:3:4:567:89ab"), "mx.example.org")
	if dec := door.Decide(door.Scores{}, fs); dec.Action != door.Reject || door.Reasons(fs) != "dnsbl:bl.example=127.0.0.3(reject)" {
		t.Errorf("IPv6 listing: %s → %+v", door.Reasons(fs), dec)
	}
}

func TestHELOAndReverseDNS(t *testing.T) {
	d := mailtest.StartDNS(t, mailtest.Zone{
		PTR:  map[string][]string{"127.0.0.2": {"good.example.org"}, "127.0.0.3": {"liar.example.org"}, "::1": {"v6.example.org"}},
		A:    map[string][]string{"good.example.org": {"127.0.0.2"}, "liar.example.org": {"192.0.2.1"}},
		AAAA: map[string][]string{"v6.example.org": {"::1"}},
	})
	c := &door.Checks{Resolver: resolverFor(d), HELO: true, RDNS: true, Weights: door.DefaultWeights,
		OwnNames: []string{"mx.example.test"}, OwnIPs: []netip.Addr{netip.MustParseAddr("192.0.2.25")}}
	for _, tc := range []struct {
		ip, helo, want string
		action         door.Action
	}{
		{"127.0.0.2", "good.example.org", "rdns=good.example.org", door.Accept},
		{"::1", "good.example.org", "rdns=v6.example.org", door.Accept},
		{"127.0.0.3", "liar.example.org", "rdns=not-confirmed:liar.example.org(0.5)", door.Accept},
		{"127.0.0.4", "good.example.org", "rdns=no-ptr(1.5)", door.Accept},
		{"127.0.0.2", "PC-123", "helo=not-fqdn(1) rdns=good.example.org", door.Accept},
		{"127.0.0.2", "192.0.2.9", "helo=bare-ip(1) rdns=good.example.org", door.Accept},
		{"127.0.0.2", "[192.0.2.9]", "rdns=good.example.org", door.Accept},
		{"127.0.0.2", "[IPv6:2001:db8::1]", "rdns=good.example.org", door.Accept},
		{"127.0.0.2", "[2001:db8::1]", "helo=invalid(2) rdns=good.example.org", door.Accept},
		{"127.0.0.2", "bad_host!", "helo=invalid(2) rdns=good.example.org", door.Accept},
		{"127.0.0.2", "-x.example.org", "helo=invalid(2) rdns=good.example.org", door.Accept},
		// Our own name or address from elsewhere is forged; loopback is ourselves.
		{"192.0.2.7", "MX.example.test", "helo=forged:MX.example.test(reject) rdns=no-ptr(1.5)", door.Reject},
		{"192.0.2.7", "[192.0.2.25]", "helo=forged:[192.0.2.25](reject) rdns=no-ptr(1.5)", door.Reject},
		{"192.0.2.7", "192.0.2.25", "helo=forged:192.0.2.25(reject) rdns=no-ptr(1.5)", door.Reject},
		{"192.0.2.25", "mx.example.test", "rdns=no-ptr(1.5)", door.Accept},
		{"127.0.0.2", "mx.example.test", "rdns=good.example.org", door.Accept},
	} {
		fs := c.Connection(context.Background(), netip.MustParseAddr(tc.ip), tc.helo)
		got := door.Reasons(fs)
		if got != tc.want {
			t.Errorf("%s HELO %s: %s, want %s", tc.ip, tc.helo, got, tc.want)
		}
		if a := door.Decide(door.Scores{}, fs).Action; a != tc.action {
			t.Errorf("%s HELO %s: %v, want %v", tc.ip, tc.helo, a, tc.action)
		}
	}
}

func TestDecide(t *testing.T) {
	soft := door.Finding{Check: "milter:x", Result: "tempfail", TempFail: true, Reply: "later"}
	hard := door.Finding{Check: "rspamd", Result: "reject", Reject: true, Reply: "spam"}
	for _, tc := range []struct {
		fs     []door.Finding
		action door.Action
		reply  string
	}{
		{nil, door.Accept, ""},
		{[]door.Finding{{Check: "a", Score: 4.9}}, door.Accept, ""},
		{[]door.Finding{{Check: "a", Score: 3}, {Check: "b", Score: 2}}, door.Junk, ""},
		{[]door.Finding{{Check: "a", Score: 12}, {Check: "w", Score: -3}}, door.Junk, ""},
		{[]door.Finding{{Check: "a", Score: 10}}, door.Reject, ""},
		{[]door.Finding{{Check: "a", Score: 30, Error: true}}, door.Accept, ""},
		{[]door.Finding{soft, {Check: "a", Score: 30}}, door.TempFail, "later"},
		{[]door.Finding{soft, hard}, door.Reject, "spam"},
	} {
		d := door.Decide(door.Scores{}, tc.fs)
		if d.Action != tc.action || d.Reply != tc.reply {
			t.Errorf("%s: %v %q, want %v %q", door.Reasons(tc.fs), d.Action, d.Reply, tc.action, tc.reply)
		}
	}
	// The thresholds are the config's.
	if d := door.Decide(door.Scores{Junk: 1, Reject: 2}, []door.Finding{{Check: "a", Score: 1.5}}); d.Action != door.Junk {
		t.Errorf("custom thresholds: %v", d.Action)
	}
	if got := door.Reasons(door.Weights{SPFFail: 3, DMARCFail: 2}.AuthFindings("fail", "fail")); got != "spf=fail(3) dmarc=fail(2)" {
		t.Errorf("AuthFindings: %s", got)
	}
}

func TestGreylist(t *testing.T) {
	st, err := sqlite.Open(filepath.Join(t.TempDir(), "petrel.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	now := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	g := &door.Greylister{Store: st, Now: func() time.Time { return now },
		PassNets: []netip.Prefix{netip.MustParsePrefix("198.51.100.0/24")}, PassDomains: []string{"friend.example"}}
	ctx := context.Background()
	check := func(ip, from, rcpt string, want door.GreyResult) {
		t.Helper()
		got, err := g.Check(ctx, netip.MustParseAddr(ip), from, rcpt)
		if err != nil || got != want {
			t.Errorf("%s %s %s at %s: %v, %v; want %v", ip, from, rcpt, now.Format(time.TimeOnly), got, err, want)
		}
	}
	check("192.0.2.1", "a@example.org", "u@example.test", door.GreyWait)
	now = now.Add(time.Minute)
	check("192.0.2.1", "a@example.org", "u@example.test", door.GreyWait) // too early
	// Another address of the same /24 is the same client; the sender's case does not matter.
	now = now.Add(5 * time.Minute)
	check("192.0.2.200", "A@Example.org", "u@example.test", door.GreyPassNew)
	// The network passed: another sender and recipient are not delayed.
	check("192.0.2.3", "b@other.example", "v@example.test", door.GreyPass)
	// A different network starts its own wait; an IPv6 client is its /64.
	check("192.0.3.1", "a@example.org", "u@example.test", door.GreyWait)
	check("2001:db8::1", "", "u@example.test", door.GreyWait)
	now = now.Add(10 * time.Minute)
	check("2001:db8::ffff", "", "u@example.test", door.GreyPassNew)
	// A retry after the window starts over.
	now = now.Add(25 * time.Hour)
	check("192.0.3.1", "a@example.org", "u@example.test", door.GreyWait)
	// Configured passes.
	check("198.51.100.9", "x@example.org", "u@example.test", door.GreyPass)
	check("203.0.113.9", "x@mail.friend.example", "u@example.test", door.GreyPass)
	// Passed entries are forgotten after the expiry without traffic.
	now = now.Add(36 * 24 * time.Hour)
	check("192.0.2.3", "b@other.example", "v@example.test", door.GreyWait)
}

func TestReasonsHaveNoSecrets(t *testing.T) {
	// A refusal's reply comes from filters only; our checks leave it empty so that the
	// client never learns the config.
	d := door.Decide(door.Scores{}, []door.Finding{{Check: "dnsbl:secret.example", Result: "127.0.0.2", Reject: true}})
	if d.Reply != "" || !strings.Contains(strings.Join(d.Reasons, " "), "secret.example") {
		t.Errorf("%+v", d)
	}
}

// TestDNSListsNegativeCache: a client nobody lists is answered NXDOMAIN by every zone, and
// the answer is kept for the SOA's negative TTL (RFC 2308 §5), so the next connections from
// that client ask nothing; once it ran out, or past MaxNegativeTTL, the zones are asked
// again, and a new listing is seen.
func TestDNSListsNegativeCache(t *testing.T) {
	d := mailtest.StartDNS(t, mailtest.Zone{NegativeTTL: 300})
	now := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	// A generous timeout: a query lost to a loaded machine would read as an error finding.
	res := &mx.NetResolver{DNS: &mx.DNSResolver{Servers: []string{d.Addr}, Timeout: 30 * time.Second,
		Cache: &mx.LookupCache{MaxNegativeTTL: 10 * time.Minute, Now: func() time.Time { return now }}}}
	c := &door.Checks{Resolver: res, Timeout: time.Minute, Zones: []door.Zone{
		{Name: "bl.example", Weight: 4},
		{Name: "wl.example", Weight: -3, Action: door.ZonePass},
	}}
	client := netip.MustParseAddr("127.0.0.9")
	asked := func() (bl, wl int) {
		for _, q := range d.Queries() {
			switch q {
			case "A 9.0.0.127.bl.example":
				bl++
			case "A 9.0.0.127.wl.example":
				wl++
			}
		}
		return bl, wl
	}
	for range 5 {
		if fs := c.Connection(context.Background(), client, ""); len(fs) != 0 {
			t.Fatalf("unlisted client: %s", door.Reasons(fs))
		}
	}
	if bl, wl := asked(); bl != 1 || wl != 1 {
		t.Errorf("five connections within the negative TTL asked the zones %d and %d times, want once each", bl, wl)
	}

	// The listing appears; the cached "not listed" holds until the SOA's 300 s are over.
	d.Update(func(z *mailtest.Zone) { z.A = map[string][]string{"9.0.0.127.bl.example": {"127.0.0.2"}} })
	now = now.Add(299 * time.Second)
	if fs := c.Connection(context.Background(), client, ""); len(fs) != 0 {
		t.Errorf("within the negative TTL: %s, want the cached answer", door.Reasons(fs))
	}
	now = now.Add(2 * time.Second)
	if got := door.Reasons(c.Connection(context.Background(), client, "")); got != "dnsbl:bl.example=127.0.0.2(4)" {
		t.Errorf("after the negative TTL: %q, want the new listing", got)
	}
	if bl, _ := asked(); bl != 2 {
		t.Errorf("the list was asked %d times, want 2", bl)
	}

	// A zone whose SOA asks for a day is kept no longer than MaxNegativeTTL.
	d.Update(func(z *mailtest.Zone) { z.NegativeTTL = 86400 })
	other := netip.MustParseAddr("127.0.0.10")
	c.Connection(context.Background(), other, "")
	now = now.Add(10*time.Minute + time.Second)
	c.Connection(context.Background(), other, "")
	n := 0
	for _, q := range d.Queries() {
		if q == "A 10.0.0.127.bl.example" {
			n++
		}
	}
	if n != 2 {
		t.Errorf("a day's negative TTL: asked %d times across MaxNegativeTTL, want 2", n)
	}
}
