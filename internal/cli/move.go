package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"petrel/internal/mail/mailmove"
	"petrel/internal/store"
)

// petrel import / export: moving an account's mail in from another server or mail program
// and out again (internal/mail/mailmove).

func moveCommands() []command {
	return []command{
		{noun: "import", verb: "maildir", args: "ADDRESS PATH", help: "import a Maildir (Maildir++ or Dovecot's nested layout) into an account", run: importMaildir,
			more: `Every folder becomes a mailbox (created if missing), with flags from the file names and
Dovecot's dovecot-keywords, and the file dates as received dates. Where Dovecot's
dovecot-uidlist is present and the mailbox is new, its UIDVALIDITY and UIDs are kept, and
an INBOX imported so switches the account's POP3 UIDLs to Dovecot's format: IMAP and POP3
clients do not download the mail again. Run it again after an interruption: what is already
there is skipped (by UID, else by content). Import before the account receives mail here.`},
		{noun: "import", verb: "mbox", args: "[--format mboxrd|mboxo] [--folder NAME] ADDRESS PATH", help: "import an mbox file (or a directory of them) into an account", run: importMbox, flags: mboxFlags,
			more: `A file goes into --folder (default INBOX); a directory's files each into the mailbox of
their path without ".mbox" ("Work/2024.mbox" into Work/2024). The "From " line's date is
the received date; Status, X-Status and X-Keywords become flags. Run it again after an
interruption: messages already there are skipped by content.`},
		importIMAPCommand(), // importimap.go
		{noun: "export", verb: "maildir", args: "ADDRESS DIR", help: "write an account's mail as a Maildir++ tree Dovecot reads, UIDs and flags included", run: exportMaildir},
		{noun: "export", verb: "mbox", args: "ADDRESS DIR", help: "write each mailbox of an account as an mboxrd file DIR/NAME.mbox, flags included", run: exportMbox},
		{noun: "account", verb: "pop3-uidl", args: "ADDRESS petrel|dovecot", help: "set how POP3 unique-ids are written (dovecot: as Dovecot's default)", run: accountPOP3UIDL},
	}
}

func mboxFlags() *flag.FlagSet {
	fs := flag.NewFlagSet("import mbox", flag.ContinueOnError)
	fs.String("format", "mboxrd", `how ">From " lines were quoted: mboxrd (one ">" removed from ">*From ") or mboxo (">From " only)`)
	fs.String("folder", store.Inbox, "the mailbox a single file goes into")
	return fs
}

// withAccount opens the store and finds the account of an address.
func (e *Env) withAccount(addr string, f func(st store.Store, a store.Account) error) error {
	address, err := normAddress(addr)
	if err != nil {
		return err
	}
	return e.withStore(func(st store.Store) error {
		a, err := st.AccountByAddress(e.Ctx, address)
		if errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("no account %s (`petrel account add %s` creates it)", address, address)
		}
		if err != nil {
			return err
		}
		return f(st, a)
	})
}

func importMaildir(e *Env, args []string) error {
	if err := exactArgs(args, 2, "import maildir ADDRESS PATH"); err != nil {
		return err
	}
	folders, err := mailmove.ReadMaildir(args[1])
	if err != nil {
		return err
	}
	return e.runImport(args[0], folders)
}

// parseFlags parses a command's flags and checks that n arguments follow them.
func parseFlags(fset *flag.FlagSet, args []string, n int, usage string) error {
	fset.SetOutput(io.Discard)
	if err := fset.Parse(args); err != nil {
		return fmt.Errorf("%w: %v", ErrUsage, err)
	}
	return exactArgs(fset.Args(), n, usage)
}

func importMbox(e *Env, args []string) error {
	fset := mboxFlags()
	if err := parseFlags(fset, args, 2, "import mbox [--format mboxrd|mboxo] [--folder NAME] ADDRESS PATH"); err != nil {
		return err
	}
	var format mailmove.MboxFormat
	switch f := fset.Lookup("format").Value.String(); f {
	case "mboxrd":
		format = mailmove.MboxRD
	case "mboxo":
		format = mailmove.MboxO
	default:
		return fmt.Errorf("%w: --format %s: mboxrd or mboxo", ErrUsage, f)
	}
	path := fset.Arg(1)
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	var folders []mailmove.Folder
	if !fi.IsDir() {
		f, err := mailmove.ReadMbox(path, fset.Lookup("folder").Value.String(), format)
		if err != nil {
			return err
		}
		folders = append(folders, f)
	} else {
		err := filepath.WalkDir(path, func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() || strings.HasPrefix(d.Name(), ".") {
				return err
			}
			rel, _ := filepath.Rel(path, p)
			f, err := mailmove.ReadMbox(p, strings.TrimSuffix(filepath.ToSlash(rel), ".mbox"), format)
			if err != nil {
				return err
			}
			folders = append(folders, f)
			return nil
		})
		if err != nil {
			return err
		}
	}
	return e.runImport(fset.Arg(0), folders)
}

func (e *Env) runImport(addr string, folders []mailmove.Folder) error {
	return e.withAccount(addr, func(st store.Store, a store.Account) error {
		total := 0
		_, err := mailmove.Import(e.Ctx, st, a.ID, folders, func(r mailmove.Result) {
			kept := ""
			if r.UIDsKept {
				kept = ", UIDVALIDITY and UIDs kept"
			}
			fmt.Fprintf(e.Stdout, "%s: %d imported, %d already there%s\n", r.Folder, r.Imported, r.Skipped, kept)
			for _, n := range r.Notes {
				fmt.Fprintf(e.Stdout, "  %s\n", n)
			}
			total += r.Imported
		})
		if err != nil {
			return fmt.Errorf("import into %s stopped (run it again to resume): %w", a.Address, err)
		}
		fmt.Fprintf(e.Stdout, "imported %d messages into %s\n", total, a.Address)
		return nil
	})
}

func exportMaildir(e *Env, args []string) error {
	return e.runExport(args, "maildir", mailmove.ExportMaildir)
}

func exportMbox(e *Env, args []string) error {
	return e.runExport(args, "mbox", mailmove.ExportMbox)
}

func (e *Env) runExport(args []string, kind string, export func(ctx context.Context, st store.Store, accountID int64, dir string) ([]mailmove.Exported, error)) error {
	if err := exactArgs(args, 2, "export "+kind+" ADDRESS DIR"); err != nil {
		return err
	}
	dir := args[1]
	if err := emptyDir(dir, "the export directory"); err != nil {
		return err
	}
	return e.withAccount(args[0], func(st store.Store, a store.Account) error {
		out, err := export(e.Ctx, st, a.ID, dir)
		if err != nil {
			return err
		}
		n := 0
		for _, x := range out {
			fmt.Fprintf(e.Stdout, "%s: %d messages in %s\n", x.Folder, x.Messages, x.Path)
			n += x.Messages
		}
		fmt.Fprintf(e.Stdout, "exported %d messages of %s\n", n, a.Address)
		return nil
	})
}

func accountPOP3UIDL(e *Env, args []string) error {
	if err := exactArgs(args, 2, "account pop3-uidl ADDRESS petrel|dovecot"); err != nil {
		return err
	}
	var f store.POP3UIDLFormat
	switch args[1] {
	case "petrel":
		f = store.UIDLPetrel
	case "dovecot":
		f = store.UIDLDovecot
	default:
		return fmt.Errorf("%w: POP3 UIDL format %q: petrel or dovecot", ErrUsage, args[1])
	}
	return e.withAccount(args[0], func(st store.Store, a store.Account) error {
		if err := st.SetPOP3UIDL(e.Ctx, a.ID, f); err != nil {
			return err
		}
		fmt.Fprintf(e.Stdout, "POP3 UIDLs of %s are now in %s format\n", a.Address, args[1])
		return nil
	})
}
