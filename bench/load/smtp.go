package load

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// SMTPConfig is the smtp scenario: Messages messages of Size bytes over
// Conns connections, PerConn per connection.
type SMTPConfig struct {
	Target
	Messages int // N, total messages to send; with Duration, 0 means no limit
	// Duration, if set, stops starting messages after this long, so that a
	// fast and a slow server are measured over the same time rather than the
	// same count.
	Duration time.Duration
	Size     int      // S, bytes per message
	Conns    int      // C, concurrent connections
	PerConn  int      // K, messages per connection before reconnecting; 0: never
	Auth     *Account // AUTH PLAIN (RFC 4616) after EHLO/STARTTLS; nil: none
	HelloAs  string   // EHLO name; default "localhost"
	From     string   // envelope and header sender
	// To lists the recipients of every message. An entry containing
	// Placeholder is a pattern: message i goes to mailbox (i mod Mailboxes)+1
	// of it, which spreads the messages over Mailboxes mailboxes.
	To        []string
	Mailboxes int
	// Sign, if set, DKIM-signs every message (the signed-mail mode).
	Sign *DKIMSigner
	// Pipelining sends MAIL, RCPT and DATA in one write (RFC 2920; smtppipe.go); the
	// server must offer PIPELINING.
	Pipelining bool

	// Wait, if set, polls the recipients' mailboxes over POP3 after sending
	// and reports end-to-end delivery in Result.Delivery. Its Accounts may
	// be nil: the recipient addresses are then the POP3 user names, with
	// Wait.Pass as password.
	Wait *WaitConfig
}

func (c *SMTPConfig) check() error {
	switch {
	case c.Addr == "":
		return errors.New("smtp: no server address")
	case c.Messages < 0 || (c.Messages == 0 && c.Duration <= 0):
		return errors.New("smtp: message count must be positive (or 0 with a duration)")
	case c.Duration < 0:
		return errors.New("smtp: duration must not be negative")
	case c.Conns <= 0:
		return errors.New("smtp: connection count must be positive")
	case c.PerConn < 0:
		return errors.New("smtp: messages per connection must be 0 or more")
	case len(c.To) == 0:
		return errors.New("smtp: no recipients")
	case c.From == "":
		return errors.New("smtp: no sender")
	}
	return nil
}

// recipients returns the envelope recipients of message i.
func (c *SMTPConfig) recipients(i int) []string {
	out := make([]string, len(c.To))
	for j, to := range c.To {
		out[j] = fillPattern(to, i%max(c.Mailboxes, 1))
	}
	return out
}

// mailboxes returns every address the run sends to, in a stable order.
func (c *SMTPConfig) mailboxes() []string {
	var out []string
	seen := map[string]bool{}
	n := max(c.Mailboxes, 1)
	if c.Messages > 0 {
		n = min(n, c.Messages)
	}
	for i := range n {
		for _, r := range c.recipients(i) {
			if !seen[r] {
				seen[r] = true
				out = append(out, r)
			}
		}
	}
	return out
}

// smtpRun is the state shared by the workers of one RunSMTP.
type smtpRun struct {
	cfg      *SMTPConfig
	msg      messageMaker
	next     atomic.Int64 // index of the next message to send
	accepted atomic.Int64
	bytes    atomic.Int64
	sessions atomic.Int64
	errs     errorLog
	lat      samples   // MAIL FROM .. 250 after the final dot
	conn     samples   // dial .. ready to send
	stopAt   time.Time // no message is started after it; zero: no time limit

	mu        sync.Mutex
	delivered map[string]int64 // recipient -> messages accepted for it
}

// RunSMTP runs the smtp scenario. It returns an error only for a bad config;
// failures while sending are counted in the Result.
func RunSMTP(ctx context.Context, cfg SMTPConfig) (*Result, error) {
	if err := cfg.check(); err != nil {
		return nil, err
	}
	run := &smtpRun{cfg: &cfg, msg: newMessageMaker(cfg.From, cfg.Size, cfg.Sign), delivered: map[string]int64{}}

	// Messages already in the mailboxes do not count as delivered.
	var w *waiter
	if cfg.Wait != nil {
		accounts := cfg.Wait.Accounts
		if accounts == nil {
			for _, to := range cfg.mailboxes() {
				accounts = append(accounts, Account{User: to, Pass: cfg.Wait.Pass})
			}
		}
		w = newWaiter(cfg.Wait, accounts, &run.errs)
		if err := w.baseline(ctx); err != nil {
			run.errs.add("pop3 baseline: %v", err)
			w = nil
		}
	}

	start := time.Now()
	if cfg.Duration > 0 {
		run.stopAt = start.Add(cfg.Duration)
	}
	var wg sync.WaitGroup
	for range cfg.Conns {
		wg.Go(func() { run.worker(ctx) })
	}
	wg.Wait()
	elapsed := time.Since(start)

	res := &Result{
		Scenario:  "smtp",
		Target:    cfg.Target.describe(),
		Unit:      "message",
		Ops:       run.accepted.Load(),
		Bytes:     run.bytes.Load(),
		Sessions:  run.sessions.Load(),
		Latency:   run.lat.summary(),
		LatencyOf: "transaction: MAIL FROM to 250 after DATA",
		Connect:   run.conn.summary(),
	}
	if ctx.Err() != nil {
		res.Stopped = stoppedText(ctx, fmt.Sprintf("%d messages attempted", run.attempted()))
		run.errs.add("%s", res.Stopped)
	} else if w != nil {
		want := make([]int64, len(w.accounts))
		for i, a := range w.accounts {
			want[i] = run.delivered[a.User]
		}
		res.Delivery = w.wait(ctx, start, want)
		if res.Delivery.TimedOut {
			run.errs.add("pop3 wait timed out: %d of %d messages visible", res.Delivery.Seen, res.Delivery.Expected)
		}
	}
	run.errs.fill(res)
	res.finish(elapsed)
	return res, nil
}

// attempted is the number of messages workers took up.
func (r *smtpRun) attempted() int64 {
	n := r.next.Load()
	if r.cfg.Messages > 0 {
		n = min(n, int64(r.cfg.Messages))
	}
	return n
}

// stoppedText explains why ctx ended a run early.
func stoppedText(ctx context.Context, progress string) string {
	why := "interrupted"
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		why = "overall timeout"
	}
	return why + ": " + progress
}

// worker sends messages until none are left, reconnecting after PerConn
// messages or after a connection-level error.
func (r *smtpRun) worker(ctx context.Context) {
	var (
		c      smtpSession
		onConn int // messages tried on c
		lat    []time.Duration
	)
	defer func() {
		if c != nil {
			r.quit(ctx, c)
		}
		r.lat.merge(lat)
	}()
	for ctx.Err() == nil {
		if !r.stopAt.IsZero() && time.Now().After(r.stopAt) {
			return
		}
		i := int(r.next.Add(1) - 1)
		if r.cfg.Messages > 0 && i >= r.cfg.Messages {
			return
		}
		if c == nil {
			var err error
			if c, err = r.open(ctx); err != nil {
				r.fail(ctx, "message %d: connect: %v", i, err)
				continue
			}
			onConn = 0
		}
		var d time.Duration
		var err error
		if pc, ok := c.(*pipeClient); ok {
			d, err = r.pipelinedTransaction(pc, i)
		} else {
			d, err = r.transaction(c.(*smtp.Client), i)
		}
		onConn++
		switch {
		case err == nil:
			lat = append(lat, d)
		case refused(err):
			// A refusal leaves the session usable once the transaction is
			// reset (RFC 5321 §4.1.1.5).
			r.fail(ctx, "message %d: %v", i, err)
			if c.Reset() != nil {
				c.Close()
				c = nil
			}
		default:
			r.fail(ctx, "message %d: %v", i, err)
			c.Close()
			c = nil
		}
		if c != nil && r.cfg.PerConn > 0 && onConn >= r.cfg.PerConn {
			r.quit(ctx, c)
			c = nil
		}
	}
}

// fail counts an error unless the run is being stopped, when errors are the
// expected result of closing connections under the workers.
func (r *smtpRun) fail(ctx context.Context, format string, args ...any) {
	if ctx.Err() == nil {
		r.errs.add(format, args...)
	}
}

// smtpSession is a session of either client: go-smtp's, or pipeClient with -pipelining.
type smtpSession interface {
	Reset() error
	Close() error
	Quit() error
}

// open connects with the client the run uses.
func (r *smtpRun) open(ctx context.Context) (smtpSession, error) {
	if r.cfg.Pipelining {
		pc, err := r.connectPipelined(ctx)
		if err != nil {
			return nil, err // not a typed nil in the interface
		}
		return pc, nil
	}
	c, err := r.connect(ctx)
	if err != nil {
		return nil, err
	}
	return c, nil
}

func (r *smtpRun) quit(ctx context.Context, c smtpSession) {
	if err := c.Quit(); err != nil {
		r.fail(ctx, "QUIT: %v", err)
	} else {
		r.sessions.Add(1)
	}
	c.Close()
}

// connect opens a session ready for MAIL FROM: greeting, EHLO, STARTTLS and
// AUTH as configured.
func (r *smtpRun) connect(ctx context.Context) (*smtp.Client, error) {
	t0 := time.Now()
	t := r.cfg.Target
	conn, err := t.dial(ctx)
	if err != nil {
		return nil, err
	}
	var c *smtp.Client
	if t.TLS == StartTLS {
		// NewClientStartTLS sends EHLO as "localhost" before STARTTLS.
		if c, err = smtp.NewClientStartTLS(conn, t.tlsConfig()); err != nil {
			return nil, fmt.Errorf("starttls: %w", err)
		}
	} else {
		c = smtp.NewClient(conn)
	}
	c.CommandTimeout = t.timeout()
	c.SubmissionTimeout = t.timeout()
	helo := r.cfg.HelloAs
	if helo == "" {
		helo = "localhost"
	}
	if err := c.Hello(helo); err != nil {
		c.Close()
		return nil, fmt.Errorf("EHLO: %w", err)
	}
	if a := r.cfg.Auth; a != nil {
		if err := c.Auth(sasl.NewPlainClient("", a.User, a.Pass)); err != nil {
			c.Close()
			return nil, fmt.Errorf("AUTH PLAIN: %w", err)
		}
	}
	r.conn.merge([]time.Duration{time.Since(t0)})
	return c, nil
}

// transaction sends message i and returns the time from MAIL FROM to the
// 250 after the final dot. Recipients refused with the others accepted are
// counted as errors and the message goes to the rest; an error is returned
// when the message was not accepted at all.
func (r *smtpRun) transaction(c *smtp.Client, i int) (time.Duration, error) {
	rcpts := r.cfg.recipients(i)
	t0 := time.Now()
	if err := c.Mail(r.cfg.From, &smtp.MailOptions{Size: int64(r.cfg.Size)}); err != nil {
		return 0, fmt.Errorf("MAIL FROM: %w", err)
	}
	var ok, refused []string
	for _, to := range rcpts {
		if err := c.Rcpt(to, nil); err != nil {
			var smtpErr *smtp.SMTPError
			if !errors.As(err, &smtpErr) {
				return 0, fmt.Errorf("RCPT TO <%s>: %w", to, err)
			}
			refused = append(refused, fmt.Sprintf("<%s>: %v", to, err))
			continue
		}
		ok = append(ok, to)
	}
	if len(ok) == 0 {
		return 0, allRefusedError(refused)
	}
	for _, e := range refused {
		r.errs.add("message %d: RCPT TO %s", i, e)
	}
	wc, err := c.Data()
	if err != nil {
		return 0, fmt.Errorf("DATA: %w", err)
	}
	n, err := r.msg.write(wc, i, rcpts)
	if err != nil {
		return 0, fmt.Errorf("DATA: writing: %w", err)
	}
	if err := wc.Close(); err != nil {
		return 0, fmt.Errorf("DATA: %w", err)
	}
	d := time.Since(t0)
	r.accepted1(n, ok)
	return d, nil
}

// accepted1 counts one message of n bytes accepted for the recipients ok.
func (r *smtpRun) accepted1(n int64, ok []string) {
	r.accepted.Add(1)
	r.bytes.Add(n)
	r.mu.Lock()
	for _, to := range ok {
		r.delivered[to]++
	}
	r.mu.Unlock()
}

// allRefusedError ends a transaction in which every RCPT was refused.
type allRefusedError []string

func (e allRefusedError) Error() string { return "every recipient refused: " + strings.Join(e, "; ") }

// refused reports whether err is the server saying no, which leaves the
// session usable, rather than a broken connection.
func refused(err error) bool {
	var smtpErr *smtp.SMTPError
	var all allRefusedError
	return errors.As(err, &smtpErr) || errors.As(err, &all)
}
