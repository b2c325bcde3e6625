package cli

import (
	"fmt"

	"petrel/internal/app"
)

func migrateCommands() []command {
	return []command{
		{noun: "migrate", help: "bring the store's schema up to date ([store] in the config)", run: migrateRun,
			more: `Applies the schema migrations this binary knows and the store has not had yet, and says
which versions it went from and to. The embedded store is migrated whenever it is opened;
for PostgreSQL this is the step to run before starting nodes of a new version when
[store] migrate = false (then serve refuses a schema that is not current). Several nodes
or commands migrating at once take turns: each migration runs once.`},
	}
}

func migrateRun(e *Env, args []string) error {
	if err := exactArgs(args, 0, "migrate"); err != nil {
		return err
	}
	c, err := e.config()
	if err != nil {
		return err
	}
	from, to, err := app.MigrateStore(e.Ctx, c)
	if err != nil {
		return err
	}
	if from == to {
		fmt.Fprintf(e.Stdout, "schema version %d: up to date\n", to)
		return nil
	}
	fmt.Fprintf(e.Stdout, "schema version %d -> %d\n", from, to)
	return nil
}
