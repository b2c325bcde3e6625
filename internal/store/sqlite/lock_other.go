//go:build unix && !linux

package sqlite

import "golang.org/x/sys/unix"

// lockCmd takes a classic POSIX record lock where open-file-description locks are missing:
// it still keeps other processes out and ends with its holder, but two Stores of one
// process on the same database do not exclude each other, and closing either drops the
// locks of both (fcntl(2)). Petrel runs one server process per data directory.
const lockCmd = unix.F_SETLK
