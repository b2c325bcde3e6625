package storetest

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"petrel/internal/store"
)

// RunGreylist checks a store.Greylist: entries kept by key, replaced whole, and expired by
// their last attempt. g must be new and empty; the caller closes it.
func RunGreylist(t *testing.T, g store.Greylist) {
	ctx := context.Background()
	t0 := time.Date(2026, 12, 7, 10, 0, 0, 123456789, time.UTC)
	get := func(keys ...string) map[string]store.GreyEntry {
		t.Helper()
		es, err := g.GreyGet(ctx, keys)
		if err != nil {
			t.Fatalf("GreyGet: %v", err)
		}
		m := map[string]store.GreyEntry{}
		for _, e := range es {
			if _, dup := m[e.Key]; dup {
				t.Errorf("GreyGet returned %q twice", e.Key)
			}
			m[e.Key] = e
		}
		return m
	}
	if m := get("t|192.0.2.0/24|a@example.org|b@example.test"); len(m) != 0 {
		t.Errorf("empty store: %v", m)
	}
	if m := get(); len(m) != 0 {
		t.Errorf("no keys: %v", m)
	}
	// Keys are opaque bytes: case and separators are kept as given.
	a := store.GreyEntry{Key: "t|192.0.2.0/24|a@example.org|b@example.test", First: t0, Last: t0}
	b := store.GreyEntry{Key: "ip|2001:db8::/64", First: t0, Last: t0.Add(time.Hour), Passed: true}
	c := store.GreyEntry{Key: "T|192.0.2.0/24|A@example.org|b@example.test", First: t0.Add(time.Minute), Last: t0.Add(time.Minute)}
	if err := g.GreyPut(ctx, []store.GreyEntry{a, b, c}); err != nil {
		t.Fatalf("GreyPut: %v", err)
	}
	m := get(a.Key, b.Key, c.Key, "missing")
	if len(m) != 3 {
		t.Fatalf("got %d entries, want 3: %v", len(m), m)
	}
	for _, want := range []store.GreyEntry{a, b, c} {
		got := m[want.Key]
		if !got.First.Equal(want.First) || !got.Last.Equal(want.Last) || got.Passed != want.Passed {
			t.Errorf("%q: got %+v, want %+v", want.Key, got, want)
		}
	}
	// Put replaces the whole entry.
	a2 := store.GreyEntry{Key: a.Key, First: t0, Last: t0.Add(10 * time.Minute), Passed: true}
	if err := g.GreyPut(ctx, []store.GreyEntry{a2}); err != nil {
		t.Fatalf("GreyPut: %v", err)
	}
	if got := get(a.Key)[a.Key]; !got.Passed || !got.Last.Equal(a2.Last) || !got.First.Equal(t0) {
		t.Errorf("after replace: %+v", got)
	}
	// Expire goes by Last: a (t0+10m) and c (t0+1m) are older than t0+30m, b is not.
	n, err := g.GreyExpire(ctx, t0.Add(30*time.Minute))
	if err != nil || n != 2 {
		t.Errorf("GreyExpire = %d, %v; want 2", n, err)
	}
	keys := []string{}
	for k := range get(a.Key, b.Key, c.Key) {
		keys = append(keys, k)
	}
	if !slices.Equal(keys, []string{b.Key}) {
		t.Errorf("after expiry: %v, want only %q", keys, b.Key)
	}
	// Many keys in one call (a session asks for the triplet and the pass-list keys at once).
	var many []store.GreyEntry
	var names []string
	for i := range 300 {
		k := "t|" + strings.Repeat("x", i%7) + "|" + time.Duration(i).String()
		many = append(many, store.GreyEntry{Key: k, First: t0, Last: t0})
		names = append(names, k)
	}
	if err := g.GreyPut(ctx, many); err != nil {
		t.Fatalf("GreyPut many: %v", err)
	}
	if got := get(names...); len(got) != len(many) {
		t.Errorf("GreyGet of %d keys: %d entries", len(many), len(got))
	}
}
