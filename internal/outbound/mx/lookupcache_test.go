package mx

import (
	"context"
	"testing"
	"time"

	"petrel/internal/mailtest"
)

// TestLookupCache: with a cache, DNSResolver asks once per TTL for answers (MX, the two
// address families), once per negative TTL for NXDOMAIN and NODATA, and every time for a
// failure; a kept NXDOMAIN is still a NotFound *LookupError, and the kept Result is the
// answer's.
func TestLookupCache(t *testing.T) {
	d := mailtest.StartDNS(t, mailtest.Zone{
		MX:          map[string][]mailtest.MX{"example.test": {{Pref: 10, Host: "mx.example.test"}}},
		A:           map[string][]string{"mx.example.test": {"192.0.2.1"}},
		NegativeTTL: 30,
		Fail:        map[string]mailtest.Failure{"broken.test": mailtest.ServFail},
	})
	now := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	r := &DNSResolver{Servers: []string{d.Addr}, Timeout: 30 * time.Second,
		Cache: &LookupCache{Now: func() time.Time { return now }}}
	ctx := context.Background()
	look := func() {
		t.Helper()
		mxs, res, err := r.LookupMX(ctx, "Example.Test.")
		if err != nil || len(mxs) != 1 || mxs[0].Host != "mx.example.test" || res.Canonical != "example.test" {
			t.Fatalf("LookupMX = %v %+v %v", mxs, res, err)
		}
		if addrs, _, err := r.LookupAddrs(ctx, "mx.example.test"); err != nil || len(addrs) != 1 {
			t.Fatalf("LookupAddrs = %v %v", addrs, err)
		}
		if _, _, err := r.LookupTXT(ctx, "nowhere.test"); !IsNotFound(err) {
			t.Fatalf("LookupTXT(nowhere.test) = %v, want NotFound", err)
		}
		if _, _, err := r.LookupMX(ctx, "broken.test"); err == nil || IsNotFound(err) {
			t.Fatalf("LookupMX(broken.test) = %v, want a temporary failure", err)
		}
	}
	asked := func(q string, want int) {
		t.Helper()
		if n := count(d.Queries(), q); n != want {
			t.Errorf("%q asked %d times, want %d", q, n, want)
		}
	}
	for range 3 {
		look()
	}
	asked("MX example.test", 1)
	asked("A mx.example.test", 1)
	asked("AAAA mx.example.test", 1) // NODATA, kept for the negative TTL
	asked("TXT nowhere.test", 1)
	if n := count(d.Queries(), "MX broken.test"); n < 3 {
		t.Errorf("a failing name asked %d times in 3 look-ups: failures must not be kept", n)
	}

	now = now.Add(31 * time.Second) // past the negative TTL, within the answers' 60 s
	look()
	asked("MX example.test", 1)
	asked("AAAA mx.example.test", 2)
	asked("TXT nowhere.test", 2)
	now = now.Add(30 * time.Second) // past the answers' TTL
	look()
	asked("MX example.test", 2)
	asked("A mx.example.test", 2)
}
