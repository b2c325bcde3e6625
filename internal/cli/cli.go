// Package cli implements `petrel <noun> <verb>`: one file per noun, each command carrying its
// usage and help next to its code. main only parses global flags and calls Main.
package cli

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
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
	// Yield lowers the process's CPU and I/O priority before a long job that runs beside
	// the server (backup), so that the server's deliveries keep their pace. nil: not
	// lowered (tests, which run the server in the same process).
	Yield func() error
	// copyAfterBatch, if set, is called by store copy after each batch it writes; an error
	// stops the copy there as a crash would (tests of resuming).
	copyAfterBatch func(store.CopyProgress) error
}

// command is one `petrel noun verb` (or one `petrel noun`, when verb is ""). Its usage lives
// here, next to its code: `petrel help NOUN VERB`, `petrel NOUN VERB --help` and -h print it.
type command struct {
	noun, verb string
	args       string // synopsis of the flags and arguments
	help       string // one line, for the list of commands
	// more is a longer explanation for the command's own help (optional).
	more string
	// flags returns the command's flag set, as its run function parses it, for the help to
	// list the flags with their defaults (optional).
	flags func() *flag.FlagSet
	run   func(e *Env, args []string) error
}

func (c command) name() string { return strings.TrimSpace(c.noun + " " + c.verb) }

func commands() []command {
	var cs []command
	cs = append(cs, serveCommands()...)
	cs = append(cs, domainCommands()...)
	cs = append(cs, accountCommands()...)
	cs = append(cs, aliasCommands()...)
	cs = append(cs, dkimCommands()...)
	cs = append(cs, dnsCommands()...)
	cs = append(cs, fetchCommands()...)
	cs = append(cs, sendCommands()...)
	cs = append(cs, authCommands()...)
	cs = append(cs, queueCommands()...)
	cs = append(cs, sieveCommands()...)
	cs = append(cs, backupCommands()...)
	cs = append(cs, moveCommands()...)
	cs = append(cs, checkCommands()...)
	cs = append(cs, migrateCommands()...)
	cs = append(cs, storeCommands()...)
	cs = append(cs, quickstartCommands()...)
	cs = append(cs, junkCommands()...)
	cs = append(cs, webmailCommands()...)
	return cs
}

// RunHelper runs a helper process of `petrel serve` when argv[0] names one (the key helper,
// see internal/app); ok is false for every other start of the binary.
func RunHelper(argv []string) (code int, ok bool) {
	if len(argv) == 0 || filepath.Base(argv[0]) != app.KeyHelperName {
		return 0, false
	}
	return app.RunKeyHelper(argv[1:]), true
}

// ErrUsage is returned for a wrong command line; main exits with status 2.
var ErrUsage = errors.New("usage")

// Main runs the command named by args (without the global flags). A request for help is
// answered on stdout and succeeds: `petrel help [NOUN [VERB]]`, `-h` or `--help` after any
// command, and a bare noun (`petrel account`) that lists its subcommands.
func Main(e *Env, args []string) error {
	if len(args) == 0 || isHelp(args[0]) {
		Usage(e.Stdout)
		return nil
	}
	if args[0] == "help" {
		if len(args) == 1 {
			Usage(e.Stdout)
			return nil
		}
		return Main(e, append(append([]string(nil), args[1:]...), "--help"))
	}
	var same []command // the commands of this noun
	for _, c := range commands() {
		if c.noun == args[0] {
			same = append(same, c)
		}
	}
	var cmd *command
	var rest []string
	switch {
	case len(same) == 0:
		return unknown(e, args[:1], Usage)
	case len(same) == 1 && same[0].verb == "":
		cmd, rest = &same[0], args[1:]
	case len(args) == 1 || isHelp(args[1]):
		nounUsage(e.Stdout, same)
		return nil
	default:
		verb := args[1]
		rest = args[2:]
		if args[0] == "import" && isIMAPURL(verb) { // petrel import imaps://USER@HOST ADDRESS
			verb, rest = "imap", args[1:]
		}
		for i := range same {
			if same[i].verb == verb {
				cmd = &same[i]
			}
		}
		if cmd == nil {
			return unknown(e, args[:2], func(w io.Writer) { nounUsage(w, same) })
		}
	}
	if wantsHelp(rest) {
		cmd.usage(e.Stdout)
		return nil
	}
	return cmd.run(e, rest)
}

// unknown reports a command line that names no command, followed by what exists.
func unknown(e *Env, args []string, usage func(io.Writer)) error {
	fmt.Fprintf(e.Stderr, "petrel: unknown command %q\n\n", strings.Join(args, " "))
	usage(e.Stderr)
	return ErrUsage
}

func isHelp(arg string) bool { return arg == "-h" || arg == "--help" || arg == "-help" }

// wantsHelp reports whether a command's arguments ask for its help (before any "--").
func wantsHelp(args []string) bool {
	for _, a := range args {
		if a == "--" {
			return false
		}
		if isHelp(a) {
			return true
		}
	}
	return false
}

const globalUsage = `usage: petrel [--data DIR] [-c FILE] <command> [arguments]

Global flags:
  --data DIR   data directory (default ./petrel-data, or ` + "`data`" + ` in the config file)
  -c FILE      config file (TOML); without it ` + "`serve`" + ` runs the development instance
`

// Usage prints every command with its one-line help.
func Usage(w io.Writer) {
	fmt.Fprint(w, globalUsage)
	fmt.Fprintln(w, "\nCommands:")
	cs := commands()
	sort.SliceStable(cs, func(i, j int) bool { return cs[i].noun < cs[j].noun })
	listCommands(w, cs)
	fmt.Fprintln(w, "\n`petrel help COMMAND` (or `petrel COMMAND --help`) explains one command.")
}

// nounUsage lists the subcommands of one noun.
func nounUsage(w io.Writer, cs []command) {
	fmt.Fprintf(w, "usage: petrel [--data DIR] [-c FILE] %s <command> [arguments]\n\nCommands:\n", cs[0].noun)
	listCommands(w, cs)
	fmt.Fprintf(w, "\n`petrel help %s COMMAND` explains one command.\n", cs[0].noun)
}

func listCommands(w io.Writer, cs []command) {
	for _, c := range cs {
		name := strings.TrimSpace(c.name() + " " + c.args)
		if len(name) > 44 {
			// Long synopses get the help on a line of its own rather than a ragged column.
			fmt.Fprintf(w, "  %s\n  %-44s %s\n", name, "", c.help)
			continue
		}
		fmt.Fprintf(w, "  %-44s %s\n", name, c.help)
	}
}

// usage prints the command's own help: synopsis, explanation, flags.
func (c *command) usage(w io.Writer) {
	fmt.Fprintf(w, "usage: petrel [--data DIR] [-c FILE] %s\n\n", strings.TrimSpace(c.name()+" "+c.args))
	fmt.Fprintln(w, strings.ToUpper(c.help[:1])+c.help[1:]+".")
	if c.more != "" {
		fmt.Fprintln(w, "\n"+strings.TrimSpace(c.more))
	}
	if c.flags != nil {
		fs := c.flags()
		fmt.Fprintln(w, "\nFlags:")
		fs.SetOutput(w)
		fs.PrintDefaults()
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
	st, err := app.OpenConfiguredStore(e.Ctx, c, slog.New(slog.NewTextHandler(io.Discard, nil)))
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

// confirm asks a yes/no question at the terminal; asked is false when stdin is not one
// (a script), so that nothing is changed on an answer nobody gave.
func (e *Env) confirm(question string) (yes, asked bool, err error) {
	f, ok := e.Stdin.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return false, false, nil
	}
	fmt.Fprintf(e.Stderr, "%s [y/N] ", question)
	line, err := bufio.NewReader(f).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return false, true, err
	}
	a := strings.ToLower(strings.TrimSpace(line))
	return a == "y" || a == "yes", true, nil
}

func checkPassword(p string) (string, error) {
	if len(p) < 8 {
		return "", errors.New("password too short (at least 8 characters)")
	}
	return p, nil
}
