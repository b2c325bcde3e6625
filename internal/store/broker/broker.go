// Package broker fans a store's change events (store.Change) out to the subscribers of each
// account. Both store backends publish through it after each commit; the PostgreSQL
// backend also publishes what other nodes committed, and uses Seen and CutOff to catch up
// after it lost its notification connection.
//
// Publishing never blocks: writers call it, and a slow session must not stall them. A
// subscriber that falls behind by more than Buffer events is cut off (its channel closed)
// and resyncs from the store by MODSEQ, as store.Changes says.
package broker

import (
	"log/slog"
	"sync"

	"petrel/internal/store"
)

// Buffer is how many changes a subscriber may fall behind before it is cut off.
const Buffer = 256

// Broker holds the subscriptions. The zero value is not usable: call New.
type Broker struct {
	log    *slog.Logger
	mu     sync.Mutex
	subs   map[int64]map[chan store.Change]struct{} // by account; a channel is closed exactly when it leaves this map
	closed bool                                     // after CloseAll, new subscriptions start closed
	// modseq is the highest MODSEQ published for each account with subscribers (Seen).
	modseq map[int64]uint64
}

func New(log *slog.Logger) *Broker {
	return &Broker{log: log, subs: map[int64]map[chan store.Change]struct{}{}, modseq: map[int64]uint64{}}
}

// Subscribe implements store.Changes. cancel closes the channel; calling it again, or after
// the broker cut the subscriber off, does nothing.
func (b *Broker) Subscribe(accountID int64) (<-chan store.Change, func()) {
	ch := make(chan store.Change, Buffer)
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
func (b *Broker) remove(accountID int64, ch chan store.Change) {
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

// Publish passes c to the subscribers of its account.
func (b *Broker) Publish(c store.Change) {
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

// Seen returns the accounts with subscribers and the highest MODSEQ published to them.
func (b *Broker) Seen() map[int64]uint64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make(map[int64]uint64, len(b.subs))
	for id := range b.subs {
		out[id] = b.modseq[id]
	}
	return out
}

// CutOff ends the subscriptions of an account; its subscribers resync by MODSEQ.
func (b *Broker) CutOff(accountID int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for ch := range b.subs[accountID] {
		b.remove(accountID, ch)
	}
}

// CloseAll ends every subscription, when the store closes.
func (b *Broker) CloseAll() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.closed = true
	for id, m := range b.subs {
		for ch := range m {
			b.remove(id, ch)
		}
	}
}
