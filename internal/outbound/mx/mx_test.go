package mx

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"petrel/internal/mailtest"
)

// newRouter starts a DNS server with zone and returns a router asking it. Shuffles reverse
// runs of equal preference, so a test can tell that the shuffle is applied to them only.
func newRouter(t *testing.T, zone mailtest.Zone) (*Router, *mailtest.DNS) {
	t.Helper()
	d := mailtest.StartDNS(t, zone)
	r := &Router{
		Resolver: &DNSResolver{Servers: []string{d.Addr}, Timeout: time.Second},
		Shuffle: func(n int, swap func(i, j int)) {
			for i := 0; i < n/2; i++ {
				swap(i, n-1-i)
			}
		},
	}
	return r, d
}

func hostNames(r *Route) []string {
	var out []string
	for _, h := range r.Hosts {
		out = append(out, h.Name)
	}
	return out
}

func wantErr(t *testing.T, err error, permanent bool, code, text string) {
	t.Helper()
	e, ok := AsError(err)
	if !ok {
		t.Fatalf("error %v (%T), want *mx.Error", err, err)
	}
	if e.Permanent != permanent || e.Code != code || !strings.Contains(e.Msg, text) {
		t.Fatalf("error %+v, want permanent=%v code %s containing %q", e, permanent, code, text)
	}
}

func TestRouteOrder(t *testing.T) {
	r, _ := newRouter(t, mailtest.Zone{
		MX: map[string][]mailtest.MX{"example.test": {
			{Pref: 20, Host: "c.example.test"}, {Pref: 10, Host: "a.example.test"},
			{Pref: 10, Host: "b.example.test"}, {Pref: 30, Host: "d.example.test"},
		}},
		A: map[string][]string{
			"a.example.test": {"127.0.0.2"}, "b.example.test": {"127.0.0.3"},
			"c.example.test": {"127.0.0.4"}, "d.example.test": {"127.0.0.5", "127.0.0.6"},
		},
		AAAA: map[string][]string{"d.example.test": {"::1"}},
	})
	route, err := r.Route(context.Background(), "Example.TEST")
	if err != nil {
		t.Fatal(err)
	}
	// Preference order; the two of preference 10 reversed by the test's shuffle.
	if got, want := hostNames(route), []string{"b.example.test", "a.example.test", "c.example.test", "d.example.test"}; !slices.Equal(got, want) {
		t.Fatalf("hosts %v, want %v", got, want)
	}
	if got := fmt.Sprint(route.Hosts[3].Addrs); got != "[::1 127.0.0.5 127.0.0.6]" {
		t.Fatalf("addresses of d: %s, want IPv6 first", got)
	}
	if route.Implicit || route.Domain != "example.test" || route.Hosts[0].TLS != TLSOpportunistic {
		t.Fatalf("route %+v", route)
	}
}

func TestRouteFailures(t *testing.T) {
	r, _ := newRouter(t, mailtest.Zone{
		MX: map[string][]mailtest.MX{
			"null.test":     {{Pref: 0, Host: "."}},
			"noaddr.test":   {{Pref: 10, Host: "gone.noaddr.test"}},
			"literal.test":  {{Pref: 10, Host: "192.0.2.1"}},
			"mixed.test":    {{Pref: 10, Host: "192.0.2.1"}, {Pref: 20, Host: "ok.mixed.test"}},
			"tempaddr.test": {{Pref: 10, Host: "fail.tempaddr.test"}, {Pref: 20, Host: "gone.tempaddr.test"}},
			"servfail.test": {{Pref: 10, Host: "x.test"}},
		},
		A:    map[string][]string{"implicit.test": {"127.0.0.7"}, "ok.mixed.test": {"127.0.0.8"}},
		TXT:  map[string][]string{"txtonly.test": {"hello"}},
		Fail: map[string]mailtest.Failure{"MX servfail.test": mailtest.ServFail, "fail.tempaddr.test": mailtest.ServFail},
	})
	ctx := context.Background()

	_, err := r.Route(ctx, "nowhere.test")
	wantErr(t, err, true, "5.1.2", "does not exist")

	_, err = r.Route(ctx, "null.test")
	wantErr(t, err, true, "5.1.10", "null MX")

	_, err = r.Route(ctx, "servfail.test")
	wantErr(t, err, false, "4.4.3", "SERVFAIL")

	_, err = r.Route(ctx, "noaddr.test")
	wantErr(t, err, true, "5.4.4", "gone.noaddr.test")

	_, err = r.Route(ctx, "tempaddr.test") // one host failing temporarily makes it temporary
	wantErr(t, err, false, "4.4.3", "fail.tempaddr.test")

	_, err = r.Route(ctx, "literal.test")
	wantErr(t, err, false, "4.4.4", "an IP address")

	route, err := r.Route(ctx, "mixed.test")
	if err != nil || !slices.Equal(hostNames(route), []string{"ok.mixed.test"}) || len(route.Skipped) != 1 {
		t.Fatalf("mixed: %+v, %v", route, err)
	}

	route, err = r.Route(ctx, "implicit.test")
	if err != nil || !route.Implicit || !slices.Equal(hostNames(route), []string{"implicit.test"}) ||
		route.Hosts[0].Addrs[0] != netip.MustParseAddr("127.0.0.7") {
		t.Fatalf("implicit MX: %+v, %v", route, err)
	}

	_, err = r.Route(ctx, "txtonly.test") // exists, no MX, no address
	wantErr(t, err, true, "5.4.4", "no MX and no address")

	_, err = r.Route(ctx, "bad..name")
	wantErr(t, err, true, "5.1.2", "bad destination")

	route, err = r.Route(ctx, "bücher.test") // IDNA: looked up as xn--bcher-kva.test
	wantErr(t, err, true, "5.1.2", "xn--bcher-kva.test")
}

func TestRouteCNAME(t *testing.T) {
	zone := mailtest.Zone{
		CNAME: map[string]string{
			"alias.test": "real.test", "mxalias.real.test": "mx.real.test",
			"loop1.test": "loop2.test", "loop2.test": "loop1.test",
		},
		MX: map[string][]mailtest.MX{"real.test": {{Pref: 5, Host: "mxalias.real.test"}}},
		A:  map[string][]string{"mx.real.test": {"127.0.0.9"}},
	}
	// A chain longer than the server follows in one answer: the client must ask again.
	for i := range 9 {
		zone.CNAME[fmt.Sprintf("c%d.test", i)] = fmt.Sprintf("c%d.test", i+1)
	}
	zone.CNAME["c9.test"] = "real.test"
	r, d := newRouter(t, zone)
	ctx := context.Background()
	for _, domain := range []string{"alias.test", "c0.test"} {
		route, err := r.Route(ctx, domain)
		if err != nil {
			t.Fatalf("%s: %v", domain, err)
		}
		// The host keeps its published name (the MTA-STS and DANE reference identifier).
		if h := route.Hosts[0]; h.Name != "mxalias.real.test" || h.Addrs[0] != netip.MustParseAddr("127.0.0.9") {
			t.Fatalf("%s: host %+v", domain, h)
		}
	}
	if !slices.Contains(d.Queries(), "MX c8.test") {
		t.Fatalf("the long chain was not asked again: %v", d.Queries())
	}
	_, err := r.Route(ctx, "loop1.test")
	wantErr(t, err, false, "4.4.3", "CNAME chain longer")
}

func TestRouteHostileDNS(t *testing.T) {
	r, d := newRouter(t, mailtest.Zone{
		MX: map[string][]mailtest.MX{
			"trunc.test":   {{Pref: 1, Host: "mx.trunc.test"}},
			"always.test":  {{Pref: 1, Host: "mx.always.test"}},
			"huge.test":    {{Pref: 1, Host: "x"}},
			"hugea.test":   {{Pref: 1, Host: "many.hugea.test"}},
			"slow.test":    {{Pref: 1, Host: "x"}},
			"garbage.test": {{Pref: 1, Host: "x"}},
			"refused.test": {{Pref: 1, Host: "x"}},
		},
		A: map[string][]string{"mx.trunc.test": {"127.0.0.2"}, "mx.always.test": {"127.0.0.2"}, "many.hugea.test": {"127.0.0.2"}},
		Fail: map[string]mailtest.Failure{
			"MX trunc.test": mailtest.TruncateUDP, "MX always.test": mailtest.TruncateAlways,
			"MX huge.test": mailtest.Huge, "A many.hugea.test": mailtest.Huge, "slow.test": mailtest.Timeout,
			"garbage.test": mailtest.Garbage, "refused.test": mailtest.Refused,
		},
	})
	ctx := context.Background()
	if route, err := r.Route(ctx, "trunc.test"); err != nil || route.Hosts[0].Name != "mx.trunc.test" {
		t.Fatalf("truncated UDP answer, retried over TCP: %+v, %v", route, err)
	}
	_, err := r.Route(ctx, "always.test")
	wantErr(t, err, false, "4.4.3", "truncated over TCP")

	// Thousands of MX records (as many as fit in 64 KiB): at most maxHosts are looked up.
	before := len(d.Queries())
	_, err = r.Route(ctx, "huge.test")
	wantErr(t, err, true, "5.4.4", "no MX host")
	if n := len(d.Queries()) - before; n > 1+2*maxHosts*2 { // MX, then A+AAAA per host (UDP and maybe TCP)
		t.Fatalf("%d queries for a huge MX answer", n)
	}
	route, err := r.Route(ctx, "hugea.test")
	if err != nil || len(route.Hosts[0].Addrs) != maxAddrs {
		t.Fatalf("huge A answer: %+v, %v", route, err)
	}

	for _, domain := range []string{"slow.test", "garbage.test", "refused.test"} {
		_, err = r.Route(ctx, domain)
		wantErr(t, err, false, "4.4.3", domain)
	}
}

func TestRouteSelfAndLiteral(t *testing.T) {
	r, _ := newRouter(t, mailtest.Zone{
		MX: map[string][]mailtest.MX{
			"backup.test": {{Pref: 10, Host: "primary.test"}, {Pref: 20, Host: "me.test"}, {Pref: 30, Host: "other.test"}},
			"loop.test":   {{Pref: 10, Host: "me.test"}, {Pref: 20, Host: "other.test"}},
			"ipself.test": {{Pref: 10, Host: "mine.test"}},
		},
		A: map[string][]string{"primary.test": {"127.0.0.2"}, "me.test": {"127.0.0.3"}, "other.test": {"127.0.0.4"}, "mine.test": {"127.0.0.5"}},
	})
	r.Self = []string{"ME.test."}
	r.IsSelf = func(a netip.Addr) bool { return a == netip.MustParseAddr("127.0.0.5") }
	ctx := context.Background()
	route, err := r.Route(ctx, "backup.test")
	if err != nil || !slices.Equal(hostNames(route), []string{"primary.test"}) {
		t.Fatalf("we are a backup MX: %+v, %v", route, err)
	}
	_, err = r.Route(ctx, "loop.test")
	wantErr(t, err, true, "5.4.6", "loops back")
	_, err = r.Route(ctx, "ipself.test")
	wantErr(t, err, true, "5.4.6", "loops back")

	route, err = r.Route(ctx, "[127.0.0.9]")
	if err != nil || route.Hosts[0].Addrs[0] != netip.MustParseAddr("127.0.0.9") {
		t.Fatalf("literal: %+v %v", route, err)
	}
	route, err = r.Route(ctx, "[IPv6:::1]")
	if err != nil || route.Hosts[0].Addrs[0] != netip.MustParseAddr("::1") {
		t.Fatalf("IPv6 literal: %+v %v", route, err)
	}
	for _, bad := range []string{"[::1]", "[300.1.1.1]", "[127.0.0.1", "[IPv6:fe80::1%eth0]"} {
		_, err = r.Route(ctx, bad)
		wantErr(t, err, true, "5.1.2", "bad address literal")
	}
	_, err = r.Route(ctx, "[127.0.0.5]")
	wantErr(t, err, true, "5.4.6", "loops back")
}

func TestRouteDANE(t *testing.T) {
	ca := mailtest.NewCA(t)
	cert := ca.Issue(t, "mx.secure.test")
	ee := mailtest.TLSA(TLSAFor(cert.Leaf, 3, 1, 1))
	pkixEE := mailtest.TLSA(TLSAFor(cert.Leaf, 1, 1, 1))
	r, _ := newRouter(t, mailtest.Zone{
		MX: map[string][]mailtest.MX{
			"secure.test":   {{Pref: 10, Host: "mx.secure.test"}},
			"insecure.test": {{Pref: 10, Host: "mx.secure.test"}},
			"unusable.test": {{Pref: 10, Host: "mx.unusable.test"}},
			"broken.test":   {{Pref: 10, Host: "mx.broken.test"}},
			"cname.test":    {{Pref: 10, Host: "alias.cname.test"}},
		},
		CNAME: map[string]string{"alias.cname.test": "mx.secure.test"},
		A: map[string][]string{"mx.secure.test": {"127.0.0.2"}, "mx.unusable.test": {"127.0.0.3"},
			"mx.broken.test": {"127.0.0.4"}},
		TLSA: map[string][]mailtest.TLSA{
			"_25._tcp.mx.secure.test":   {ee},
			"_25._tcp.mx.unusable.test": {pkixEE},
			"_25._tcp.mx.broken.test":   {ee},
		},
		Authentic: map[string]bool{
			"secure.test": true, "mx.secure.test": true, "_25._tcp.mx.secure.test": true,
			"unusable.test": true, "mx.unusable.test": true, "_25._tcp.mx.unusable.test": true,
			"broken.test": true, "mx.broken.test": true, "cname.test": true, "alias.cname.test": true,
		},
		Fail: map[string]mailtest.Failure{"TLSA _25._tcp.mx.broken.test": mailtest.ServFail},
	})
	ctx := context.Background()
	if route, err := r.Route(ctx, "secure.test"); err != nil || route.Hosts[0].TLS != TLSOpportunistic {
		t.Fatalf("DANE off: %+v, %v", route, err)
	}
	r.DANE = true
	route, err := r.Route(ctx, "secure.test")
	if err != nil {
		t.Fatal(err)
	}
	if h := route.Hosts[0]; h.TLS != TLSDANE || len(h.TLSA) != 1 || !slices.Equal(h.DANENames, []string{"mx.secure.test"}) {
		t.Fatalf("DANE host %+v", h)
	}
	// The same host through an MX answer that is not authentic: no DANE (RFC 7672 §2.2.1).
	if route, err := r.Route(ctx, "insecure.test"); err != nil || route.Hosts[0].TLS != TLSOpportunistic {
		t.Fatalf("insecure MX: %+v, %v", route, err)
	}
	if route, err := r.Route(ctx, "unusable.test"); err != nil || route.Hosts[0].TLS != TLSRequired {
		t.Fatalf("unusable TLSA: %+v, %v", route, err)
	}
	_, err = r.Route(ctx, "broken.test")
	wantErr(t, err, false, "4.4.3", "TLSA lookup failed")

	// An MX target that is a secure CNAME: TLSA at the target first, both names accepted.
	route, err = r.Route(ctx, "cname.test")
	if err != nil {
		t.Fatal(err)
	}
	if h := route.Hosts[0]; h.TLS != TLSDANE || !slices.Equal(h.DANENames, []string{"mx.secure.test", "alias.cname.test"}) {
		t.Fatalf("DANE through CNAME: %+v", h)
	}
}
