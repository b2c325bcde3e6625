package sqlite

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"

	"petrel/internal/store"
)

// The POP3 maildrop lock (store.Mail.LockMaildrop) is held by the store, not by one Store
// value: an open-file-description lock (F_OFD_SETLK) on byte accountID of a lock file next
// to the database. Every process that opens the database sees it, the kernel drops it when
// its holder exits however it exits, and taking it costs no transaction and no fsync.
// Within one Store the locked map answers first, since OFD locks of one open file never
// conflict with each other.

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
	err := unix.FcntlFlock(f.Fd(), unix.F_OFD_SETLK, &lk)
	if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EACCES) {
		return store.ErrLocked
	}
	if err != nil {
		return fmt.Errorf("store: maildrop lock: %w", err)
	}
	return nil
}
