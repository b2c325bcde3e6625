//go:build unix && !linux

package sqlite

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"

	"petrel/internal/store"
)

// Without open-file-description locks (Linux only), the maildrop lock is a classic POSIX
// record lock: it still keeps other processes out and ends with its holder, but two Stores
// of one process on the same database do not exclude each other, and closing either drops
// the locks of both (fcntl(2)). Petrel runs one server process per data directory.

func openLockFile(path string) (*os.File, error) {
	return os.OpenFile(path+"-pop3lock", os.O_RDWR|os.O_CREATE, 0o600)
}

func lockByte(f *os.File, off int64, lock bool) error {
	lk := unix.Flock_t{Type: unix.F_WRLCK, Whence: 0, Start: off, Len: 1}
	if !lock {
		lk.Type = unix.F_UNLCK
	}
	err := unix.FcntlFlock(f.Fd(), unix.F_SETLK, &lk)
	if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EACCES) {
		return store.ErrLocked
	}
	if err != nil {
		return fmt.Errorf("store: maildrop lock: %w", err)
	}
	return nil
}
