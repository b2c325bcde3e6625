// Package cli implements `petrel <noun> <verb>`: one file per noun, each command carrying its
// usage and help next to its code. main only parses global flags and calls Main.
package cli

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sort"
	"strings"

	"golang.org/x/term"

	"petrel/internal/app"
	"petrel/internal/config"
	"petrel/internal/store"
)

// Env is what a command runs with. Tests build their own.
type Env struct {
	Ctx        context.Context
	DataDir    string // --data, "" if not given
	ConfigFile string // -c, "" for the development instance
	Stdin      io.Reader
	Stdout     io.Writer
	Stderr     io.Writer
	// Signals delivers SIGHUP (reload) to serve; nil in tests.
	Reload <-chan struct{}
}

// command is one `petrel noun verb`.
type command struct {
	noun, verb string
	args       string // usage of the arguments
	help       string
	run        func(e *Env, args []string) error
}

func commands() []command {
	var cs []command
	cs = append(cs, serveCommands()...)
	cs = append(cs, domainCommands()...)
	cs = append(cs, accountCommands()...)
	cs = append(cs, aliasCommands()...)
	cs = append(cs, fetchCommands()...)
	cs = append(cs, sendCommands()...)
	return cs
}

// ErrUsage is returned for a wrong command line; main exits with status 2.
var ErrUsage = errors.New("usage")

// Main runs the command named by args (without the global flags).
func Main(e *Env, args []string) error {
	cs := commands()
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		Usage(e.Stdout)
		return nil
	}
	for _, c := range cs {
		if c.noun != args[0] {
			continue
		}
		if c.verb == "" {
			return c.run(e, args[1:])
		}
		if len(args) > 1 && c.verb == args[1] {
			return c.run(e, args[2:])
		}
	}
	fmt.Fprintf(e.Stderr, "petrel: unknown command %q\n\n", strings.Join(args[:min(2, len(args))], " "))
	Usage(e.Stderr)
	return ErrUsage
}

// Usage prints every command with its help.
func Usage(w io.Writer) {
	fmt.Fprintln(w, "usage: petrel [--data DIR] [-c FILE] <command> [arguments]")
	fmt.Fprintln(w, "\nGlobal flags:")
	fmt.Fprintln(w, "  --data DIR   data directory (default ./petrel-data, or `data` in the config file)")
	fmt.Fprintln(w, "  -c FILE      config file (TOML); without it `serve` runs the development instance")
	fmt.Fprintln(w, "\nCommands:")
	cs := commands()
	sort.SliceStable(cs, func(i, j int) bool { return cs[i].noun < cs[j].noun })
	for _, c := range cs {
		name := strings.Join(strings.Fields(c.noun+" "+c.verb+" "+c.args), " ")
		if len(name) > 44 {
			// Long synopses get the help on a line of its own rather than a ragged column.
			fmt.Fprintf(w, "  %s\n  %-44s %s\n", name, "", c.help)
			continue
		}
		fmt.Fprintf(w, "  %-44s %s\n", name, c.help)
	}
}

// config returns the configuration the command works on: the file if -c was given, the
// development instance otherwise; --data overrides the data directory either way.
func (e *Env) config() (*config.Config, error) {
	var c *config.Config
	if e.ConfigFile != "" {
		var err error
		if c, err = config.Load(e.ConfigFile); err != nil {
			return nil, err
		}
	} else {
		c = config.Dev()
	}
	if e.DataDir != "" {
		c.Data = e.DataDir
	}
	return c, nil
}

// openStore opens the store of the configured data directory for a management command.
func (e *Env) openStore() (store.Store, error) {
	c, err := e.config()
	if err != nil {
		return nil, err
	}
	st, err := app.OpenStore(c.Data, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		return nil, err
	}
	// The config's domains exist for the server from its first start; management commands
	// see them too, so that `account add` works before the first `serve`.
	if err := app.EnsureDomains(e.Ctx, st, c.Domains); err != nil {
		st.Close()
		return nil, err
	}
	return st, nil
}

// withStore runs f with an open store and closes it afterwards.
func (e *Env) withStore(f func(st store.Store) error) error {
	st, err := e.openStore()
	if err != nil {
		return err
	}
	defer st.Close()
	return f(st)
}

// exactArgs checks the number of arguments of a command.
func exactArgs(args []string, n int, usage string) error {
	if len(args) != n {
		return fmt.Errorf("%w: petrel %s", ErrUsage, usage)
	}
	return nil
}

// readPassword reads a new password: from a prompt (asked twice, no echo) when stdin is a
// terminal, else from the first line of stdin, so scripts can pipe it. Never from argv, where
// every user of the machine could read it in the process list.
func (e *Env) readPassword() (string, error) {
	if f, ok := e.Stdin.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		fmt.Fprint(e.Stderr, "New password: ")
		p1, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(e.Stderr)
		if err != nil {
			return "", err
		}
		fmt.Fprint(e.Stderr, "Repeat password: ")
		p2, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(e.Stderr)
		if err != nil {
			return "", err
		}
		if string(p1) != string(p2) {
			return "", errors.New("passwords do not match")
		}
		return checkPassword(string(p1))
	}
	line, err := bufio.NewReader(e.Stdin).ReadString('\n')
	if err != nil && !(errors.Is(err, io.EOF) && line != "") {
		return "", errors.New("no password on stdin")
	}
	return checkPassword(strings.TrimRight(line, "\r\n"))
}

func checkPassword(p string) (string, error) {
	if len(p) < 8 {
		return "", errors.New("password too short (at least 8 characters)")
	}
	return p, nil
}
