package cli

import (
	"bufio"
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/term"

	"petrel/internal/client/clientconf"
	"petrel/internal/client/fetch"
	"petrel/internal/config"
	"petrel/internal/mail/mailmove"
)

// petrel import imap://USER@HOST ADDRESS: a whole account from another IMAP server, through
// the same import as a Maildir (mailmove.Import): each folder keeps the source's UIDVALIDITY
// and UIDs where its mailbox is new, so a rerun skips what is there by UID and IMAP clients
// do not download the mail again; flags, keywords and INTERNALDATE come along.

func importIMAPCommand() command {
	return command{noun: "import", verb: "imap", args: "[--password-file FILE] [--ca-file FILE] imap[s]://USER@HOST[:PORT] ADDRESS",
		help: "copy every folder of an account on another IMAP server into an account", run: importIMAP, flags: importIMAPFlags,
		more: `imaps:// is implicit TLS (port 993), imap:// STARTTLS (port 143; refused if the server
does not offer it). "petrel import imaps://..." is short for "petrel import imap imaps://...".
The password is the first line of --password-file, else of stdin (asked without echo on a
terminal); never on the command line. Nothing changes on the source server (folders are
opened read-only, bodies read without setting \Seen). Each folder becomes the mailbox of its
name, with its flags, keywords and received dates; a new mailbox keeps the source's
UIDVALIDITY and UIDs. Run it again after an interruption: what is there is skipped.`}
}

func importIMAPFlags() *flag.FlagSet {
	fs := flag.NewFlagSet("import imap", flag.ContinueOnError)
	fs.String("password-file", "", "read the source account's password from the first line of this file (default: stdin)")
	fs.String("ca-file", "", "PEM certificates to trust for the source server instead of the system's")
	return fs
}

// isIMAPURL says whether a command-line word is an IMAP URL, so that `petrel import
// imaps://...` finds the import imap command.
func isIMAPURL(s string) bool {
	return strings.HasPrefix(s, "imap://") || strings.HasPrefix(s, "imaps://")
}

func importIMAP(e *Env, args []string) error {
	const usage = "import imap [--password-file FILE] [--ca-file FILE] imap[s]://USER@HOST[:PORT] ADDRESS"
	fset := importIMAPFlags()
	if err := parseFlags(fset, flagsFirst(args), 2, usage); err != nil {
		return err
	}
	acct, err := imapSourceAccount(fset.Arg(0), fset.Lookup("ca-file").Value.String())
	if err != nil {
		return err
	}
	pass, err := e.readSecret(fset.Lookup("password-file").Value.String(), "Password of "+acct.User+" at "+acct.IMAP.Host+": ")
	if err != nil {
		return err
	}
	src, err := fetch.OpenSource(e.Ctx, acct, pass)
	if err != nil {
		return err
	}
	defer src.Close()
	list, err := src.Folders()
	if err != nil {
		return err
	}
	folders := make([]mailmove.Folder, len(list))
	for i := range list {
		sf := &list[i]
		f := mailmove.Folder{Name: sf.Name, UIDValidity: sf.UIDValidity, UIDNext: sf.UIDNext}
		for _, m := range sf.Messages {
			f.Messages = append(f.Messages, mailmove.Message{
				UID: m.UID, Flags: m.Flags, Date: m.Date,
				Name: fmt.Sprintf("%s UID %d", sf.Name, m.UID),
				Open: func() (io.ReadCloser, error) {
					b, err := src.Body(sf, m.UID)
					if err != nil {
						return nil, err
					}
					return io.NopCloser(bytes.NewReader(b)), nil
				},
			})
		}
		folders[i] = f
	}
	return e.runImport(fset.Arg(1), folders)
}

// flagsFirst moves the flags (each with its value: both take one) before the other
// arguments, so that they may follow the URL of `petrel import imaps://... ADDRESS --flag x`.
func flagsFirst(args []string) []string {
	var flags, rest []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--":
			rest = append(rest, args[i+1:]...)
			i = len(args)
		case strings.HasPrefix(a, "-") && len(a) > 1:
			flags = append(flags, a)
			if !strings.Contains(a, "=") && i+1 < len(args) {
				flags = append(flags, args[i+1])
				i++
			}
		default:
			rest = append(rest, a)
		}
	}
	return append(flags, rest...)
}

// imapSourceAccount turns imap[s]://USER@HOST[:PORT] into the client tools' account.
func imapSourceAccount(raw, caFile string) (*clientconf.Account, error) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "imap" && u.Scheme != "imaps") || u.Host == "" || u.User == nil || u.User.Username() == "" {
		return nil, fmt.Errorf("%w: %q is not imap://USER@HOST[:PORT] or imaps://USER@HOST[:PORT]", ErrUsage, raw)
	}
	if _, set := u.User.Password(); set {
		return nil, fmt.Errorf("%w: no password in the URL (every user of the machine can read the command line): use --password-file or stdin", ErrUsage)
	}
	if u.Path != "" && u.Path != "/" {
		return nil, fmt.Errorf("%w: %q: the whole account is imported; a folder path is not supported", ErrUsage, raw)
	}
	ep := clientconf.Endpoint{Host: u.Hostname(), TLS: "tls", Port: 993, CAFile: caFile}
	if u.Scheme == "imap" {
		ep.TLS, ep.Port = "starttls", 143
	}
	if p := u.Port(); p != "" {
		if ep.Port, err = strconv.Atoi(p); err != nil || ep.Port < 1 || ep.Port > 65535 {
			return nil, fmt.Errorf("%w: port %q", ErrUsage, p)
		}
	}
	if ep.Host == "" || net.ParseIP(ep.Host) == nil && strings.ContainsAny(ep.Host, " /") {
		return nil, fmt.Errorf("%w: host %q", ErrUsage, ep.Host)
	}
	return &clientconf.Account{
		User:    u.User.Username(),
		Timeout: config.Duration{Duration: time.Minute},
		IMAP:    &clientconf.IMAP{Endpoint: ep},
	}, nil
}

// readSecret reads a password someone else chose (no length rule, asked once): the first line
// of file, or of stdin, with prompt on a terminal.
func (e *Env) readSecret(file, prompt string) (string, error) {
	var r io.Reader = e.Stdin
	if file != "" {
		f, err := os.Open(file)
		if err != nil {
			return "", err
		}
		defer f.Close()
		r = f
	} else if f, ok := e.Stdin.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		fmt.Fprint(e.Stderr, prompt)
		p, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(e.Stderr)
		return string(p), err
	}
	line, err := bufio.NewReader(r).ReadString('\n')
	if err != nil && !(errors.Is(err, io.EOF) && line != "") {
		return "", errors.New("no password (first line of --password-file or stdin)")
	}
	return strings.TrimRight(line, "\r\n"), nil
}
