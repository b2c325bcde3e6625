package store

import (
	"context"
	"encoding/binary"
)

// The junk classifier's state (issue 13 point 1): per account, how many messages were
// trained as junk and as not junk, and for each token in how many of each it occurred.
// The classifier (internal/mail/junk) is pure; this is only where its counts live, so that
// they scale out with the store. A delivery reads only the rows of its own tokens.

// JunkCount is a pair of counts: messages (or messages holding a token) trained as not
// junk (Ham) and as junk (Spam).
type JunkCount struct{ Ham, Spam int64 }

// JunkState is what classifying one message needs of an account's training.
type JunkState struct {
	Trained JunkCount            // messages trained in all
	Tokens  map[string]JunkCount // the asked tokens that occurred in trained messages
	// Threshold is the account's own junk threshold (a score from 0 to 1), or a negative
	// value when it follows the server's default.
	Threshold float64
	// Version changes whenever a count of the account changes, so that a reader may keep
	// the token counts it read for as long as the version stays the same.
	Version int64
}

// JunkStats keeps the junk classifier's counts. A missing account is ErrNotFound.
type JunkStats interface {
	// JunkState returns the account's message counts, threshold, and the counts of those
	// of tokens that have any.
	JunkState(ctx context.Context, accountID int64, tokens []string) (JunkState, error)
	// TrainJunk counts a message with these (distinct) tokens as junk or not, in one
	// durable commit. key identifies the message's content (the same message moved twice
	// has the same key): a message already trained the same way changes nothing (false); one
	// trained the other way is first taken out of the other count, so that a correction
	// does not leave the first verdict behind.
	TrainJunk(ctx context.Context, accountID int64, key []byte, tokens []string, junk bool) (changed bool, err error)
	// SetJunkThreshold sets the account's own threshold; a negative value returns it to
	// the server's default.
	SetJunkThreshold(ctx context.Context, accountID int64, threshold float64) error
}

// JunkTokenID is the key of a token's row in both backends: FNV-1a of the account and the
// token, 63 bits. A key instead of the text keeps a row small and its lookup one integer
// probe; two tokens that collide share their counts, which a classifier of hundreds of
// tokens per message does not notice. It is part of what a store keeps, so it never
// changes: a store copied to another backend keeps its rows.
func JunkTokenID(accountID int64, token string) int64 {
	// FNV-1a written out (as hash/fnv computes it): a delivery hashes every token of the
	// message, and hash/fnv's interface costs an allocation per token.
	const offset, prime = 14695981039346656037, 1099511628211
	h := uint64(offset)
	var acct [8]byte
	binary.LittleEndian.PutUint64(acct[:], uint64(accountID))
	for _, b := range acct {
		h = (h ^ uint64(b)) * prime
	}
	for i := 0; i < len(token); i++ {
		h = (h ^ uint64(token[i])) * prime
	}
	return int64(h >> 1)
}

// JunkVocabulary lets the classifier hold every count of an account whose training is
// small (most accounts: a few hundred messages give some thousands of tokens), so that a
// delivery with words never trained (most mail has some) needs no store read to learn
// that they have no counts. It is separate from JunkStats, which every backend has.
type JunkVocabulary interface {
	// JunkTokens returns the account's row (JunkState without Tokens) and, when it has at
	// most max token rows, the counts of all of them by JunkTokenID, read in one snapshot
	// (complete true). With more rows, counts is nil and complete false. A missing
	// account is ErrNotFound.
	JunkTokens(ctx context.Context, accountID int64, max int) (st JunkState, counts map[int64]JunkCount, complete bool, err error)
}
