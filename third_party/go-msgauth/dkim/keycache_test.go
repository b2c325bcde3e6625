package dkim

import (
	"errors"
	"sync"
	"testing"
)

func TestKeyCache(t *testing.T) {
	records := map[string][]string{
		"brisbane._domainkey.example.com": {dnsPublicKey},
		"revoked._domainkey.example.com":  {"v=DKIM1; p="},
	}
	lookups := 0
	lookup := func(name string) ([]string, error) {
		lookups++
		if txts, ok := records[name]; ok {
			return txts, nil
		}
		return nil, errors.New("no such record")
	}
	cache := NewKeyCache(2)

	first, err := queryDNSTXT("example.com", "brisbane", lookup, cache)
	if err != nil {
		t.Fatal(err)
	}
	second, err := queryDNSTXT("example.com", "brisbane", lookup, cache)
	if err != nil {
		t.Fatal(err)
	}
	if first != second {
		t.Error("the same record was parsed twice")
	}
	if lookups != 2 {
		t.Errorf("%d look-ups, want 2: the cache must not stand in for DNS", lookups)
	}
	uncached, err := queryDNSTXT("example.com", "brisbane", lookup, nil)
	if err != nil || uncached == first || uncached.KeyAlgo != "rsa" {
		t.Errorf("without a cache: %+v, %v", uncached, err)
	}

	// A changed record is a new key.
	records["brisbane._domainkey.example.com"] = []string{dnsEd25519PublicKey}
	changed, err := queryDNSTXT("example.com", "brisbane", lookup, cache)
	if err != nil || changed == first || changed.KeyAlgo != "ed25519" {
		t.Errorf("after the record changed: %+v, %v", changed, err)
	}

	// Errors of a record are kept and stay permanent failures.
	for i := 0; i < 2; i++ {
		if _, err := queryDNSTXT("example.com", "revoked", lookup, cache); !IsPermFail(err) {
			t.Errorf("revoked key, try %d: %v", i+1, err)
		}
	}
	// The cache holds at most 2 records: it started over for the third.
	if n := len(cache.entries); n > 2 {
		t.Errorf("%d entries in a cache of 2", n)
	}
}

func TestKeyCacheVerify(t *testing.T) {
	options := VerifyOptions{KeyCache: NewKeyCache(0)}
	for i := 0; i < 2; i++ {
		verifications, err := VerifyWithOptions(newMailStringReader(verifiedMailString), &options)
		if err != nil {
			t.Fatal(err)
		}
		if len(verifications) != 1 || verifications[0].Err != nil {
			t.Fatalf("verification %d: %+v", i+1, verifications[0])
		}
	}
	if len(options.KeyCache.entries) != 1 {
		t.Errorf("%d cached keys, want 1", len(options.KeyCache.entries))
	}
}

func TestKeyCacheConcurrent(t *testing.T) {
	cache := NewKeyCache(1)
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			key := dnsPublicKey
			if i%2 == 1 {
				key = dnsEd25519PublicKey
			}
			for j := 0; j < 100; j++ {
				if _, err := cache.parse(key); err != nil {
					t.Error(err)
					return
				}
			}
		}(i)
	}
	wg.Wait()
}
