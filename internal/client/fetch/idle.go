package fetch

// Push: `petrel fetch --idle` keeps one IMAP connection per account open and the folder
// selected, waits in IDLE (RFC 2177, part of IMAP4rev2) for the server to announce new
// messages, and runs the same sync as a normal fetch on that connection as soon as one
// arrives; the state file and the never-lose order are the same, so a kill at any moment and a
// rerun give neither losses nor duplicates.
//
//   - IDLE is ended and re-issued every Rearm (default 25 minutes), before the 29 minutes
//     after which RFC 2177 §3 allows a server to drop an idle client (and before go-imap's own
//     restart at 28). Each re-arm asks the account's token source for a token, which
//     refreshes an OAuth access token about to expire, so a reconnect after hours of IDLE
//     logs in at once.
//   - A server without IDLE is polled with NOOP every Poll (default 1 minute).
//   - A dropped connection, a failed login or a failed sync is reported and followed by a new
//     connection after a backoff that doubles from MinBackoff to MaxBackoff and starts again
//     after a successful sync. A revoked OAuth login (oauth.ErrLoginAgain) and a local write
//     error end Idle: retrying cannot help.
//   - The state file stays locked while a session is connected, so a `petrel fetch` of the same
//     account meanwhile says that another fetch is running.

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"petrel/internal/client/clientconf"
	"petrel/internal/client/oauth"
)

// IdleOptions tunes Idle.
type IdleOptions struct {
	Rearm      time.Duration // re-issue IDLE this often (default 25m)
	Poll       time.Duration // NOOP interval when the server lacks IDLE (default 1m)
	MinBackoff time.Duration // first wait before a reconnect (default 2s)
	MaxBackoff time.Duration // longest wait (default 5m)
	// Report is called after each sync and each failure (Result is that sync's).
	Report func(Result, error)
	// After makes the timers of the re-arm, the poll and the backoff (tests drive them);
	// default time.After.
	After func(time.Duration) <-chan time.Time
}

func (o *IdleOptions) defaults() {
	if o.Rearm <= 0 {
		o.Rearm = 25 * time.Minute
	}
	if o.Poll <= 0 {
		o.Poll = time.Minute
	}
	if o.MinBackoff <= 0 {
		o.MinBackoff = 2 * time.Second
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = 5 * time.Minute
	}
	if o.Report == nil {
		o.Report = func(Result, error) {}
	}
	if o.After == nil {
		o.After = time.After
	}
}

// Idle keeps the IMAP account a in sync until ctx ends (then it returns nil), or until an
// error that retrying cannot mend.
func Idle(ctx context.Context, a *clientconf.Account, o Options, opt IdleOptions) error {
	if a.IMAP == nil {
		return fmt.Errorf("account %s: --idle needs an [imap] table (POP3 has no push)", a.Name)
	}
	o = o.withDefaults()
	opt.defaults()
	if a.UsesToken() && o.Tokens == nil {
		o.Tokens = oauth.For(a) // one source for the whole run: a refused token stays known
	}
	backoff := opt.MinBackoff
	for {
		synced := false
		err := idleSession(ctx, a, o, opt, func() { synced = true })
		if ctx.Err() != nil {
			return nil
		}
		var le *LocalError
		if errors.As(err, &le) || errors.Is(err, oauth.ErrLoginAgain) {
			return err
		}
		opt.Report(Result{Account: a.Name}, err)
		if synced {
			backoff = opt.MinBackoff
		}
		select {
		case <-ctx.Done():
			return nil
		case <-opt.After(backoff):
		}
		backoff = min(2*backoff, opt.MaxBackoff)
	}
}

// idleSession is one connection: sync, wait for news, sync again, until an error.
func idleSession(ctx context.Context, a *clientconf.Account, o Options, opt IdleOptions, synced func()) error {
	wake := make(chan struct{}, 1)
	r := &imapRun{a: a, m: a.IMAP, o: o, wake: wake}
	r.server = "imap:" + a.User + "@" + a.IMAP.Host + "/" + a.IMAP.Folder
	r.flagged = map[imap.UID]bool{}
	st, unlock, err := lockState(r.m.State, r.server, o.DryRun)
	if err != nil {
		return err
	}
	defer unlock()
	r.st = st
	if err := oauth.Connect(ctx, a, o.Tokens, func(secret string) error { return r.connect(ctx, secret) }); err != nil {
		return err
	}
	defer r.close()
	for {
		r.res = &Result{Account: a.Name}
		err := r.sync()
		var refused *refusedError
		if err != nil && !errors.As(err, &refused) {
			return err
		}
		synced()
		opt.Report(*r.res, err)
		if err := r.wait(ctx, opt); err != nil {
			return err
		}
	}
}

// wait returns when the server announced new messages, or after a re-arm with nothing new.
func (r *imapRun) wait(ctx context.Context, opt IdleOptions) error {
	// EXISTS during the sync (the handler in connect): the listing may have missed it.
	select {
	case <-r.wake:
		return nil
	default:
	}
	if !r.c.Caps().Has(imap.CapIdle) && !r.c.Caps().Has(imap.CapIMAP4rev2) {
		for {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-opt.After(opt.Poll):
			}
			if err := r.do(func() error { return r.c.Noop().Wait() }); err != nil {
				return err
			}
			select {
			case <-r.wake:
				return nil
			default:
			}
		}
	}
	for {
		var cmd *imapclient.IdleCommand
		err := r.do(func() (err error) {
			cmd, err = r.c.Idle()
			return err
		})
		if err != nil {
			return fmt.Errorf("IDLE: %w", err)
		}
		news := false
		select {
		case <-ctx.Done():
		case <-r.wake:
			news = true
		case <-opt.After(opt.Rearm):
		case <-r.c.Closed():
			// The connection ended under the IDLE; Wait says how.
		}
		err = r.do(func() error {
			if err := cmd.Close(); err != nil {
				return err
			}
			return cmd.Wait()
		})
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err != nil {
			return fmt.Errorf("IDLE: %w", err)
		}
		if news {
			return nil
		}
		// A re-arm: keep a stored token fresh for the next login (a refresh if it is due).
		// Not token_command: it runs at each login anyway, and it may prompt.
		if _, stored := r.o.Tokens.(*oauth.FileTokens); stored {
			if _, err := r.o.Tokens.Token(ctx); err != nil {
				return err
			}
		}
	}
}
