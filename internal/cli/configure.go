package cli

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"petrel/internal/client/clientconf"
	"petrel/internal/client/discover"
)

// configure is `petrel fetch --configure ADDRESS` and `petrel send --configure ADDRESS`: find
// the servers of the address, check them, and add an account block to the client config.
// An existing account of that name is never changed: the block is shown and nothing written.
// finder is nil outside tests.
func configure(e *Env, confPath, address, name string, finder *discover.Finder) error {
	if confPath == "" {
		var err error
		if confPath, err = clientconf.DefaultPath(); err != nil {
			return &ExitError{Code: ExitUsage, Err: err}
		}
	}
	_, domain, _ := strings.Cut(address, "@")
	if name == "" {
		name, _, _ = strings.Cut(domain, ".")
	}
	if !regexp.MustCompile(`^[A-Za-z0-9._-]+$`).MatchString(name) {
		return &ExitError{Code: ExitUsage, Err: fmt.Errorf("cannot name an account %q: choose a name with --account NAME", name)}
	}
	if finder == nil {
		finder = &discover.Finder{}
	}
	fmt.Fprintf(e.Stdout, "Looking up the mail servers of %s...\n", address)
	r, err := finder.Find(e.Ctx, address)
	if err != nil {
		return &ExitError{Code: ExitFailed, Err: err}
	}
	for _, s := range append(append([]discover.Server(nil), r.Incoming...), r.Outgoing...) {
		fmt.Fprintf(e.Stdout, "  %-4s %s (%s), login %s, from %s\n", s.Proto, s.Addr(), s.TLS, s.User, s.Source)
	}
	var best []discover.Server
	if len(r.Incoming) > 0 {
		best = append(best, r.Incoming[0])
	}
	if len(r.Outgoing) > 0 {
		best = append(best, r.Outgoing[0])
	}
	for _, s := range best {
		if err := finder.Check(e.Ctx, s); err != nil {
			fmt.Fprintf(e.Stdout, "  warning: %s %s: %v\n", s.Proto, s.Addr(), err)
		} else if s.TLS != "plain" {
			fmt.Fprintf(e.Stdout, "  %s %s: TLS certificate valid\n", s.Proto, s.Addr())
		}
	}
	block := r.Block(name, true, true)

	old, err := os.ReadFile(confPath)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if len(old) > 0 {
		if c, err := clientconf.Parse(confPath, old); err == nil && c.Accounts[name] != nil {
			fmt.Fprintf(e.Stdout, "%s\n", block)
			return &ExitError{Code: ExitUsage, Err: fmt.Errorf("%s already has an account %q: not changed; the block above is what would be added (choose another name with --account NAME, or edit the file)", confPath, name)}
		}
	}
	content := append(bytes.Clone(old), block...)
	if _, err := clientconf.Parse(confPath, content); err != nil {
		return fmt.Errorf("the new account would not make a valid config (%v); nothing written. It was:\n%s", err, block)
	}
	if err := os.MkdirAll(filepath.Dir(confPath), 0o700); err != nil {
		return err
	}
	f, err := os.OpenFile(confPath, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.WriteString(block); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	fmt.Fprintf(e.Stdout, "Added account %q to %s; check the password or OAuth lines in it.\n", name, confPath)
	if r.Provider() != "" {
		fmt.Fprintf(e.Stdout, "Then run: petrel auth login %s\n", name)
	}
	return nil
}
