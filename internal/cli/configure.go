package cli

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"

	"petrel/internal/client/clientconf"
	"petrel/internal/client/discover"
	"petrel/internal/lib/safefile"
)

// configureRequest is what `--configure` was asked to do.
type configureRequest struct {
	confPath, address, name string
	// replace changes an existing account of that name without asking (--replace).
	replace bool
	// finder is nil outside tests.
	finder *discover.Finder
	// confirm asks the user a yes/no question; asked is false when there is nobody to ask
	// (stdin is not a terminal). nil means Env.confirm.
	confirm func(question string) (yes, asked bool, err error)
}

// configure is `petrel fetch --configure ADDRESS` and `petrel send --configure ADDRESS`: find
// the servers of the address, check them, and add an account block to the client config.
// An existing account of that name is changed only with --replace or when the user says yes
// at a terminal; the old file is kept as FILE.bak and the new one replaces it atomically.
func configure(e *Env, req configureRequest) error {
	confPath, address, name, finder := req.confPath, req.address, req.name, req.finder
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
	var exists bool
	if len(old) > 0 {
		c, err := clientconf.Parse(confPath, old)
		exists = err == nil && c.Accounts[name] != nil
	}
	if !exists {
		if err := appendBlock(confPath, old, block); err != nil {
			return err
		}
		fmt.Fprintf(e.Stdout, "Added account %q to %s; check the password or OAuth lines in it.\n", name, confPath)
	} else {
		fmt.Fprintf(e.Stdout, "%s already has an account %q. The new one would be:\n%s\n", confPath, name, block)
		yes := req.replace
		if !yes {
			confirm := req.confirm
			if confirm == nil {
				confirm = e.confirm
			}
			var asked bool
			yes, asked, err = confirm(fmt.Sprintf("Replace account %q in %s (the old file is kept as %s.bak)?", name, confPath, filepath.Base(confPath)))
			if err != nil {
				return err
			}
			if !asked {
				return &ExitError{Code: ExitUsage, Err: fmt.Errorf("%s already has an account %q: not changed (run again with --replace to replace it, choose another name with --account NAME, or edit the file)", confPath, name)}
			}
		}
		if !yes {
			fmt.Fprintf(e.Stdout, "Not changed.\n")
			return nil
		}
		if err := replaceBlock(confPath, old, name, block); err != nil {
			return err
		}
		fmt.Fprintf(e.Stdout, "Replaced account %q in %s (the old file is %s.bak); check the password or OAuth lines in it.\n", name, confPath, confPath)
	}
	if r.Provider() != "" {
		fmt.Fprintf(e.Stdout, "Then run: petrel auth login %s\n", name)
	}
	return nil
}

// appendBlock adds a new account's block at the end of the client config, creating it.
func appendBlock(confPath string, old []byte, block string) error {
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
	return f.Close()
}

// replaceBlock puts block in place of account name's tables. The result must parse and
// hold the account exactly as the block alone says, or nothing is written; the old file is
// kept as FILE.bak, and the new one is renamed over the config so that a crash leaves one
// or the other, never half of each.
func replaceBlock(confPath string, old []byte, name, block string) error {
	content, err := clientconf.ReplaceAccount(old, name, block)
	if err != nil {
		return err
	}
	c, err := clientconf.Parse(confPath, content)
	if err != nil {
		return fmt.Errorf("%s: replacing account %q would not make a valid config (%v); nothing written. Edit the file by hand; the new account is:\n%s", confPath, name, err, block)
	}
	alone, err := clientconf.Parse(confPath, []byte(block))
	if err != nil || !reflect.DeepEqual(c.Accounts[name], alone.Accounts[name]) {
		return fmt.Errorf("%s: account %q is also set outside its [accounts.%s] tables; nothing written. Edit the file by hand; the new account is:\n%s", confPath, name, name, block)
	}
	if err := safefile.WriteAtomic(confPath+".bak", old, 0o600); err != nil {
		return err
	}
	return safefile.WriteAtomic(confPath, content, 0o600)
}
