package sqlite

import (
	"context"
	"database/sql"
	"time"

	"petrel/internal/store"
)

// The keys of IMAP SORT and THREAD (store.Sorter) live in sort_keys, one row per body
// (rowid = blobs.id) written in the commit that stores the body, and deleted with it by a
// trigger. A SORT reads the mailbox's message rows joined to their keys in one statement:
// no body, no cached parse, no JSON. Bodies stored before the table existed have no row
// until the IMAP server hands their keys to SetSortKeys.

var _ store.Sorter = (*Store)(nil)

// insertSortKeys stores a body's keys, if the body exists and has none yet; nil keys (a
// queued message, a caller that computed none) leave no row.
func (t *tx) insertSortKeys(blobID int64, k *store.SortKeys) error {
	if k == nil {
		return nil
	}
	_, err := t.exec(`INSERT OR IGNORE INTO sort_keys (blob_id, keys) SELECT ?1, ?2
		WHERE EXISTS (SELECT 1 FROM blobs WHERE id = ?1)`, blobID, store.PackSortKeys(k))
	return err
}

// SortRows implements store.Sorter.
// Its cost follows the UIDs asked for: a SORT whose search found few messages reads only
// theirs (selectFiltered).
func (s *Store) SortRows(ctx context.Context, mailboxID int64, uids []store.UIDRange) ([]store.SortRow, error) {
	query, args := selectFiltered(`t.uid, t.blob_id, t.size, t.internal_date,
		(SELECT k.keys FROM sort_keys k WHERE k.blob_id = t.blob_id)`, "messages", mailboxID, store.Filter{UIDs: uids})
	rows, err := s.query(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []store.SortRow
	var internal int64
	var keys sql.RawBytes // not store.ScanSortRow: no copy of the keys before unpacking them
	for rows.Next() {
		var r store.SortRow
		if err := rows.Scan(&r.UID, &r.BlobID, &r.Size, &internal, &keys); err != nil {
			return nil, err
		}
		r.InternalDate = time.Unix(0, internal).UTC()
		if keys != nil {
			if r.Keys, err = store.UnpackSortKeys(keys); err != nil {
				// Computed again from the header by the caller, and not stored over.
				r.Keys = nil
			}
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if len(out) == 0 {
		return nil, s.mailboxExists(ctx, mailboxID)
	}
	return out, nil
}

// SetSortKeys implements store.Sorter. A body freed meanwhile gets no row (its blobs row is
// gone, or goes and takes the row with it).
func (s *Store) SetSortKeys(ctx context.Context, keys map[int64]*store.SortKeys) error {
	if len(keys) == 0 {
		return nil
	}
	return s.write(ctx, int64(len(keys))*256, func(t *tx) error {
		for id, k := range keys {
			if err := t.insertSortKeys(id, k); err != nil {
				return err
			}
		}
		return nil
	})
}
