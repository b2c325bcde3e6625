package cli

import (
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"

	"petrel/internal/client/clientconf"
	"petrel/internal/client/outbox"
)

func sendCommands() []command {
	return []command{
		{noun: "send", args: "[--config F] [--account NAME] [-t] [-f FROM] [-i] [RCPT...] | --flush | --queue | --configure ADDRESS [--replace]",
			help: "submit a message from stdin (sendmail-compatible); queued in the outbox when offline (exit 0 sent/queued, 1 refused, 2 usage)",
			more: `
The message is read from stdin and submitted with the account's [smtp] table of the client
config (see docs/client-tools.md); it always goes through the outbox, so that a message that
cannot be sent now is kept and sent, in order, by a later run or by --flush.

  --config FILE    client config (default ~/.config/petrel/client.toml)
  --account NAME   the account to send with (default: default_account, or the only one with [smtp])
  -t               take the recipients from the To, Cc and Bcc header fields (Bcc is removed)
  -f FROM          the envelope sender (default: the account's from, or the From header)
  -i, -oi          a line with a single dot does not end the message (always the case)
  RCPT...          the recipients
  --flush          send everything queued, in order
  --queue          list the queued and the refused messages
  --configure ADDRESS  find the servers of ADDRESS and add an account to the config (as petrel fetch --configure)
  --replace            with --configure: replace an existing account of that name without asking`,
			run: sendRun},
	}
}

const sendUsage = "petrel send [--config F] [--account NAME] [-t] [-f FROM] [-i] [RCPT...] | --flush | --queue | --configure ADDRESS [--replace]"

// sendRun is a sendmail-compatible entry point. The message always goes through the outbox:
// it is written durably first, then the queue is flushed in order. If the server cannot be
// reached (or refuses for now, 4xx), the message stays queued and the command still succeeds,
// like msmtpq; a permanent refusal (5xx) moves it to the outbox's failed/ and exits 1.
func sendRun(e *Env, args []string) error {
	var confPath, only, configureAddr string
	var flush, list, replace bool
	var rest []string
	for i := 0; i < len(args); i++ {
		arg := args[i]
		key, val, hasVal := strings.Cut(arg, "=")
		switch key {
		case "--config", "--account", "--configure":
			if !hasVal {
				if i+1 >= len(args) {
					return fmt.Errorf("%s needs a value\n%w: %s", key, ErrUsage, sendUsage)
				}
				i++
				val = args[i]
			}
			switch key {
			case "--config":
				confPath = val
			case "--account":
				only = val
			default:
				configureAddr = val
			}
		case "--flush":
			flush = true
		case "--replace":
			replace = true
		case "--queue":
			list = true
		case "--":
			rest = append(rest, args[i:]...)
			i = len(args)
		default:
			rest = append(rest, arg)
		}
	}
	if replace && configureAddr == "" {
		return fmt.Errorf("--replace goes with --configure\n%w: %s", ErrUsage, sendUsage)
	}
	if configureAddr != "" {
		return configure(e, configureRequest{confPath: confPath, address: configureAddr, name: only, replace: replace})
	}
	cfg, err := loadClientConfig(confPath)
	if err != nil {
		return err
	}
	switch {
	case flush && list:
		return fmt.Errorf("%w: %s", ErrUsage, sendUsage)
	case list:
		return sendQueue(e, cfg, only)
	case flush:
		if len(rest) > 0 {
			return fmt.Errorf("--flush takes no recipients\n%w: %s", ErrUsage, sendUsage)
		}
		return sendFlush(e, cfg, only)
	}

	sa, err := outbox.ParseArgs(rest)
	if err != nil {
		return fmt.Errorf("%v\n%w: %s", err, ErrUsage, sendUsage)
	}
	a, err := cfg.SendAccount(only)
	if err != nil {
		return &ExitError{Code: ExitUsage, Err: err}
	}
	ob, err := outbox.Open(filepath.Join(cfg.Outbox, a.Name))
	if err != nil {
		return err
	}
	env, msg, err := outbox.Prepare(sa, a.SMTP.From, e.Stdin)
	if err != nil {
		return &ExitError{Code: ExitUsage, Err: err}
	}
	entry, err := ob.Add(env, msg)
	if err != nil {
		return fmt.Errorf("cannot queue the message in %s: %w", ob.Dir(), err)
	}
	res, err := ob.Flush(dialer(e, a))
	for _, f := range res.Failed {
		fmt.Fprintf(e.Stderr, "petrel send: %s refused the message to %s: %s; it was moved to %s\n",
			a.SMTP.Host, strings.Join(f.Envelope.To, ", "), f.Err, f.Path)
	}
	if err != nil {
		if queuedForLater(err) {
			fmt.Fprintf(e.Stderr, "petrel send: %v\npetrel send: the message is queued in %s (%d in the queue); `petrel send --flush` sends it later\n",
				err, ob.Dir(), res.Remaining)
			return nil
		}
		return &ExitError{Code: loginOr(err, ExitFailed), Err: fmt.Errorf("%v; the message stays queued in %s", err, ob.Dir())}
	}
	for _, f := range res.Failed {
		if f.ID == entry.ID {
			return &ExitError{Code: ExitFailed, Err: errors.New("send: the server refused the message")}
		}
	}
	return nil
}

// queuedForLater says whether a flush error is the offline case: no connection, no TLS, a
// timeout, or a temporary (4xx) refusal.
func queuedForLater(err error) bool {
	var ue *outbox.UnreachableError
	if errors.As(err, &ue) {
		return true
	}
	var pe outbox.PermanentError
	return errors.As(err, &pe) && !pe.Permanent()
}

func dialer(e *Env, a *clientconf.Account) func() (outbox.Sender, error) {
	return func() (outbox.Sender, error) {
		s, err := outbox.DialAccount(e.Ctx, a, nil)
		if err != nil {
			return nil, err
		}
		return s, nil
	}
}

// sendAccounts are the accounts --flush and --queue work on.
func sendAccounts(cfg *clientconf.Config, only string) ([]*clientconf.Account, error) {
	if only != "" {
		a, err := cfg.SendAccount(only)
		if err != nil {
			return nil, &ExitError{Code: ExitUsage, Err: err}
		}
		return []*clientconf.Account{a}, nil
	}
	var out []*clientconf.Account
	for _, n := range cfg.Names() {
		if cfg.Accounts[n].SMTP != nil {
			out = append(out, cfg.Accounts[n])
		}
	}
	return out, nil
}

// sendFlush sends every account's queue. Exit 0 when every queue is empty afterwards.
func sendFlush(e *Env, cfg *clientconf.Config, only string) error {
	accounts, err := sendAccounts(cfg, only)
	if err != nil {
		return err
	}
	code := ExitOK
	for _, a := range accounts {
		ob, err := outbox.Open(filepath.Join(cfg.Outbox, a.Name))
		if err != nil {
			return err
		}
		res, err := ob.Flush(dialer(e, a))
		fmt.Fprintf(e.Stdout, "%s: %d sent, %d refused, %d still queued\n", a.Name, len(res.Sent), len(res.Failed), res.Remaining)
		for _, f := range res.Failed {
			fmt.Fprintf(e.Stderr, "petrel send: %s: refused: %s; moved to %s\n", a.Name, f.Err, f.Path)
		}
		if err != nil {
			fmt.Fprintf(e.Stderr, "petrel send: %s: %v\n", a.Name, err)
		}
		if err != nil || len(res.Failed) > 0 {
			code = max(code, loginOr(err, ExitFailed))
		}
	}
	if code != ExitOK {
		return &ExitError{Code: code, Err: errors.New("send: the queue could not be sent completely")}
	}
	return nil
}

// sendQueue lists the queued and the refused messages.
func sendQueue(e *Env, cfg *clientconf.Config, only string) error {
	accounts, err := sendAccounts(cfg, only)
	if err != nil {
		return err
	}
	for _, a := range accounts {
		ob, err := outbox.Open(filepath.Join(cfg.Outbox, a.Name))
		if err != nil {
			return err
		}
		queued, err := ob.List()
		if err != nil {
			return err
		}
		failed, err := ob.Failed()
		if err != nil {
			return err
		}
		for _, q := range queued {
			printEntry(e.Stdout, a.Name, "queued", q)
		}
		for _, f := range failed {
			printEntry(e.Stdout, a.Name, "refused", f)
			fmt.Fprintf(e.Stdout, "\t%s\n", f.Err)
		}
	}
	return nil
}

func printEntry(w io.Writer, account, status string, q outbox.Entry) {
	from := q.Envelope.From
	if from == "" {
		from = "<>"
	}
	fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%d bytes\t%s -> %s\n", account, status, q.ID, q.Queued.Format("2006-01-02 15:04:05"),
		q.Size, from, strings.Join(q.Envelope.To, ", "))
}
