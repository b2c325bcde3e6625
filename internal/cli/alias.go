package cli

import (
	"fmt"
	"strings"

	"petrel/internal/store"
)

func aliasCommands() []command {
	return []command{
		{noun: "alias", verb: "add", args: "ALIAS TARGET...", help: "deliver mail for ALIAS to the TARGET addresses", run: aliasAdd},
		{noun: "alias", verb: "list", args: "[DOMAIN]", help: "list aliases", run: aliasList},
		{noun: "alias", verb: "del", args: "ALIAS", help: "delete an alias", run: aliasDel},
	}
}

func aliasAdd(e *Env, args []string) error {
	if len(args) < 2 {
		return fmt.Errorf("%w: petrel alias add ALIAS TARGET...", ErrUsage)
	}
	alias, err := normAddress(args[0])
	if err != nil {
		return err
	}
	var targets []string
	for _, t := range args[1:] {
		n, err := normAddress(t)
		if err != nil {
			return err
		}
		targets = append(targets, n)
	}
	return e.withStore(func(st store.Store) error {
		if _, err := st.AccountByAddress(e.Ctx, alias); err == nil {
			return fmt.Errorf("alias %s: an account has that address", alias)
		}
		if err := st.AddAlias(e.Ctx, alias, targets); err != nil {
			return fmt.Errorf("alias %s: %w", alias, err)
		}
		fmt.Fprintf(e.Stdout, "added alias %s -> %s\n", alias, strings.Join(targets, ", "))
		return nil
	})
}

func aliasList(e *Env, args []string) error {
	if len(args) > 1 {
		return exactArgs(args, 1, "alias list [DOMAIN]")
	}
	domain := ""
	if len(args) == 1 {
		var err error
		if domain, err = normDomain(args[0]); err != nil {
			return err
		}
	}
	return e.withStore(func(st store.Store) error {
		as, err := st.Aliases(e.Ctx, domain)
		if err != nil {
			return err
		}
		for _, a := range as {
			fmt.Fprintf(e.Stdout, "%s\t%s\n", a.Address, strings.Join(a.Targets, ", "))
		}
		return nil
	})
}

func aliasDel(e *Env, args []string) error {
	if err := exactArgs(args, 1, "alias del ALIAS"); err != nil {
		return err
	}
	alias, err := normAddress(args[0])
	if err != nil {
		return err
	}
	return e.withStore(func(st store.Store) error {
		if err := st.DeleteAlias(e.Ctx, alias); err != nil {
			return fmt.Errorf("alias %s: %w", alias, err)
		}
		fmt.Fprintf(e.Stdout, "deleted alias %s\n", alias)
		return nil
	})
}
