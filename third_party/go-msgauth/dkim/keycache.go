package dkim

import "sync"

// KeyCache keeps public keys parsed from DNS key records, by the text of the
// record. Verifying many messages signed with one key then parses it once:
// for an RSA key, decoding and parsing it costs about as much as checking the
// signature itself.
//
// The cache holds no DNS data of its own: every verification still looks the
// record up (through VerifyOptions.LookupTXT, which may cache by TTL), and a
// record that changed is a new key. Parse errors are kept too: a record's text
// always parses the same way.
type KeyCache struct {
	max int

	mu      sync.Mutex
	entries map[string]keyCacheEntry
}

type keyCacheEntry struct {
	res *queryResult // never modified once parsed
	err error
}

// NewKeyCache returns a KeyCache that holds up to max records; when it is
// full, it starts over. max <= 0 means 1000.
func NewKeyCache(max int) *KeyCache {
	if max <= 0 {
		max = 1000
	}
	return &KeyCache{max: max, entries: make(map[string]keyCacheEntry)}
}

// parse returns the parsed key record s, from the cache when it holds it. A
// nil cache parses every time.
func (c *KeyCache) parse(s string) (*queryResult, error) {
	if c == nil {
		return parsePublicKey(s)
	}
	c.mu.Lock()
	e, ok := c.entries[s]
	c.mu.Unlock()
	if ok {
		return e.res, e.err
	}
	res, err := parsePublicKey(s)
	c.mu.Lock()
	if len(c.entries) >= c.max {
		c.entries = make(map[string]keyCacheEntry)
	}
	c.entries[s] = keyCacheEntry{res, err}
	c.mu.Unlock()
	return res, err
}
