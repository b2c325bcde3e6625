package mx

import (
	"context"
	"net"
	"slices"
	"testing"
	"time"

	"petrel/internal/mailtest"
)

func newNetResolver(t *testing.T, zone mailtest.Zone) (*NetResolver, *mailtest.DNS, *time.Time) {
	t.Helper()
	d := mailtest.StartDNS(t, zone)
	now := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	// The cache the app gives the inbound checks' resolver.
	cache := &LookupCache{MaxNegativeTTL: 15 * time.Minute, Now: func() time.Time { return now }}
	r := &NetResolver{DNS: &DNSResolver{Servers: []string{d.Addr}, Timeout: 300 * time.Millisecond, Cache: cache}}
	return r, d, &now
}

func count(queries []string, q string) int {
	n := 0
	for _, x := range queries {
		if x == q {
			n++
		}
	}
	return n
}

func TestNetResolverAnswersAndCaches(t *testing.T) {
	r, d, now := newNetResolver(t, mailtest.Zone{
		TXT:  map[string][]string{"example.test": {"v=spf1 -all"}},
		MX:   map[string][]mailtest.MX{"example.test": {{Pref: 10, Host: "mx.example.test"}}},
		A:    map[string][]string{"mx.example.test": {"192.0.2.1"}},
		AAAA: map[string][]string{"mx.example.test": {"2001:db8::1"}},
	})
	ctx := context.Background()
	for range 3 {
		txt, err := r.LookupTXT(ctx, "Example.Test.")
		if err != nil || !slices.Equal(txt, []string{"v=spf1 -all"}) {
			t.Fatalf("LookupTXT = %q, %v", txt, err)
		}
	}
	if n := count(d.Queries(), "TXT example.test"); n != 1 {
		t.Errorf("%d TXT queries for three look-ups within the TTL, want 1", n)
	}
	*now = now.Add(61 * time.Second) // the test server's TTL is 60 s
	if _, err := r.LookupTXT(ctx, "example.test"); err != nil {
		t.Fatal(err)
	}
	if n := count(d.Queries(), "TXT example.test"); n != 2 {
		t.Errorf("%d TXT queries after the TTL ran out, want 2", n)
	}

	mxs, err := r.LookupMX(ctx, "example.test")
	if err != nil || len(mxs) != 1 || mxs[0].Host != "mx.example.test." || mxs[0].Pref != 10 {
		t.Errorf("LookupMX = %v, %v", mxs, err)
	}
	ips, err := r.LookupIPAddr(ctx, "mx.example.test")
	if err != nil || len(ips) != 2 {
		t.Errorf("LookupIPAddr = %v, %v", ips, err)
	}
}

func TestNetResolverErrors(t *testing.T) {
	r, d, _ := newNetResolver(t, mailtest.Zone{
		TXT:   map[string][]string{"exists.test": {"x"}, "servfail.test": {"fixed"}},
		CNAME: map[string]string{"loop.test": "loop2.test", "loop2.test": "loop.test"},
		Fail: map[string]mailtest.Failure{
			"servfail.test": mailtest.ServFail,
			"huge.test":     mailtest.Huge,
			"slow.test":     mailtest.Timeout,
			"garbage.test":  mailtest.Garbage,
		},
	})
	ctx := context.Background()
	for name, wantNotFound := range map[string]bool{
		"nowhere.test":  true,  // NXDOMAIN
		"servfail.test": false, // SERVFAIL
		"huge.test":     false, // a thousand records
		"loop.test":     false, // CNAME loop
		"slow.test":     false, // no answer
		"garbage.test":  false, // not DNS
	} {
		_, err := r.LookupTXT(ctx, name)
		de, ok := err.(*net.DNSError)
		if !ok || de.IsNotFound != wantNotFound || de.IsTemporary == wantNotFound {
			t.Errorf("LookupTXT(%s) = %#v, want a *net.DNSError with IsNotFound %v and IsTemporary %v", name, err, wantNotFound, !wantNotFound)
		}
	}
	// An answer of too many records is not kept: the next look-up asks again.
	asked := count(d.Queries(), "TXT huge.test")
	r.LookupTXT(ctx, "huge.test")
	if n := count(d.Queries(), "TXT huge.test"); asked == 0 || n == asked {
		t.Errorf("an answer of a thousand records asked %d times, then %d: it was kept", asked, n)
	}
	// NODATA: the name exists without MX records.
	if _, err := r.LookupMX(ctx, "exists.test"); !isNetNotFound(err) {
		t.Errorf("LookupMX of a name without MX = %v, want not found", err)
	}
	// A failure is not cached: once the server answers, so does the resolver.
	d.Update(func(z *mailtest.Zone) { delete(z.Fail, "servfail.test") })
	if txt, err := r.LookupTXT(ctx, "servfail.test"); err != nil || !slices.Equal(txt, []string{"fixed"}) {
		t.Errorf("LookupTXT after the failure ended = %q, %v", txt, err)
	}
}

// TestNetResolverNegativeCache: NXDOMAIN and NODATA are cached for the SOA's negative TTL
// (RFC 2308 §5), an answer without an SOA is not cached, and the cache's MaxNegativeTTL < 0
// turns it off.
func TestNetResolverNegativeCache(t *testing.T) {
	r, d, now := newNetResolver(t, mailtest.Zone{
		TXT:         map[string][]string{"exists.test": {"x"}},
		NegativeTTL: 60,
	})
	r.DNS.Timeout = 30 * time.Second // every query here is answered; none may be lost to load
	ctx := context.Background()
	for range 3 {
		if _, err := r.LookupTXT(ctx, "nowhere.test"); !isNetNotFound(err) {
			t.Fatalf("LookupTXT(nowhere.test) = %v, want not found", err)
		}
		if _, err := r.LookupMX(ctx, "exists.test"); !isNetNotFound(err) {
			t.Fatalf("LookupMX(exists.test) = %v, want not found", err)
		}
	}
	if n, m := count(d.Queries(), "TXT nowhere.test"), count(d.Queries(), "MX exists.test"); n != 1 || m != 1 {
		t.Errorf("NXDOMAIN asked %d times, NODATA %d times within the negative TTL, want 1 each", n, m)
	}
	*now = now.Add(61 * time.Second)
	r.LookupTXT(ctx, "nowhere.test")
	if n := count(d.Queries(), "TXT nowhere.test"); n != 2 {
		t.Errorf("NXDOMAIN asked %d times after the negative TTL, want 2", n)
	}

	d.Update(func(z *mailtest.Zone) { z.NegativeTTL = 0 }) // no SOA: nothing to cache by
	for range 2 {
		r.LookupTXT(ctx, "gone.test")
	}
	if n := count(d.Queries(), "TXT gone.test"); n != 2 {
		t.Errorf("NXDOMAIN without SOA asked %d times, want 2 (not cached)", n)
	}

	d.Update(func(z *mailtest.Zone) { z.NegativeTTL = 60 })
	r.DNS.Cache.MaxNegativeTTL = -1
	for range 2 {
		r.LookupTXT(ctx, "off.test")
	}
	if n := count(d.Queries(), "TXT off.test"); n != 2 {
		t.Errorf("with MaxNegativeTTL < 0 NXDOMAIN asked %d times, want 2", n)
	}
}
