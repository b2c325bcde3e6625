package auth

import (
	"fmt"
	"testing"
	"time"
)

func TestVerifiedCache(t *testing.T) {
	c := newVerifiedCache(3, time.Hour)
	now := time.Unix(1_000_000, 0)
	if c.match(1, "hash1", "pw", now) {
		t.Fatal("empty cache matched")
	}
	c.add(1, "hash1", "pw", now)
	if !c.match(1, "hash1", "pw", now) {
		t.Error("cached password did not match")
	}
	if c.match(1, "hash1", "pW", now) {
		t.Error("wrong password matched")
	}
	if c.match(1, "hash2", "pw", now) {
		t.Error("matched after the stored hash changed (password change)")
	}
	if c.match(2, "hash1", "pw", now) {
		t.Error("matched another account")
	}
	if c.match(1, "hash1", "pw", now.Add(time.Hour+time.Second)) {
		t.Error("matched after the TTL")
	}
	if c.len() != 0 {
		t.Errorf("expired entry kept: %d entries", c.len())
	}
}

func TestVerifiedCacheEvictsLRU(t *testing.T) {
	c := newVerifiedCache(3, time.Hour)
	now := time.Unix(1_000_000, 0)
	for id := int64(1); id <= 3; id++ {
		c.add(id, "h", "pw", now)
	}
	c.match(1, "h", "pw", now) // 1 is now the most recently used; 2 the least
	c.add(4, "h", "pw", now)
	if c.len() != 3 {
		t.Fatalf("%d entries, max 3", c.len())
	}
	for id, want := range map[int64]bool{1: true, 2: false, 3: true, 4: true} {
		if got := c.match(id, "h", "pw", now); got != want {
			t.Errorf("account %d cached = %v, want %v", id, got, want)
		}
	}
	for i := range 100 {
		c.add(int64(i), fmt.Sprint(i), "pw", now)
	}
	if c.len() != 3 {
		t.Errorf("%d entries, max 3", c.len())
	}
}
