package sqlite

import (
	"sync"
)

// queueBodies keeps the bodies of recently queued messages in memory for the queue's first
// attempt, which reads them back (OpenBlob) a moment after the commit that wrote them:
// under the relay load that read (a query and the copy out of SQLite) was 4% of the CPU.
//
// A body enters after the commit of its Enqueue (never one of a rolled-back transaction)
// and leaves when its entry's removal lists it as garbage, or when newer bodies push it out
// (maxQueueBodyBytes in all). Blob ids are never reused (AUTOINCREMENT) and blobs never
// change, so an entry can be stale only in being gone from the database: another process
// (the CLI) deleted the queue entry, which the queue's Claim then no longer finds.
type queueBodies struct {
	mu    sync.Mutex
	byID  map[int64][]byte
	order []int64 // ids in the order they came, oldest first; may name removed ones
	bytes int
}

// maxQueueBodyBytes bounds the memory queueBodies holds.
const maxQueueBodyBytes = 8 << 20

// maxQueueBody is the largest body kept: bigger ones are read from the store.
const maxQueueBody = 256 << 10

// queuedBody is a body an uncommitted request wrote to the queue.
type queuedBody struct {
	id   int64
	body []byte
}

func (q *queueBodies) add(list []queuedBody) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.byID == nil {
		q.byID = map[int64][]byte{}
	}
	for _, b := range list {
		if len(b.body) > maxQueueBody {
			continue
		}
		q.byID[b.id] = b.body
		q.order = append(q.order, b.id)
		q.bytes += len(b.body)
	}
	for q.bytes > maxQueueBodyBytes && len(q.order) > 0 {
		q.dropLocked(q.order[0])
		q.order = q.order[1:]
	}
	if len(q.order) > 2*len(q.byID)+64 {
		// Mostly ids removed by drop: compact, so order stays proportional to what is held.
		kept := q.order[:0]
		for _, id := range q.order {
			if _, ok := q.byID[id]; ok {
				kept = append(kept, id)
			}
		}
		q.order = kept
	}
}

func (q *queueBodies) dropLocked(id int64) {
	if b, ok := q.byID[id]; ok {
		q.bytes -= len(b)
		delete(q.byID, id)
	}
}

// drop forgets the bodies of ids (listed as garbage by a commit).
func (q *queueBodies) drop(ids []int64) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for _, id := range ids {
		q.dropLocked(id)
	}
}

// get returns the body of blob id if held. The caller must not change it.
func (q *queueBodies) get(id int64) ([]byte, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	b, ok := q.byID[id]
	return b, ok
}
