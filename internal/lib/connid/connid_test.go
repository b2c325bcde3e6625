package connid

import (
	"context"
	"strings"
	"testing"
)

func TestNewDistinct(t *testing.T) {
	seen := map[string]bool{}
	for range 1000 {
		id := New()
		if len(id) != 12 {
			t.Fatalf("id %q: want 12 characters", id)
		}
		if seen[id] {
			t.Fatalf("id %q twice", id)
		}
		seen[id] = true
	}
}

func TestContext(t *testing.T) {
	if got := From(context.Background()); got != "" {
		t.Fatalf("From(empty) = %q", got)
	}
	id := New()
	if got := From(With(context.Background(), id)); got != id {
		t.Fatalf("From = %q, want %q", got, id)
	}
}

// TestRandom: n characters of the base32 alphabet in lower case, as the logs have always
// shown them (connection ids of 12, SMTP transaction ids of 16).
func TestRandom(t *testing.T) {
	for _, n := range []int{12, 16, 1, 7} {
		id := Random(n)
		if len(id) != n || strings.Trim(id, "abcdefghijklmnopqrstuvwxyz234567") != "" {
			t.Errorf("Random(%d) = %q", n, id)
		}
	}
}
