package postgres

import (
	"log/slog"
	"sync"

	"petrel/internal/store"
)

// subscriberBuffer is how many changes a subscriber may fall behind before it is cut off.
const subscriberBuffer = 256

// broker fans change events out to the subscribers of each account. Publishing never
// blocks: writers and the notifier call it, and a slow session must not stall them.
type broker struct {
	log    *slog.Logger
	mu     sync.Mutex
	subs   map[int64]map[chan store.Change]struct{} // by account; a channel is closed exactly when it leaves this map
	closed bool                                     // after closeAll, new subscriptions start closed
	// modseq is the highest MODSEQ published for each account with subscribers (the
	// notifier's catch-up, notify.go).
	modseq map[int64]uint64
}

func newBroker(log *slog.Logger) *broker {
	return &broker{log: log, subs: map[int64]map[chan store.Change]struct{}{}, modseq: map[int64]uint64{}}
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
		delete(b.modseq, accountID)
	}
	close(ch)
}

func (b *broker) publish(c store.Change) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, ok := b.subs[c.AccountID]; ok {
		b.modseq[c.AccountID] = max(b.modseq[c.AccountID], c.ModSeq)
	}
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

// seen returns the accounts with subscribers and the highest MODSEQ published to them.
func (b *broker) seen() map[int64]uint64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make(map[int64]uint64, len(b.subs))
	for id := range b.subs {
		out[id] = b.modseq[id]
	}
	return out
}

// cutOff ends the subscriptions of an account; its subscribers resync by MODSEQ.
func (b *broker) cutOff(accountID int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for ch := range b.subs[accountID] {
		b.remove(accountID, ch)
	}
}
