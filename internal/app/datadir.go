package app

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// lockName is the lock file of a data directory. `petrel serve` holds an exclusive flock on it
// for its whole life, so that a second server on the same data is refused instead of running
// beside the first (two committers, two POP3 lock tables in memory). The management commands
// do not take it: they are meant to work while the server runs.
const lockName = "petrel.lock"

// lockDataDir takes the data directory's lock, or says who holds it. The lock is released
// when the returned file is closed, or when the process ends however it ends.
func lockDataDir(dir string) (*os.File, error) {
	path := filepath.Join(dir, lockName)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, dataDirError(dir, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		defer f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			who := "another petrel serve"
			if b, rerr := os.ReadFile(path); rerr == nil && len(strings.TrimSpace(string(b))) > 0 {
				who += " (pid " + strings.TrimSpace(string(b)) + ")"
			}
			return nil, fmt.Errorf("%s is already running with the data directory %s; stop it first, "+
				"or give this one another directory (--data, or data in the config file)", who, dir)
		}
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	// The pid is for the message above only; the lock itself is the flock.
	if err := f.Truncate(0); err == nil {
		f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return f, nil
}

// checkDataDir creates the data directory if needed and checks that this process may use
// what is in it, so that a mistake is reported in the operator's terms instead of SQLite's
// ("unable to open database file (14)").
func checkDataDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return dataDirError(dir, err)
	}
	// The directory must be writable: SQLite creates its -wal and -shm files next to the
	// database.
	checks := []struct {
		path string
		mode uint32
	}{
		{dir, unix.W_OK | unix.X_OK},
		{filepath.Join(dir, "petrel.db"), unix.R_OK | unix.W_OK},
		{filepath.Join(dir, "petrel.db-wal"), unix.R_OK | unix.W_OK},
		{filepath.Join(dir, "petrel.db-shm"), unix.R_OK | unix.W_OK},
	}
	for _, c := range checks {
		err := unix.Access(c.path, c.mode)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return dataDirError(dir, &fs.PathError{Op: "open", Path: c.path, Err: err})
		}
	}
	return nil
}

// dataDirError says what is wrong with the data directory and what to do about it.
func dataDirError(dir string, err error) error {
	if errors.Is(err, fs.ErrPermission) {
		owner := ""
		var pe *fs.PathError
		if errors.As(err, &pe) {
			owner = ownerOf(pe.Path)
		}
		if owner == "" {
			owner = ownerOf(dir)
		}
		who := "the user that owns it"
		if owner != "" {
			who = "the user that owns it (" + owner + ")"
		}
		return fmt.Errorf("cannot open the data directory %s: permission denied; run as %s or pass --data", dir, who)
	}
	var pe *fs.PathError
	if errors.As(err, &pe) {
		err = pe.Err
	}
	return fmt.Errorf("cannot open the data directory %s: %v; pass --data to use another", dir, err)
}

// ownerOf returns the name of the user owning path (its nearest existing parent), "" if unknown.
func ownerOf(path string) string {
	for p := path; ; p = filepath.Dir(p) {
		fi, err := os.Stat(p)
		if err == nil {
			st, ok := fi.Sys().(*syscall.Stat_t)
			if !ok {
				return ""
			}
			if u, err := user.LookupId(strconv.Itoa(int(st.Uid))); err == nil {
				return u.Username
			}
			return "uid " + strconv.Itoa(int(st.Uid))
		}
		if p == filepath.Dir(p) {
			return ""
		}
	}
}
