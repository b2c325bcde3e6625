package store

import (
	"bytes"
	"context"
)

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

// HeaderBatch reads the header sections of many messages in one round trip, without their
// bodies. A header listing (FETCH of BODY.PEEK[HEADER.FIELDS (...)] for a screenful of
// messages, what every mail client asks first) needs a few hundred octets of each message;
// reading each whole body for them was most of the listing's cost. It is apart from Store
// so that a backend can come without it: a caller without it, or for a message it skips,
// reads the body (BlobBatch, Mail.OpenBlob).
type HeaderBatch interface {
	// ReadHeaders calls fn once for each body of ids whose header section the store has,
	// in no particular order, with the body's first HeaderSize(body) octets. A body that is
	// unknown or freed is skipped without an error; the store may also skip any other
	// (one whose header it keeps no copy of). header is valid only during the call: fn
	// copies what it keeps. An error from fn stops the reading and is returned.
	ReadHeaders(ctx context.Context, ids []int64, fn func(id int64, header []byte) error) error
}

// HeaderSize returns the size of a whole message's header: up to and including the first
// empty line ("\r\n" or "\n" at the start of a line), or the whole message when it has
// none. It is message.HeaderSize (the root Part's HeaderSize of a parse), here so that a
// store can cut the header it keeps for HeaderBatch by the same rule.
func HeaderSize(msg []byte) int64 {
	for i := 0; i < len(msg); {
		switch {
		case msg[i] == '\n':
			return int64(i + 1)
		case msg[i] == '\r' && i+1 < len(msg) && msg[i+1] == '\n':
			return int64(i + 2)
		}
		j := bytes.IndexByte(msg[i:], '\n')
		if j < 0 {
			break
		}
		i += j + 1
	}
	return int64(len(msg))
}
