package cli

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"
	"runtime/pprof"
	"strings"

	"petrel/internal/app"
	"petrel/internal/config"
)

func serveCommands() []command {
	return []command{{
		noun: "serve",
		args: "[--cpuprofile FILE] [--memprofile FILE]",
		help: "run the server (the development instance without -c)",
		more: `
Without -c it runs the development instance: loopback ports 2525, 2587, 2465, 2110, 2995, 2143
and 2993, the domain example.test, a self-signed certificate and the account dev@example.test, whose password
is printed on the first start. With -c FILE it runs the instance that file describes.
SIGHUP reloads the TLS certificate; SIGTERM or SIGINT stops gracefully.
One server runs per data directory: a second one on the same directory is refused, while the
management commands keep working beside it.`,
		flags: func() *flag.FlagSet { return serveFlags(&serveOptions{}) },
		run:   runServe,
	}}
}

type serveOptions struct{ cpuProfile, memProfile string }

func serveFlags(o *serveOptions) *flag.FlagSet {
	fs := flag.NewFlagSet("petrel serve", flag.ContinueOnError)
	fs.StringVar(&o.cpuProfile, "cpuprofile", "", "write a CPU profile from start to graceful stop to `FILE`")
	fs.StringVar(&o.memProfile, "memprofile", "", "write an allocation profile at graceful stop to `FILE`")
	return fs
}

func runServe(e *Env, args []string) (err error) {
	var o serveOptions
	fs := serveFlags(&o)
	fs.SetOutput(e.Stderr)
	if err := fs.Parse(args); err != nil {
		return fmt.Errorf("%w: petrel serve [--cpuprofile FILE] [--memprofile FILE]", ErrUsage)
	}
	if err := exactArgs(fs.Args(), 0, "serve [--cpuprofile FILE] [--memprofile FILE]"); err != nil {
		return err
	}
	cpuProfile, memProfile := &o.cpuProfile, &o.memProfile
	c, err := e.config()
	if err != nil {
		return err
	}
	if c.Dev {
		e.Stdout.Write([]byte("petrel: development instance, data in " + c.Data + "\n"))
	}
	// The profiles are for benchmarks (bench/compare.sh --profile): they cover the server's
	// whole life, so a run of one scenario between start and stop profiles that scenario.
	if *cpuProfile != "" {
		stop, err := startCPUProfile(*cpuProfile)
		if err != nil {
			return err
		}
		defer func() { err = errors.Join(err, stop()) }()
	}
	if *memProfile != "" {
		defer func() { err = errors.Join(err, writeAllocProfile(*memProfile)) }()
	}
	a, err := app.New(e.Ctx, c, newLogger(c.Log, e.Stderr), e.Stdout)
	if err != nil {
		return err
	}
	// The web admin runs management commands through Main itself, with this server's
	// config and data directory: the same code as `petrel NOUN VERB` in a shell.
	a.SetManage(func(ctx context.Context, args []string, stdin string) (string, error) {
		var out bytes.Buffer
		err := Main(&Env{Ctx: ctx, DataDir: e.DataDir, ConfigFile: e.ConfigFile,
			Stdin: strings.NewReader(stdin), Stdout: &out, Stderr: &out}, args)
		return out.String(), err
	})
	return a.Run(e.Ctx, e.Reload)
}

// startCPUProfile starts the CPU profiler writing to path; the returned function stops it
// and closes the file.
func startCPUProfile(path string) (func() error, error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("cpuprofile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("cpuprofile: %w", err)
	}
	return func() error {
		pprof.StopCPUProfile()
		if err := f.Close(); err != nil {
			return fmt.Errorf("cpuprofile: %w", err)
		}
		return nil
	}, nil
}

// writeAllocProfile writes the heap profile with its allocation samples ("allocs": pprof shows
// alloc_space and alloc_objects since start as well as inuse_space at stop).
func writeAllocProfile(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("memprofile: %w", err)
	}
	runtime.GC() // up-to-date in-use figures
	err = pprof.Lookup("allocs").WriteTo(f, 0)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("memprofile: %w", err)
	}
	return nil
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
