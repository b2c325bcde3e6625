package store

import (
	"context"
	"time"
)

// Greylist keeps the state of greylisting at the SMTP door (issue 13): when a triplet
// (client network, sender, recipient) or a pass-list key was first and last seen, and
// whether it has passed. The rules (delays, windows, which keys) live in the mail layer
// (internal/mail/door); a backend only keeps rows by key. It is separate from Store so that
// a backend without it still serves mail with greylisting off.
type Greylist interface {
	// GreyGet returns the entries of keys that exist, in no particular order.
	GreyGet(ctx context.Context, keys []string) ([]GreyEntry, error)
	// GreyPut inserts or replaces entries by key.
	GreyPut(ctx context.Context, entries []GreyEntry) error
	// GreyExpire deletes the entries last seen before t and returns how many it deleted.
	GreyExpire(ctx context.Context, before time.Time) (int64, error)
}

// GreyEntry is one greylisting key: a triplet, or a key of the automatic pass list.
type GreyEntry struct {
	Key    string
	First  time.Time // first attempt
	Last   time.Time // last attempt (or last delivery that refreshed it)
	Passed bool      // retried after the delay within the window; later attempts pass
}
