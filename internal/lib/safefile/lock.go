package safefile

import (
	"errors"
	"os"

	"golang.org/x/sys/unix"
)

// ErrLocked is TryLock's answer when another process holds the lock.
var ErrLocked = errors.New("locked by another process")

// Lock takes an exclusive flock on path (created, mode 0600, if missing), waiting for its
// holder. The lock goes away with the process, so a killed holder never leaves it stale.
func Lock(path string) (unlock func(), err error) { return lock(path, unix.LOCK_EX) }

// TryLock is Lock without waiting: ErrLocked when another process holds it.
func TryLock(path string) (unlock func(), err error) { return lock(path, unix.LOCK_EX|unix.LOCK_NB) }

func lock(path string, how int) (func(), error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	if err := unix.Flock(int(f.Fd()), how); err != nil {
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, ErrLocked
		}
		return nil, err
	}
	return func() { f.Close() }, nil
}
