package auth

import (
	"container/list"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"sync"
	"time"
)

// verifiedCache remembers passwords that recently passed argon2id, so that clients that log
// in again and again (POP3 polling, SMTP submission per message) cost a few microseconds
// instead of ~40 ms of CPU and 19 MiB of memory each.
//
// An entry is keyed by account ID and the stored hash string: changing the password changes
// the hash and so misses the cache. The value is HMAC-SHA256 under a key drawn at start and
// never stored, so the cache holds nothing an attacker could test guesses against offline
// without also reading that key from memory. Entries expire ttl after verification (not
// after last use) and the least recently used entry goes when the cache is full.
type verifiedCache struct {
	key [32]byte // HMAC key, random per process
	ttl time.Duration
	max int

	mu      sync.Mutex
	entries map[cacheKey]*list.Element // values are *cacheEntry
	lru     *list.List                 // most recently used at the front
}

type cacheKey struct {
	accountID    int64
	passwordHash string
}

type cacheEntry struct {
	key     cacheKey
	mac     [sha256.Size]byte
	expires time.Time
}

func newVerifiedCache(max int, ttl time.Duration) *verifiedCache {
	c := &verifiedCache{ttl: ttl, max: max, entries: map[cacheKey]*list.Element{}, lru: list.New()}
	rand.Read(c.key[:])
	return c
}

func (c *verifiedCache) mac(pw string) (sum [sha256.Size]byte) {
	m := hmac.New(sha256.New, c.key[:])
	m.Write([]byte(pw))
	m.Sum(sum[:0])
	return sum
}

// match reports whether pw was verified for this account and hash less than ttl ago.
func (c *verifiedCache) match(accountID int64, passwordHash, pw string, now time.Time) bool {
	mac := c.mac(pw) // outside the lock
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.entries[cacheKey{accountID, passwordHash}]
	if !ok {
		return false
	}
	e := el.Value.(*cacheEntry)
	if now.After(e.expires) {
		c.remove(el)
		return false
	}
	c.lru.MoveToFront(el)
	return hmac.Equal(mac[:], e.mac[:])
}

// add records that pw passed verification against passwordHash.
func (c *verifiedCache) add(accountID int64, passwordHash, pw string, now time.Time) {
	mac := c.mac(pw)
	k := cacheKey{accountID, passwordHash}
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.entries[k]; ok {
		c.remove(el)
	}
	c.entries[k] = c.lru.PushFront(&cacheEntry{key: k, mac: mac, expires: now.Add(c.ttl)})
	for c.lru.Len() > c.max {
		c.remove(c.lru.Back())
	}
}

func (c *verifiedCache) remove(el *list.Element) {
	delete(c.entries, el.Value.(*cacheEntry).key)
	c.lru.Remove(el)
}

func (c *verifiedCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lru.Len()
}
