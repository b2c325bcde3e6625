package connid

import (
	"context"
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
