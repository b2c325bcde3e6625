package junk

import (
	"context"
	"sync"
	"time"

	"petrel/internal/store"
)

// DefaultCacheTokens bounds the token counts a Filter keeps in memory, all accounts
// together: at about 100 bytes each, some 20 MB.
const DefaultCacheTokens = 200_000

// tokenCache keeps the token counts deliveries read, per account, for as long as the
// account's counts keep their version (store.JunkState.Version): a delivery then reads
// the account's row (its version, totals and threshold) and only the tokens not seen
// since the last training. Without it every token is a B-tree probe, and on a store that
// is committing deliveries meanwhile those probes mostly miss SQLite's page cache (which
// every commit invalidates): hundreds of microseconds a message. Absent tokens are kept
// too, as zero counts: most of a message's words were never trained.
//
// The version makes the cache right with several nodes on one store: a training anywhere
// changes the version, which the next delivery reads.
type tokenCache struct {
	mu       sync.Mutex
	accounts map[int64]*accountCounts
	whole    map[int64]*wholeCounts // accounts held whole (store.JunkVocabulary)
	entries  int                    // tokens kept, all accounts, both maps
	tick     uint64                 // use counter, for eviction
}

// wholeCounts is every count of an account whose training is small, read in one snapshot: a token not in it has no counts, so a
// message with words never trained (most mail has some) needs no store read at all while
// the row is fresh, and one cheap read of the row (its version) when it is not. counts is
// nil for an account with more rows than Filter.WholeTokens; the per-token cache serves it.
type wholeCounts struct {
	row     store.JunkState // without Tokens
	counts  map[int64]store.JunkCount
	checked time.Time
	used    uint64
}

// DefaultWholeTokens is how many token rows an account may have to be held whole: some
// hundreds of trained messages.
const DefaultWholeTokens = 20_000

func (f *Filter) wholeTokens() int {
	if f.WholeTokens > 0 {
		return f.WholeTokens
	}
	return DefaultWholeTokens
}

type accountCounts struct {
	version int64
	tokens  map[string]store.JunkCount
	used    uint64
	// The account's row as last read, and when: within Recheck of it, a message whose
	// tokens are all kept needs no store read at all.
	row     store.JunkState
	checked time.Time
}

// DefaultRecheck is how long a Filter trusts an account's counts without asking the store
// whether they changed: a training through this Filter is seen at once, one on another
// node (or by the CLI) within this time, as with the recipient cache of delivery.
const DefaultRecheck = time.Second

func (f *Filter) recheck() time.Duration {
	if f.Recheck != 0 {
		return f.Recheck
	}
	return DefaultRecheck
}

// forget drops what is kept of an account (it was trained through this Filter).
func (c *tokenCache) forget(accountID int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if ac := c.accounts[accountID]; ac != nil {
		c.entries -= len(ac.tokens)
		delete(c.accounts, accountID)
	}
	if w := c.whole[accountID]; w != nil {
		c.entries -= len(w.counts)
		delete(c.whole, accountID)
	}
}

// wholeState returns the account's row and its whole counts by store.JunkTokenID; ok is
// false for an account too large to hold whole. The map is never changed once made (a
// new version gets a new one), so the caller reads it without the lock.
func (f *Filter) wholeState(ctx context.Context, v store.JunkVocabulary, accountID int64) (row store.JunkState, counts map[int64]store.JunkCount, ok bool, err error) {
	c := &f.cache
	c.mu.Lock()
	w := c.whole[accountID]
	var cached store.JunkState // w's row, read under the lock: another delivery may renew it
	if w != nil {
		cached = w.row
	}
	if w != nil && time.Since(w.checked) < f.recheck() {
		c.tick++
		w.used = c.tick
		row, counts = w.row, w.counts
		c.mu.Unlock()
		return row, counts, counts != nil, nil
	}
	c.mu.Unlock()

	if w != nil {
		// Stale: the row alone (its version) says whether the counts changed.
		row, err := f.Store.JunkState(ctx, accountID, nil)
		if err != nil {
			return row, nil, false, err
		}
		// The totals too: an account's first training may create its row at the version an
		// untrained account reads as (the embedded store's insert does not raise it).
		if row.Version == cached.Version && row.Trained == cached.Trained {
			c.mu.Lock()
			w.row, w.checked = store.JunkState{Trained: row.Trained, Threshold: row.Threshold, Version: row.Version}, time.Now()
			c.tick++
			w.used = c.tick
			row, counts = w.row, w.counts
			c.mu.Unlock()
			return row, counts, counts != nil, nil
		}
	}
	row, counts, complete, err := v.JunkTokens(ctx, accountID, f.wholeTokens())
	if err != nil {
		return row, nil, false, err
	}
	w = &wholeCounts{row: row, checked: time.Now()}
	switch {
	case row.Trained == (store.JunkCount{}):
		// Never trained: every message scores 0.5, and the row is kept like a trained
		// one's, so that such an account's mail costs one read of the row a Recheck, not
		// one or two reads a message (a round trip each on PostgreSQL).
		w.counts = map[int64]store.JunkCount{}
	case complete:
		w.counts = counts
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.whole == nil {
		c.whole = make(map[int64]*wholeCounts)
	}
	if old := c.whole[accountID]; old != nil {
		c.entries -= len(old.counts)
	}
	c.whole[accountID] = w
	c.entries += len(w.counts)
	c.tick++
	w.used = c.tick
	c.evict(f.cacheTokens())
	return row, w.counts, w.counts != nil, nil
}

// fresh returns the kept counts of tokens when all are kept and the account's row was
// read within Recheck. Called with mu held.
func (ac *accountCounts) fresh(tokens []string, recheck time.Duration) (store.JunkState, bool) {
	if ac == nil || time.Since(ac.checked) >= recheck {
		return store.JunkState{}, false
	}
	if ac.row.Trained == (store.JunkCount{}) {
		// Never trained: no token has counts, every message scores 0.5 (a new account's
		// mail needs no store read but the row's, once a Recheck).
		return ac.row, true
	}
	out := make(map[string]store.JunkCount, len(tokens))
	for _, t := range tokens {
		n, ok := ac.tokens[t]
		if !ok {
			return store.JunkState{}, false
		}
		if n != (store.JunkCount{}) {
			out[t] = n
		}
	}
	st := ac.row
	st.Tokens = out
	return st, true
}

// counts returns the account's row and a token's counts (how many trained messages of
// each kind had it): from its whole counts when the store can give them and the account
// is small enough, else from state.
func (f *Filter) counts(ctx context.Context, accountID int64, tokens []string) (store.JunkState, func(string) store.JunkCount, error) {
	if v, ok := f.Store.(store.JunkVocabulary); ok && f.recheck() > 0 {
		row, counts, ok, err := f.wholeState(ctx, v, accountID)
		if err != nil {
			return row, nil, err
		}
		if ok {
			// Two tokens that collide share their counts, as in the store.
			return row, func(t string) store.JunkCount { return counts[store.JunkTokenID(accountID, t)] }, nil
		}
	}
	st, err := f.state(ctx, accountID, tokens)
	return st, func(t string) store.JunkCount { return st.Tokens[t] }, err
}

// state returns the account's counts for tokens: the cached ones, and the others read.
func (f *Filter) state(ctx context.Context, accountID int64, tokens []string) (store.JunkState, error) {
	c := &f.cache
	c.mu.Lock()
	ac := c.accounts[accountID]
	if st, ok := ac.fresh(tokens, f.recheck()); ok {
		c.tick++
		ac.used = c.tick
		c.mu.Unlock()
		return st, nil
	}
	var missing []string
	if ac == nil {
		missing = tokens
	} else {
		for _, t := range tokens {
			if _, ok := ac.tokens[t]; !ok {
				missing = append(missing, t)
			}
		}
	}
	c.mu.Unlock()

	st, err := f.Store.JunkState(ctx, accountID, missing)
	if err != nil {
		return st, err
	}
	if st.Trained == (store.JunkCount{}) {
		// Nothing to keep but the row: every message scores 0.5 until a training.
		c.mu.Lock()
		defer c.mu.Unlock()
		if ac := c.accounts[accountID]; ac != nil {
			c.entries -= len(ac.tokens)
		}
		if c.accounts == nil {
			c.accounts = make(map[int64]*accountCounts)
		}
		c.tick++
		c.accounts[accountID] = &accountCounts{version: st.Version, used: c.tick, tokens: map[string]store.JunkCount{},
			row: store.JunkState{Trained: st.Trained, Threshold: st.Threshold, Version: st.Version}, checked: time.Now()}
		return st, nil
	}
	if ac == nil || ac.version != st.Version {
		if len(missing) < len(tokens) {
			// Trained meanwhile: what was kept is stale; read everything again.
			if st, err = f.Store.JunkState(ctx, accountID, tokens); err != nil {
				return st, err
			}
		}
		missing = tokens
	}

	c.mu.Lock()
	defer c.mu.Unlock()
	if c.accounts == nil {
		c.accounts = make(map[int64]*accountCounts)
	}
	ac = c.accounts[accountID]
	if ac == nil || ac.version != st.Version {
		if ac != nil {
			c.entries -= len(ac.tokens)
		}
		ac = &accountCounts{version: st.Version, tokens: make(map[string]store.JunkCount, len(tokens))}
		c.accounts[accountID] = ac
	}
	c.tick++
	ac.used = c.tick
	ac.row = store.JunkState{Trained: st.Trained, Threshold: st.Threshold, Version: st.Version}
	ac.checked = time.Now()
	for _, t := range missing {
		if _, ok := ac.tokens[t]; !ok {
			ac.tokens[t] = st.Tokens[t]
			c.entries++
		}
	}
	out := make(map[string]store.JunkCount, len(tokens))
	for _, t := range tokens {
		if n := ac.tokens[t]; n != (store.JunkCount{}) {
			out[t] = n
		}
	}
	st.Tokens = out
	c.evict(f.cacheTokens())
	return st, nil
}

func (f *Filter) cacheTokens() int {
	if f.CacheTokens > 0 {
		return f.CacheTokens
	}
	return DefaultCacheTokens
}

// evict drops the least recently used accounts until at most three quarters of max
// tokens are kept, when more than max are. Called with mu held.
func (c *tokenCache) evict(max int) {
	if c.entries <= max {
		return
	}
	for c.entries > max*3/4 && len(c.accounts)+len(c.whole) > 0 {
		var oldest int64
		var used uint64
		first, inWhole := true, false
		for id, ac := range c.accounts {
			if first || ac.used < used {
				oldest, used, first = id, ac.used, false
			}
		}
		for id, w := range c.whole {
			if first || w.used < used {
				oldest, used, first, inWhole = id, w.used, false, true
			}
		}
		if inWhole {
			c.entries -= len(c.whole[oldest].counts)
			delete(c.whole, oldest)
			continue
		}
		c.entries -= len(c.accounts[oldest].tokens)
		delete(c.accounts, oldest)
	}
}
