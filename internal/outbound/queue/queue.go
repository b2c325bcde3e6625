// Package queue delivers the outbound queue: it takes due recipients from the store, makes
// delivery attempts with smtpclient, records what happened, and sends delivery status
// notifications (package dsn).
//
// # Shape
//
// The queue is data (store.Queue); this package is one scheduler goroutine and a bounded
// number of workers. The scheduler asks the store which (entry, domain) groups are due and
// starts a worker per destination domain, within a global limit (Workers) and a
// per-domain one (PerDomain). A worker opens one connection to its domain (smtpclient Open)
// and sends its group, then asks the store for more due groups of the same domain and
// sends them over the same connection (up to MessagesPerConnection), so a burst to one
// domain costs one TLS handshake instead of one per message. All recipients of one entry
// at one domain go in one transaction.
//
// # One group, one attempt
//
//  1. Claim: the store leases the group's due recipients (until now + Lease). Nobody else
//     takes them until Record or until the lease runs out.
//  2. Send (smtpclient Session.Send); every recipient gets a reply. The attempt is bounded
//     by AttemptTimeout as a whole besides smtpclient's per-step deadlines, so a far side
//     that stalls or a resolver that hangs ends as a temporary failure, never a stuck
//     worker.
//  3. Decide per recipient: 2xx done (a "delivered"/"relayed" DSN if NOTIFY=SUCCESS); 5xx
//     done with a "failed" DSN; 4xx waits (Schedule.Next) or, past Expire, fails with a
//     DSN; a delay warning once per recipient if enabled.
//  4. DSNs are committed (into the sender's mailbox when the sender is local, else queued
//     for the sender's domain) before the outcome is recorded, and the outcome is recorded
//     in one store commit. A crash between the two sends the DSN twice at worst; a crash
//     before the record makes the recipients due again when the lease ends (a duplicate
//     message at worst, never a loss).
//
// # Loops
//
// A DSN goes out with the null reverse path, NOTIFY=NEVER, and is never answered by a DSN:
// dsn.Decide sends a failure about a bounce to the postmaster (a double bounce) and drops a
// failed double bounce.
package queue

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"petrel/internal/lib/address"
	"petrel/internal/mail/deliver"
	"petrel/internal/outbound/smtpclient"
	"petrel/internal/store"
)

// Store is what the queue needs of the store.
type Store interface {
	store.Queue
	OpenBlob(ctx context.Context, blobID int64) (io.ReadCloser, error)
}

// Local delivers DSNs to local senders; *deliver.Deliverer implements it. Route reverses
// the SRS address of a forwarded message to its original sender.
type Local interface {
	Route(ctx context.Context, rcpt address.Address) (deliver.Route, error)
	Deliver(ctx context.Context, env deliver.Envelope, body deliver.Body) (store.Delivered, error)
}

// Client makes delivery attempts; *smtpclient.Client implements it.
type Client interface {
	Open(ctx context.Context, domain string, plaintextFallback bool) (*smtpclient.Session, error)
}

// Metrics counts what the queue does (httpd.Metrics in the server); nil counts nothing.
type Metrics interface {
	// Attempt counts one recipient's attempt by its result: delivered, deferred, bounced
	// (refused for good) or expired (given up).
	Attempt(result string)
	// DSN counts one delivery status notification sent, by its action (RFC 3464).
	DSN(action string)
}

type noMetrics struct{}

func (noMetrics) Attempt(string) {}
func (noMetrics) DSN(string)     {}

// Config configures a Queue. Zero values take the defaults.
type Config struct {
	Metrics    Metrics
	Hostname   string // Reporting-MTA and the From of DSNs (MAILER-DAEMON@Hostname)
	Postmaster string // where double bounces go; default postmaster@Hostname
	Schedule   Schedule
	Workers    int // attempts at once, all domains; default 32
	PerDomain  int // connections at once to one domain; default 4
	// MessagesPerConnection bounds the messages one connection carries; default 50.
	MessagesPerConnection int
	// AttemptTimeout bounds one connection set-up and one message's transaction; default 15m.
	AttemptTimeout time.Duration
	// Poll is the longest the scheduler sleeps without looking at the store, so that a
	// change made by another process (petrel queue retry) is seen; default 5s.
	Poll time.Duration
	// IdleConnection is how long a connection whose worker found nothing more to send
	// stays open for the next message to its domain; default 2s (Postfix's
	// smtp_connection_cache_time_limit), negative: closed at once. See idle.go.
	IdleConnection time.Duration
	Now            func() time.Time
}

// Defaults of Config.
const (
	DefaultWorkers               = 32
	DefaultPerDomain             = 4
	DefaultMessagesPerConnection = 50
	DefaultAttemptTimeout        = 15 * time.Minute
	DefaultPoll                  = 5 * time.Second
	DefaultIdleConnection        = 2 * time.Second
)

func (c Config) withDefaults() Config {
	c.Schedule = c.Schedule.withDefaults()
	if c.Workers <= 0 {
		c.Workers = DefaultWorkers
	}
	if c.PerDomain <= 0 {
		c.PerDomain = DefaultPerDomain
	}
	if c.MessagesPerConnection <= 0 {
		c.MessagesPerConnection = DefaultMessagesPerConnection
	}
	if c.AttemptTimeout <= 0 {
		c.AttemptTimeout = DefaultAttemptTimeout
	}
	if c.Poll <= 0 {
		c.Poll = DefaultPoll
	}
	if c.IdleConnection == 0 {
		c.IdleConnection = DefaultIdleConnection
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Metrics == nil {
		c.Metrics = noMetrics{}
	}
	if c.Postmaster == "" {
		c.Postmaster = "postmaster@" + c.Hostname
	}
	return c
}

// lease is how long a claim holds: the connection set-up and the transaction, each
// bounded by AttemptTimeout, and a margin for recording the result.
func (c Config) lease() time.Duration { return 2*c.AttemptTimeout + time.Minute }

// Queue runs the outbound queue.
type Queue struct {
	cfg    Config
	st     Store
	client Client
	local  Local
	log    *slog.Logger
	kick   chan struct{} // buffered(1): something was queued

	mu       sync.Mutex
	running  int                       // workers
	domains  map[string]int            // workers per domain
	inflight map[store.QueueGroup]bool // groups a worker is taking (Due may list them until claimed)
	idle     map[string][]idleSession  // open connections waiting for a message, by domain (idle.go)
	done     chan struct{}             // a worker ended (buffered)
}

// New returns a queue; Run starts it.
func New(cfg Config, st Store, client Client, local Local, log *slog.Logger) *Queue {
	return &Queue{cfg: cfg.withDefaults(), st: st, client: client, local: local, log: log,
		kick: make(chan struct{}, 1), domains: map[string]int{}, inflight: map[store.QueueGroup]bool{},
		idle: map[string][]idleSession{}, done: make(chan struct{}, 1)}
}

// Kick tells the scheduler that something was queued, so it looks at once.
func (q *Queue) Kick() {
	select {
	case q.kick <- struct{}{}:
	default:
	}
}

// Run schedules attempts until ctx ends, then waits for the workers, whose attempts the end
// of ctx cancels (their recipients stay leased until the next start releases them).
func (q *Queue) Run(ctx context.Context) error {
	// This process is the only one running the queue on this store (the data directory
	// lock): whatever is leased was leased by a process that died.
	if err := q.st.ReleaseLeases(ctx); err != nil {
		return fmt.Errorf("queue: %w", err)
	}
	var wg sync.WaitGroup
	defer q.closeIdle(time.Time{}) // after the workers, which may park theirs
	defer wg.Wait()
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		last := time.Now()
		wait := q.schedule(ctx, &wg)
		if next := q.closeIdle(q.cfg.Now()); !next.IsZero() {
			wait = min(wait, max(next.Sub(q.cfg.Now()), time.Millisecond))
		}
		timer.Reset(wait)
		kicked := false
		select {
		case <-ctx.Done():
			return nil
		case <-q.kick:
			kicked = true
		case <-q.done:
		case <-timer.C:
		}
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
		if gap := kickGap - time.Since(last); kicked && gap > 0 {
			// Every submission kicks; under load one look at the store per kickGap takes
			// all that were queued meanwhile (a look is a query: 0.2 ms of CPU each, and
			// at hundreds of messages per second it was 8% of the relay's CPU).
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(gap):
			}
		}
	}
}

// kickGap is the shortest time between two looks at the store that a Kick causes.
const kickGap = 10 * time.Millisecond

// schedule starts workers for due groups and returns how long to sleep.
func (q *Queue) schedule(ctx context.Context, wg *sync.WaitGroup) time.Duration {
	now := q.cfg.Now()
	q.mu.Lock()
	free := q.cfg.Workers - q.running
	q.mu.Unlock()
	if free > 0 {
		// Groups held back by the per-domain limit come back on every look; ask for enough
		// that other domains are not starved behind them.
		groups, err := q.st.Due(ctx, now, "", 1000)
		if err != nil {
			if ctx.Err() == nil {
				q.log.Error("queue: listing due messages", "err", err)
			}
			return q.cfg.Poll
		}
		q.mu.Lock()
		for _, g := range groups {
			g.Due = time.Time{}
			if q.running >= q.cfg.Workers {
				break
			}
			if q.inflight[g] || q.domains[g.Domain] >= q.cfg.PerDomain {
				continue
			}
			q.inflight[g] = true
			q.running++
			q.domains[g.Domain]++
			wg.Add(1)
			go func() {
				defer wg.Done()
				q.work(ctx, g)
			}()
		}
		q.mu.Unlock()
	}
	if free <= 0 {
		return q.cfg.Poll // a worker's end wakes the scheduler
	}
	next, err := q.st.NextDue(ctx)
	if err != nil || next.IsZero() || !next.After(now) {
		// Nothing queued, or what is due waits for a busy domain's worker to end (which
		// wakes the scheduler): look again at the latest after Poll.
		return q.cfg.Poll
	}
	return min(next.Sub(now), q.cfg.Poll)
}

// work is one worker: one connection to g.Domain, g first, then more groups of that domain.
func (q *Queue) work(ctx context.Context, g store.QueueGroup) {
	defer func() {
		q.mu.Lock()
		q.running--
		if q.domains[g.Domain]--; q.domains[g.Domain] == 0 {
			delete(q.domains, g.Domain)
		}
		q.mu.Unlock()
		select {
		case q.done <- struct{}{}:
		default:
		}
	}()
	// A connection left open by an earlier worker for this domain, if any (idle.go); sent
	// counts the messages it carried, against MessagesPerConnection.
	sess, sent := q.takeIdle(g.Domain)
	defer func() { q.park(ctx, g.Domain, sess, sent) }()
	var ahead []store.QueueGroup // groups of the domain this worker reserved, next first
	defer func() { q.release(ahead) }()
	for {
		e, err := q.claim(ctx, g)
		if err == nil {
			sess = q.attempt(ctx, g.Domain, e, sess)
			sent++
		} else if !errors.Is(err, store.ErrNotFound) && ctx.Err() == nil {
			q.log.Error("queue: claiming", "entry", g.EntryID, "domain", g.Domain, "err", err)
		}
		if ctx.Err() != nil || sess == nil || !sess.Usable() || sent >= q.cfg.MessagesPerConnection {
			return
		}
		more, err := q.nextGroup(ctx, g.Domain, &ahead)
		if err != nil || more == nil {
			return
		}
		g = *more
	}
}

// claim leases g's recipients; the group stops being in flight once claimed (or gone).
func (q *Queue) claim(ctx context.Context, g store.QueueGroup) (store.QueueEntry, error) {
	defer func() {
		q.mu.Lock()
		delete(q.inflight, g)
		q.mu.Unlock()
	}()
	now := q.cfg.Now()
	return q.st.Claim(ctx, g, now, now.Add(q.cfg.lease()))
}

// nextGroup returns the next group of domain for a worker: the first of those it reserved
// in ahead, or, when none is left, the first of up to reserveAhead due groups that no worker
// is taking, which it reserves (marks in flight) so that no other worker claims them.
// Reserving a few per look saves a query per message (Due was 4% of the relay's CPU when
// every message had its own) and leaves the rest of the domain's backlog to the other
// connections to it.
func (q *Queue) nextGroup(ctx context.Context, domain string, ahead *[]store.QueueGroup) (*store.QueueGroup, error) {
	if len(*ahead) == 0 {
		groups, err := q.st.Due(ctx, q.cfg.Now(), domain, 16)
		if err != nil {
			return nil, err
		}
		q.mu.Lock()
		for _, g := range groups {
			g.Due = time.Time{}
			if !q.inflight[g] && len(*ahead) < reserveAhead {
				q.inflight[g] = true
				*ahead = append(*ahead, g)
			}
		}
		q.mu.Unlock()
	}
	if len(*ahead) == 0 {
		return nil, nil
	}
	g := (*ahead)[0]
	*ahead = (*ahead)[1:]
	return &g, nil
}

// reserveAhead is how many groups of its domain a worker reserves per look at the store.
const reserveAhead = 4

// release gives back the groups a worker reserved and did not take, and wakes the
// scheduler to hand them to another.
func (q *Queue) release(groups []store.QueueGroup) {
	if len(groups) == 0 {
		return
	}
	q.mu.Lock()
	for _, g := range groups {
		delete(q.inflight, g)
	}
	q.mu.Unlock()
	select {
	case q.done <- struct{}{}:
	default:
	}
}

// attempt sends e to its recipients (all at domain) over sess, opening one if needed, and
// records the outcome. It returns the session to reuse (nil if none is open).
func (q *Queue) attempt(ctx context.Context, domain string, e store.QueueEntry, sess *smtpclient.Session) *smtpclient.Session {
	body, err := q.body(ctx, e)
	if err != nil {
		q.log.Error("queue: reading queued message", "entry", e.ID, "err", err)
		q.record(ctx, e, body, nil, smtpclient.Result{}, fmt.Errorf("reading the queued message: %w", err))
		return sess
	}
	msg := &smtpclient.Message{From: e.MailFrom, Body: bytes.NewReader(body), Size: int64(len(body)),
		EightBit: e.EightBit, UTF8Headers: e.UTF8Headers, Ret: e.Ret, EnvID: e.EnvID}
	var send []store.QueueRecipient // recipients to try; those marked for bouncing are not
	for _, r := range e.Recipients {
		if !r.Bounce {
			send = append(send, r)
			msg.Recipients = append(msg.Recipients, smtpclient.Recipient{Addr: r.Address, Notify: r.Notify, ORcpt: r.ORcpt, ORcptType: r.ORcptType})
		}
	}
	var res smtpclient.Result
	if len(send) > 0 {
		actx, cancel := context.WithTimeout(ctx, q.cfg.AttemptTimeout)
		if sess == nil || !sess.Usable() {
			if sess != nil {
				sess.Close()
			}
			sess = nil
			s, err := q.client.Open(actx, domain, false)
			if err != nil {
				var se *smtpclient.Error
				if !errors.As(err, &se) {
					se = &smtpclient.Error{Reply: smtpclient.Reply{Code: 451, Enhanced: "4.4.0", Text: err.Error(), Local: true}}
				}
				res = smtpclient.Result{Trace: se.Trace, TLSFailed: se.TLSFailed}
				for range send {
					res.Recipients = append(res.Recipients, se.Reply)
				}
			} else {
				sess = s
			}
		}
		if sess != nil {
			res = sess.Send(actx, msg)
		}
		cancel()
	}
	if ctx.Err() != nil {
		// Shutting down: the attempt was cut short, not failed. The recipients stay leased
		// and are released at the next start.
		return sess
	}
	q.record(ctx, e, body, send, res, nil)
	return sess
}

// body reads the queued message. Bodies are held in memory during an attempt
// (smtpclient reads an io.ReaderAt); messages are bounded by the submission size limit.
func (q *Queue) body(ctx context.Context, e store.QueueEntry) ([]byte, error) {
	rc, err := q.st.OpenBlob(ctx, e.BlobID)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return io.ReadAll(rc)
}
