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

// runAs is the user the server switches to once its ports are bound.
type runAs struct {
	name     string
	uid, gid int
}

// lookupUser checks that the switch to the configured user can happen, before anything is
// bound or written: it needs root and a user that exists and is not root.
func lookupUser(name string) (*runAs, error) {
	if os.Geteuid() != 0 {
		return nil, fmt.Errorf("user = %q: switching users needs root; run as root or leave user unset", name)
	}
	u, err := user.Lookup(name)
	if err != nil {
		return nil, fmt.Errorf("user = %q: %w", name, err)
	}
	uid, err := strconv.Atoi(u.Uid)
	if err != nil {
		return nil, fmt.Errorf("user = %q: uid %q", name, u.Uid)
	}
	gid, err := strconv.Atoi(u.Gid)
	if err != nil {
		return nil, fmt.Errorf("user = %q: gid %q", name, u.Gid)
	}
	if uid == 0 {
		return nil, fmt.Errorf("user = %q is root", name)
	}
	return &runAs{name: name, uid: uid, gid: gid}, nil
}

// dropPrivileges switches the process to u once the listeners are bound: root is needed for
// ports below 1024 and for nothing else. The data directory is handed to that user first, so
// the store (which opens more database connections later) keeps working. TLS keys are read
// through the key helper from then on (keyhelper.go), so a certificate reload still works
// with key files only root may read.
func dropPrivileges(u *runAs, dataDir string) error {
	err := filepath.WalkDir(dataDir, func(path string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(path, u.uid, u.gid)
	})
	if err != nil {
		return fmt.Errorf("give %s to %s: %w", dataDir, u.name, err)
	}
	// Order matters: supplementary groups and the group can only be changed while still root.
	// Go applies these to every thread of the process (Linux, Go 1.16+).
	if err := syscall.Setgroups([]int{u.gid}); err != nil {
		return fmt.Errorf("setgroups: %w", err)
	}
	if err := syscall.Setgid(u.gid); err != nil {
		return fmt.Errorf("setgid: %w", err)
	}
	if err := syscall.Setuid(u.uid); err != nil {
		return fmt.Errorf("setuid: %w", err)
	}
	return nil
}
