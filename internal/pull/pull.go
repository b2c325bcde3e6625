// Package pull polls outside POP3 and IMAP mailboxes on a schedule and delivers their mail
// into accounts (issue 16, `petrel account pull`): the server-side twin of `petrel fetch`.
//
// Invariants (what a contributor must not break):
//   - A message comes in through the normal delivery path (deliver.Deliverer: the junk
//     classifier and the account's Sieve script run) with Envelope.Pulled set, so the store
//     records its unique-id (POP3 UIDL, IMAP "UIDVALIDITY/UID") in the same commit as the
//     message, and refuses a unique-id recorded before (store.ErrExists). A crash at any point
//     therefore loses nothing (an unrecorded message is still on the server and is pulled
//     again) and duplicates nothing (a recorded one is skipped, and recorded means delivered).
//   - Where the server's names fail (POP3 without UIDL, POP3 UIDLs that changed, an IMAP
//     UIDVALIDITY change, a changed folder), a message is known by its fingerprint, the
//     digest of its header block (identity.go), recorded with its unique-id (resync.go; a
//     record from before fingerprints were kept gets one from the server or from the
//     account's copy); an error errs toward a duplicate, never a loss.
//   - A message is deleted on the outside server (POP3 DELE then QUIT; IMAP \Deleted then
//     EXPUNGE) only after its delivery committed, and only when the source does not keep mail.
//     A POP3 session that fails before QUIT deletes nothing (RFC 1939 §6).
//   - One source is polled by one poller at a time, across processes and PostgreSQL nodes:
//     the store leases it (store.Pulls.ClaimPull) for longer than a poll may last (Timeout),
//     and the outcome is recorded only under that lease.
//   - A failed poll is retried with exponential backoff (from a minute up to the source's
//     interval times 16, at most a day); its error and the count of failures in a row are
//     what `petrel account pull list` shows.
//   - TLS is verified against the system roots or the source's CA file; "plain" is an
//     explicit choice of the operator, never a fallback.
package pull

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"petrel/internal/mail/deliver"
	"petrel/internal/store"
)

// Deliverer is the delivery path (deliver.Deliverer).
type Deliverer interface {
	Deliver(ctx context.Context, env deliver.Envelope, body deliver.Body) (store.Delivered, error)
}

// Store is what the poller needs of the store: the sources and their state.
type Store interface {
	store.Pulls
	store.PullState
	store.PulledCopies
	// OpenBlob reads a stored message (store.Store's), for the fingerprints of old records.
	OpenBlob(ctx context.Context, blobID int64) (io.ReadCloser, error)
}

// Options configures a Poller.
type Options struct {
	// KeyFile is the key that opens the stored passwords (LoadKey); read at each poll, so a
	// key created by `petrel account pull add` after the start is found.
	KeyFile string
	// Check is how often the poller looks for due sources (default 15s); Workers how many
	// sources it polls at once (default 2); Timeout bounds one poll (default 10m).
	Check   time.Duration
	Workers int
	Timeout time.Duration
	// SpoolDir holds message bodies larger than SpoolMemory while they are delivered.
	SpoolDir    string
	SpoolMemory int64
	// DialTimeout bounds each network read and write of a poll (default 60s).
	DialTimeout time.Duration
	Log         *slog.Logger
	Now         func() time.Time // default time.Now
	// ReleaseLeases: Run first ends every lease, because this process is the only poller of
	// the store (the embedded store) and a lease can only be a crashed run's.
	ReleaseLeases bool
}

// Poller polls the due pull sources of a store.
type Poller struct {
	st   Store
	dl   Deliverer
	o    Options
	wake chan struct{}
}

// New returns a Poller over st delivering through dl.
func New(st Store, dl Deliverer, o Options) *Poller {
	if o.Check <= 0 {
		o.Check = 15 * time.Second
	}
	if o.Workers <= 0 {
		o.Workers = 2
	}
	if o.Timeout <= 0 {
		o.Timeout = 10 * time.Minute
	}
	if o.DialTimeout <= 0 {
		o.DialTimeout = time.Minute
	}
	if o.SpoolMemory <= 0 {
		o.SpoolMemory = 1 << 20
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return &Poller{st: st, dl: dl, o: o, wake: make(chan struct{}, 1)}
}

// lease is how long a claim keeps a source: longer than a poll may last.
func (p *Poller) lease() time.Duration { return p.o.Timeout + time.Minute }

// Run polls due sources until ctx is cancelled, then waits for the polls in flight, which
// the cancellation cuts short (a POP3 session without QUIT deletes nothing; what was
// delivered is recorded).
func (p *Poller) Run(ctx context.Context) {
	if p.o.ReleaseLeases {
		if err := p.st.ReleasePullLeases(ctx); err != nil {
			p.o.Log.Error("pull: release the leases of a previous run", "err", err)
		}
	}
	t := time.NewTicker(p.o.Check)
	defer t.Stop()
	for {
		p.PollDue(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-p.wake:
		}
	}
}

// Wake makes Run look for due sources now.
func (p *Poller) Wake() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// PollDue polls every source due now, Workers at a time, and returns how many it polled.
func (p *Poller) PollDue(ctx context.Context) int {
	var wg sync.WaitGroup
	var mu sync.Mutex
	n := 0
	for range p.o.Workers {
		wg.Go(func() {
			for ctx.Err() == nil {
				src, err := p.st.ClaimPull(ctx, p.o.Now(), p.lease())
				if errors.Is(err, store.ErrNotFound) {
					return
				}
				if err != nil {
					if ctx.Err() == nil {
						p.o.Log.Error("pull: claim a due source", "err", err)
					}
					return
				}
				p.poll(ctx, src)
				mu.Lock()
				n++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return n
}

// Result is what one poll did.
type Result struct {
	OnServer  int // messages in the outside mailbox
	Delivered int // delivered into the account by this poll
	Deleted   int // removed from the outside mailbox
	// Matched counts messages under new unique-ids (an IMAP UIDVALIDITY change, new POP3
	// UIDLs) recognized as pulled before.
	Matched int
	// Notice is an event for `pull list` (a UIDVALIDITY change, UIDLs that changed), "" for
	// none.
	Notice string
}

// poll polls src under its lease and records the outcome.
func (p *Poller) poll(ctx context.Context, src store.PullSource) {
	log := p.o.Log.With("source", src.ID, "account", src.AccountID, "server", src.Protocol+"://"+src.User+"@"+src.Addr)
	log.Debug("pull: polling")
	pctx, cancel := context.WithTimeout(ctx, p.o.Timeout)
	res, err := p.Poll(pctx, src)
	cancel()
	now := p.o.Now()
	o := store.PullOutcome{Polled: now, NextPoll: now.Add(src.Every), Notice: res.Notice}
	if err != nil {
		o.Failures = src.Failures + 1
		o.LastError = err.Error()
		o.NextPoll = now.Add(backoff(src.Every, o.Failures))
		log.Warn("pull failed", "err", err, "failures", o.Failures, "next", o.NextPoll.Format(time.RFC3339))
	} else if res.Delivered > 0 || res.Deleted > 0 || res.Matched > 0 {
		log.Info("pulled", "delivered", res.Delivered, "deleted", res.Deleted, "on_server", res.OnServer, "matched", res.Matched)
	}
	// Recorded even when ctx was cancelled (a stop): the lease ends now, not in an hour.
	if err := p.st.FinishPull(context.WithoutCancel(ctx), src, o); err != nil {
		log.Error("pull: record the outcome", "err", err)
	}
}

// backoff is the wait after the n-th failure in a row: a minute, doubling, up to the
// interval times 16 and at most a day, but never longer than a day nor shorter than a minute.
func backoff(every time.Duration, n int) time.Duration {
	limit := min(max(every*16, time.Minute), 24*time.Hour)
	d := time.Minute
	for i := 1; i < n && d < limit; i++ {
		d *= 2
	}
	return min(d, limit)
}

// Poll polls one source now (the lease is the caller's business) and delivers what is new.
func (p *Poller) Poll(ctx context.Context, src store.PullSource) (Result, error) {
	sealer, err := LoadKey(p.o.KeyFile, false)
	if err != nil {
		return Result{}, err
	}
	pass, err := sealer.Open(src.Secret, src.AccountID, src.Protocol, src.Addr, src.User)
	if err != nil {
		return Result{}, err
	}
	seen, err := p.st.PulledUIDs(ctx, src.ID)
	if err != nil {
		return Result{}, err
	}
	r := &run{p: p, src: src, seen: seen}
	switch src.Protocol {
	case "pop3":
		err = r.pop3(ctx, pass)
	case "imap":
		err = r.imap(ctx, pass)
	default:
		err = fmt.Errorf("unknown protocol %q", src.Protocol)
	}
	return r.res, err
}

// run is one poll of a source.
type run struct {
	p    *Poller
	src  store.PullSource
	seen map[string]time.Time // unique-ids delivered before
	res  Result
}

// deliver delivers one message body of the source under its unique-id uid. It returns nil
// when the message is in the account now: delivered by this call, or recorded before (by a
// poll that crashed before it could tell, or another node). fp is the body's fingerprint,
// "" to compute it here.
func (r *run) deliver(ctx context.Context, uid, fp string, body deliver.Body) error {
	if fp == "" {
		var err error
		if fp, err = bodyDigest(body); err != nil {
			return fmt.Errorf("read message %s: %w", uid, err)
		}
	}
	env := deliver.Envelope{
		MailFrom:   returnPath(body),
		Targets:    []store.Target{{AccountID: r.src.AccountID, Mailbox: store.Inbox}},
		ReceivedAt: r.p.o.Now(),
		Classify:   true, // mail from outside, as on the MX port
		Pulled:     &store.PulledMessage{SourceID: r.src.ID, UID: uid, Fingerprint: fp},
	}
	_, err := r.p.dl.Deliver(ctx, env, body)
	switch {
	case errors.Is(err, store.ErrExists):
	case err != nil:
		return fmt.Errorf("deliver message %s: %w", uid, err)
	default:
		r.res.Delivered++
	}
	// A script that discarded the message committed nothing: record it all the same, so
	// that it is not pulled (and discarded) at every poll.
	pulled := []store.PulledMessage{{SourceID: r.src.ID, UID: uid, Fingerprint: fp}}
	if err := r.p.st.MarkPulledWith(context.WithoutCancel(ctx), pulled, r.p.o.Now()); err != nil {
		return err
	}
	r.seen[uid] = r.p.o.Now()
	return nil
}

// forget drops the recorded unique-ids that are not in onServer (messages that left the
// outside mailbox), so that the state does not grow forever.
func (r *run) forget(ctx context.Context, onServer map[string]bool) error {
	var gone []string
	for uid := range r.seen {
		if !onServer[uid] {
			gone = append(gone, uid)
		}
	}
	return r.p.st.ForgetPulled(ctx, r.src.ID, gone)
}
