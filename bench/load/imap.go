package load

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// IMAPFetchConfig is the imap-fetch scenario (S5 of the IMAP issue): Clients
// clients, each repeatedly logging in to an account, selecting a mailbox and
// fetching every message in it.
type IMAPFetchConfig struct {
	Target
	Accounts []Account
	Auth     IMAPAuth
	Mailbox  string        // default INBOX
	Clients  int           // C, concurrent clients
	Sessions int           // stop after this many logins in total; 0: see Duration
	Duration time.Duration // stop starting sessions after this long; 0: see Sessions
	// Batch is the number of messages per FETCH command: 0 fetches the whole
	// mailbox with one "UID FETCH 1:*"; N > 0 sends "FETCH 1:N", "FETCH
	// N+1:2N", ... by sequence number, as a client that pages through a
	// mailbox does, and gives one latency sample per batch.
	Batch int
}

// imapFetchRun is the state shared by the clients of one RunIMAPFetch.
type imapFetchRun struct {
	cfg      *IMAPFetchConfig
	started  atomic.Int64 // sessions begun; session i uses account i mod len(Accounts)
	sessions atomic.Int64 // sessions ended with LOGOUT
	msgs     atomic.Int64
	bytes    atomic.Int64
	errs     errorLog
	lat      samples // per FETCH command
	conn     samples // dial .. logged in
}

// RunIMAPFetch runs the imap-fetch scenario. With neither Sessions nor
// Duration set, each account is visited once. IMAP does not lock a mailbox
// (unlike POP3), so clients may share an account.
func RunIMAPFetch(ctx context.Context, cfg IMAPFetchConfig) (*Result, error) {
	switch {
	case cfg.Addr == "":
		return nil, errors.New("imap-fetch: no server address")
	case len(cfg.Accounts) == 0:
		return nil, errors.New("imap-fetch: no accounts")
	case cfg.Clients <= 0:
		return nil, errors.New("imap-fetch: client count must be positive")
	case cfg.Batch < 0:
		return nil, errors.New("imap-fetch: batch must not be negative")
	}
	if cfg.Mailbox == "" {
		cfg.Mailbox = "INBOX"
	}
	if cfg.Sessions <= 0 && cfg.Duration <= 0 {
		cfg.Sessions = len(cfg.Accounts)
	}
	run := &imapFetchRun{cfg: &cfg}
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

	latencyOf := "UID FETCH 1:* of a whole mailbox: command to tagged OK"
	if cfg.Batch > 0 {
		latencyOf = "FETCH of " + strconv.Itoa(cfg.Batch) + " messages: command to tagged OK"
	}
	res := &Result{
		Scenario:  "imap-fetch",
		Target:    cfg.Target.describe(),
		Unit:      "message",
		Ops:       run.msgs.Load(),
		Bytes:     run.bytes.Load(),
		Sessions:  run.sessions.Load(),
		Latency:   run.lat.summary(),
		LatencyOf: latencyOf,
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
func (r *imapFetchRun) client(ctx context.Context, stopAt time.Time) {
	var lat []time.Duration
	defer func() { r.lat.merge(lat) }()
	for ctx.Err() == nil {
		if !stopAt.IsZero() && time.Now().After(stopAt) {
			return
		}
		i := r.started.Add(1) - 1
		if r.cfg.Sessions > 0 && i >= int64(r.cfg.Sessions) {
			return
		}
		a := r.cfg.Accounts[i%int64(len(r.cfg.Accounts))]
		if err := r.session(ctx, a, &lat); err != nil && ctx.Err() == nil {
			r.errs.add("%s: %v", a.User, err)
		}
	}
}

// session is one login: SELECT, FETCH every message (checked), LOGOUT. A
// message that fails a check is an error and does not count as fetched; the
// session goes on.
func (r *imapFetchRun) session(ctx context.Context, a Account, lat *[]time.Duration) error {
	t0 := time.Now()
	c, err := dialIMAP(ctx, r.cfg.Target)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.login(a, r.cfg.Auth); err != nil {
		return err
	}
	r.conn.merge([]time.Duration{time.Since(t0)})
	exists, err := c.selectMailbox(r.cfg.Mailbox)
	if err != nil {
		return err
	}
	if exists == 0 {
		return &verifyError{fmt.Sprintf("%s is empty: nothing to fetch", r.cfg.Mailbox)}
	}
	got := 0
	count := func(m fetched) {
		got++
		r.msgs.Add(1)
		r.bytes.Add(m.size)
	}
	bad := func(err error) { r.errs.add("%s: %v", a.User, err) }
	fetch := func(uid bool, set string) error {
		t1 := time.Now()
		if err := c.fetchBodies(uid, set, count, bad); err != nil {
			return err
		}
		*lat = append(*lat, time.Since(t1))
		return nil
	}
	if r.cfg.Batch == 0 {
		if err := fetch(true, "1:*"); err != nil {
			return err
		}
	} else {
		for lo := 1; lo <= exists; lo += r.cfg.Batch {
			hi := min(lo+r.cfg.Batch-1, exists)
			if err := fetch(false, strconv.Itoa(lo)+":"+strconv.Itoa(hi)); err != nil {
				return err
			}
		}
	}
	if got != exists {
		r.errs.add("%s: SELECT announced %d messages, FETCH returned %d good ones", a.User, exists, got)
	}
	if err := c.logout(); err != nil {
		return err
	}
	r.sessions.Add(1)
	return nil
}
