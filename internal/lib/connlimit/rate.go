package connlimit

import (
	"net/netip"
	"sync"
	"time"
)

// Connection rate per client address: a token bucket per address (IPv6 per /64), holding
// at most Burst connections and refilled at N per Per. A client that connects faster is
// refused like one over the concurrency limit, so a script that opens and closes
// connections in a loop (password guessing, address harvesting by RCPT) is slowed while
// the concurrency limit alone would let it through.

// Rate is a connection rate limit.
type Rate struct {
	N   int           // connections allowed per Per, and the burst; 0: no limit
	Per time.Duration // default one minute
	Now func() time.Time
}

// rateLimiter keeps the buckets. Buckets that have refilled are dropped when the map
// grows, so it holds only the addresses that connected recently.
type rateLimiter struct {
	rate Rate
	mu   sync.Mutex
	bkts map[netip.Addr]*bucket
}

type bucket struct {
	tokens float64
	last   time.Time
}

// maxBuckets is when the map is swept for full buckets.
const maxBuckets = 4096

func newRateLimiter(r Rate) *rateLimiter {
	if r.Per <= 0 {
		r.Per = time.Minute
	}
	if r.Now == nil {
		r.Now = time.Now
	}
	return &rateLimiter{rate: r, bkts: map[netip.Addr]*bucket{}}
}

// allow takes a token of key's bucket, reporting whether there was one.
func (r *rateLimiter) allow(key netip.Addr) bool {
	now := r.rate.Now()
	perSec := float64(r.rate.N) / r.rate.Per.Seconds()
	burst := float64(r.rate.N)
	r.mu.Lock()
	defer r.mu.Unlock()
	b := r.bkts[key]
	if b == nil {
		if len(r.bkts) >= maxBuckets {
			for k, o := range r.bkts {
				if o.tokens+now.Sub(o.last).Seconds()*perSec >= burst {
					delete(r.bkts, k)
				}
			}
		}
		b = &bucket{tokens: burst, last: now}
		r.bkts[key] = b
	}
	b.tokens = min(burst, b.tokens+now.Sub(b.last).Seconds()*perSec)
	b.last = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}
