package mx

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"petrel/internal/mailtest"
)

func TestParsePolicy(t *testing.T) {
	p, err := ParsePolicy([]byte("version: STSv1\r\nmode: enforce\r\nmx: mail.example.com\r\nmx: *.Example.NET.\r\nmax_age: 604800\r\nfuture: ignored\r\n"))
	if err != nil {
		t.Fatal(err)
	}
	if p.Mode != ModeEnforce || p.MaxAge != 7*24*time.Hour || !slices.Equal(p.MX, []string{"mail.example.com", "*.example.net"}) {
		t.Fatalf("%+v", p)
	}
	for host, want := range map[string]bool{
		"mail.example.com": true, "MAIL.example.com.": true, "x.mail.example.com": false,
		"a.example.net": true, "example.net": false, "a.b.example.net": false, ".example.net": false,
	} {
		if p.Matches(host) != want {
			t.Errorf("Matches(%q) = %v", host, !want)
		}
	}
	if p, err := ParsePolicy([]byte("version: STSv1\nmode: none\nmax_age: 0\n")); err != nil || p.Mode != ModeNone {
		t.Fatalf("mode none: %+v, %v", p, err)
	}
	for _, bad := range []string{
		"",
		"version: STSv1\nmode: enforce\nmax_age: 100\n",                     // no mx
		"version: STSv2\nmode: enforce\nmx: a\nmax_age: 100\n",              // version
		"version: STSv1\nmode: strict\nmx: a\nmax_age: 100\n",               // mode
		"version: STSv1\nmode: enforce\nmx: a\nmax_age: 31557601\n",         // max_age too big
		"version: STSv1\nmode: enforce\nmx: a\nmax_age: -1\n",               // negative
		"version: STSv1\nmode: enforce\nmx: a\n",                            // no max_age
		"version: STSv1\nmode: enforce\nmode: testing\nmx: a\nmax_age: 1\n", // twice
		"version: STSv1\nmode enforce\nmx: a\nmax_age: 1\n",                 // no colon
		"version: STSv1\nmode: enforce\nmx: a b\nmax_age: 1\n",              // space in mx
	} {
		if _, err := ParsePolicy([]byte(bad)); err == nil {
			t.Errorf("ParsePolicy(%q) succeeded", bad)
		}
	}
}

func FuzzParsePolicy(f *testing.F) {
	f.Add([]byte("version: STSv1\r\nmode: enforce\r\nmx: mail.example.com\r\nmax_age: 604800\r\n"))
	f.Add([]byte("version: STSv1\nmode: testing\nmx: *.example.net\nmax_age: 1\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := ParsePolicy(b)
		if err != nil {
			return
		}
		if p.Mode != ModeNone && len(p.MX) == 0 || p.MaxAge < 0 || p.MaxAge > maxMaxAge*time.Second {
			t.Fatalf("accepted %+v", p)
		}
		p.Matches("a.example.net")
	})
}

const enforcePolicy = "version: STSv1\nmode: enforce\nmx: *.sts.test\nmax_age: 3600\n"

func TestRouteMTASTS(t *testing.T) {
	web := mailtest.StartSTS(t, "sts.test", "testing.test")
	web.Set("sts.test", enforcePolicy)
	web.Set("testing.test", "version: STSv1\nmode: testing\nmx: mx1.testing.test\nmax_age: 3600\n")
	r, d := newRouter(t, mailtest.Zone{
		MX: map[string][]mailtest.MX{
			"sts.test":     {{Pref: 10, Host: "mx1.sts.test"}, {Pref: 20, Host: "mx.elsewhere.test"}},
			"testing.test": {{Pref: 10, Host: "mx1.testing.test"}, {Pref: 20, Host: "mx.elsewhere.test"}},
		},
		A: map[string][]string{"mx1.sts.test": {"127.0.0.2"}, "mx.elsewhere.test": {"127.0.0.3"}, "mx1.testing.test": {"127.0.0.4"}},
		TXT: map[string][]string{
			"_mta-sts.sts.test":     {"v=STSv1; id=1", "something else"},
			"_mta-sts.testing.test": {"v=STSv1; id=abc;"},
		},
	})
	now := time.Date(2026, 12, 7, 8, 0, 0, 0, time.UTC)
	r.STS = &STS{Resolver: r.Resolver, HTTP: web.Client, Cache: &MemoryCache{}, Now: func() time.Time { return now }}
	ctx := context.Background()

	route, err := r.Route(ctx, "sts.test")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(hostNames(route), []string{"mx1.sts.test"}) || route.Hosts[0].TLS != TLSPKIX || route.Policy.Mode != ModeEnforce {
		t.Fatalf("enforce: %+v", route)
	}
	route, err = r.Route(ctx, "testing.test")
	if err != nil {
		t.Fatal(err)
	}
	if len(route.Hosts) != 2 || route.Hosts[0].TLS != TLSTesting || route.Hosts[0].STSViolation != "" ||
		route.Hosts[1].STSViolation == "" {
		t.Fatalf("testing: %+v", route)
	}

	// The same id: the cached policy, no new fetch.
	fetches := web.Fetches()
	if _, err := r.Route(ctx, "sts.test"); err != nil || web.Fetches() != fetches {
		t.Fatalf("refetched with an unchanged id: %v", err)
	}
	// An attacker strips the TXT record and the policy file: the cached policy still holds.
	d.Update(func(z *mailtest.Zone) { delete(z.TXT, "_mta-sts.sts.test") })
	web.Set("sts.test", "")
	if route, err := r.Route(ctx, "sts.test"); err != nil || route.Policy == nil || len(route.Hosts) != 1 {
		t.Fatalf("cached policy not used: %+v, %v", route, err)
	}
	// ... until it expires.
	now = now.Add(2 * time.Hour)
	if route, err := r.Route(ctx, "sts.test"); err != nil || route.Policy != nil || len(route.Hosts) != 2 {
		t.Fatalf("expired policy used: %+v, %v", route, err)
	}

	// A new id fetches again; a policy no host matches is a temporary failure.
	d.Update(func(z *mailtest.Zone) { z.TXT["_mta-sts.sts.test"] = []string{"v=STSv1; id=2"} })
	web.Set("sts.test", "version: STSv1\nmode: enforce\nmx: other.test\nmax_age: 3600\n")
	_, err = r.Route(ctx, "sts.test")
	wantErr(t, err, false, "4.7.5", "MTA-STS")
	// Mode none withdraws it.
	d.Update(func(z *mailtest.Zone) { z.TXT["_mta-sts.sts.test"] = []string{"v=STSv1; id=3"} })
	web.Set("sts.test", "version: STSv1\nmode: none\nmax_age: 3600\n")
	if route, err := r.Route(ctx, "sts.test"); err != nil || route.Policy != nil {
		t.Fatalf("mode none: %+v, %v", route, err)
	}
}

func TestSTSFetchFailures(t *testing.T) {
	web := mailtest.StartSTS(t, "a.test")
	d := mailtest.StartDNS(t, mailtest.Zone{TXT: map[string][]string{
		"_mta-sts.a.test":        {"v=STSv1; id=1"},
		"_mta-sts.noname.test":   {"v=STSv1; id=1"}, // the certificate is not for mta-sts.noname.test
		"_mta-sts.two.test":      {"v=STSv1; id=1", "v=STSv1; id=2"},
		"_mta-sts.badid.test":    {"v=STSv1; id=not-alnum!"},
		"_mta-sts.notfirst.test": {"id=1; v=STSv1"},
	}})
	now := time.Now()
	s := &STS{Resolver: &DNSResolver{Servers: []string{d.Addr}}, HTTP: web.Client, Cache: &MemoryCache{},
		Now: func() time.Time { return now }}
	ctx := context.Background()
	check := func(domain, body, wantErr string) {
		t.Helper()
		web.Set("a.test", body)
		p, err := s.Policy(ctx, domain)
		if p != nil || err == nil || !strings.Contains(err.Error(), wantErr) {
			t.Errorf("%s with %q: %+v, %v; want no policy and an error with %q", domain, body, p, err, wantErr)
		}
	}
	check("a.test", "", "404")
	check("a.test", "redirect:https://mta-sts.a.test/elsewhere", "302")
	check("a.test", "version: STSv1\nmode: enforce\n"+strings.Repeat("mx: a.test\n", 7000)+"max_age: 1\n", "larger than")
	check("a.test", "garbage", "no colon")
	check("noname.test", enforcePolicy, "certificate")
	check("two.test", enforcePolicy, "2 STSv1 TXT records")
	check("badid.test", enforcePolicy, "bad id")
	check("notfirst.test", enforcePolicy, "0 STSv1 TXT records")
	check("none.test", enforcePolicy, "no such domain")
	web.SetContentType("text/html")
	check("a.test", enforcePolicy, "content type")
}
