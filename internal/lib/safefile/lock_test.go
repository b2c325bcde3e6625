package safefile

import (
	"errors"
	"path/filepath"
	"testing"
)

// TestLock: a held lock refuses TryLock (flock locks are per open file, so a second open in
// the same process conflicts like another process would) and is free again after unlock.
func TestLock(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.lock")
	unlock, err := Lock(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := TryLock(path); !errors.Is(err, ErrLocked) {
		t.Fatalf("TryLock while held: %v", err)
	}
	unlock()
	unlock2, err := TryLock(path)
	if err != nil {
		t.Fatalf("TryLock after unlock: %v", err)
	}
	unlock2()
}
