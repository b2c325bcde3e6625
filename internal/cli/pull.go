package cli

import (
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"petrel/internal/app"
	"petrel/internal/pull"
	"petrel/internal/store"
)

// `petrel account pull`: outside POP3 and IMAP mailboxes the server polls into an account
// (issue 16; internal/pull).

const pullUsage = `account pull add ADDRESS --pop3|--imap HOST:PORT --user USER [--tls implicit|starttls|plain] [--keep|--delete] [--every DURATION] [--folder FOLDER] [--ca-file PEM]
       petrel account pull edit ADDRESS ID [--pop3|--imap HOST:PORT] [--user USER] [--password] [--tls implicit|starttls|plain] [--keep|--delete] [--every DURATION] [--folder FOLDER] [--ca-file PEM]
       petrel account pull list ADDRESS
       petrel account pull remove ADDRESS ID
       petrel account pull now ADDRESS ID`

func pullCommand() command {
	return command{
		noun: "account", verb: "pull",
		args: "add|edit|list|remove|now ADDRESS ...",
		help: "outside POP3/IMAP mailboxes the server polls into an account",
		more: `add: the server polls the mailbox every DURATION (default 10m) and delivers what is new
into ADDRESS's INBOX through the normal delivery path (junk filter, Sieve). The outside
password is read from a prompt or the first line of stdin; it is stored sealed (AES-256-GCM)
with the key of [pull] key_file, which stays outside the data directory. --delete (the
default) removes messages from the outside mailbox once they are delivered; --keep leaves
them. TLS is verified (--ca-file for a private CA); "plain" sends the password in clear text.
edit: changes the server (same protocol), user, password (--password reads a new one as
add does), TLS mode, CA file (--ca-file "" for the system's), folder, --keep/--delete or
interval of source ID and makes it due now; what it pulled is remembered, so nothing is
pulled twice. A changed folder's messages are recognized by their headers.
list: the sources with their last poll, next poll and last error, and the last notice (a
changed IMAP UIDVALIDITY, resynchronized without pulling the folder again).
remove: removes a source and what it remembers; now: polls it at the server's next check.`,
		flags: func() *flag.FlagSet { return pullFlags(&pullOptions{}, "add") },
		run:   accountPull,
	}
}

type pullOptions struct {
	pop3, imap, user, tls, folder, caFile string
	keep, del, password                   bool
	every                                 time.Duration
}

func pullFlags(o *pullOptions, verb string) *flag.FlagSet {
	fs := flag.NewFlagSet("petrel account pull "+verb, flag.ContinueOnError)
	if verb == "edit" {
		fs.BoolVar(&o.password, "password", false, "read a new password (prompt or first line of stdin)")
	}
	fs.StringVar(&o.pop3, "pop3", "", "a POP3 mailbox at `HOST:PORT`")
	fs.StringVar(&o.imap, "imap", "", "an IMAP mailbox at `HOST:PORT`")
	fs.StringVar(&o.user, "user", "", "the `USER` name on the outside server")
	fs.StringVar(&o.tls, "tls", "implicit", "`implicit` TLS, starttls, or plain (no TLS: the password goes in clear text)")
	fs.BoolVar(&o.keep, "keep", false, "leave pulled messages on the outside server")
	fs.BoolVar(&o.del, "delete", false, "delete pulled messages from the outside server (the default)")
	fs.DurationVar(&o.every, "every", 10*time.Minute, "how often to poll (`DURATION`, at least 1m)")
	fs.StringVar(&o.folder, "folder", "", "IMAP: the `FOLDER` to pull (default INBOX)")
	fs.StringVar(&o.caFile, "ca-file", "", "`PEM` file of the CA certificates to trust instead of the system's")
	return fs
}

func accountPull(e *Env, args []string) error {
	if len(args) < 2 {
		return fmt.Errorf("%w: petrel %s", ErrUsage, pullUsage)
	}
	verb, addrArg, rest := args[0], args[1], args[2:]
	addr, err := normAddress(addrArg)
	if err != nil {
		return err
	}
	switch verb {
	case "add":
		return pullAdd(e, addr, rest)
	case "edit":
		return pullEdit(e, addr, rest)
	case "list":
		if len(rest) != 0 {
			return fmt.Errorf("%w: petrel %s", ErrUsage, pullUsage)
		}
		return withPulls(e, addr, func(ps store.Pulls, acct store.Account) error { return pullList(e, ps, acct) })
	case "remove", "now":
		if len(rest) != 1 {
			return fmt.Errorf("%w: petrel %s", ErrUsage, pullUsage)
		}
		id, err := strconv.ParseInt(rest[0], 10, 64)
		if err != nil {
			return fmt.Errorf("%w: source ID %q is not a number (`petrel account pull list %s` shows them)", ErrUsage, rest[0], addr)
		}
		return withPulls(e, addr, func(ps store.Pulls, acct store.Account) error {
			f, done := ps.RemovePullSource, "removed"
			if verb == "now" {
				f, done = ps.PullNow, "due now (the server polls it at its next check):"
			}
			if err := f(e.Ctx, acct.ID, id); errors.Is(err, store.ErrNotFound) {
				return fmt.Errorf("%s has no pull source %d (`petrel account pull list %s` shows them)", addr, id, addr)
			} else if err != nil {
				return err
			}
			fmt.Fprintf(e.Stdout, "%s pull source %d of %s\n", done, id, addr)
			return nil
		})
	}
	return fmt.Errorf("%w: petrel %s", ErrUsage, pullUsage)
}

// withPulls runs f with the store's pull sources and the account addr.
func withPulls(e *Env, addr string, f func(store.Pulls, store.Account) error) error {
	return e.withStore(func(st store.Store) error {
		ps, ok := st.(store.Pulls)
		if !ok {
			return errors.New("this store does not keep pull sources")
		}
		acct, err := st.AccountByAddress(e.Ctx, addr)
		if err != nil {
			return noAccount(addr, err)
		}
		return f(ps, acct)
	})
}

func pullAdd(e *Env, addr string, args []string) error {
	var o pullOptions
	fs := pullFlags(&o, "add")
	fs.SetOutput(e.Stderr)
	if err := fs.Parse(args); err != nil || fs.NArg() != 0 {
		return fmt.Errorf("%w: petrel %s", ErrUsage, pullUsage)
	}
	src := store.PullSource{User: o.user, Keep: o.keep, Every: o.every, Folder: o.folder, NextPoll: time.Now()}
	switch {
	case (o.pop3 == "") == (o.imap == ""):
		return fmt.Errorf("%w: give one of --pop3 and --imap", ErrUsage)
	case o.pop3 != "":
		src.Protocol, src.Addr = "pop3", o.pop3
	default:
		src.Protocol, src.Addr = "imap", o.imap
	}
	if host, port, err := net.SplitHostPort(src.Addr); err != nil || host == "" || port == "" {
		return fmt.Errorf("%w: %s wants HOST:PORT, not %q", ErrUsage, src.Protocol, src.Addr)
	}
	var err error
	if src.TLS, err = pullTLS(o.tls); err != nil {
		return err
	}
	switch {
	case o.keep && o.del:
		return fmt.Errorf("%w: --keep or --delete, not both", ErrUsage)
	case o.user == "":
		return fmt.Errorf("%w: --user is required", ErrUsage)
	case o.every < time.Minute:
		return fmt.Errorf("%w: --every is at least 1m", ErrUsage)
	case o.folder != "" && src.Protocol != "imap":
		return fmt.Errorf("%w: --folder is for --imap", ErrUsage)
	}
	if src.CAFile, err = pullCAFile(o.caFile); err != nil {
		return err
	}
	cfg, err := e.config()
	if err != nil {
		return err
	}
	return withPulls(e, addr, func(ps store.Pulls, acct store.Account) error {
		pass, err := readPullPassword(e, src)
		if err != nil {
			return err
		}
		sealer, err := pullKey(cfg.PullKeyFile(), cfg.Data, true)
		if err != nil {
			return err
		}
		src.AccountID = acct.ID
		src.Secret = sealer.Seal(pass, acct.ID, src.Protocol, src.Addr, src.User)
		id, err := ps.AddPullSource(e.Ctx, src)
		if err != nil {
			return err
		}
		fmt.Fprintf(e.Stdout, "added pull source %d of %s: %s://%s@%s (password sealed with %s)\n", id, addr, src.Protocol, src.User, src.Addr, cfg.PullKeyFile())
		return nil
	})
}

func pullList(e *Env, ps store.Pulls, acct store.Account) error {
	list, err := ps.PullSources(e.Ctx, acct.ID)
	if err != nil {
		return err
	}
	if len(list) == 0 {
		fmt.Fprintf(e.Stdout, "%s has no pull sources\n", acct.Address)
		return nil
	}
	w := tabwriter.NewWriter(e.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "ID\tSOURCE\tTLS\tMODE\tEVERY\tLAST POLL\tNEXT POLL\tFAILURES\tLAST ERROR")
	stamp := func(t time.Time) string {
		if t.IsZero() || t.Unix() == 0 {
			return "-"
		}
		return t.Local().Format("2006-01-02 15:04:05")
	}
	for _, s := range list {
		mode := "delete"
		if s.Keep {
			mode = "keep"
		}
		where := s.Protocol + "://" + s.User + "@" + s.Addr
		if s.Folder != "" {
			where += "/" + s.Folder
		}
		next := stamp(s.NextPoll)
		if s.NextPoll.Unix() <= 0 || !s.NextPoll.After(time.Now()) {
			next = "now"
		}
		lastErr := s.LastError
		if lastErr == "" {
			lastErr = "-"
		}
		fmt.Fprintf(w, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\n", s.ID, where, s.TLS, mode, s.Every, stamp(s.LastPoll), next, s.Failures,
			strings.ReplaceAll(lastErr, "\n", " "))
	}
	if err := w.Flush(); err != nil {
		return err
	}
	for _, s := range list {
		if s.Notice != "" {
			fmt.Fprintf(e.Stdout, "source %d: %s\n", s.ID, s.Notice)
		}
	}
	return nil
}

// pullTLS is the stored TLS mode of --tls.
func pullTLS(flag string) (string, error) {
	mode, ok := map[string]string{"implicit": "tls", "tls": "tls", "starttls": "starttls", "plain": "plain"}[flag]
	if !ok {
		return "", fmt.Errorf("%w: --tls is implicit, starttls or plain, not %q", ErrUsage, flag)
	}
	return mode, nil
}

// pullCAFile is the absolute path of --ca-file, which must exist; "" stays "".
func pullCAFile(flag string) (string, error) {
	if flag == "" {
		return "", nil
	}
	p, err := filepath.Abs(flag)
	if err != nil {
		return "", err
	}
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("--ca-file: %w", err)
	}
	return p, nil
}

// readPullPassword reads the outside password of src from a prompt or stdin.
func readPullPassword(e *Env, src store.PullSource) (string, error) {
	pass, err := e.readSecret("", "Password of "+src.User+" at "+src.Addr+": ")
	if err != nil {
		return "", err
	}
	if pass == "" {
		return "", errors.New("empty password")
	}
	return pass, nil
}

// pullKey loads the pull key (create: making it if missing, readable by the server).
func pullKey(keyFile, data string, create bool) (*pull.Sealer, error) {
	sealer, err := pull.LoadKey(keyFile, create)
	if err != nil {
		return nil, err
	}
	if create {
		if err := app.ShareKeyFile(keyFile, data); err != nil {
			return nil, err
		}
	}
	return sealer, nil
}

// pullEdit changes a source in place: its unique-id state stays, so that nothing it pulled
// is pulled again. The password is sealed again when it or what it is bound to (server,
// user) changes.
func pullEdit(e *Env, addr string, args []string) error {
	usage := fmt.Errorf("%w: petrel %s", ErrUsage, pullUsage)
	if len(args) < 1 {
		return usage
	}
	id, err := strconv.ParseInt(args[0], 10, 64)
	if err != nil {
		return fmt.Errorf("%w: source ID %q is not a number (`petrel account pull list %s` shows them)", ErrUsage, args[0], addr)
	}
	var o pullOptions
	fs := pullFlags(&o, "edit")
	fs.SetOutput(e.Stderr)
	if err := fs.Parse(args[1:]); err != nil || fs.NArg() != 0 {
		return usage
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	switch {
	case len(set) == 0:
		return fmt.Errorf("%w: nothing to change", ErrUsage)
	case set["pop3"] && set["imap"]:
		return fmt.Errorf("%w: give one of --pop3 and --imap", ErrUsage)
	case set["keep"] && set["delete"]:
		return fmt.Errorf("%w: --keep or --delete, not both", ErrUsage)
	case set["every"] && o.every < time.Minute:
		return fmt.Errorf("%w: --every is at least 1m", ErrUsage)
	case set["user"] && o.user == "":
		return fmt.Errorf("%w: --user cannot be empty", ErrUsage)
	}
	cfg, err := e.config()
	if err != nil {
		return err
	}
	return e.withStore(func(st store.Store) error {
		ps, ok := st.(pull.Store)
		if !ok {
			return errors.New("this store cannot edit pull sources")
		}
		acct, err := st.AccountByAddress(e.Ctx, addr)
		if err != nil {
			return noAccount(addr, err)
		}
		list, err := ps.PullSources(e.Ctx, acct.ID)
		if err != nil {
			return err
		}
		i := slices.IndexFunc(list, func(s store.PullSource) bool { return s.ID == id })
		if i < 0 {
			return fmt.Errorf("%s has no pull source %d (`petrel account pull list %s` shows them)", addr, id, addr)
		}
		old := list[i]
		src := old
		for proto, hostPort := range map[string]string{"pop3": o.pop3, "imap": o.imap} {
			if !set[proto] {
				continue
			}
			if proto != old.Protocol {
				return fmt.Errorf("%w: source %d is %s; a source's protocol does not change (remove it and add another)", ErrUsage, id, old.Protocol)
			}
			if host, port, err := net.SplitHostPort(hostPort); err != nil || host == "" || port == "" {
				return fmt.Errorf("%w: %s wants HOST:PORT, not %q", ErrUsage, proto, hostPort)
			}
			src.Addr = hostPort
		}
		if set["user"] {
			src.User = o.user
		}
		if set["tls"] {
			if src.TLS, err = pullTLS(o.tls); err != nil {
				return err
			}
		}
		if set["ca-file"] {
			if src.CAFile, err = pullCAFile(o.caFile); err != nil {
				return err
			}
		}
		if set["folder"] {
			if src.Protocol != "imap" {
				return fmt.Errorf("%w: --folder is for IMAP sources", ErrUsage)
			}
			src.Folder = o.folder
		}
		if set["keep"] || set["delete"] {
			src.Keep = o.keep
		}
		if set["every"] {
			src.Every = o.every
		}
		if o.password || src.Addr != old.Addr || src.User != old.User {
			sealer, err := pullKey(cfg.PullKeyFile(), cfg.Data, o.password)
			if err != nil {
				return err
			}
			var pass string
			if o.password {
				pass, err = readPullPassword(e, src)
			} else if pass, err = sealer.Open(old.Secret, acct.ID, old.Protocol, old.Addr, old.User); err != nil {
				err = fmt.Errorf("%w: give --password to store a new one", err)
			}
			if err != nil {
				return err
			}
			src.Secret = sealer.Seal(pass, acct.ID, src.Protocol, src.Addr, src.User)
		}
		// Another folder's UIDs say nothing about this one's, even under an equal
		// UIDVALIDITY: retire them first (a crash before the edit only makes the old folder
		// resynchronize), and let fingerprints recognize what was pulled.
		if src.Protocol == "imap" && folderName(src.Folder) != folderName(old.Folder) {
			if err := ps.RetirePulled(e.Ctx, id); err != nil {
				return err
			}
		}
		if err := ps.EditPullSource(e.Ctx, src); err != nil {
			return err
		}
		seen, err := ps.PulledUIDs(e.Ctx, id)
		if err != nil {
			return err
		}
		where := src.Protocol + "://" + src.User + "@" + src.Addr
		if src.Protocol == "imap" {
			where += "/" + folderName(src.Folder)
		}
		fmt.Fprintf(e.Stdout, "changed pull source %d of %s: %s, due now; %d pulled messages remembered\n", id, addr, where, len(seen))
		return nil
	})
}

// folderName is an IMAP folder as the server knows it ("" is INBOX, which is case-insensitive).
func folderName(f string) string {
	if f == "" || strings.EqualFold(f, "INBOX") {
		return "INBOX"
	}
	return f
}
