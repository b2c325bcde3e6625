package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"sync/atomic"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"petrel/internal/store"
)

// request is one write submitted to the committer.
type request struct {
	fn   func(*tx) error // the work; inside a SAVEPOINT only when its batch is retried
	size int64           // body bytes carried, for MaxBatchBytes
	// delivery marks a request that takes MODSEQs, UIDs and counts only through the
	// committer's counters (deliveryModSeq, takeUID) and writes no column of an account or
	// mailbox row that the counters keep (it may add to a mailbox's keyword list).
	delivery bool
	// state moves from pending to taken (by the committer) or cancelled (by the waiter
	// whose context ended first); whoever wins the swap decides whether the request runs.
	state atomic.Int32
	done  chan error // buffered(1): the result, sent once
}

const (
	pending int32 = iota
	taken
	cancelled
)

// write submits fn to the committer and waits until the transaction that ran it is
// durable (nil) or rolled back (the error). If ctx ends before the committer took the
// request, the request is withdrawn and ctx.Err() returned; once taken, write waits for the
// outcome so that a nil error always means committed and an error always means not.
func (s *Store) write(ctx context.Context, size int64, fn func(*tx) error) error {
	return s.submit(ctx, &request{fn: fn, size: size})
}

// submit is write for a request built by the caller.
func (s *Store) submit(ctx context.Context, r *request) error {
	if err := s.enqueue(ctx, r); err != nil {
		return err
	}
	return s.await(ctx, r)
}

// enqueue hands r to the committer without waiting for its commit: requests enqueued one
// after another by one goroutine run in that order, and share commits.
func (s *Store) enqueue(ctx context.Context, r *request) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	r.done = make(chan error, 1)

	// The read lock keeps Close from closing reqs while we send; the committer keeps
	// draining reqs, so the send completes.
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return errClosed
	}
	select {
	case s.reqs <- r:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// await waits for the outcome of an enqueued request (see write).
func (s *Store) await(ctx context.Context, r *request) error {
	select {
	case err := <-r.done:
		return err
	case <-ctx.Done():
		if r.state.CompareAndSwap(pending, cancelled) {
			return ctx.Err()
		}
		return <-r.done
	}
}

// tx is what a request sees: the write connection inside the batch transaction, plus the
// changes the request will publish if it commits.
type tx struct {
	c       *committer
	changes []store.Change
	modseq  map[int64]uint64 // accounts whose MODSEQ this request already raised
	garbage int64            // blobs this request listed for the reclaim (markGarbage)
	counted counted          // what a delivery took from the counters (delivercache.go)
	indexed []queuedText     // bodies for the indexer once this request committed (indexer.go)
	queued  []queuedBody     // bodies this request queued, for queueBodies once committed
	dequeue []int64          // blobs of queue entries this request removed (queuebodies.go)
}

func (t *tx) exec(query string, args ...any) (sql.Result, error) {
	st, err := t.c.stmt(query)
	if err != nil {
		return nil, err
	}
	return st.ExecContext(t.c.ctx, args...)
}

func (t *tx) query(query string, args ...any) (*sql.Rows, error) {
	st, err := t.c.stmt(query)
	if err != nil {
		return nil, err
	}
	return st.QueryContext(t.c.ctx, args...)
}

// queryRow runs a single-row query and scans it; no row is store.ErrNotFound.
func (t *tx) queryRow(query string, args []any, dest ...any) error {
	st, err := t.c.stmt(query)
	if err != nil {
		return err
	}
	err = st.QueryRowContext(t.c.ctx, args...).Scan(dest...)
	if errors.Is(err, sql.ErrNoRows) {
		return store.ErrNotFound
	}
	return err
}

// raiseModSeq raises the MODSEQ of an account once per request and returns the new value;
// everything the request changes in that account carries it (RFC 7162 §3.1.1 lets one
// operation give several changes the same mod-sequence). A missing account is
// store.ErrNotFound.
func (t *tx) raiseModSeq(accountID int64) (uint64, error) {
	if m, ok := t.modseq[accountID]; ok {
		return m, nil
	}
	var m uint64
	if err := t.queryRow(`UPDATE accounts SET modseq = modseq + 1 WHERE id = ? RETURNING modseq`, []any{accountID}, &m); err != nil {
		return 0, err
	}
	if t.modseq == nil {
		t.modseq = map[int64]uint64{}
	}
	t.modseq[accountID] = m
	return m, nil
}

// change records an event for publication after commit, merging UIDs into an earlier
// event of the same kind for the same mailbox.
func (t *tx) change(kind store.ChangeKind, accountID, mailboxID int64, modseq uint64, uids ...uint32) {
	for i := range t.changes {
		c := &t.changes[i]
		if c.Kind == kind && c.MailboxID == mailboxID {
			c.UIDs = append(c.UIDs, uids...)
			c.ModSeq = modseq
			return
		}
	}
	t.changes = append(t.changes, store.Change{Kind: kind, AccountID: accountID, MailboxID: mailboxID, UIDs: uids, ModSeq: modseq})
}

// committer is the state owned by the committer goroutine.
type committer struct {
	ctx   context.Context // never cancelled: a batch, once begun, runs to its end
	conn  *sql.Conn
	stmts map[string]*sql.Stmt // prepared on conn; the keys are SQL constants, so bounded
	// garbage counts the blobs listed for the reclaim as far as this committer knows
	// (those listed by its own commits, or any at Open); zero means nothing to reclaim.
	garbage int64
	timer   *time.Timer // the idle wait before a reclaim (reclaim.go)
	// counters are the delivery counters (delivercache.go); they hold changes not yet
	// written only inside runBatch.
	counters counters
	// defaultQuota is Options.DefaultQuota, for the accounts without limits of their own.
	defaultQuota store.QuotaLimits
	// index is the store's background indexer, whose queue a delivery joins (indexer.go).
	index *indexer
	// indexInCommit is Options.IndexInCommit: no delivery joins the indexer's queue.
	indexInCommit bool
}

func (c *committer) stmt(query string) (*sql.Stmt, error) {
	if st, ok := c.stmts[query]; ok {
		return st, nil
	}
	st, err := c.conn.PrepareContext(c.ctx, query)
	if err != nil {
		return nil, err
	}
	c.stmts[query] = st
	return st, nil
}

// do runs a transaction control statement (prepared once, like everything else).
func (c *committer) do(query string) error {
	st, err := c.stmt(query)
	if err != nil {
		return err
	}
	_, err = st.ExecContext(c.ctx)
	return err
}

// commitLoop is the committer goroutine. It runs until Close closes reqs, after
// committing everything that was queued.
func (s *Store) commitLoop(garbage int64) {
	c := &committer{ctx: context.Background(), conn: s.wc, stmts: map[string]*sql.Stmt{},
		garbage: garbage, timer: time.NewTimer(time.Hour), counters: newCounters(),
		defaultQuota: s.opts.DefaultQuota, index: s.index, indexInCommit: s.opts.IndexInCommit}
	c.timer.Stop()
	defer func() {
		s.reclaimAtClose(c)
		for _, st := range c.stmts {
			st.Close()
		}
		close(s.stopped)
	}()
	batch := make([]*request, 0, s.opts.MaxBatch)
	for {
		r, ok := s.nextRequest(c)
		if !ok {
			return
		}
		batch = batch[:0]
		var bytes int64
		open := true
		add := func(r *request) {
			if r.state.CompareAndSwap(pending, taken) {
				batch = append(batch, r)
				bytes += r.size
			}
		}
		add(r)
		// Let the writers the previous commit just woke queue their next request, so they
		// join this batch instead of waiting a whole commit for the next one (measured:
		// 14 -> 21 requests per commit with 32 writers).
		runtime.Gosched()
		// Take whatever else is already waiting: these requests arrived while the previous
		// batch was being committed and share the next fsync.
	gather:
		for open && len(batch) < s.opts.MaxBatch && bytes < s.opts.MaxBatchBytes {
			select {
			case r, open = <-s.reqs:
				if open {
					add(r)
				}
			default:
				break gather
			}
		}
		if len(batch) > 0 {
			s.commitBatch(c, batch)
		}
		if c.garbage > reclaimBacklog && !s.opts.reclaimOff {
			if err := s.reclaimStep(c); err != nil {
				s.log.Warn("store: reclaiming freed message bodies", "err", err)
			}
		}
		if !open {
			return
		}
	}
}

// commitBatch runs batch in one transaction and answers every request.
//
// A request runs inside a SAVEPOINT only when it has to: SQLite copies every page a
// savepoint changes into a statement journal first, so that it can roll back to it (a
// tenth of the committer's CPU in BenchmarkPOP3Session, whose expunges rewrite existing
// pages; little for deliveries, which mostly append). Requests rarely fail, so the batch
// first runs without savepoints; if a request fails, that attempt is rolled back and the
// batch runs again with one savepoint per request, so that the failure undoes only itself.
// A request therefore may run twice (see the package comment).
func (s *Store) commitBatch(c *committer, batch []*request) {
	s.batches.Add(1)
	start := time.Now()
	if !s.runBatch(c, batch, false) {
		s.runBatch(c, batch, true)
	}
	if s.opts.ObserveCommit != nil {
		s.opts.ObserveCommit(time.Since(start), len(batch))
	}
}

// runBatch runs batch in one transaction, each request in its own savepoint if savepoints
// is set, and answers every request. Without savepoints, a failing request in a batch of
// several aborts the attempt: runBatch rolls back, answers nobody and returns false.
func (s *Store) runBatch(c *committer, batch []*request, savepoints bool) bool {
	results := make([]error, len(batch))
	txs := make([]*tx, len(batch))
	failAll := func(err error) {
		s.log.Error("store: write transaction failed", "requests", len(batch), "err", err)
		for _, r := range batch {
			r.done <- err
		}
	}

	if err := beginImmediate(func() error { return c.do("BEGIN IMMEDIATE") }); err != nil {
		failAll(fmt.Errorf("store: begin: %w", err))
		return true
	}
	if err := c.checkVersion(); err != nil {
		c.rollback()
		failAll(fmt.Errorf("store: begin: %w", err))
		return true
	}
	for i, r := range batch {
		if !r.delivery {
			// This request reads and writes account and mailbox rows itself.
			if err := c.flushCounters(); err != nil {
				c.rollback()
				failAll(fmt.Errorf("store: %w", err))
				return true
			}
			c.counters.reset()
		}
		if savepoints {
			if err := c.do("SAVEPOINT req"); err != nil {
				c.rollback()
				failAll(fmt.Errorf("store: savepoint: %w", err))
				return true
			}
		}
		t := &tx{c: c}
		if err := r.fn(t); err != nil {
			if !savepoints {
				// Its error may have ended the transaction already (disk full, I/O); then
				// this ROLLBACK fails and there is nothing to undo.
				c.rollback()
				if len(batch) == 1 {
					r.done <- err // rolled back: nothing of it committed
					return true
				}
				return false
			}
			results[i] = err
			// Some errors (disk full, I/O) make SQLite roll back the whole transaction; then
			// the savepoint is gone and the batch cannot go on.
			if e := errors.Join(c.do("ROLLBACK TO req"), c.do("RELEASE req")); e != nil {
				c.rollback()
				failAll(fmt.Errorf("store: %w (rollback: %v)", err, e))
				return true
			}
			continue
		}
		if savepoints {
			if err := c.do("RELEASE req"); err != nil {
				c.rollback()
				failAll(fmt.Errorf("store: release savepoint: %w", err))
				return true
			}
		}
		if r.delivery {
			c.counters.merge(&t.counted)
		}
		txs[i] = t
	}
	if err := c.flushCounters(); err != nil {
		c.rollback()
		failAll(fmt.Errorf("store: %w", err))
		return true
	}
	if err := c.do("COMMIT"); err != nil {
		c.rollback()
		failAll(fmt.Errorf("store: commit: %w", err))
		return true
	}
	s.wakeCheckpointer()
	for i, r := range batch {
		if t := txs[i]; t != nil {
			c.garbage += t.garbage
			if len(t.indexed) > 0 {
				s.index.add(t.indexed)
			}
			if len(t.dequeue) > 0 {
				s.queueBodies.drop(t.dequeue)
			}
			if len(t.queued) > 0 {
				s.queueBodies.add(t.queued)
			}
			for _, ch := range t.changes {
				s.changes.Publish(ch)
			}
		}
		r.done <- results[i]
	}
	return true
}

// rollback ends the transaction and forgets the delivery counters, which may hold values
// it undid. Errors are ignored: after some failures SQLite has rolled back already.
func (c *committer) rollback() {
	c.do("ROLLBACK")
	c.counters.reset()
}

// beginImmediate takes the database write lock with begin, retrying every few hundred
// microseconds while another process (the CLI) holds it. SQLite's own busy handler sleeps
// up to 100 ms between attempts, and a process that polls that slowly almost never hits the
// short gap between two commits of a busy server: `petrel account add` would fail with
// "database is locked" under load. The write connection therefore has busy_timeout 0 and
// waits here instead, busyTimeout at most.
func beginImmediate(begin func() error) error {
	deadline := time.Now().Add(busyTimeout)
	for {
		err := begin()
		if !isBusy(err) || time.Now().After(deadline) {
			return err
		}
		time.Sleep(time.Duration(100+rand.IntN(400)) * time.Microsecond)
	}
}

func isBusy(err error) bool {
	var se *sqlite.Error
	return errors.As(err, &se) && se.Code()&0xff == sqlite3.SQLITE_BUSY
}
