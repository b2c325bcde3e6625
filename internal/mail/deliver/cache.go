package deliver

import (
	"slices"
	"sync"
	"time"

	"petrel/internal/store"
)

const (
	// resolveCacheTTL is how long Resolve reuses a successful resolution. Under load the same
	// recipients come back many times a second, and each resolution costs one to a dozen
	// store queries; after a change to accounts, aliases or a catch-all (made by the CLI,
	// possibly in another process, so no event tells us) RCPT may follow the old answer for
	// this long. Failures are never reused: a new account receives mail at once.
	resolveCacheTTL = time.Second
	// resolveCacheMax bounds the entries; when full, the cache starts over. Every +tag of an
	// address is an entry of its own, so without a bound clients could grow it at will.
	resolveCacheMax = 4096
)

// resolveCache remembers recent successful resolutions by recipient key.
type resolveCache struct {
	ttl time.Duration // 0 disables the cache
	now func() time.Time

	mu      sync.Mutex
	entries map[string]cacheEntry
}

type cacheEntry struct {
	targets []store.Target // never modified once stored
	expires time.Time
}

func newResolveCache(ttl time.Duration) *resolveCache {
	return &resolveCache{ttl: ttl, now: time.Now, entries: make(map[string]cacheEntry)}
}

// get returns a copy of the targets cached for key, or nil.
func (c *resolveCache) get(key string) []store.Target {
	if c.ttl <= 0 {
		return nil
	}
	now := c.now()
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[key]
	if !ok {
		return nil
	}
	if !now.Before(e.expires) {
		delete(c.entries, key)
		return nil
	}
	return slices.Clone(e.targets)
}

// put remembers targets for key; the caller keeps ownership of its slice.
func (c *resolveCache) put(key string, targets []store.Target) {
	if c.ttl <= 0 {
		return
	}
	e := cacheEntry{targets: slices.Clone(targets), expires: c.now().Add(c.ttl)}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.entries) >= resolveCacheMax {
		clear(c.entries)
	}
	c.entries[key] = e
}
