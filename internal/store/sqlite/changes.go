package sqlite

import (
	"log/slog"
	"sync"

	"petrel/internal/store"
)

// subscriberBuffer is how many changes a subscriber may fall behind before it is cut off.
const subscriberBuffer = 256

// broker fans change events out to the subscribers of each account. Publishing never
// blocks: the committer calls it, and a slow session must not stall every writer.
type broker struct {
	log    *slog.Logger
	mu     sync.Mutex
	subs   map[int64]map[chan store.Change]struct{} // by account; a channel is closed exactly when it leaves this map
	closed bool                                     // after closeAll, new subscriptions start closed
}

func newBroker(log *slog.Logger) *broker {
	return &broker{log: log, subs: map[int64]map[chan store.Change]struct{}{}}
}

// Subscribe implements store.Changes. cancel closes the channel; calling it again, or after
// the store cut the subscriber off, does nothing.
func (s *Store) Subscribe(accountID int64) (<-chan store.Change, func()) {
	return s.changes.subscribe(accountID)
}

func (b *broker) subscribe(accountID int64) (<-chan store.Change, func()) {
	ch := make(chan store.Change, subscriberBuffer)
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		close(ch)
		return ch, func() {}
	}
	m := b.subs[accountID]
	if m == nil {
		m = map[chan store.Change]struct{}{}
		b.subs[accountID] = m
	}
	m[ch] = struct{}{}
	b.mu.Unlock()
	return ch, func() {
		b.mu.Lock()
		defer b.mu.Unlock()
		b.remove(accountID, ch)
	}
}

// remove closes ch if it is still subscribed. b.mu must be held.
func (b *broker) remove(accountID int64, ch chan store.Change) {
	m := b.subs[accountID]
	if _, ok := m[ch]; !ok {
		return
	}
	delete(m, ch)
	if len(m) == 0 {
		delete(b.subs, accountID)
	}
	close(ch)
}

func (b *broker) publish(c store.Change) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for ch := range b.subs[c.AccountID] {
		// Each subscriber gets its own copy of the UID slice, so no two share memory.
		cc := c
		cc.UIDs = append([]uint32(nil), c.UIDs...)
		select {
		case ch <- cc:
		default:
			// Full: the subscriber falls back to resyncing by MODSEQ (store.Changes).
			b.log.Debug("store: change subscriber fell behind, closing", "account", c.AccountID)
			b.remove(c.AccountID, ch)
		}
	}
}

// closeAll ends every subscription, at Close.
func (b *broker) closeAll() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.closed = true
	for id, m := range b.subs {
		for ch := range m {
			b.remove(id, ch)
		}
	}
}
