package sqlite

import "golang.org/x/sys/unix"

// lockCmd takes an open-file-description lock (F_OFD_SETLK, Linux): it belongs to the open
// file, not to the process, so two Stores of one process exclude each other too, and
// closing one file never drops the locks of another.
const lockCmd = unix.F_OFD_SETLK
