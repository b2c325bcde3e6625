package cli

import (
	"errors"
	"fmt"

	"petrel/internal/mail/auth"
	"petrel/internal/store"
)

func accountCommands() []command {
	return []command{
		{noun: "account", verb: "add", args: "ADDRESS", help: "create an account (password from a prompt or stdin)", run: accountAdd},
		{noun: "account", verb: "list", args: "[DOMAIN]", help: "list accounts", run: accountList},
		{noun: "account", verb: "del", args: "ADDRESS", help: "delete an account and all its mail", run: accountDel},
		{noun: "account", verb: "passwd", args: "ADDRESS", help: "set a new password (from a prompt or stdin)", run: accountPasswd},
		{noun: "account", verb: "pop3-delete", args: "ADDRESS delete|keep|archive", help: "what a POP3 deletion does for this account", run: accountPOP3Delete},
		{noun: "account", verb: "quota", args: "ADDRESS [SIZE|none|default [COUNT|none|default]]", help: "show or set the account's storage and message quota", run: accountQuota},
		{noun: "account", verb: "admin", args: "ADDRESS [on|off]", help: "show or set whether the account may use the web admin", run: accountAdmin},
		limitsCommand(), // limits.go
		pullCommand(),   // pull.go
	}
}

// noAccount words a store error about the account addr for the operator.
func noAccount(addr string, err error) error {
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("there is no account %s (`petrel account list` shows them)", addr)
	}
	return fmt.Errorf("account %s: %w", addr, err)
}

func accountAdd(e *Env, args []string) error {
	if err := exactArgs(args, 1, "account add ADDRESS"); err != nil {
		return err
	}
	addr, err := normAddress(args[0])
	if err != nil {
		return err
	}
	return e.withStore(func(st store.Store) error {
		// What can be refused is refused before the password is asked for.
		if err := e.requireDomain(st, domainOf(addr)); err != nil {
			return err
		}
		if err := e.addressTaken(st, addr); err != nil {
			return err
		}
		cred, err := e.newCredentials()
		if err != nil {
			return err
		}
		if _, err := st.AddAccount(e.Ctx, addr, cred); errors.Is(err, store.ErrExists) {
			// Taken meanwhile, by another command.
			if terr := e.addressTaken(st, addr); terr != nil {
				return terr
			}
			return fmt.Errorf("cannot add account %s: %w", addr, err)
		} else if err != nil {
			return fmt.Errorf("cannot add account %s: %w", addr, err)
		}
		fmt.Fprintf(e.Stdout, "added account %s\n", addr)
		return nil
	})
}

// newCredentials reads a new password and derives what the store keeps of it.
func (e *Env) newCredentials() (store.Credentials, error) {
	pw, err := e.readPassword()
	if err != nil {
		return store.Credentials{}, err
	}
	return auth.NewCredentials(pw)
}

// addressTaken says why a new account cannot have addr, or nil if it can.
func (e *Env) addressTaken(st store.Store, addr string) error {
	if _, err := st.AccountByAddress(e.Ctx, addr); err == nil {
		return fmt.Errorf("account %s already exists (`petrel account passwd %s` sets a new password)", addr, addr)
	}
	if _, err := st.Alias(e.Ctx, addr); err == nil {
		return fmt.Errorf("%s is an alias; an address is an account or an alias, so delete the alias first with `petrel alias del %s`", addr, addr)
	}
	return nil
}

func accountList(e *Env, args []string) error {
	if len(args) > 1 {
		return exactArgs(args, 1, "account list [DOMAIN]")
	}
	domain := ""
	if len(args) == 1 {
		var err error
		if domain, err = normDomain(args[0]); err != nil {
			return err
		}
	}
	return e.withStore(func(st store.Store) error {
		as, err := st.Accounts(e.Ctx, domain)
		if err != nil {
			return err
		}
		for _, a := range as {
			fmt.Fprintf(e.Stdout, "%s\tpop3-delete=%s\n", a.Address, a.POP3Delete)
		}
		return nil
	})
}

func accountDel(e *Env, args []string) error {
	if err := exactArgs(args, 1, "account del ADDRESS"); err != nil {
		return err
	}
	addr, err := normAddress(args[0])
	if err != nil {
		return err
	}
	return e.withStore(func(st store.Store) error {
		if err := st.DeleteAccount(e.Ctx, addr); err != nil {
			return noAccount(addr, err)
		}
		fmt.Fprintf(e.Stdout, "deleted account %s\n", addr)
		return nil
	})
}

func accountPasswd(e *Env, args []string) error {
	if err := exactArgs(args, 1, "account passwd ADDRESS"); err != nil {
		return err
	}
	addr, err := normAddress(args[0])
	if err != nil {
		return err
	}
	return e.withStore(func(st store.Store) error {
		a, err := st.AccountByAddress(e.Ctx, addr)
		if err != nil {
			return noAccount(addr, err)
		}
		cred, err := e.newCredentials()
		if err != nil {
			return err
		}
		if err := st.SetCredentials(e.Ctx, a.ID, cred); err != nil {
			return err
		}
		fmt.Fprintf(e.Stdout, "changed password of %s\n", addr)
		return nil
	})
}

func accountPOP3Delete(e *Env, args []string) error {
	if err := exactArgs(args, 2, "account pop3-delete ADDRESS delete|keep|archive"); err != nil {
		return err
	}
	addr, err := normAddress(args[0])
	if err != nil {
		return err
	}
	p := store.POP3DeletePolicy(args[1])
	if !p.Valid() {
		return fmt.Errorf("the policy is delete, keep or archive, not %q\n%w: petrel account pop3-delete ADDRESS delete|keep|archive", args[1], ErrUsage)
	}
	return e.withStore(func(st store.Store) error {
		a, err := st.AccountByAddress(e.Ctx, addr)
		if err != nil {
			return noAccount(addr, err)
		}
		if err := st.SetPOP3Delete(e.Ctx, a.ID, p); err != nil {
			return err
		}
		fmt.Fprintf(e.Stdout, "POP3 deletions of %s now %s\n", addr, p)
		return nil
	})
}

// accountAdmin shows or sets the admin role (store.Admins): an admin may use the web admin
// at /admin/ with the account's own login.
func accountAdmin(e *Env, args []string) error {
	if len(args) != 1 && len(args) != 2 || len(args) == 2 && args[1] != "on" && args[1] != "off" {
		return fmt.Errorf("%w: petrel account admin ADDRESS [on|off]", ErrUsage)
	}
	addr, err := normAddress(args[0])
	if err != nil {
		return err
	}
	return e.withStore(func(st store.Store) error {
		adm, ok := st.(store.Admins)
		if !ok {
			return errors.New("this store keeps no admin role")
		}
		a, err := st.AccountByAddress(e.Ctx, addr)
		if err != nil {
			return noAccount(addr, err)
		}
		if len(args) == 2 {
			if err := adm.SetAdmin(e.Ctx, a.ID, args[1] == "on"); err != nil {
				return noAccount(addr, err)
			}
		}
		on, err := adm.IsAdmin(e.Ctx, a.ID)
		if err != nil {
			return noAccount(addr, err)
		}
		state := "off"
		if on {
			state = "on"
		}
		fmt.Fprintf(e.Stdout, "admin %s for %s\n", state, addr)
		return nil
	})
}
