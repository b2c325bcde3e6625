package cli

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"petrel/internal/lib/address"
	"petrel/internal/mail/deliver"
	"petrel/internal/mail/srs"
	"petrel/internal/store"
)

func aliasCommands() []command {
	return []command{
		{noun: "alias", verb: "add", args: "[--force] ALIAS TARGET...", help: "deliver mail for ALIAS to the TARGET addresses", run: aliasAdd,
			more: `
Each TARGET must take mail already: an account, another alias, or an address of a hosted domain
with a catch-all. Otherwise the alias is refused, because mail to it would go nowhere;
--force creates it anyway, for a target you are going to create. Targets on other servers
cannot receive forwarded mail yet: that needs outbound delivery, which is on the way.

  --force   create the alias even if a target takes no mail yet`},
		{noun: "alias", verb: "list", args: "[DOMAIN]", help: "list aliases", run: aliasList},
		{noun: "alias", verb: "del", args: "ALIAS", help: "delete an alias", run: aliasDel},
	}
}

func aliasAdd(e *Env, args []string) error {
	var force bool
	var addrs []string
	for _, a := range args {
		switch {
		case a == "--force" || a == "-force":
			force = true // accepted anywhere: it is natural to add it after a refusal
		case strings.HasPrefix(a, "-"):
			return fmt.Errorf("unknown flag %s\n%w: petrel alias add [--force] ALIAS TARGET...", a, ErrUsage)
		default:
			addrs = append(addrs, a)
		}
	}
	if len(addrs) < 2 {
		return fmt.Errorf("%w: petrel alias add [--force] ALIAS TARGET...", ErrUsage)
	}
	alias, err := normAddress(addrs[0])
	if err != nil {
		return err
	}
	var targets []string
	for _, t := range addrs[1:] {
		n, err := normAddress(t)
		if err != nil {
			return err
		}
		targets = append(targets, n)
	}
	return e.withStore(func(st store.Store) error {
		if err := e.requireDomain(st, domainOf(alias)); err != nil {
			return err
		}
		if _, err := st.AccountByAddress(e.Ctx, alias); err == nil {
			return fmt.Errorf("%s is an account; an address is an account or an alias, not both", alias)
		}
		if !force {
			if err := e.checkTargets(st, targets); err != nil {
				return err
			}
		}
		if err := st.AddAlias(e.Ctx, alias, targets); errors.Is(err, store.ErrExists) {
			return fmt.Errorf("alias %s already exists (`petrel alias list` shows it); delete it first to change its targets", alias)
		} else if err != nil {
			return fmt.Errorf("cannot add alias %s: %w", alias, err)
		}
		fmt.Fprintf(e.Stdout, "added alias %s -> %s\n", alias, strings.Join(targets, ", "))
		return nil
	})
}

// checkTargets refuses alias targets that take no mail, asking the resolver that delivery
// uses (a fresh one: no cached answers), so "takes mail" means what delivery will do.
func (e *Env) checkTargets(st store.Store, targets []string) error {
	d := deliver.New(st, slog.New(slog.DiscardHandler))
	// With forwarding, as serve runs it: a target that forwards elsewhere takes mail. The
	// key does not matter, nothing is rewritten here.
	d.SetForwarding(deliver.Forwarding{SRS: &srs.Rewriter{}})
	for _, t := range targets {
		a, err := address.Parse(t)
		if err != nil {
			return fmt.Errorf("invalid address %q: %v", t, err)
		}
		_, err = d.Route(e.Ctx, a)
		switch {
		case err == nil, errors.Is(err, deliver.ErrNotHosted):
			// Another server's address is forwarded there (with SRS) through the queue.
			continue
		case errors.Is(err, deliver.ErrUnknownUser):
			return fmt.Errorf("%s does not exist (no account, alias or catch-all takes it), so mail to the alias would go nowhere; "+
				"create it first, or pass --force to create the alias now for an address you will add later", t)
		case errors.Is(err, deliver.ErrAliasLoop):
			return fmt.Errorf("%s is an alias that loops or nests deeper than delivery follows; fix that alias first", t)
		default:
			return err
		}
	}
	return nil
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
		if err := st.DeleteAlias(e.Ctx, alias); errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("there is no alias %s (`petrel alias list` shows them)", alias)
		} else if err != nil {
			return fmt.Errorf("cannot delete alias %s: %w", alias, err)
		}
		fmt.Fprintf(e.Stdout, "deleted alias %s\n", alias)
		return nil
	})
}
