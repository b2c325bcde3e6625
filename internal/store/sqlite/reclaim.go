package sqlite

import (
	"encoding/json"
	"fmt"
	"time"
)

// Freeing a body is the expensive part of removing a message: SQLite walks the blob's
// overflow pages to put them on the free list, deletes its chunks and checks the foreign
// keys, about as much work as delivering it. A POP3 QUIT that expunges a hundred messages
// used to do all of that inside the transaction its client waits for.
//
// So a transaction that removes the last message of a blob only lists the blob in the
// garbage table (markGarbage), and the committer frees listed blobs later, in transactions
// of its own (reclaimStep):
//   - when no write request has come for reclaimIdle (the store is idle), a step at a time
//     until the list is empty, each step giving way to any request that arrived;
//   - after a commit, one step, while more than reclaimBacklog blobs wait, so that a store
//     that is never idle still frees its space;
//   - at Close, for at most closeReclaimTime, so that a short-lived process (the CLI
//     deleting an account) frees what it listed;
//   - after Open, whatever an earlier process listed and did not free (it crashed or
//     stopped first): the list is durable, written with the commit that removed the
//     messages.
//
// A listed blob is gone for readers at once (OpenBlob and Parsed check the list), so
// nothing can be read through a stale reference in between, and a crash at any point loses
// nothing and leaks nothing: either the expunge with its list entries committed, or
// neither; a reclaim step deletes blobs and their list entries in one transaction.
// Freed pages go to SQLite's free list and are reused by later deliveries.
const (
	// reclaimIdle is how long the committer must have had nothing to do before it reclaims.
	reclaimIdle = 50 * time.Millisecond
	// reclaimBatch bounds the blobs one reclaim step frees: a few milliseconds of work for
	// 4 KB bodies, which is as long as a write request arriving meanwhile waits.
	reclaimBatch = 256
	// reclaimBacklog is the number of listed blobs above which the committer reclaims even
	// when it is busy (about 80 MB of 4 KB bodies).
	reclaimBacklog = 20000
	// closeReclaimTime bounds the reclaim at Close; what is left waits for the next Open.
	closeReclaimTime = 2 * time.Second
)

// markGarbage lists those of the given blobs that no message refers to any more; the
// reclaim frees them later. It runs inside the request that removed the messages.
func (t *tx) markGarbage(ids []int64) error {
	if len(ids) == 0 {
		return nil
	}
	list, err := json.Marshal(ids)
	if err != nil {
		return err
	}
	// OR IGNORE: a body delivered twice to one mailbox appears twice in ids.
	// A shared body that spliced copies name (fields.go) stays while one of them does.
	res, err := t.exec(`INSERT OR IGNORE INTO garbage (blob_id) SELECT value FROM json_each(?)
		WHERE NOT EXISTS (SELECT 1 FROM messages WHERE blob_id = value)
		AND NOT EXISTS (SELECT 1 FROM blobs s WHERE s.base_id = value AND s.id NOT IN (SELECT blob_id FROM garbage))`, string(list))
	if err != nil {
		return err
	}
	n, err := res.RowsAffected()
	t.garbage += n
	if err != nil || n == 0 {
		return err
	}
	// The shared bodies of spliced copies just listed go with the last copy that names them.
	res, err = t.exec(`INSERT OR IGNORE INTO garbage (blob_id) SELECT DISTINCT b.base_id FROM json_each(?) j
		JOIN blobs b ON b.id = j.value AND b.base_id IS NOT NULL
		WHERE b.id IN (SELECT blob_id FROM garbage)
		AND NOT EXISTS (SELECT 1 FROM messages WHERE blob_id = b.base_id)
		AND NOT EXISTS (SELECT 1 FROM blobs s WHERE s.base_id = b.base_id AND s.id NOT IN (SELECT blob_id FROM garbage))`, string(list))
	if err != nil {
		return err
	}
	n, err = res.RowsAffected()
	t.garbage += n
	return err
}

// nextRequest waits for the next write request, reclaiming listed blobs while the store is
// idle. A waiting request always goes first; a reclaim step delays a request that arrives
// during it by the step's duration at most. ok is false once Close closed the queue.
func (s *Store) nextRequest(c *committer) (r *request, ok bool) {
	idle := false
	for c.garbage > 0 && !s.opts.reclaimOff {
		select {
		case r, ok = <-s.reqs:
			return r, ok
		default:
		}
		if !idle {
			c.timer.Reset(reclaimIdle)
			select {
			case r, ok = <-s.reqs:
				c.timer.Stop()
				return r, ok
			case <-c.timer.C:
			}
			idle = true
		}
		if err := s.reclaimStep(c); err != nil {
			// Another process holds the write lock, or worse: try again after the next
			// idle wait rather than spinning.
			s.log.Warn("store: reclaiming freed message bodies", "err", err)
			idle = false
		}
	}
	r, ok = <-s.reqs
	return r, ok
}

// reclaimAtClose frees listed blobs for at most closeReclaimTime. It looks at the list
// itself rather than the committer's count, which knows only this process's garbage.
func (s *Store) reclaimAtClose(c *committer) {
	if s.opts.reclaimOff {
		return
	}
	deadline := time.Now().Add(closeReclaimTime)
	c.garbage = 1
	for c.garbage > 0 && time.Now().Before(deadline) {
		if err := s.reclaimStep(c); err != nil {
			s.log.Warn("store: reclaiming freed message bodies at close", "err", err)
			return
		}
	}
}

// reclaimStep frees up to reclaimBatch listed blobs, lowest IDs first, in one transaction
// of its own (a committed step is durable like any commit; a step lost in a crash is
// simply done again). It updates c.garbage: zero once the list is empty.
func (s *Store) reclaimStep(c *committer) error {
	// One attempt at the write lock: the reclaim can always wait for the next idle moment,
	// while waiting here would hold up this store's own writers.
	if err := c.do("BEGIN IMMEDIATE"); err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	n, err := s.reclaimBlobs(c)
	if err == nil {
		err = c.do("COMMIT")
	}
	if err != nil {
		c.do("ROLLBACK")
		return err
	}
	if n < reclaimBatch {
		c.garbage = 0
	} else {
		c.garbage = max(c.garbage-n, 1) // more may wait, listed by another process
	}
	if n > 0 {
		s.reclaimed.Add(n)
		s.wakeCheckpointer()
	}
	return nil
}

// reclaimBlobs deletes the first reclaimBatch listed blobs (their chunks follow by ON
// DELETE CASCADE) and their list entries, and returns how many entries it removed.
func (s *Store) reclaimBlobs(c *committer) (int64, error) {
	t := &tx{c: c}
	var hi *int64 // highest blob ID of this step; NULL when the list is empty
	if err := t.queryRow(`SELECT max(blob_id) FROM (SELECT blob_id FROM garbage ORDER BY blob_id LIMIT ?)`,
		[]any{reclaimBatch}, &hi); err != nil {
		return 0, err
	}
	if hi == nil {
		return 0, nil
	}
	// The NOT EXISTS is a safety net: markGarbage lists only unreferenced blobs, and
	// nothing refers to a listed blob again.
	if _, err := t.exec(`DELETE FROM blobs WHERE id IN (SELECT blob_id FROM garbage WHERE blob_id <= ?)
		AND NOT EXISTS (SELECT 1 FROM messages WHERE blob_id = blobs.id)`, *hi); err != nil {
		return 0, err
	}
	res, err := t.exec(`DELETE FROM garbage WHERE blob_id <= ?`, *hi)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}
