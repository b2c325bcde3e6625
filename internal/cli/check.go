package cli

import (
	"fmt"
	"time"

	"petrel/internal/app"
)

func checkCommands() []command {
	return []command{
		{noun: "check", help: "report every problem a start would run into, without starting", run: checkRun,
			more: `Reads the config and the store without starting a listener or writing anything: the user
to switch to, the certificate and key (readable, a pair, naming the host name, not about
to expire), the data directory and the store's schema, each hosted domain's DKIM keys, and
every listen address (free and bindable; not while a server runs on the data directory).
Exits with status 1 if a start would fail.`},
	}
}

func checkRun(e *Env, args []string) error {
	if err := exactArgs(args, 0, "check"); err != nil {
		return err
	}
	c, err := e.config()
	if err != nil {
		return err // the config itself: file:line: key: reason
	}
	problems := 0
	for _, f := range app.Check(e.Ctx, c, time.Now()) {
		if f.Problem {
			problems++
			fmt.Fprintln(e.Stdout, "problem: "+f.Text)
		} else {
			fmt.Fprintln(e.Stdout, "warning: "+f.Text)
		}
	}
	if problems > 0 {
		return fmt.Errorf("%d problems: a start would fail or mail would break", problems)
	}
	fmt.Fprintln(e.Stdout, "ok: nothing in the way of a start")
	return nil
}
