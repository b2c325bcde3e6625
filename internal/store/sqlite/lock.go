package sqlite

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"

	"golang.org/x/sys/unix"

	"petrel/internal/store"
)

// The POP3 maildrop lock (store.Mail.LockMaildrop) is held by the store, not by one Store
// value: a write lock (lockCmd) on byte accountID of a lock file next to the database.
// Every process that opens the database sees it, the kernel drops it when its holder exits
// however it exits, and taking it costs no transaction and no fsync. Within one Store the
// locked map answers first, since the locks of one open file never conflict with each
// other.

// openLockFile opens (creating) the lock file of the database at path.
func openLockFile(path string) (*os.File, error) {
	return os.OpenFile(path+"-pop3lock", os.O_RDWR|os.O_CREATE, 0o600)
}

// lockByte takes (lock) or releases the write lock on byte off of f without waiting; a lock
// another open file holds is store.ErrLocked.
func lockByte(f *os.File, off int64, lock bool) error {
	lk := unix.Flock_t{Type: unix.F_WRLCK, Whence: 0, Start: off, Len: 1}
	if !lock {
		lk.Type = unix.F_UNLCK
	}
	err := unix.FcntlFlock(f.Fd(), lockCmd, &lk)
	if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EACCES) {
		return store.ErrLocked
	}
	if err != nil {
		return fmt.Errorf("store: maildrop lock: %w", err)
	}
	return nil
}

// LockMaildrop implements store.Mail.
func (s *Store) LockMaildrop(ctx context.Context, accountID int64) (func(), error) {
	s.lockMu.Lock()
	defer s.lockMu.Unlock()
	if s.locked[accountID] {
		return nil, store.ErrLocked
	}
	if err := lockByte(s.lockFile, accountID, true); err != nil {
		return nil, err
	}
	s.locked[accountID] = true
	var once sync.Once
	return func() {
		once.Do(func() {
			s.lockMu.Lock()
			defer s.lockMu.Unlock()
			if err := lockByte(s.lockFile, accountID, false); err != nil {
				s.log.Error("store: releasing a POP3 maildrop lock", "account", accountID, "err", err)
			}
			delete(s.locked, accountID)
		})
	}, nil
}
