package cli

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"petrel/internal/app"
	"petrel/internal/lib/address"
	"petrel/internal/store"
)

func domainCommands() []command {
	return []command{
		{noun: "domain", verb: "add", args: "DOMAIN", help: "accept mail for DOMAIN (and make its DKIM keys)", run: domainAdd},
		{noun: "domain", verb: "list", help: "list hosted domains", run: domainList},
		{noun: "domain", verb: "del", args: "DOMAIN", help: "stop hosting DOMAIN (it must have no accounts; its DKIM keys stay)", run: domainDel},
		{noun: "domain", verb: "catchall", args: "DOMAIN ADDRESS|-", help: "deliver unknown local parts of DOMAIN to ADDRESS (- clears)", run: domainCatchAll},
	}
}

// normDomain validates and normalizes a domain name the way addresses are normalized, so that
// a domain added here matches the domain of incoming recipients.
func normDomain(d string) (string, error) {
	a, err := address.Parse("postmaster@" + strings.TrimSuffix(d, "."))
	if err != nil {
		return "", fmt.Errorf("invalid domain %q", d)
	}
	return a.Domain, nil
}

func normAddress(s string) (string, error) {
	a, err := address.Parse(s)
	if err != nil {
		return "", fmt.Errorf("invalid address %q: %v", s, err)
	}
	return a.Key(), nil
}

// domainOf is the domain of a normalized address.
func domainOf(addr string) string { return addr[strings.LastIndexByte(addr, '@')+1:] }

// requireDomain fails with what to do when d is not hosted: the store's own error names
// neither the domain nor the remedy.
func (e *Env) requireDomain(st store.Store, d string) error {
	_, err := st.Domain(e.Ctx, d)
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("domain %s is not hosted here; add it first with `petrel domain add %s`", d, d)
	}
	return err
}

func domainAdd(e *Env, args []string) error {
	if err := exactArgs(args, 1, "domain add DOMAIN"); err != nil {
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
		if err := st.AddDomain(e.Ctx, d); errors.Is(err, store.ErrExists) {
			return fmt.Errorf("domain %s already exists", d)
		} else if err != nil {
			return fmt.Errorf("cannot add domain %s: %w", d, err)
		}
		fmt.Fprintf(e.Stdout, "added domain %s\n", d)
		// A new domain signs from the start: its first key pair, unless keys are left from
		// an earlier life of the domain (domain del keeps them), which then sign again.
		keys, err := app.OpenDKIMStore(c, st, true)
		if err != nil {
			return fmt.Errorf("domain %s added, but its DKIM keys were not (retry with `petrel dkim keygen %s`): %w", d, d, err)
		}
		made, err := app.EnsureDKIMKeys(e.Ctx, keys, d, time.Now())
		if err != nil {
			return fmt.Errorf("domain %s added, but its DKIM keys were not (retry with `petrel dkim keygen %s`): %w", d, d, err)
		}
		if err := printNewKeys(e, made); err != nil {
			return err
		}
		fmt.Fprintf(e.Stdout, "`petrel dns %s` prints every record the domain needs\n", d)
		return nil
	})
}

func domainList(e *Env, args []string) error {
	if err := exactArgs(args, 0, "domain list"); err != nil {
		return err
	}
	return e.withStore(func(st store.Store) error {
		ds, err := st.Domains(e.Ctx)
		if err != nil {
			return err
		}
		for _, d := range ds {
			if d.CatchAll != "" {
				fmt.Fprintf(e.Stdout, "%s\tcatch-all %s\n", d.Name, d.CatchAll)
			} else {
				fmt.Fprintln(e.Stdout, d.Name)
			}
		}
		return nil
	})
}

func domainDel(e *Env, args []string) error {
	if err := exactArgs(args, 1, "domain del DOMAIN"); err != nil {
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
		err := st.DeleteDomain(e.Ctx, d)
		switch {
		case errors.Is(err, store.ErrNotFound):
			return fmt.Errorf("domain %s is not hosted here (`petrel domain list` shows those that are)", d)
		case errors.Is(err, store.ErrExists):
			// The only way a delete "exists": accounts are left, and their mail with them.
			as, lerr := st.Accounts(e.Ctx, d)
			if lerr != nil {
				return fmt.Errorf("domain %s still has accounts; delete them first with `petrel account del ADDRESS`", d)
			}
			var names []string
			for _, a := range as {
				names = append(names, a.Address)
			}
			return fmt.Errorf("domain %s still has accounts: %s; delete them first with `petrel account del ADDRESS` (and their mail with them)",
				d, strings.Join(names, ", "))
		case err != nil:
			return fmt.Errorf("cannot delete domain %s: %w", d, err)
		}
		fmt.Fprintf(e.Stdout, "deleted domain %s\n", d)
		// The keys stay: their records may still be published, and a domain added again
		// signs with them instead of needing new records. Deleting them is one rm -r away.
		if keys, err := domainKeys(e, c, st, d); err == nil && len(keys) > 0 {
			fmt.Fprintf(e.Stdout, "its DKIM keys stay in the store (used again if the domain is added again; `petrel dkim remove %s SELECTOR` discards them)\n", d)
		}
		return nil
	})
}

func domainCatchAll(e *Env, args []string) error {
	if err := exactArgs(args, 2, "domain catchall DOMAIN ADDRESS|-"); err != nil {
		return err
	}
	d, err := normDomain(args[0])
	if err != nil {
		return err
	}
	target := ""
	if args[1] != "-" {
		if target, err = normAddress(args[1]); err != nil {
			return err
		}
	}
	return e.withStore(func(st store.Store) error {
		if err := e.requireDomain(st, d); err != nil {
			return err
		}
		if target != "" {
			if _, err := st.AccountByAddress(e.Ctx, target); errors.Is(err, store.ErrNotFound) {
				return fmt.Errorf("the catch-all must be an account, and %s is none (`petrel account list` shows them)", target)
			} else if err != nil {
				return err
			}
		}
		if err := st.SetCatchAll(e.Ctx, d, target); err != nil {
			return fmt.Errorf("cannot set the catch-all of %s: %w", d, err)
		}
		if target == "" {
			fmt.Fprintf(e.Stdout, "cleared catch-all of %s\n", d)
		} else {
			fmt.Fprintf(e.Stdout, "catch-all of %s is %s\n", d, target)
		}
		return nil
	})
}
