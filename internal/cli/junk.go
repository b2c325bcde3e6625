package cli

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"

	"petrel/internal/mail/junk"
	"petrel/internal/store"
)

// `petrel junk`: the built-in junk classifier of an account (issue 13): train it from
// message files, show what it learned, set its threshold.

func junkCommands() []command {
	return []command{
		{noun: "junk", verb: "train", args: "ADDRESS --spam|--ham FILE|DIR...", run: junkTrain,
			help: "teach an account's junk classifier from message files",
			more: `Each FILE is one message (RFC 5322, as saved by a mail client); a DIR is searched for
files at any depth, so a Maildir folder can be given whole. --spam teaches junk, --ham not
junk. A message already taught the same way is not counted again; one taught the other way
is corrected. Moving messages into and out of Junk over IMAP teaches the same way.`},
		{noun: "junk", verb: "stats", args: "ADDRESS", help: "show how much an account's junk classifier has learned", run: junkStats},
		{noun: "junk", verb: "threshold", args: "ADDRESS SCORE|default", run: junkThreshold,
			help: "set the score (0 to 1) from which an account's mail goes to Junk"},
	}
}

const junkTrainUsage = "junk train ADDRESS --spam|--ham FILE|DIR..."

func junkTrain(e *Env, args []string) error {
	if len(args) < 3 || (args[1] != "--spam" && args[1] != "--ham") {
		return fmt.Errorf("%w: petrel %s", ErrUsage, junkTrainUsage)
	}
	addr, err := normAddress(args[0])
	if err != nil {
		return err
	}
	isJunk := args[1] == "--spam"
	var files []string
	for _, p := range args[2:] {
		err := filepath.WalkDir(p, func(path string, d fs.DirEntry, err error) error {
			if err == nil && d.Type().IsRegular() {
				files = append(files, path)
			}
			return err
		})
		if err != nil {
			return err
		}
	}
	return e.withJunk(addr, func(js junk.Store, acct store.Account) error {
		f := &junk.Filter{Store: js}
		changed := 0
		for _, name := range files {
			raw, err := os.ReadFile(name)
			if err != nil {
				return err
			}
			// Saved files often have bare LF; stored messages have CRLF, and the same
			// message must give the same tokens either way.
			if !bytes.Contains(raw, []byte("\r\n")) {
				raw = bytes.ReplaceAll(raw, []byte("\n"), []byte("\r\n"))
			}
			c, err := f.TrainMessage(e.Ctx, acct.ID, raw, isJunk)
			if err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
			if c {
				changed++
			}
		}
		what := "not junk"
		if isJunk {
			what = "junk"
		}
		fmt.Fprintf(e.Stdout, "%s: %d messages taught as %s (%d of them known already)\n", addr, len(files), what, len(files)-changed)
		return nil
	})
}

func junkStats(e *Env, args []string) error {
	if err := exactArgs(args, 1, "junk stats ADDRESS"); err != nil {
		return err
	}
	addr, err := normAddress(args[0])
	if err != nil {
		return err
	}
	cfg, err := e.config()
	if err != nil {
		return err
	}
	return e.withJunk(addr, func(js junk.Store, acct store.Account) error {
		s, err := js.JunkState(e.Ctx, acct.ID, nil)
		if err != nil {
			return err
		}
		threshold := strconv.FormatFloat(cfg.Junk.Threshold, 'f', 2, 64) + " (the default of [junk])"
		if s.Threshold >= 0 {
			threshold = strconv.FormatFloat(s.Threshold, 'f', 2, 64) + " (the account's own)"
		}
		state := "on"
		if !cfg.Junk.Enabled {
			state = "off ([junk] enabled = false)"
		}
		fmt.Fprintf(e.Stdout, "account:     %s\nclassifier:  %s\ntrained:     %d junk, %d not junk\nthreshold:   %s\n",
			addr, state, s.Trained.Spam, s.Trained.Ham, threshold)
		if s.Trained.Spam == 0 {
			fmt.Fprintln(e.Stdout, "note:        until a message is moved to Junk (or `petrel junk train --spam`), every message scores 0.5 and stays in the Inbox")
		}
		return nil
	})
}

func junkThreshold(e *Env, args []string) error {
	const usage = "junk threshold ADDRESS SCORE|default"
	if err := exactArgs(args, 2, usage); err != nil {
		return err
	}
	addr, err := normAddress(args[0])
	if err != nil {
		return err
	}
	v := -1.0
	if args[1] != "default" {
		v, err = strconv.ParseFloat(args[1], 64)
		if err != nil || !(v > 0 && v <= 1) {
			return fmt.Errorf("%q is not a score above 0 and at most 1, or default\n%w: petrel %s", args[1], ErrUsage, usage)
		}
	}
	return e.withJunk(addr, func(js junk.Store, acct store.Account) error {
		return js.SetJunkThreshold(e.Ctx, acct.ID, v)
	})
}

// withJunk runs f with the store's junk counts and the account of addr.
func (e *Env) withJunk(addr string, f func(js junk.Store, acct store.Account) error) error {
	return e.withStore(func(st store.Store) error {
		js, ok := st.(junk.Store)
		if !ok {
			return errors.New("this store keeps no junk classifier")
		}
		acct, err := st.AccountByAddress(e.Ctx, addr)
		if err != nil {
			return noAccount(addr, err)
		}
		return f(js, acct)
	})
}
