package sqlite

import (
	"context"
	"time"
)

// checkpointInterval is the least time between two background checkpoints; under load a
// checkpoint then copies a few hundred pages at once.
const checkpointInterval = 100 * time.Millisecond

// checkpointLoop copies committed WAL frames into the database file from its own
// connection (PRAGMA wal_checkpoint(PASSIVE), https://www.sqlite.org/wal.html#ckpt).
// Left to SQLite, the checkpoint (two more fsyncs) would run inside whichever COMMIT
// crossed wal_autocheckpoint, and every writer waiting on that batch would pay for it. A
// passive checkpoint never blocks the writer or readers. The committer wakes this loop
// after each commit; the write connection keeps a high wal_autocheckpoint only as a
// backstop.
func (s *Store) checkpointLoop() {
	defer close(s.ckDone)
	ctx := context.Background()
	for range s.ckWake {
		if _, err := s.ckdb.ExecContext(ctx, "PRAGMA wal_checkpoint(PASSIVE)"); err != nil {
			s.log.Warn("store: checkpoint failed", "err", err)
		}
		time.Sleep(checkpointInterval)
	}
}

// wakeCheckpointer tells the checkpointer there is something new in the WAL; it never
// blocks.
func (s *Store) wakeCheckpointer() {
	select {
	case s.ckWake <- struct{}{}:
	default:
	}
}
