package store

import (
	"context"
	"time"
)

// SortKeys are what IMAP SORT (RFC 5256, RFC 5957 SORT=DISPLAY) orders a message by and
// what THREAD (RFC 5256 §2) links it by, beyond the message row's own INTERNALDATE and size.
// They depend on the body only, so they are kept once per body, like the cached parse, and
// computed by the mail layer (message.Parse); the store keeps them as given.
//
// The address and subject keys are already in the form they are compared in: folded for
// the i;ascii-casemap collation (RFC 4790 §9.2: ASCII letters in upper case), so that a
// sort compares bytes and folds nothing per command.
type SortKeys struct {
	Date time.Time // the Date header, zero when missing or unparseable (SORT uses INTERNALDATE then)
	// Subject is the base subject (RFC 5256 §2.1), folded; Reply says whether extracting it
	// removed a "Re:", "Fwd:", "(fwd)" or "[fwd: ...]" (THREAD=REFERENCES step 5).
	Subject string
	Reply   bool
	// From, To and Cc are the addr-mailbox (local part) of the first address of each field
	// (RFC 5256 §3), folded; "" when there is none.
	From, To, Cc string
	// DisplayFrom and DisplayTo are the display names of the first From and To address,
	// or their addr-spec when the name is empty (RFC 5957 §3), folded.
	DisplayFrom, DisplayTo string
	// MessageID is the Message-ID without brackets ("" when missing); References are the
	// message IDs of the References field in order, or the first of In-Reply-To when
	// References has none (RFC 5256 §2.2 step 1).
	MessageID  string
	References []string
}

// SortRow is one message of a mailbox with its sort keys.
type SortRow struct {
	UID          uint32
	BlobID       int64
	Size         int64
	InternalDate time.Time
	// Keys are the body's sort keys; nil when the store has none for it (a body stored
	// before the keys were kept): the caller computes them and hands them to SetSortKeys.
	Keys *SortKeys
}

// Sorter gives IMAP SORT and THREAD the keys of a mailbox's messages in one read, without
// reading or parsing a body. It is apart from Store so that a backend can come without it;
// the IMAP server offers SORT and THREAD only with a store that has it.
type Sorter interface {
	// SortRows lists a mailbox's messages with UIDs in the ranges (all of them when uids
	// is empty), in UID order, with their keys. An unknown mailbox is ErrNotFound.
	SortRows(ctx context.Context, mailboxID int64, uids []UIDRange) ([]SortRow, error)
	// SetSortKeys stores keys for bodies that had none (ParsedMessage.Sort was nil when
	// they were stored). Keys a body already has are kept; a freed body is skipped.
	SetSortKeys(ctx context.Context, keys map[int64]*SortKeys) error
}
