package app

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"strconv"
	"strings"
	"syscall"

	"petrel/internal/config"
	"petrel/internal/pull"
	"petrel/internal/store"
)

// checkPullKey checks [pull] key_file for `petrel check` when the store has pull sources (or
// the file exists): it exists, is a regular file of mode 0600 (or 0640 for the server's
// group), belongs to the server's user or root, the server's user can read it, it holds a
// key (32 bytes in hex), and that key opens every stored password.
func checkPullKey(ctx context.Context, cfg *config.Config, st store.Store, problem, warn func(string, ...any)) {
	ps, ok := st.(store.Pulls)
	if !ok {
		return
	}
	accounts, err := st.Accounts(ctx, "")
	if err != nil {
		problem("pull: %v", err)
		return
	}
	type source struct {
		store.PullSource
		address string
	}
	var sources []source
	for _, a := range accounts {
		list, err := ps.PullSources(ctx, a.ID)
		if err != nil {
			problem("pull: %v", err)
			return
		}
		for _, s := range list {
			sources = append(sources, source{s, a.Address})
		}
	}
	path := cfg.PullKeyFile()
	fi, err := os.Stat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist) && len(sources) == 0:
		return // made by the first `pull add`
	case errors.Is(err, fs.ErrNotExist):
		problem("pull: key file %s does not exist: the passwords of %d pull sources cannot be opened (restore the key from a backup, or give each source its password again with `petrel account pull edit ADDRESS ID --password`)", path, len(sources))
		return
	case err != nil:
		problem("pull: key file %v", err)
		return
	case !fi.Mode().IsRegular():
		problem("pull: key file %s is not a regular file", path)
		return
	}

	srv := serverUser(cfg)
	sys, _ := fi.Sys().(*syscall.Stat_t)
	perm := fi.Mode().Perm()
	switch {
	case perm&0o007 != 0:
		problem("pull: key file %s is mode %04o: every user of the host can read the outside passwords' key; chmod 600 it (640 for the server's group)", path, perm)
	case perm&0o030 != 0 || perm&0o100 != 0:
		problem("pull: key file %s is mode %04o: want 0600, or 0640 for the server's group", path, perm)
	case perm != 0o600 && perm != 0o640:
		warn("pull: key file %s is mode %04o: want 0600, or 0640 for the server's group", path, perm)
	}
	if sys != nil {
		if srv != nil && int(sys.Uid) != 0 && int(sys.Uid) != srv.uid {
			problem("pull: key file %s belongs to %s, neither root nor the server's user%s: that user can read and replace the key; chown it", path, userName(int(sys.Uid)), srv.describe())
		}
		if perm&0o040 != 0 && srv != nil && int(sys.Gid) != srv.gid && int(sys.Gid) != 0 {
			problem("pull: key file %s is readable by group %s, not the server's (%s): its members can read the key", path, groupName(int(sys.Gid)), groupName(srv.gid))
		}
		if srv != nil && srv.uid != 0 && !(int(sys.Uid) == srv.uid && perm&0o400 != 0) && !(int(sys.Gid) == srv.gid && perm&0o040 != 0) {
			problem("pull: key file %s cannot be read by the server's user%s: the server would fail every pull (chown it to that user, or chgrp it to its group and chmod 640)", path, srv.describe())
		}
	}

	sealer, err := pull.LoadKey(path, false)
	if err != nil {
		problem("%v", err)
		return
	}
	var bad []string
	for _, s := range sources {
		if _, err := sealer.Open(s.Secret, s.AccountID, s.Protocol, s.Addr, s.User); err != nil {
			bad = append(bad, s.address+" "+strconv.FormatInt(s.ID, 10))
		}
	}
	if len(bad) > 0 {
		problem("pull: the key in %s does not open the stored password of %d of %d pull sources (%s): another key file, or the database was altered; `petrel account pull edit ADDRESS ID --password` stores a new one",
			path, len(bad), len(sources), strings.Join(bad, ", "))
	}
}

// checkUser is the user a server started with cfg runs as.
type checkUser struct {
	name     string
	uid, gid int
}

func (u *checkUser) describe() string {
	if u == nil {
		return ""
	}
	return " (" + u.name + ")"
}

// serverUser is who the server runs as: cfg.User when it switches to it, else the owner of
// the data directory (a service started as its user, as the systemd unit does), else whoever
// runs this; nil when that cannot be known (user set but not found: reported elsewhere).
func serverUser(cfg *config.Config) *checkUser {
	if cfg.User != "" {
		u, err := user.Lookup(cfg.User)
		if err != nil {
			return nil
		}
		uid, err1 := strconv.Atoi(u.Uid)
		gid, err2 := strconv.Atoi(u.Gid)
		if err1 != nil || err2 != nil {
			return nil
		}
		return &checkUser{cfg.User, uid, gid}
	}
	if fi, err := os.Stat(cfg.Data); err == nil {
		if sys, ok := fi.Sys().(*syscall.Stat_t); ok {
			return &checkUser{userName(int(sys.Uid)), int(sys.Uid), int(sys.Gid)}
		}
	}
	return &checkUser{userName(os.Geteuid()), os.Geteuid(), os.Getegid()}
}

func userName(uid int) string {
	if u, err := user.LookupId(strconv.Itoa(uid)); err == nil {
		return u.Username
	}
	return fmt.Sprintf("uid %d", uid)
}

func groupName(gid int) string {
	if g, err := user.LookupGroupId(strconv.Itoa(gid)); err == nil {
		return g.Name
	}
	return fmt.Sprintf("gid %d", gid)
}
