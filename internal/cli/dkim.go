package cli

import (
	"fmt"
	"time"

	"petrel/internal/app"
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
r20261207, with -2, -3, ... when taken) in DATA/dkim/DOMAIN/SELECTOR.pem, mode 0600, and prints
their TXT records. ` + "`petrel domain add`" + ` makes the first pair; this command is for rotation.
Every key file of a domain signs, so during a rotation mail carries the old and the new
signatures: publish the new records, wait until they are seen (a day is ample), then delete the
old keys' files and, a few days later, their records.`,
			run: dkimKeygen,
		},
		{noun: "dkim", verb: "list", args: "DOMAIN", help: "list the DKIM selectors of DOMAIN", run: dkimList},
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
		made, err := app.NewDKIMKeys(e.Ctx, app.DKIMKeys(c.Data), d, time.Now())
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
		keys, err := app.DKIMKeys(c.Data).SigningKeys(e.Ctx, d)
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
