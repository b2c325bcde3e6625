package postgres

import (
	"context"
	"errors"
	"strconv"
	"strings"

	"petrel/internal/store"
)

// The IMAP server's bulk reads (store.BlobBatch, store.FlagSearch): one statement for what
// would otherwise be a statement per message, which on PostgreSQL is also a round trip per
// message.

var (
	_ store.BlobBatch   = (*Store)(nil)
	_ store.FlagSearch  = (*Store)(nil)
	_ store.FlagFirst   = (*Store)(nil)
	_ store.HeaderBatch = (*Store)(nil)
)

// ReadHeaders implements store.HeaderBatch by reading the bodies (ReadBlobs) and handing
// over their headers: PostgreSQL keeps no header copy yet, and a body of a few KB is one
// TOAST value either way. It serves every body ReadBlobs serves up to a header listing's
// size bound (maxHeaderBody); the rest are left to the caller's OpenBlob.
func (s *Store) ReadHeaders(ctx context.Context, ids []int64, fn func(id int64, header []byte) error) error {
	return s.ReadBlobs(ctx, ids, maxHeaderBody, func(id int64, body []byte) error {
		return fn(id, body[:store.HeaderSize(body)])
	})
}

// maxHeaderBody bounds the bodies ReadHeaders reads whole for their header.
const maxHeaderBody = 256 << 10

// ReadBlobs implements store.BlobBatch: one query for all of ids. A spliced copy (fields.go)
// is left to OpenBlob, as the embedded store leaves it: its bytes are blob_data's with its
// fields inside, which OpenBlob puts together. An expunged body has no blobs row any more
// (freeBlobs deletes it in the expunge's transaction), so it is skipped by the join.
//
// The bodies are read from the rows' raw values: in the binary format, a bytea is its
// octets, so the body is handed to fn without a copy by pgx.
func (s *Store) ReadBlobs(ctx context.Context, ids []int64, maxSize int64, fn func(id int64, body []byte) error) error {
	if len(ids) == 0 {
		return nil
	}
	rows, err := s.query(ctx, `SELECT b.id, d.data FROM blobs b JOIN blob_data d ON d.digest = b.digest
		WHERE b.id = ANY(?) AND b.size <= ? AND b.fields IS NULL`, ids, maxSize)
	if err != nil {
		return err
	}
	defer rows.Close()
	binary := rows.FieldDescriptions()[1].Format == 1
	for rows.Next() {
		var id int64
		var body []byte
		if binary {
			err = rows.Scan(&id, nil)
			body = rows.RawValues()[1]
		} else {
			err = rows.Scan(&id, &body)
		}
		if err != nil {
			return err
		}
		if err := fn(id, body); err != nil {
			return err
		}
	}
	return rows.Err()
}

// UIDsByFlag implements store.FlagSearch: the rows of the (mailbox_id, uid) index range
// are checked in the database, and only their UIDs come back. Flags are stored sorted and
// separated by single spaces, so a flag is a word of ' ' || flags || ' '; lower() makes the
// comparison blind to case (flags and keywords are ASCII atoms, RFC 3501 §9).
func (s *Store) UIDsByFlag(ctx context.Context, mailboxID int64, ranges []store.UIDRange, flag string, has bool) ([]uint32, error) {
	query, args, err := flagQuery(mailboxID, ranges, flag, has)
	if err != nil {
		return nil, err
	}
	return s.mailboxUIDs(ctx, mailboxID, query, args...)
}

// FirstUIDByFlag implements store.FlagFirst: UIDsByFlag's query, stopped at its first row.
func (s *Store) FirstUIDByFlag(ctx context.Context, mailboxID int64, flag string, has bool) (uint32, error) {
	query, args, err := flagQuery(mailboxID, nil, flag, has)
	if err != nil {
		return 0, err
	}
	uids, err := s.mailboxUIDs(ctx, mailboxID, query+` LIMIT 1`, args...)
	if err != nil || len(uids) == 0 {
		return 0, err
	}
	return uids[0], nil
}

// flagQuery is the query of UIDsByFlag, in UID order.
func flagQuery(mailboxID int64, ranges []store.UIDRange, flag string, has bool) (string, []any, error) {
	query, args := selectFiltered(`t.uid`, "messages", mailboxID, store.Filter{UIDs: ranges})
	if flag == "" {
		return query, args, nil
	}
	n := len(args)
	body, ok := strings.CutSuffix(query, " ORDER BY t.uid")
	if !ok {
		return "", nil, errors.New("store: UIDsByFlag: selectFiltered's query changed shape")
	}
	query = body + ` AND (position(lower(' ' || ?` + strconv.Itoa(n+1) + `::text || ' ') IN lower(' ' || t.flags || ' ')) > 0) = ?` +
		strconv.Itoa(n+2) + `::boolean ORDER BY t.uid`
	return query, append(args, flag, has), nil
}
