package sqlite

import (
	"context"
	"sync"
	"time"

	"petrel/internal/store"
)

// The background indexer keeps the full-text index off the delivery commit.
//
// A delivery (or APPEND) commits its body with a row in search_pending instead of the FTS5
// row, and after the commit hands the body's text (decoded by the mail layer, which the
// store cannot do) to the indexer's queue in memory. The indexer goroutine takes what has
// queued and indexes it in one write request: for each body it deletes the search_pending
// row and, if there was one (the body was not freed meanwhile), inserts the FTS5 row. Bodies
// indexed together share one transaction, so FTS5 writes its segments once per batch
// instead of once per commit, and the delivery's commit and its 250 no longer wait for the
// tokenizer.
//
// Invariants:
//   - A search of a mailbox never misses a committed message because of the queue: Search
//     first indexes the queue if a queued body has a message in that mailbox (indexFor).
//   - At most one batch is written at a time (indexer.run); a body leaves the queue only
//     after its batch committed, so a search that waits for run sees it indexed.
//   - The queue holds at most maxQueuedText bytes of text; a delivery that finds it full
//     indexes its body in its own commit as before, which bounds memory and slows deliveries
//     only when the indexer cannot keep up.
//   - What the queue loses (a crash, Close with deliveries still arriving, a failed batch)
//     stays in search_pending. Unindexed lists only the bodies stored before this Open
//     (backlogMax), which the mail layer indexes at start (deliver.IndexBacklog), so the
//     rows of this process's queue are not indexed twice.

const (
	// indexBatch bounds the bodies in one batch.
	indexBatch = 512
	// indexDelay is how long the indexer lets a small queue grow before writing it: large
	// batches cost FTS5 less per body. A search never waits for it.
	indexDelay = 50 * time.Millisecond
	// maxQueuedText bounds the text waiting in memory.
	maxQueuedText = 64 << 20
)

// queuedText is a committed body waiting to be indexed.
type queuedText struct {
	blobID int64
	text   store.SearchText
}

// indexer is the queue of bodies to index and the goroutine that writes them.
type indexer struct {
	mu     sync.Mutex
	queue  []queuedText
	bytes  int64 // text bytes in queue
	failed int64 // batches that failed to commit, for the log

	run  sync.Mutex    // held while a batch is written (by the goroutine or a search)
	wake chan struct{} // buffered(1): the queue grew
	stop chan struct{} // closed by Close
	done chan struct{} // closed when the goroutine has exited
}

func newIndexer() *indexer {
	return &indexer{wake: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
}

func textSize(t *store.SearchText) int64 {
	return int64(len(t.Subject) + len(t.From) + len(t.To) + len(t.Cc) + len(t.Bcc) + len(t.Header) + len(t.Body))
}

// full reports whether a body of n more text bytes should be indexed in its own commit.
func (ix *indexer) full(n int64) bool {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	return ix.bytes+n > maxQueuedText
}

// add queues bodies whose commit succeeded. It runs on the committer, before the waiters
// of the commit are answered.
func (ix *indexer) add(q []queuedText) {
	ix.mu.Lock()
	for i := range q {
		ix.bytes += textSize(&q[i].text)
	}
	ix.queue = append(ix.queue, q...)
	ix.mu.Unlock()
	select {
	case ix.wake <- struct{}{}:
	default:
	}
}

func (ix *indexer) queued() int {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	return len(ix.queue)
}

// indexLoop is the indexer goroutine. It stops when Close closes stop, after indexing
// what is queued then.
func (s *Store) indexLoop() {
	ix := s.index
	defer close(ix.done)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		select {
		case <-ix.wake:
			if ix.queued() < indexBatch {
				timer.Reset(indexDelay)
				select {
				case <-timer.C:
				case <-ix.stop:
					timer.Stop()
				}
			}
		case <-ix.stop:
		}
		select {
		case <-ix.stop:
			for s.indexQueued(context.Background()) > 0 {
			}
			return
		default:
		}
		for s.indexQueued(context.Background()) >= indexBatch {
			// A backlog: write it in full batches before waiting again.
		}
	}
}

// indexQueued writes up to indexBatch queued bodies in one write request and returns how
// many it took from the queue (0 when it was empty). A failed batch leaves its bodies in
// search_pending for the next start and is logged.
func (s *Store) indexQueued(ctx context.Context) int {
	ix := s.index
	ix.run.Lock()
	defer ix.run.Unlock()
	ix.mu.Lock()
	batch := ix.queue[:min(len(ix.queue), indexBatch)]
	ix.mu.Unlock()
	if len(batch) == 0 {
		return 0
	}
	var size int64
	for i := range batch {
		size += textSize(&batch[i].text)
	}
	s.indexWrites.Add(1)
	err := s.write(ctx, size, func(t *tx) error {
		for i := range batch {
			res, err := t.exec(`DELETE FROM search_pending WHERE blob_id = ?`, batch[i].blobID)
			if err != nil {
				return err
			}
			if n, err := res.RowsAffected(); err != nil {
				return err
			} else if n == 0 {
				continue // freed since its delivery
			}
			if err := t.insertSearch(batch[i].blobID, &store.ParsedMessage{Text: &batch[i].text}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil && ctx.Err() != nil {
		return 0 // the caller gave up; the batch stays queued
	}
	ix.mu.Lock()
	// Only this function removes from the queue, under run: the batch is still its head.
	ix.queue = ix.queue[len(batch):]
	ix.bytes -= size
	if len(ix.queue) == 0 {
		ix.queue = nil // let the backing array go
	}
	if err != nil {
		ix.failed++
	}
	ix.mu.Unlock()
	if err != nil {
		s.log.Warn("store: full-text index batch failed; its bodies are indexed at the next start", "bodies", len(batch), "err", err)
	}
	return len(batch)
}

// indexFor indexes the queue if a queued body has a message in the mailbox, so that a
// search finds every message committed before it began.
func (s *Store) indexFor(ctx context.Context, mailboxID int64) error {
	if s.index.queued() == 0 {
		return nil
	}
	var n int
	err := s.queryRow(ctx, `SELECT count(*) FROM search_pending p JOIN messages m ON m.blob_id = p.blob_id
		WHERE p.blob_id > ? AND m.mailbox_id = ?`, s.backlogMax, mailboxID).Scan(&n)
	if err != nil || n == 0 {
		return err
	}
	return s.IndexQueued(ctx)
}

// IndexQueued indexes the bodies queued for the background indexer when it is called, and
// returns when they are indexed: deliveries that keep arriving do not hold it up. A search
// does this when it needs to; benchmarks call it to count the indexing in the cost of the
// deliveries they measure.
func (s *Store) IndexQueued(ctx context.Context) error {
	for left := s.index.queued(); left > 0; {
		n := s.indexQueued(ctx)
		if n == 0 {
			break
		}
		left -= n
	}
	return ctx.Err()
}
