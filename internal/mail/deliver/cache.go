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

	// quotaCacheTTL is how long CheckQuota reuses an account's quota read. The check at RCPT
	// is advisory: the store checks again in the delivery's commit, under the account's
	// lock, and that check is what makes the rule hold (on every node of a shared database
	// as well). A cached read is only ever used to let a recipient through (an answer of
	// "over" is always read afresh), and this Deliverer adds its own deliveries to it, so
	// what it misses (other nodes' deliveries, IMAP APPEND, a lowered limit) can cost at
	// most a refusal after DATA instead of at RCPT, as two concurrent deliveries can
	// already; it never refuses mail an account has room for. On a shared database each
	// read is a round trip per RCPT.
	quotaCacheTTL = time.Second
	// quotaCacheMax bounds the entries as resolveCacheMax does.
	quotaCacheMax = 4096
)

// ttlCache remembers values by key for a fixed time, with a bound on the entries.
type ttlCache[K comparable, V any] struct {
	ttl   time.Duration // 0 disables the cache
	max   int
	clone func(V) V // copies a value in and out, so callers never share it
	now   func() time.Time

	mu      sync.Mutex
	entries map[K]cacheEntry[V]
}

type cacheEntry[V any] struct {
	value   V // never modified once stored
	expires time.Time
}

func newTTLCache[K comparable, V any](ttl time.Duration, max int, clone func(V) V) *ttlCache[K, V] {
	return &ttlCache[K, V]{ttl: ttl, max: max, clone: clone, now: time.Now, entries: make(map[K]cacheEntry[V])}
}

// resolveCache remembers recent successful resolutions by recipient key.
type resolveCache = ttlCache[string, Route]

func newResolveCache(ttl time.Duration) *resolveCache {
	return newTTLCache[string](ttl, resolveCacheMax, Route.clone)
}

// quotaCache remembers recent quota reads by account ID.
type quotaCache = ttlCache[int64, store.Quota]

func newQuotaCache(ttl time.Duration) *quotaCache {
	return newTTLCache[int64](ttl, quotaCacheMax, func(q store.Quota) store.Quota { return q })
}

// get returns a copy of the value cached for key, and whether there was one.
func (c *ttlCache[K, V]) get(key K) (V, bool) {
	var zero V
	if c.ttl <= 0 {
		return zero, false
	}
	now := c.now()
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[key]
	if !ok {
		return zero, false
	}
	if !now.Before(e.expires) {
		delete(c.entries, key)
		return zero, false
	}
	return c.clone(e.value), true
}

// put remembers v for key; the caller keeps ownership of v.
func (c *ttlCache[K, V]) put(key K, v V) {
	if c.ttl <= 0 {
		return
	}
	e := cacheEntry[V]{value: c.clone(v), expires: c.now().Add(c.ttl)}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.entries) >= c.max {
		clear(c.entries)
	}
	c.entries[key] = e
}

// update replaces the value cached for key, if there is one, by f of it; the entry keeps
// its expiry, so updates never keep a read alive past its TTL.
func (c *ttlCache[K, V]) update(key K, f func(V) V) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.entries[key]; ok {
		e.value = f(c.clone(e.value))
		c.entries[key] = e
	}
}

// forget drops the value cached for key.
func (c *ttlCache[K, V]) forget(key K) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.entries, key)
}

func (rt Route) clone() Route {
	return Route{Targets: slices.Clone(rt.Targets), Forward: slices.Clone(rt.Forward)}
}
