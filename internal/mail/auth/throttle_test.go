package auth

import (
	"context"
	"fmt"
	"net/netip"
	"testing"
	"time"
)

func TestThrottleDelay(t *testing.T) {
	th := newThrottle(time.Second, 15*time.Second)
	now := time.Unix(1_000_000, 0)
	want := []time.Duration{1, 2, 4, 8, 15, 15, 15}
	for i, w := range want {
		if d := th.fail(now, "user:a", "net:192.0.2.1"); d != w*time.Second {
			t.Errorf("failure %d: delay %v, want %v", i+1, d, w*time.Second)
		}
		now = now.Add(time.Second)
	}
}

func TestThrottleMaxOfKeys(t *testing.T) {
	th := newThrottle(time.Second, time.Hour)
	now := time.Unix(1_000_000, 0)
	// One network tries three users: the network's count drives the delay.
	th.fail(now, "user:a", "net:192.0.2.1")
	th.fail(now, "user:b", "net:192.0.2.1")
	if d := th.fail(now, "user:c", "net:192.0.2.1"); d != 4*time.Second {
		t.Errorf("third failure from one network: %v, want 4s", d)
	}
	// Three networks try one user: the user's count drives the delay.
	th.fail(now, "user:z", "net:198.51.100.1")
	th.fail(now, "user:z", "net:198.51.100.2")
	if d := th.fail(now, "user:z", "net:198.51.100.3"); d != 4*time.Second {
		t.Errorf("third failure for one user: %v, want 4s", d)
	}
}

func TestThrottleWindowAndClear(t *testing.T) {
	th := newThrottle(time.Second, time.Hour)
	now := time.Unix(1_000_000, 0)
	for range 3 {
		th.fail(now, "user:a", "net:192.0.2.1")
	}
	// The window slides: failures older than 15 minutes no longer count.
	if d := th.fail(now.Add(16*time.Minute), "user:a", "net:192.0.2.1"); d != time.Second {
		t.Errorf("after the window: %v, want 1s", d)
	}
	// Success clears the user but not the network.
	th.fail(now.Add(16*time.Minute), "user:a", "net:192.0.2.1")
	th.clear("user:a")
	if d := th.fail(now.Add(16*time.Minute), "user:a", "net:192.0.2.2"); d != time.Second {
		t.Errorf("user after clear: %v, want 1s", d)
	}
	if d := th.fail(now.Add(16*time.Minute), "user:b", "net:192.0.2.1"); d != 4*time.Second {
		t.Errorf("network after user's clear: %v, want 4s (third failure)", d)
	}
}

func TestThrottleBounded(t *testing.T) {
	th := newThrottle(time.Second, time.Hour)
	th.maxKeys = 100
	now := time.Unix(1_000_000, 0)
	for i := range 1000 {
		th.fail(now, fmt.Sprintf("user:%d", i))
	}
	if n := th.size(); n > th.maxKeys+1 {
		t.Errorf("%d keys kept, max %d", n, th.maxKeys)
	}
	// Expired keys go at the next pruning, which happens at least once per window.
	th.fail(now.Add(20*time.Minute), "user:new")
	if n := th.size(); n != 1 {
		t.Errorf("%d keys after the window passed, want 1", n)
	}
}

func TestNetKey(t *testing.T) {
	tests := []struct{ addr, want string }{
		{"192.0.2.1", "net:192.0.2.1"},
		{"::ffff:192.0.2.1", "net:192.0.2.1"},
		{"2001:db8:1:2:3:4:5:6", "net:2001:db8:1:2::/64"},
		{"2001:db8:1:2:ffff::1", "net:2001:db8:1:2::/64"},
	}
	for _, tt := range tests {
		if got := netKey(netip.MustParseAddr(tt.addr)); got != tt.want {
			t.Errorf("netKey(%s) = %q, want %q", tt.addr, got, tt.want)
		}
	}
	if got := netKey(netip.Addr{}); got != "net:invalid IP" {
		t.Errorf("netKey(zero) = %q", got) // callers without an address share one counter
	}
}

func TestSleepHonoursContext(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	start := time.Now()
	sleep(ctx, time.Hour)
	if el := time.Since(start); el > 5*time.Second {
		t.Errorf("sleep took %v after the context ended", el)
	}
}
