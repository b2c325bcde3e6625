package store

import "context"

// BlobBatch reads the bodies of many small messages in one round trip. IMAP FETCH of a
// whole mailbox asks for thousands of bodies of a few KB each; one query per body made the
// query's own cost (a read transaction, a statement, a B-tree descent from the root) most
// of the server's CPU per message. It is apart from Store so that a backend can come without
// it: a caller without it, or for a body it skips, reads with Mail.OpenBlob.
type BlobBatch interface {
	// ReadBlobs calls fn once for each body of ids that exists and whose whole size is at
	// most maxSize octets, with all its octets, in no particular order. A body that is
	// larger, unknown or freed (expunged and reclaimed) is skipped without an error; the
	// store may also skip bodies it keeps in pieces. body is valid only during the call:
	// fn copies what it keeps. An error from fn stops the reading and is returned.
	ReadBlobs(ctx context.Context, ids []int64, maxSize int64, fn func(id int64, body []byte) error) error
}

// FlagSearch lists a mailbox's UIDs by a flag without handing every message row to the
// caller: IMAP's SELECT, EXPUNGE and SEARCH UNSEEN in a large mailbox need a list of UIDs,
// and reading each message's row into a Message cost several times the store's own work.
// It is apart from Store so that a backend can come without it: a caller without it reads
// Messages.
type FlagSearch interface {
	// UIDsByFlag lists in UID order the UIDs of a mailbox's messages in the ranges (every
	// message when ranges is empty) that have flag (has true) or lack it (has false), the
	// flag compared without regard to ASCII case; an empty flag selects every message. An
	// unknown mailbox is ErrNotFound.
	UIDsByFlag(ctx context.Context, mailboxID int64, ranges []UIDRange, flag string, has bool) ([]uint32, error)
}

// FlagFirst finds the first message of a mailbox with or without a flag. SELECT answers
// with the first unseen message (RFC 3501 §6.3.1, the UNSEEN response code); listing every
// unseen UID for it walked most of a large mailbox at each SELECT. It is apart from Store
// so that a backend can come without it: a caller without it lists with FlagSearch.
type FlagFirst interface {
	// FirstUIDByFlag returns the lowest UID of the mailbox's messages that have flag (has
	// true) or lack it (has false), compared as UIDsByFlag compares it, or 0 when no
	// message does. An unknown mailbox is ErrNotFound.
	FirstUIDByFlag(ctx context.Context, mailboxID int64, flag string, has bool) (uint32, error)
}
