package cli

import (
	"errors"
	"fmt"
	"io"
	"os"

	"petrel/internal/mail/sieve"
	"petrel/internal/store"
)

func sieveCommands() []command {
	return []command{
		{noun: "sieve", verb: "list", args: "ADDRESS", help: "list the account's Sieve scripts (the active one marked)", run: sieveList},
		{noun: "sieve", verb: "put", args: "ADDRESS NAME [FILE]", help: "store a Sieve script from FILE or stdin; a script with an error is refused with its line and reason",
			more: "The script replaces one of the same name (an active one stays active). `petrel sieve activate` makes it the one that runs at delivery.",
			run:  sievePut},
		{noun: "sieve", verb: "get", args: "ADDRESS NAME", help: "print a Sieve script", run: sieveGet},
		{noun: "sieve", verb: "activate", args: "ADDRESS [NAME]", help: "make NAME the script that runs at delivery; without NAME, none runs", run: sieveActivate},
		{noun: "sieve", verb: "delete", args: "ADDRESS NAME", help: "delete a script that is not active", run: sieveDelete},
	}
}

// withSieve opens the store and finds the account for a sieve command.
func (e *Env) withSieve(address string, f func(sv store.Sieve, acct store.Account) error) error {
	addr, err := normAddress(address)
	if err != nil {
		return err
	}
	return e.withStore(func(st store.Store) error {
		sv, ok := st.(store.Sieve)
		if !ok {
			return errors.New("this store keeps no Sieve scripts")
		}
		a, err := st.AccountByAddress(e.Ctx, addr)
		if err != nil {
			return noAccount(addr, err)
		}
		return f(sv, a)
	})
}

func sieveList(e *Env, args []string) error {
	if err := exactArgs(args, 1, "sieve list ADDRESS"); err != nil {
		return err
	}
	return e.withSieve(args[0], func(sv store.Sieve, a store.Account) error {
		list, err := sv.SieveScripts(e.Ctx, a.ID)
		if err != nil {
			return err
		}
		for _, sc := range list {
			mark := ""
			if sc.Active {
				mark = "\tactive"
			}
			fmt.Fprintf(e.Stdout, "%s\t%d bytes%s\n", sc.Name, len(sc.Content), mark)
		}
		return nil
	})
}

func sievePut(e *Env, args []string) error {
	if len(args) < 2 || len(args) > 3 {
		return fmt.Errorf("%w: petrel sieve put ADDRESS NAME [FILE]", ErrUsage)
	}
	if !store.ValidSieveName(args[1]) {
		return fmt.Errorf("%q cannot name a script (no control characters, at most 128 characters)", args[1])
	}
	var src io.Reader = e.Stdin
	if len(args) == 3 && args[2] != "-" {
		f, err := os.Open(args[2])
		if err != nil {
			return err
		}
		defer f.Close()
		src = f
	}
	lim := sieve.DefaultLimits()
	content, err := io.ReadAll(io.LimitReader(src, int64(lim.MaxScriptSize)+1))
	if err != nil {
		return err
	}
	if _, err := sieve.Parse(string(content), lim); err != nil {
		return fmt.Errorf("script %s refused: %w", args[1], err)
	}
	return e.withSieve(args[0], func(sv store.Sieve, a store.Account) error {
		if err := sv.PutSieveScript(e.Ctx, a.ID, args[1], string(content)); err != nil {
			return err
		}
		fmt.Fprintf(e.Stdout, "stored script %s of %s\n", args[1], a.Address)
		return nil
	})
}

func sieveGet(e *Env, args []string) error {
	if err := exactArgs(args, 2, "sieve get ADDRESS NAME"); err != nil {
		return err
	}
	return e.withSieve(args[0], func(sv store.Sieve, a store.Account) error {
		sc, err := sv.SieveScript(e.Ctx, a.ID, args[1])
		if errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("%s has no script %s", a.Address, args[1])
		}
		if err != nil {
			return err
		}
		_, err = io.WriteString(e.Stdout, sc.Content)
		return err
	})
}

func sieveActivate(e *Env, args []string) error {
	if len(args) < 1 || len(args) > 2 {
		return fmt.Errorf("%w: petrel sieve activate ADDRESS [NAME]", ErrUsage)
	}
	name := ""
	if len(args) == 2 {
		name = args[1]
	}
	return e.withSieve(args[0], func(sv store.Sieve, a store.Account) error {
		err := sv.SetActiveSieveScript(e.Ctx, a.ID, name)
		switch {
		case errors.Is(err, store.ErrNotFound):
			return fmt.Errorf("%s has no script %s", a.Address, name)
		case err != nil:
			return err
		case name == "":
			fmt.Fprintf(e.Stdout, "no script of %s is active now\n", a.Address)
		default:
			fmt.Fprintf(e.Stdout, "script %s of %s is active now\n", name, a.Address)
		}
		return nil
	})
}

func sieveDelete(e *Env, args []string) error {
	if err := exactArgs(args, 2, "sieve delete ADDRESS NAME"); err != nil {
		return err
	}
	return e.withSieve(args[0], func(sv store.Sieve, a store.Account) error {
		err := sv.DeleteSieveScript(e.Ctx, a.ID, args[1])
		switch {
		case errors.Is(err, store.ErrNotFound):
			return fmt.Errorf("%s has no script %s", a.Address, args[1])
		case errors.Is(err, store.ErrInvalid):
			return fmt.Errorf("script %s is active: activate another (or none) first", args[1])
		case err != nil:
			return err
		}
		fmt.Fprintf(e.Stdout, "deleted script %s of %s\n", args[1], a.Address)
		return nil
	})
}
