package load

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// POP3Config is the pop3 scenario: Clients clients, each repeatedly taking a
// free account, logging in, and retrieving every message.
type POP3Config struct {
	Target
	Accounts []Account
	Clients  int           // C, concurrent clients
	Sessions int           // stop after this many logins in total; 0: see Duration
	Duration time.Duration // stop starting sessions after this long; 0: see Sessions
	Delete   bool          // DELE every retrieved message (removed at QUIT)
}

// pop3Run is the state shared by the clients of one RunPOP3.
type pop3Run struct {
	cfg      *POP3Config
	free     chan Account // accounts no client is logged in to
	started  atomic.Int64 // sessions begun
	sessions atomic.Int64 // sessions ended with QUIT
	msgs     atomic.Int64
	bytes    atomic.Int64
	errs     errorLog
	lat      samples // per RETR
	conn     samples // dial .. logged in
}

// RunPOP3 runs the pop3 scenario. With neither Sessions nor Duration set,
// each account is visited once.
//
// A client takes an account that no other client holds: POP3 locks the
// maildrop for the whole session (RFC 1939 §8), so two clients on one
// account would only measure lock refusals. With fewer accounts than
// clients, the extra clients wait for a free one.
func RunPOP3(ctx context.Context, cfg POP3Config) (*Result, error) {
	switch {
	case cfg.Addr == "":
		return nil, errors.New("pop3: no server address")
	case len(cfg.Accounts) == 0:
		return nil, errors.New("pop3: no accounts")
	case cfg.Clients <= 0:
		return nil, errors.New("pop3: client count must be positive")
	}
	if cfg.Sessions <= 0 && cfg.Duration <= 0 {
		cfg.Sessions = len(cfg.Accounts)
	}
	run := &pop3Run{cfg: &cfg, free: make(chan Account, len(cfg.Accounts))}
	for _, a := range cfg.Accounts {
		run.free <- a
	}

	start := time.Now()
	var stopAt time.Time
	if cfg.Duration > 0 {
		stopAt = start.Add(cfg.Duration)
	}
	var wg sync.WaitGroup
	for range cfg.Clients {
		wg.Go(func() { run.client(ctx, stopAt) })
	}
	wg.Wait()
	elapsed := time.Since(start)

	res := &Result{
		Scenario:  "pop3",
		Target:    cfg.Target.describe(),
		Unit:      "message",
		Ops:       run.msgs.Load(),
		Bytes:     run.bytes.Load(),
		Sessions:  run.sessions.Load(),
		Latency:   run.lat.summary(),
		LatencyOf: "RETR: command to final CRLF.CRLF",
		Connect:   run.conn.summary(),
	}
	if ctx.Err() != nil {
		res.Stopped = stoppedText(ctx, fmt.Sprintf("%d sessions started", run.started.Load()))
		run.errs.add("%s", res.Stopped)
	}
	run.errs.fill(res)
	res.finish(elapsed)
	return res, nil
}

// client runs sessions until the run's budget of sessions or time is spent.
func (r *pop3Run) client(ctx context.Context, stopAt time.Time) {
	var lat []time.Duration
	defer func() { r.lat.merge(lat) }()
	for ctx.Err() == nil {
		if !stopAt.IsZero() && time.Now().After(stopAt) {
			return
		}
		if r.cfg.Sessions > 0 && r.started.Add(1) > int64(r.cfg.Sessions) {
			return
		}
		if r.cfg.Sessions <= 0 {
			r.started.Add(1)
		}
		var a Account
		select {
		case a = <-r.free:
		case <-ctx.Done():
			return
		}
		err := r.session(ctx, a, &lat)
		// Back of the queue: the next client takes another account, so the
		// server has time to release this one's lock.
		r.free <- a
		if err != nil && ctx.Err() == nil {
			r.errs.add("%s: %v", a.User, err)
		}
	}
}

// session is one login: STAT, LIST, RETR each message (DELE it if asked),
// QUIT. Failed checks on a message are counted and the session goes on; any
// other error ends it without QUIT, so nothing is deleted (RFC 1939 §6).
func (r *pop3Run) session(ctx context.Context, a Account, lat *[]time.Duration) error {
	t0 := time.Now()
	c, err := dialPOP3(ctx, r.cfg.Target)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.login(a); err != nil {
		return err
	}
	r.conn.merge([]time.Duration{time.Since(t0)})
	count, _, err := c.stat()
	if err != nil {
		return err
	}
	list, err := c.list()
	if err != nil {
		return err
	}
	if int64(len(list)) != count {
		r.errs.add("%s: STAT says %d messages, LIST lists %d", a.User, count, len(list))
	}
	for _, m := range list {
		t1 := time.Now()
		n, err := c.retr(m.num)
		var bad *verifyError
		switch {
		case errors.As(err, &bad):
			r.errs.add("%s: %v", a.User, err)
			continue
		case err != nil:
			return err
		}
		*lat = append(*lat, time.Since(t1))
		if n != m.size {
			r.errs.add("%s: RETR %d gave %d octets, LIST said %d", a.User, m.num, n, m.size)
			continue
		}
		r.msgs.Add(1)
		r.bytes.Add(n)
		if r.cfg.Delete {
			if _, err := c.cmd("DELE %d", m.num); err != nil {
				return err
			}
		}
	}
	if err := c.quit(); err != nil {
		return err
	}
	r.sessions.Add(1)
	return nil
}
