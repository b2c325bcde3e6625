package srs

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func rewriter(now time.Time) *Rewriter {
	return &Rewriter{Key: []byte("0123456789abcdef0123456789abcdef"), Now: func() time.Time { return now }}
}

func TestRoundTrip(t *testing.T) {
	now := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	r := rewriter(now)
	for _, sender := range []string{"alice@example.org", "a.b+tag@Example.ORG", "x=y@example.org"} {
		fwd := r.Forward(sender, "fwd.test")
		if !strings.HasPrefix(fwd, "SRS0=") || !strings.HasSuffix(fwd, "@fwd.test") {
			t.Errorf("Forward(%q) = %q", sender, fwd)
			continue
		}
		got, err := r.Reverse(fwd)
		if err != nil || got != sender {
			t.Errorf("Reverse(%q) = %q, %v; want %q", fwd, got, err, sender)
		}
		// Relays may change the case of a local part.
		if got, err := r.Reverse(strings.ToUpper(fwd[:10]) + strings.ToLower(fwd[10:])); err != nil {
			t.Errorf("Reverse of a re-cased %q: %q, %v", fwd, got, err)
		}
	}
}

func TestKept(t *testing.T) {
	r := rewriter(time.Now())
	for _, sender := range []string{"", "bob@fwd.test", "bob@FWD.test", "nonsense"} {
		if got := r.Forward(sender, "fwd.test"); got != sender {
			t.Errorf("Forward(%q) = %q, want it kept", sender, got)
		}
	}
}

// TestTwoForwarders: a second forwarder makes SRS1, which reverses to the first forwarder's
// SRS0 address; a third keeps pointing to the first.
func TestTwoForwarders(t *testing.T) {
	now := time.Now()
	first := &Rewriter{Key: []byte("first-key"), Now: func() time.Time { return now }}
	second := &Rewriter{Key: []byte("second-key"), Now: func() time.Time { return now }}
	third := &Rewriter{Key: []byte("third-key"), Now: func() time.Time { return now }}

	srs0 := first.Forward("alice@example.org", "first.test")
	srs1 := second.Forward(srs0, "second.test")
	if !strings.HasPrefix(srs1, "SRS1=") || !strings.Contains(srs1, "=first.test==") {
		t.Fatalf("second forward = %q", srs1)
	}
	back, err := second.Reverse(srs1)
	if err != nil || back != srs0 {
		t.Fatalf("second.Reverse(%q) = %q, %v; want %q", srs1, back, err, srs0)
	}
	again := third.Forward(srs1, "third.test")
	if !strings.HasPrefix(again, "SRS1=") || !strings.HasSuffix(again, "@third.test") {
		t.Fatalf("third forward = %q", again)
	}
	if back, err := third.Reverse(again); err != nil || back != srs0 {
		t.Fatalf("third.Reverse(%q) = %q, %v; want %q", again, back, err, srs0)
	}
	if orig, err := first.Reverse(back); err != nil || orig != "alice@example.org" {
		t.Fatalf("first.Reverse(%q) = %q, %v", back, orig, err)
	}
	// Only the forwarder that made an address reverses it.
	if _, err := first.Reverse(srs1); !errors.Is(err, ErrForged) {
		t.Errorf("first reversed second's address: %v", err)
	}
}

func TestForged(t *testing.T) {
	now := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	r := rewriter(now)
	good := r.Forward("alice@example.org", "fwd.test")
	_, rest, _ := strings.Cut(good, "=")
	h, rest, _ := strings.Cut(rest, "=")
	flipped := "A"
	if strings.EqualFold(h[:1], "a") {
		flipped = "B"
	}
	for _, addr := range []string{
		"SRS0=" + flipped + h[1:] + "=" + rest,           // wrong hash
		strings.Replace(good, "=alice@", "=mallory@", 1), // another sender, same hash
		strings.Replace(good, "example.org", "example.net", 1),
		"SRS0=abcd=AA=example.org=alice@fwd.test",
		"SRS0=short@fwd.test",
		"SRS0==@fwd.test",
		"SRS1=abcd=first.test==x@fwd.test",
		"SRS1=abcd@fwd.test",
	} {
		if got, err := r.Reverse(addr); !errors.Is(err, ErrForged) {
			t.Errorf("Reverse(%q) = %q, %v; want ErrForged", addr, got, err)
		}
	}
	for _, addr := range []string{"alice@fwd.test", "SRS@fwd.test", "SRS2=a=b=c=d@fwd.test", "nonsense"} {
		if _, err := r.Reverse(addr); !errors.Is(err, ErrNotSRS) {
			t.Errorf("Reverse(%q): %v, want ErrNotSRS", addr, err)
		}
	}
}

func TestExpiry(t *testing.T) {
	made := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	addr := rewriter(made).Forward("alice@example.org", "fwd.test")
	for _, c := range []struct {
		later time.Duration
		ok    bool
	}{{0, true}, {MaxAge - time.Hour, true}, {MaxAge + 24*time.Hour, false}, {200 * 24 * time.Hour, false}} {
		_, err := rewriter(made.Add(c.later)).Reverse(addr)
		if (err == nil) != c.ok {
			t.Errorf("%v after: %v, want ok=%v", c.later, err, c.ok)
		}
	}
}

func FuzzReverse(f *testing.F) {
	r := rewriter(time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC))
	f.Add(r.Forward("alice@example.org", "fwd.test"))
	f.Add(r.Forward(r.Forward("alice@example.org", "a.test"), "fwd.test"))
	f.Add("SRS1=x=y==z@w")
	f.Fuzz(func(t *testing.T, addr string) {
		orig, err := r.Reverse(addr)
		if err != nil {
			return
		}
		// Whatever reverses names a mailbox: local@domain, both parts non-empty.
		if i := strings.LastIndexByte(orig, '@'); i <= 0 || i == len(orig)-1 {
			t.Fatalf("Reverse(%q) = %q, not an address", addr, orig)
		}
	})
}
