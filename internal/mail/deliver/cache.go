package deliver

import (
	"slices"
	"sync"
	"time"
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
	route   Route // never modified once stored
	expires time.Time
}

func newResolveCache(ttl time.Duration) *resolveCache {
	return &resolveCache{ttl: ttl, now: time.Now, entries: make(map[string]cacheEntry)}
}

// get returns a copy of the route cached for key, and whether there was one.
func (c *resolveCache) get(key string) (Route, bool) {
	if c.ttl <= 0 {
		return Route{}, false
	}
	now := c.now()
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[key]
	if !ok {
		return Route{}, false
	}
	if !now.Before(e.expires) {
		delete(c.entries, key)
		return Route{}, false
	}
	return e.route.clone(), true
}

// put remembers rt for key; the caller keeps ownership of its slices.
func (c *resolveCache) put(key string, rt Route) {
	if c.ttl <= 0 {
		return
	}
	e := cacheEntry{route: rt.clone(), expires: c.now().Add(c.ttl)}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.entries) >= resolveCacheMax {
		clear(c.entries)
	}
	c.entries[key] = e
}

func (rt Route) clone() Route {
	return Route{Targets: slices.Clone(rt.Targets), Forward: slices.Clone(rt.Forward)}
}
