package cli

import (
	"io"
	"log/slog"
	"os"

	"petrel/internal/app"
	"petrel/internal/config"
)

func serveCommands() []command {
	return []command{{
		noun: "serve",
		help: "run the server (the development instance without -c)",
		run:  runServe,
	}}
}

func runServe(e *Env, args []string) error {
	if err := exactArgs(args, 0, "serve"); err != nil {
		return err
	}
	c, err := e.config()
	if err != nil {
		return err
	}
	if c.Dev {
		e.Stdout.Write([]byte("petrel: development instance, data in " + c.Data + "\n"))
	}
	a, err := app.New(e.Ctx, c, newLogger(c.Log, e.Stderr), e.Stdout)
	if err != nil {
		return err
	}
	return a.Run(e.Ctx, e.Reload)
}

func newLogger(c config.Log, w io.Writer) *slog.Logger {
	var level slog.Level
	level.UnmarshalText([]byte(c.Level))
	opts := &slog.HandlerOptions{Level: level}
	if w == nil {
		w = os.Stderr
	}
	if c.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
