package auth

import (
	"context"
	"net/netip"
	"sync"
	"time"
)

// throttle counts recent login failures per remote network and per user name and turns them
// into a delay before the failure is answered: base × 2^(n-1), capped at max, where n is the
// larger of the two counts within the sliding window. Counting per user slows a distributed
// guesser aiming at one account; counting per network slows one host trying many accounts.
// A success clears the user's count (the owner typed it right) but not the network's: a NAT
// may hide an attacker next to the user.
//
// Memory is bounded: counters whose last failure left the window are pruned once per window
// and whenever there are more than maxKeys; if that is not enough, arbitrary counters go.
// Flooding the table to reset a counter costs an attacker maxKeys throttled failures.
type throttle struct {
	base, max time.Duration
	window    time.Duration
	maxKeys   int

	mu        sync.Mutex
	failures  map[string][]time.Time // failure times within the window, oldest first
	lastPrune time.Time
}

// maxRecent is the most failure times kept per key: beyond it the delay is capped anyway
// for any sane base/max ratio (2^15 × base).
const maxRecent = 16

func newThrottle(base, max time.Duration) *throttle {
	return &throttle{
		base:     base,
		max:      max,
		window:   15 * time.Minute,
		maxKeys:  100_000,
		failures: map[string][]time.Time{},
	}
}

// userKey and netKey name the counters of a login name and of a remote address.
func userKey(username string) string { return "user:" + username }

// netKey groups IPv6 clients by /64, the smallest prefix a site is usually given: counting
// single IPv6 addresses would let one host use 2^64 fresh counters.
func netKey(remote netip.Addr) string {
	remote = remote.Unmap()
	if remote.Is6() {
		p, _ := remote.Prefix(64)
		return "net:" + p.String()
	}
	return "net:" + remote.String()
}

// fail records a failure for every key at now and returns the delay to apply.
func (t *throttle) fail(now time.Time, keys ...string) time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	if now.Sub(t.lastPrune) > t.window || len(t.failures) > t.maxKeys {
		t.prune(now)
	}
	n := 0
	for _, k := range keys {
		times := append(t.recent(k, now), now)
		if len(times) > maxRecent {
			times = times[len(times)-maxRecent:]
		}
		t.failures[k] = times
		n = max(n, len(times))
	}
	return t.delay(n)
}

// recent returns the failure times of k still inside the window.
func (t *throttle) recent(k string, now time.Time) []time.Time {
	times := t.failures[k]
	i := 0
	for i < len(times) && now.Sub(times[i]) > t.window {
		i++
	}
	return times[i:]
}

// delay is base × 2^(n-1), capped at max.
func (t *throttle) delay(n int) time.Duration {
	if n <= 0 {
		return 0
	}
	d := t.base
	for i := 1; i < n && d < t.max; i++ {
		d *= 2
	}
	return min(d, t.max)
}

// clear forgets the failures of key (after a successful login).
func (t *throttle) clear(key string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.failures, key)
}

func (t *throttle) prune(now time.Time) {
	t.lastPrune = now
	for k, times := range t.failures {
		if now.Sub(times[len(times)-1]) > t.window {
			delete(t.failures, k)
		}
	}
	// Still full of live counters: drop some (Go's map order is arbitrary enough), down to
	// 90% so that the O(n) pruning does not run at every failure.
	for k := range t.failures {
		if len(t.failures) <= t.maxKeys*9/10 {
			break
		}
		delete(t.failures, k)
	}
}

func (t *throttle) size() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.failures)
}

// sleep waits d or until ctx is done.
func sleep(ctx context.Context, d time.Duration) {
	if d <= 0 {
		return
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
	case <-ctx.Done():
	}
}
