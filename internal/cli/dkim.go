package cli

import (
	"errors"
	"fmt"
	"time"

	"petrel/internal/app"
	"petrel/internal/config"
	"petrel/internal/mail/msgauth"
	"petrel/internal/store"
)

func dkimCommands() []command {
	return []command{
		{
			noun: "dkim", verb: "keygen", args: "DOMAIN",
			help: "make a new DKIM key pair for DOMAIN (key rotation) and print its records",
			more: `
Makes an Ed25519 and an RSA-2048 key under new selectors (the algorithm and the date: e20261207,
r20261207, with -2, -3, ... when taken) and prints their TXT records. The store keeps them: the
embedded store as DATA/dkim/DOMAIN/SELECTOR.pem (mode 0600), the PostgreSQL store in the
database, sealed with [pull] key_file, so that every node signs with them at once.
` + "`petrel domain add`" + ` makes the first pair; this command is for rotation. Every key of a
domain signs, so during a rotation mail carries the old and the new signatures: publish the new
records, wait until they are seen (a day is ample), then remove the old keys with
` + "`petrel dkim remove`" + ` and, a few days later, their records.`,
			run: dkimKeygen,
		},
		{noun: "dkim", verb: "list", args: "DOMAIN", help: "list the DKIM selectors of DOMAIN", run: dkimList},
		{
			noun: "dkim", verb: "remove", args: "DOMAIN SELECTOR",
			help: "remove the DKIM key SELECTOR of DOMAIN (the end of a rotation)",
			more: `
The key stops signing on every node within a second. Keep its DNS record a few days longer, so
that mail it signed before can still be verified.`,
			run: dkimRemove,
		},
	}
}

func dkimKeygen(e *Env, args []string) error {
	if err := exactArgs(args, 1, "dkim keygen DOMAIN"); err != nil {
		return err
	}
	d, err := normDomain(args[0])
	if err != nil {
		return err
	}
	c, err := e.config()
	if err != nil {
		return err
	}
	return e.withStore(func(st store.Store) error {
		if err := e.requireDomain(st, d); err != nil {
			return err
		}
		keys, err := app.OpenDKIMStore(c, st, true)
		if err != nil {
			return err
		}
		made, err := app.NewDKIMKeys(e.Ctx, keys, d, time.Now())
		if err != nil {
			return err
		}
		return printNewKeys(e, made)
	})
}

// printNewKeys tells what was made and prints the records to publish.
func printNewKeys(e *Env, keys []msgauth.Key) error {
	for _, k := range keys {
		text, err := k.Record()
		if err != nil {
			return err
		}
		fmt.Fprintf(e.Stdout, "created DKIM %s key %s for %s; publish:\n%s\n", k.Algorithm(), k.Selector, k.Domain, msgauth.ZoneTXT(k.RecordName(), text))
	}
	return nil
}

func dkimList(e *Env, args []string) error {
	if err := exactArgs(args, 1, "dkim list DOMAIN"); err != nil {
		return err
	}
	d, err := normDomain(args[0])
	if err != nil {
		return err
	}
	c, err := e.config()
	if err != nil {
		return err
	}
	return e.withStore(func(st store.Store) error {
		if err := e.requireDomain(st, d); err != nil {
			return err
		}
		keys, err := domainKeys(e, c, st, d)
		if err != nil {
			return err
		}
		if len(keys) == 0 {
			fmt.Fprintf(e.Stderr, "%s has no DKIM key; make one with `petrel dkim keygen %s`\n", d, d)
		}
		for _, k := range keys {
			fmt.Fprintf(e.Stdout, "%s\t%s\t%s\n", k.Selector, k.Algorithm(), k.RecordName())
		}
		return nil
	})
}

// domainKeys reads the DKIM keys of domain d from the store.
func domainKeys(e *Env, c *config.Config, st store.Store, d string) ([]msgauth.Key, error) {
	keys, err := app.OpenDKIMStore(c, st, false)
	if err != nil {
		return nil, err
	}
	return keys.Keys(e.Ctx, d)
}

func dkimRemove(e *Env, args []string) error {
	if err := exactArgs(args, 2, "dkim remove DOMAIN SELECTOR"); err != nil {
		return err
	}
	d, err := normDomain(args[0])
	if err != nil {
		return err
	}
	sel := args[1]
	c, err := e.config()
	if err != nil {
		return err
	}
	return e.withStore(func(st store.Store) error {
		// No domain check: the keys of a deleted domain stay and can be removed.
		keys, err := app.OpenDKIMStore(c, st, false)
		if err != nil {
			return err
		}
		if err := keys.Delete(e.Ctx, d, sel); errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("%s has no DKIM key %s (`petrel dkim list %s` shows its keys)", d, sel, d)
		} else if err != nil {
			return err
		}
		fmt.Fprintf(e.Stdout, "removed DKIM key %s of %s; keep its record %s a few days for mail in transit\n", sel, d, sel+"._domainkey."+d)
		left, err := keys.Keys(e.Ctx, d)
		if err == nil && len(left) == 0 {
			fmt.Fprintf(e.Stderr, "%s has no DKIM key left: its mail goes out unsigned until `petrel dkim keygen %s`\n", d, d)
		}
		return err
	})
}
