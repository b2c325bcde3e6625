package cli

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	memrest "petrel/internal/lib/rest"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/dustin/go-humanize"
	"golang.org/x/term"

	"petrel/internal/client/clientconf"
	"petrel/internal/client/fetch"
	"petrel/internal/client/oauth"
)

func fetchCommands() []command {
	return []command{
		{noun: "fetch", args: "[--config F] [--account NAME] [--dry-run] [--quiet] [--idle] [--every DURATION]",
			help: "download POP3 and IMAP accounts into local archives (exit 0 ok, 1 an account failed, 2 usage/config, 3 local write error, 4 OAuth login needed)",
			more: `
Accounts are read from the client config (see docs/client-tools.md). A message is deleted on the
server only once it is safely in the local archive, so an interrupted run loses nothing.

--idle keeps running: each IMAP account stays connected and its new mail is fetched as it
arrives (IMAP IDLE; reconnecting after a drop); --every DURATION fetches the other accounts
(POP3) again at that interval. Stop with Ctrl-C or SIGTERM.`,
			flags: func() *flag.FlagSet { return fetchFlags(&fetchOptions{}) },
			run:   fetchRun},
	}
}

// Exit codes of the client tools, documented in docs/client-tools.md.
const (
	ExitOK      = 0
	ExitFailed  = 1 // an account (fetch) or a message (send) failed; retrying later may help
	ExitUsage   = 2 // wrong command line or config file
	ExitLocal   = 3 // fetch: the archive or state file could not be written: needs attention
	ExitLogin   = 4 // an account's OAuth login is missing or revoked: run `petrel auth login` again
	progressGap = 100 * time.Millisecond
)

// ExitError carries the exit status a client command wants; main exits with ExitCode.
// Its message has already been printed when Err is nil.
type ExitError struct {
	Code int
	Err  error
}

func (e *ExitError) Error() string {
	if e.Err == nil {
		return fmt.Sprintf("exit status %d", e.Code)
	}
	return e.Err.Error()
}

func (e *ExitError) Unwrap() error { return e.Err }

// ExitCode is the process exit status.
func (e *ExitError) ExitCode() int { return e.Code }

// loadClientConfig reads --config or the default path; errors are usage errors (exit 2).
func loadClientConfig(path string) (*clientconf.Config, error) {
	if path == "" {
		var err error
		if path, err = clientconf.DefaultPath(); err != nil {
			return nil, &ExitError{Code: ExitUsage, Err: err}
		}
	}
	c, err := clientconf.Load(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, &ExitError{Code: ExitUsage, Err: fmt.Errorf("no client config at %s: write one (docs/client-tools.md describes it) or name another with --config FILE", path)}
	}
	if err != nil {
		return nil, &ExitError{Code: ExitUsage, Err: err}
	}
	return c, nil
}

type fetchOptions struct {
	config, account     string
	configure           string
	replace             bool
	dryRun, quiet, idle bool
	every               time.Duration
}

func fetchFlags(o *fetchOptions) *flag.FlagSet {
	fs := flag.NewFlagSet("petrel fetch", flag.ContinueOnError)
	fs.StringVar(&o.config, "config", "", "client config `FILE` (default ~/.config/petrel/client.toml)")
	fs.StringVar(&o.account, "account", "", "fetch only this account (`NAME`)")
	fs.BoolVar(&o.dryRun, "dry-run", false, "connect and report what would be done, change nothing")
	fs.BoolVar(&o.quiet, "quiet", false, "print nothing but errors")
	fs.StringVar(&o.configure, "configure", "", "find the servers of `ADDRESS` (autoconfig, SRV, MX) and add an account to the config")
	fs.BoolVar(&o.replace, "replace", false, "with --configure: replace an existing account of that name without asking")
	fs.BoolVar(&o.idle, "idle", false, "keep running: push from IMAP accounts over IDLE")
	fs.DurationVar(&o.every, "every", 0, "keep running: fetch (POP3) accounts again every `DURATION`")
	return fs
}

func fetchRun(e *Env, args []string) error {
	var o fetchOptions
	fs := fetchFlags(&o)
	fs.SetOutput(e.Stderr)
	confPath, only, dry, quiet := &o.config, &o.account, &o.dryRun, &o.quiet
	if err := fs.Parse(args); err != nil {
		return fmt.Errorf("%w: petrel fetch [--config F] [--account NAME] [--dry-run] [--quiet] [--idle] [--every DURATION]", ErrUsage)
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("petrel fetch takes no arguments\n%w: petrel fetch [--config F] [--account NAME] [--dry-run] [--quiet] [--idle] [--every DURATION]", ErrUsage)
	}
	if o.replace && o.configure == "" {
		return fmt.Errorf("%w: --replace goes with --configure", ErrUsage)
	}
	if o.configure != "" {
		return configure(e, configureRequest{confPath: o.config, address: o.configure, name: o.account, replace: o.replace})
	}
	if (o.idle || o.every != 0) && o.dryRun {
		return fmt.Errorf("%w: --dry-run runs once; not with --idle or --every", ErrUsage)
	}
	if o.every < 0 || (o.every > 0 && o.every < time.Minute) {
		return fmt.Errorf("%w: --every must be at least 1m", ErrUsage)
	}
	cfg, err := loadClientConfig(*confPath)
	if err != nil {
		return err
	}
	var accounts []*clientconf.Account
	for _, n := range cfg.Names() {
		a := cfg.Accounts[n]
		if (*only == "" || n == *only) && a.Fetches() {
			accounts = append(accounts, a)
		}
	}
	if len(accounts) == 0 {
		if *only != "" {
			return &ExitError{Code: ExitUsage, Err: fmt.Errorf("no account %q with a [pop3] or [imap] table in %s", *only, cfg.File)}
		}
		return &ExitError{Code: ExitUsage, Err: fmt.Errorf("no account with a [pop3] or [imap] table in %s", cfg.File)}
	}

	if o.idle || o.every > 0 {
		return fetchForever(e, accounts, o)
	}

	var prog *progressLine
	if f, ok := e.Stderr.(*os.File); ok && !*quiet && term.IsTerminal(int(f.Fd())) {
		prog = &progressLine{w: e.Stderr}
	}
	code := ExitOK
	for _, a := range accounts {
		o := fetch.Options{DryRun: *dry}
		if prog != nil {
			o.Progress = prog.update
		}
		res, err := fetch.Account(e.Ctx, a, o)
		prog.clear()
		if (!*quiet || err != nil) && (err == nil || res.OnServer > 0) {
			fmt.Fprintln(e.Stdout, summary(res))
			for _, n := range res.Notes {
				fmt.Fprintf(e.Stdout, "%s: note: %s\n", a.Name, n)
			}
		}
		if err != nil {
			fmt.Fprintf(e.Stderr, "petrel fetch: %s: %v\n", a.Name, err)
			var le *fetch.LocalError
			if errors.As(err, &le) {
				code = ExitLocal
			} else if code != ExitLocal {
				code = max(code, loginOr(err, ExitFailed))
			}
		}
		if e.Ctx.Err() != nil {
			break
		}
	}
	switch code {
	case ExitLocal:
		return &ExitError{Code: code, Err: errors.New("fetch: the local archive or state could not be written")}
	case ExitFailed:
		return &ExitError{Code: code, Err: errors.New("fetch: some accounts failed")}
	case ExitLogin:
		return &ExitError{Code: code, Err: errors.New("fetch: log in again with `petrel auth login ACCOUNT`")}
	}
	return nil
}

// fetchForever runs until the context ends: IMAP accounts in IDLE (with --idle), the others
// polled every o.every (once if it is 0). It returns with an error only when an account needs
// the user (a local write error, a revoked OAuth login), after the other accounts stopped.
func fetchForever(e *Env, accounts []*clientconf.Account, o fetchOptions) error {
	var mu sync.Mutex // one account's lines at a time
	// After a sync (a download, a login's handshake), give the memory it grew back to the
	// system once every account has been quiet for restAfter. A run that waits for hours
	// should hold its live data, not the peak of its last download; Go's background
	// scavenger returns pages only slowly and only down to the GC's goal. The binary's pages
	// go too: a run that only waits touches a tenth of what starting it did.
	const restAfter = 2 * time.Second
	// Collect at 25% growth instead of Go's 100%: a sync's garbage is then reused before the
	// heap spreads over many spans, and at rest the survivors sit in fewer of them (what a
	// collection cannot give back). It costs collections during a sync, not at rest.
	defer debug.SetGCPercent(debug.SetGCPercent(25))
	rest := time.AfterFunc(time.Hour, func() { memrest.Release() })
	rest.Stop()
	defer rest.Stop()
	show := func(a *clientconf.Account, res fetch.Result, err error) {
		mu.Lock()
		defer mu.Unlock()
		rest.Reset(restAfter)
		if err != nil {
			fmt.Fprintf(e.Stderr, "petrel fetch: %s: %v\n", a.Name, err)
			return
		}
		if !o.quiet && (res.Downloaded > 0 || res.Deleted > 0) {
			fmt.Fprintf(e.Stdout, "%s %s\n", time.Now().Format(time.TimeOnly), summary(res))
		}
		for _, n := range res.Notes {
			fmt.Fprintf(e.Stdout, "%s: note: %s\n", a.Name, n)
		}
	}
	var wg sync.WaitGroup
	codes := make([]int, len(accounts))
	for i, a := range accounts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var err error
			if o.idle && a.IMAP != nil {
				err = fetch.Idle(e.Ctx, a, fetch.Options{}, fetch.IdleOptions{Report: func(r fetch.Result, err error) { show(a, r, err) }})
			} else {
				err = pollAccount(e, a, o.every, func(r fetch.Result, err error) { show(a, r, err) })
			}
			if err != nil {
				show(a, fetch.Result{}, err)
				var le *fetch.LocalError
				codes[i] = loginOr(err, ExitFailed)
				if errors.As(err, &le) {
					codes[i] = ExitLocal
				}
			}
		}()
	}
	wg.Wait()
	code := slices.Max(codes)
	if code != ExitOK {
		return &ExitError{Code: code, Err: errors.New("fetch: an account stopped; see above")}
	}
	return nil
}

// pollAccount fetches a every interval (once if 0) until the context ends; a failed run is
// reported and retried at the next interval, unless only the user can mend it.
func pollAccount(e *Env, a *clientconf.Account, every time.Duration, report func(fetch.Result, error)) error {
	for {
		res, err := fetch.Account(e.Ctx, a, fetch.Options{})
		var le *fetch.LocalError
		if errors.As(err, &le) || errors.Is(err, oauth.ErrLoginAgain) || every == 0 {
			if err == nil {
				report(res, nil)
			}
			return err
		}
		report(res, err)
		select {
		case <-e.Ctx.Done():
			return nil
		case <-time.After(every):
		}
	}
}

func summary(r fetch.Result) string {
	s := fmt.Sprintf("%s: %d on server, %d new, %d downloaded (%s)", r.Account, r.OnServer, r.New, r.Downloaded, humanize.Bytes(uint64(r.Bytes)))
	if r.Recovered > 0 {
		s += fmt.Sprintf(", %d recovered from an interrupted run", r.Recovered)
	}
	return s + fmt.Sprintf(", %d deleted, %d kept on server", r.Deleted, r.Kept)
}

// progressLine redraws one status line on a terminal, at most every progressGap.
type progressLine struct {
	w    io.Writer
	mu   sync.Mutex
	last time.Time
	n    int // width of what is drawn
}

func (p *progressLine) update(pr fetch.Progress) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if time.Since(p.last) < progressGap && pr.Done != pr.Total {
		return
	}
	p.last = time.Now()
	line := fmt.Sprintf("%s: %d/%d messages, %s/%s", pr.Account, pr.Done, pr.Total,
		humanize.Bytes(uint64(pr.DoneBytes)), humanize.Bytes(uint64(pr.TotalSize)))
	fmt.Fprintf(p.w, "\r%s%s", line, strings.Repeat(" ", max(0, p.n-len(line))))
	p.n = len(line)
}

func (p *progressLine) clear() {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.n > 0 {
		fmt.Fprintf(p.w, "\r%s\r", strings.Repeat(" ", p.n))
		p.n = 0
	}
}
