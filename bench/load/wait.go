package load

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// WaitConfig is the wait scenario, and the POP3 side of smtp -wait-pop3:
// poll STAT on mailboxes until the expected messages are visible.
type WaitConfig struct {
	Target
	// Accounts are the mailboxes to poll. In SMTPConfig.Wait, nil means the
	// recipients of the run, logging in with Pass.
	Accounts []Account
	Pass     string        // SMTPConfig.Wait only: password of the recipient accounts
	Expect   int64         // RunWait only: messages to wait for, summed over Accounts
	Poll     time.Duration // pause between polls; default 200ms
	Timeout  time.Duration // give up after this long; default 60s
	Conns    int           // concurrent STAT sessions; default 4
}

// Delivery is how long messages took to become visible over POP3.
type Delivery struct {
	Expected int64   `json:"expected"`  // messages waited for
	Seen     int64   `json:"seen"`      // messages visible at the end
	ElapsedS float64 `json:"elapsed_s"` // from the first send (or the start of waiting) to the poll that saw them all
	PerSec   float64 `json:"per_sec"`   // Seen / ElapsedS: end-to-end delivered messages per second
	Polls    int     `json:"polls"`     // poll rounds
	TimedOut bool    `json:"timed_out"`
}

// RunWait polls cfg.Accounts until cfg.Expect messages are visible in total,
// or cfg.Timeout passes.
func RunWait(ctx context.Context, cfg WaitConfig) (*Result, error) {
	switch {
	case cfg.Addr == "":
		return nil, errors.New("wait: no server address")
	case len(cfg.Accounts) == 0:
		return nil, errors.New("wait: no accounts")
	case cfg.Expect <= 0:
		return nil, errors.New("wait: expected message count must be positive")
	}
	var errs errorLog
	w := newWaiter(&cfg, cfg.Accounts, &errs)
	start := time.Now()
	d := w.waitTotal(ctx, start, cfg.Expect)
	res := &Result{
		Scenario:  "wait",
		Target:    cfg.Target.describe(),
		Unit:      "message",
		Ops:       d.Seen,
		Sessions:  int64(d.Polls * len(cfg.Accounts)),
		Latency:   w.lat.summary(),
		LatencyOf: "STAT poll: connect, login, STAT, QUIT",
		Delivery:  d,
	}
	if d.TimedOut {
		errs.add("timed out: %d of %d messages visible", d.Seen, d.Expected)
	}
	errs.fill(res)
	res.finish(time.Duration(d.ElapsedS * float64(time.Second)))
	return res, nil
}

// waiter polls mailboxes with STAT, one fresh session per poll: a POP3
// session sees the maildrop as it was at login (RFC 1939 §8).
type waiter struct {
	cfg      *WaitConfig
	accounts []Account
	base     []int64 // messages already there before the run
	errs     *errorLog
	lat      samples
}

func newWaiter(cfg *WaitConfig, accounts []Account, errs *errorLog) *waiter {
	return &waiter{cfg: cfg, accounts: accounts, base: make([]int64, len(accounts)), errs: errs}
}

// baseline records how many messages each mailbox has now.
func (w *waiter) baseline(ctx context.Context) error {
	counts, errs := w.statAll(ctx, nil)
	for i, err := range errs {
		if err != nil {
			return fmt.Errorf("%s: %w", w.accounts[i].User, err)
		}
	}
	w.base = counts
	return nil
}

// wait polls until mailbox i has want[i] messages more than its baseline.
// A mailbox that has them is not polled again.
func (w *waiter) wait(ctx context.Context, start time.Time, want []int64) *Delivery {
	var total int64
	for _, n := range want {
		total += n
	}
	return w.loop(ctx, start, total, want)
}

// waitTotal polls every mailbox until they hold expect messages together.
func (w *waiter) waitTotal(ctx context.Context, start time.Time, expect int64) *Delivery {
	return w.loop(ctx, start, expect, nil)
}

func (w *waiter) loop(ctx context.Context, start time.Time, expect int64, want []int64) *Delivery {
	poll, timeout := w.cfg.Poll, w.cfg.Timeout
	if poll <= 0 {
		poll = 200 * time.Millisecond
	}
	if timeout <= 0 {
		timeout = time.Minute
	}
	giveUp := time.Now().Add(timeout)
	d := &Delivery{Expected: expect}
	seen := make([]int64, len(w.accounts)) // messages above baseline
	done := make([]bool, len(w.accounts))
	for {
		d.Polls++
		counts, errs := w.statAll(ctx, done)
		for i := range w.accounts {
			if done[i] {
				continue
			}
			if errs[i] != nil {
				if ctx.Err() == nil {
					w.errs.add("poll %s: %v", w.accounts[i].User, errs[i])
				}
				continue
			}
			seen[i] = max(counts[i]-w.base[i], 0)
			done[i] = want != nil && seen[i] >= want[i]
		}
		d.Seen = 0
		for _, n := range seen {
			d.Seen += n
		}
		elapsed := time.Since(start)
		d.ElapsedS = elapsed.Seconds()
		if d.ElapsedS > 0 {
			d.PerSec = float64(d.Seen) / d.ElapsedS
		}
		if d.Seen >= expect {
			return d
		}
		if ctx.Err() != nil || time.Now().Add(poll).After(giveUp) {
			d.TimedOut = true
			return d
		}
		select {
		case <-ctx.Done():
		case <-time.After(poll):
		}
	}
}

// statAll runs STAT on every mailbox not marked done (skip may be nil),
// cfg.Conns at a time, and returns the counts and errors by index.
func (w *waiter) statAll(ctx context.Context, skip []bool) ([]int64, []error) {
	counts := make([]int64, len(w.accounts))
	errs := make([]error, len(w.accounts))
	conns := w.cfg.Conns
	if conns <= 0 {
		conns = 4
	}
	sem := make(chan struct{}, conns)
	var wg sync.WaitGroup
	for i, a := range w.accounts {
		if skip != nil && skip[i] {
			continue
		}
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			t0 := time.Now()
			counts[i], errs[i] = w.stat(ctx, a)
			if errs[i] == nil {
				w.lat.merge([]time.Duration{time.Since(t0)})
			}
		})
	}
	wg.Wait()
	return counts, errs
}

// stat logs in, runs STAT and logs out.
func (w *waiter) stat(ctx context.Context, a Account) (int64, error) {
	c, err := dialPOP3(ctx, w.cfg.Target)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	if err := c.login(a); err != nil {
		return 0, err
	}
	n, _, err := c.stat()
	if err != nil {
		return 0, err
	}
	return n, c.quit()
}
