package sqlite

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"petrel/internal/store"
)

// TestMaildropLockTwoStores: two Stores on one database in one process (the server and a
// management command) exclude each other: the lock is the store's, not a Store value's.
func TestMaildropLockTwoStores(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "petrel.db")
	one := openPath(t, path, Options{})
	defer one.Close()
	two := openPath(t, path, Options{})
	defer two.Close()
	a := setup(t, one, "a@example.org")
	b := setup(t, one, "b@example.org")

	unlock, err := one.LockMaildrop(ctx, a.ID)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := two.LockMaildrop(ctx, a.ID); !errors.Is(err, store.ErrLocked) {
		t.Fatalf("second Store locked a held maildrop: %v", err)
	}
	unlockB, err := two.LockMaildrop(ctx, b.ID)
	if err != nil {
		t.Fatalf("another account's maildrop: %v", err)
	}
	if _, err := one.LockMaildrop(ctx, b.ID); !errors.Is(err, store.ErrLocked) {
		t.Errorf("first Store locked the maildrop the second holds: %v", err)
	}
	unlock()
	unlock2, err := two.LockMaildrop(ctx, a.ID)
	if err != nil {
		t.Fatalf("LockMaildrop after the other Store unlocked: %v", err)
	}
	unlock() // stale: must not release the second Store's lock
	if _, err := one.LockMaildrop(ctx, a.ID); !errors.Is(err, store.ErrLocked) {
		t.Errorf("a stale unlock released another Store's lock: %v", err)
	}
	unlock2()
	unlockB()
}

// helperLock is the other process of TestMaildropLockOtherProcess: it takes the lock,
// says so, and holds it until it is killed.
func helperLock(ctx context.Context, s *Store) {
	a, err := s.AccountByAddress(ctx, "lock@example.org")
	if err == nil {
		_, err = s.LockMaildrop(ctx, a.ID)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	fmt.Println("LOCKED")
	time.Sleep(time.Minute) // the parent kills us long before
	os.Exit(3)
}

// TestMaildropLockOtherProcess: a lock another process holds is ErrLocked here, and it ends
// with that process however it ends (here SIGKILL, as in a crash), so a crashed server
// never leaves a maildrop locked.
func TestMaildropLockOtherProcess(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "petrel.db")
	s := openPath(t, path, Options{})
	defer s.Close()
	a := setup(t, s, "lock@example.org")

	cmd := runHelper(t, "lock", path)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || line != "LOCKED\n" {
		t.Fatalf("helper said %q, %v", line, err)
	}
	if _, err := s.LockMaildrop(ctx, a.ID); !errors.Is(err, store.ErrLocked) {
		t.Fatalf("LockMaildrop while another process holds it: %v", err)
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	unlock, err := s.LockMaildrop(ctx, a.ID)
	if err != nil {
		t.Fatalf("LockMaildrop after the holder died: %v", err)
	}
	unlock()
}
