package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"petrel/internal/store"
)

// RunDKIMKeys tests a store.DKIMKeys. a and b are two handles on one store (two nodes of
// one database, or the same handle twice): a key put through one is the other's, and two
// puts under one selector at once end with one key that both get back.
func RunDKIMKeys(t *testing.T, a, b store.DKIMKeys) {
	ctx := context.Background()
	keys, err := a.DKIMKeys(ctx, "keys.test")
	if err != nil || len(keys) != 0 {
		t.Fatalf("DKIMKeys of a domain without keys = %v, %v", keys, err)
	}
	// Any bytes: the store keeps what it is given (a sealed key is binary).
	first := store.DKIMKey{Domain: "keys.test", Selector: "e20261208", Private: []byte("first\x00\xff\n")}
	got, err := a.PutDKIMKey(ctx, first)
	if err != nil || !sameKey(got, first) {
		t.Fatalf("PutDKIMKey = %+v, %v; want the key put", got, err)
	}
	other := first
	other.Private = []byte("second")
	if got, err := b.PutDKIMKey(ctx, other); err != nil || !sameKey(got, first) {
		t.Fatalf("PutDKIMKey under a taken selector = %+v, %v; want the key that was there", got, err)
	}
	second := store.DKIMKey{Domain: "keys.test", Selector: "a.b-2", Private: []byte("rsa")}
	elsewhere := store.DKIMKey{Domain: "other.test", Selector: "r20261208", Private: []byte("other")}
	for _, k := range []store.DKIMKey{second, elsewhere} {
		if got, err := b.PutDKIMKey(ctx, k); err != nil || !sameKey(got, k) {
			t.Fatalf("PutDKIMKey(%s) = %+v, %v", k.Selector, got, err)
		}
	}
	for _, st := range []store.DKIMKeys{a, b} {
		keys, err := st.DKIMKeys(ctx, "keys.test")
		if err != nil || len(keys) != 2 || !sameKey(keys[0], second) || !sameKey(keys[1], first) {
			t.Fatalf("DKIMKeys = %+v, %v; want %s then %s", keys, err, second.Selector, first.Selector)
		}
		all, err := st.AllDKIMKeys(ctx)
		if err != nil || len(all) != 3 || !sameKey(all[0], second) || !sameKey(all[1], first) || !sameKey(all[2], elsewhere) {
			t.Fatalf("AllDKIMKeys = %+v, %v; want by domain and selector", all, err)
		}
	}

	// Puts racing under one new selector, through both handles: one key wins and every
	// caller gets that one back.
	const racers = 8
	var wg sync.WaitGroup
	won := make([][]byte, racers)
	errs := make([]error, racers)
	for i := range racers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			st := a
			if i%2 == 1 {
				st = b
			}
			k, err := st.PutDKIMKey(ctx, store.DKIMKey{Domain: "race.test", Selector: "e1", Private: fmt.Appendf(nil, "racer %d", i)})
			won[i], errs[i] = k.Private, err
		}()
	}
	wg.Wait()
	for i := range racers {
		if errs[i] != nil {
			t.Fatalf("racer %d: %v", i, errs[i])
		}
		if !bytes.Equal(won[i], won[0]) {
			t.Fatalf("racer %d got %q, racer 0 %q: two keys under one selector", i, won[i], won[0])
		}
	}
	if keys, err := b.DKIMKeys(ctx, "race.test"); err != nil || len(keys) != 1 || !bytes.Equal(keys[0].Private, won[0]) {
		t.Fatalf("after the race DKIMKeys = %+v, %v; want the one winner %q", keys, err, won[0])
	}

	// Rotation's end: the old key goes, the new one stays.
	if err := b.DeleteDKIMKey(ctx, "keys.test", first.Selector); err != nil {
		t.Fatal(err)
	}
	if err := a.DeleteDKIMKey(ctx, "keys.test", first.Selector); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("second DeleteDKIMKey = %v, want ErrNotFound", err)
	}
	if keys, err := a.DKIMKeys(ctx, "keys.test"); err != nil || len(keys) != 1 || !sameKey(keys[0], second) {
		t.Fatalf("DKIMKeys after delete = %+v, %v", keys, err)
	}
	// The selector is free again: a put there stores the new key.
	if got, err := a.PutDKIMKey(ctx, other); err != nil || !sameKey(got, other) {
		t.Fatalf("PutDKIMKey after delete = %+v, %v", got, err)
	}

	for _, bad := range []store.DKIMKey{
		{Domain: "keys.test", Selector: "../x", Private: []byte("x")},
		{Domain: "keys.test", Selector: "", Private: []byte("x")},
		{Domain: "Keys.test", Selector: "s", Private: []byte("x")},
		{Domain: "../etc", Selector: "s", Private: []byte("x")},
	} {
		if _, err := a.PutDKIMKey(ctx, bad); err == nil {
			t.Errorf("PutDKIMKey(%q, %q) succeeded", bad.Domain, bad.Selector)
		}
	}
}

func sameKey(a, b store.DKIMKey) bool {
	return a.Domain == b.Domain && a.Selector == b.Selector && bytes.Equal(a.Private, b.Private)
}
