package load

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"
)

// IMAPMixedConfig is the imap-mixed scenario: Clients sessions at once, each
// logged in to one account with INBOX selected, running the commands of a
// mail client that is being used: re-SELECT, header listings, flag changes,
// searches, APPEND and EXPUNGE.
type IMAPMixedConfig struct {
	Target
	Accounts []Account // client k uses account k mod len(Accounts)
	Auth     IMAPAuth
	Mailbox  string        // default INBOX
	Clients  int           // C, concurrent sessions
	Commands int           // stop after this many commands in total; 0: see Duration
	Duration time.Duration // stop starting commands after this long; 0: see Commands
	Size     int           // size of APPENDed messages; default 4096
	// Window is how many of the newest messages a header listing fetches
	// (a client showing a screenful); default 50.
	Window int
}

// mixedStep is one kind of step of the mixed load.
type mixedStep int

const (
	stepSelect  mixedStep = iota // SELECT the mailbox again (a client switching back)
	stepHeaders                  // FETCH (UID FLAGS RFC822.SIZE headers) of the newest Window messages
	stepFlag                     // STORE +FLAGS or -FLAGS (\Flagged) on one message
	stepSeen                     // STORE +FLAGS (\Seen) on one message
	stepSearch                   // UID SEARCH UNSEEN or FLAGGED
	stepAppend                   // APPEND a new message
	stepExpunge                  // STORE +FLAGS.SILENT (\Deleted) on an old message, then EXPUNGE
	numSteps
)

var stepNames = [numSteps]string{"select", "fetch-headers", "store-flagged", "store-seen", "search", "append", "expunge"}

// mixedCycle is the order a client runs its steps in, starting at a random
// place: ten commands a cycle (EXPUNGE is two), each of the kinds
// present, header listings most common. APPEND and EXPUNGE balance, so the
// mailbox keeps its size.
var mixedCycle = []mixedStep{stepSelect, stepHeaders, stepFlag, stepSearch, stepHeaders, stepAppend, stepSeen, stepSearch, stepExpunge}

// MixedReport is the imap-mixed scenario's own part of a Result: latency per
// kind of command.
type MixedReport map[string]Summary

// imapMixedRun is the state shared by the clients of one RunIMAPMixed.
type imapMixedRun struct {
	cfg   *IMAPMixedConfig
	msgs  messageMaker
	seq   atomic.Int64 // APPENDed messages, for their unique token
	ops   atomic.Int64 // commands completed
	begun atomic.Int64 // commands started, against cfg.Commands
	imapClients
	mu    sync.Mutex
	kinds [numSteps][]time.Duration
}

// RunIMAPMixed runs the imap-mixed scenario. One op is one IMAP command
// completed with OK; failed commands are errors and the session goes on,
// unless the connection broke (then it logs in again).
func RunIMAPMixed(ctx context.Context, cfg IMAPMixedConfig) (*Result, error) {
	switch {
	case cfg.Addr == "":
		return nil, errors.New("imap-mixed: no server address")
	case len(cfg.Accounts) == 0:
		return nil, errors.New("imap-mixed: no accounts")
	case cfg.Clients <= 0:
		return nil, errors.New("imap-mixed: client count must be positive")
	case cfg.Commands <= 0 && cfg.Duration <= 0:
		return nil, errors.New("imap-mixed: give a command count or a duration")
	}
	if cfg.Mailbox == "" {
		cfg.Mailbox = "INBOX"
	}
	if cfg.Size <= 0 {
		cfg.Size = 4096
	}
	if cfg.Window <= 0 {
		cfg.Window = 50
	}
	run := &imapMixedRun{cfg: &cfg, msgs: newMessageMaker("load@example.test", cfg.Size, nil)}
	start := time.Now()
	var stopAt time.Time
	if cfg.Duration > 0 {
		stopAt = start.Add(cfg.Duration)
	}
	run.clients(ctx, stopAt)
	elapsed := time.Since(start)

	rep := MixedReport{}
	for k, d := range run.kinds {
		if len(d) > 0 {
			rep[stepNames[k]] = Summarize(d)
		}
	}
	res := &Result{
		Scenario:  "imap-mixed",
		Target:    cfg.Target.describe(),
		Unit:      "command",
		Ops:       run.ops.Load(),
		Sessions:  run.clean.Load(),
		Latency:   run.lat.summary(),
		LatencyOf: "one command: sent to tagged OK",
		Connect:   run.conn.summary(),
		Mixed:     rep,
	}
	if ctx.Err() != nil {
		res.Stopped = stoppedText(ctx, fmt.Sprintf("%d commands started", run.begun.Load()))
		run.errs.add("%s", res.Stopped)
	}
	run.errs.fill(res)
	res.finish(elapsed)
	return res, nil
}

// mixedClient is one session's view of its mailbox.
type mixedClient struct {
	*imapClient
	k      int // the client's number
	exists int // messages in the selected mailbox, kept up to date from EXISTS and EXPUNGE
}

// track follows the untagged responses that change the message count.
func (c *mixedClient) track(r *imapResponse) error {
	if n, ok := untaggedNumber(r.text, "EXISTS"); ok {
		c.exists = n
	} else if _, ok := untaggedNumber(r.text, "EXPUNGE"); ok {
		c.exists--
	}
	return nil
}

// clients runs the sessions: each logs in, selects the mailbox and runs steps until the
// budget is spent, logging in again after a broken connection.
func (r *imapMixedRun) clients(ctx context.Context, stopAt time.Time) {
	more := func() bool {
		if ctx.Err() != nil || (!stopAt.IsZero() && time.Now().After(stopAt)) {
			return false
		}
		return r.cfg.Commands <= 0 || r.begun.Add(1) <= int64(r.cfg.Commands)
	}
	// Each client's random numbers and place in the cycle outlive its sessions.
	rngs := make([]*rand.Rand, r.cfg.Clients)
	next := make([]int, r.cfg.Clients)
	for k := range rngs {
		rngs[k] = rand.New(rand.NewPCG(uint64(k), uint64(time.Now().UnixNano())))
		next[k] = rngs[k].IntN(len(mixedCycle))
	}
	open := func(k int) (*mixedClient, error) {
		a := r.cfg.Accounts[k%len(r.cfg.Accounts)]
		c, err := r.open(ctx, a, k)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", a.User, err)
		}
		return c, nil
	}
	eachClient(ctx, &r.imapClients, r.cfg.Clients, open, more, func(k int, c *mixedClient, lat *[]time.Duration) sessionEnd {
		a := r.cfg.Accounts[k%len(r.cfg.Accounts)]
		kinds := [numSteps][]time.Duration{}
		defer func() {
			r.mu.Lock()
			for i := range kinds {
				r.kinds[i] = append(r.kinds[i], kinds[i]...)
			}
			r.mu.Unlock()
		}()
		for {
			step := mixedCycle[next[k]%len(mixedCycle)]
			next[k]++
			t1 := time.Now()
			err := r.step(c, step, rngs[k])
			var refused *imapStatusError
			var bad *verifyError
			switch {
			case err == nil:
				d := time.Since(t1)
				*lat = append(*lat, d)
				kinds[step] = append(kinds[step], d)
			case errors.As(err, &refused) || errors.As(err, &bad):
				r.errs.add("%s: %v", a.User, err) // answered: the session goes on
			default:
				if ctx.Err() == nil {
					r.errs.add("%s: %v", a.User, err)
				}
				return sessionAgain
			}
			if !more() {
				return sessionDone
			}
		}
	})
}

// open logs in and selects the mailbox.
func (r *imapMixedRun) open(ctx context.Context, a Account, k int) (*mixedClient, error) {
	ic, err := dialIMAP(ctx, r.cfg.Target)
	if err != nil {
		return nil, err
	}
	c := &mixedClient{imapClient: ic, k: k}
	if err := c.login(a, r.cfg.Auth); err != nil {
		c.Close()
		return nil, err
	}
	if c.exists, err = c.selectMailbox(r.cfg.Mailbox); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// step runs one step. Each command that completes with OK counts as an op;
// the expunge step is two commands.
func (r *imapMixedRun) step(c *mixedClient, step mixedStep, rng *rand.Rand) error {
	ok := func(err error) error {
		if err == nil {
			r.ops.Add(1)
		}
		return err
	}
	switch step {
	case stepSelect:
		n, err := c.selectMailbox(r.cfg.Mailbox)
		if err == nil {
			c.exists = n
		}
		return ok(err)
	case stepHeaders:
		if c.exists == 0 {
			return ok(c.command(c.track, "NOOP"))
		}
		lo := max(1, c.exists-r.cfg.Window+1)
		want := c.exists - lo + 1
		got := 0
		var bad error
		err := c.command(func(resp *imapResponse) error {
			if _, isFetch := untaggedNumber(resp.text, "FETCH"); isFetch {
				// Flag changes made by other sessions come as FETCH
				// responses without a literal (RFC 3501 §7.4.2): not ours.
				if len(resp.lits) == 0 {
					return nil
				}
				if len(resp.lits) != 1 || !bytes.Contains(resp.text, []byte("FLAGS (")) {
					bad = &verifyError{fmt.Sprintf("header FETCH response %q", truncate(string(resp.text), 120))}
				}
				got++
				return nil
			}
			return c.track(resp)
		}, "FETCH %d:%d (UID FLAGS RFC822.SIZE BODY.PEEK[HEADER.FIELDS (FROM TO SUBJECT DATE MESSAGE-ID)])", lo, c.exists)
		if err == nil && bad == nil && got < want {
			bad = &verifyError{fmt.Sprintf("header FETCH of %d messages returned %d", want, got)}
		}
		if err == nil && bad != nil {
			r.ops.Add(1) // the command itself completed
			return bad
		}
		return ok(err)
	case stepFlag, stepSeen:
		if c.exists == 0 {
			return ok(c.command(c.track, "NOOP"))
		}
		n := 1 + rng.IntN(c.exists)
		op, flag := "+FLAGS", `\Seen`
		if step == stepFlag {
			flag = `\Flagged`
			if rng.IntN(2) == 0 {
				op = "-FLAGS"
			}
		}
		return ok(c.command(c.track, "STORE %d %s (%s)", n, op, flag))
	case stepSearch:
		key := "UNSEEN"
		if rng.IntN(2) == 0 {
			key = "FLAGGED"
		}
		return ok(c.command(c.track, "UID SEARCH %s", key))
	case stepAppend:
		var b bytes.Buffer
		b.Grow(r.cfg.Size)
		if _, err := r.msgs.write(&b, int(r.seq.Add(1)), []string{"mixed@example.test"}); err != nil {
			return err
		}
		// The new message shows up as an EXISTS response, with the APPEND's
		// completion or at the next command (RFC 3501 §6.3.11).
		return ok(c.appendMessage(r.cfg.Mailbox, b.Bytes(), c.track))
	case stepExpunge:
		if c.exists == 0 {
			return ok(c.command(c.track, "NOOP"))
		}
		// Clients sharing an account mark different old messages, so
		// that each EXPUNGE removes one and the mailbox keeps its size.
		n := 1 + c.k%c.exists
		if err := ok(c.command(c.track, `STORE %d +FLAGS.SILENT (\Deleted)`, n)); err != nil {
			return err
		}
		return ok(c.command(c.track, "EXPUNGE"))
	}
	return fmt.Errorf("unknown step %d", step)
}
