package app

import (
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"syscall"
)

// dropPrivileges switches the process to the configured user once the listeners are bound:
// root is needed for ports below 1024 and for nothing else. The data directory is handed to
// that user first, so the store (which opens more database connections later) keeps working.
// TLS keys were read as root at start; a reload after the switch needs files that user can
// read.
func dropPrivileges(name, dataDir string) error {
	if os.Geteuid() != 0 {
		return fmt.Errorf("user = %q: switching users needs root; run as root or leave user unset", name)
	}
	u, err := user.Lookup(name)
	if err != nil {
		return fmt.Errorf("user = %q: %w", name, err)
	}
	uid, err := strconv.Atoi(u.Uid)
	if err != nil {
		return fmt.Errorf("user = %q: uid %q", name, u.Uid)
	}
	gid, err := strconv.Atoi(u.Gid)
	if err != nil {
		return fmt.Errorf("user = %q: gid %q", name, u.Gid)
	}
	if uid == 0 {
		return fmt.Errorf("user = %q is root", name)
	}
	err = filepath.WalkDir(dataDir, func(path string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(path, uid, gid)
	})
	if err != nil {
		return fmt.Errorf("give %s to %s: %w", dataDir, name, err)
	}
	// Order matters: supplementary groups and the group can only be changed while still root.
	// Go applies these to every thread of the process (Linux, Go 1.16+).
	if err := syscall.Setgroups([]int{gid}); err != nil {
		return fmt.Errorf("setgroups: %w", err)
	}
	if err := syscall.Setgid(gid); err != nil {
		return fmt.Errorf("setgid: %w", err)
	}
	if err := syscall.Setuid(uid); err != nil {
		return fmt.Errorf("setuid: %w", err)
	}
	return nil
}
