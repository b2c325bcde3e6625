package postgres

import (
	"context"
	"slices"

	"petrel/internal/store"
)

// The keys of IMAP SORT and THREAD (store.Sorter) live in the body's row (blobs.sort_keys,
// migration 14; a table of their own before), written by the statement that stores the
// body (blobInsert) and gone with it. A SORT reads the mailbox's message rows with their
// keys in one statement. Bodies stored before the keys existed, or copied from another
// store, have none until the IMAP server hands their keys to SetSortKeys.

var _ store.Sorter = (*Store)(nil)

// SortRows implements store.Sorter.
func (s *Store) SortRows(ctx context.Context, mailboxID int64, uids []store.UIDRange) ([]store.SortRow, error) {
	query, args := selectFiltered(`t.uid, t.blob_id, t.size, t.internal_date,
		(SELECT b.sort_keys FROM blobs b WHERE b.id = t.blob_id)`, "messages", mailboxID, store.Filter{UIDs: uids})
	rows, err := s.query(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []store.SortRow
	for rows.Next() {
		r, err := store.ScanSortRow(rows.Scan)
		if err != nil {
			return nil, err
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

// SetSortKeys implements store.Sorter. The bodies' rows are locked first, in ID order like
// freeBlobs, so that two sessions setting keys of the same bodies cannot deadlock; a body
// already gone gets nothing, and one that has keys keeps them.
func (s *Store) SetSortKeys(ctx context.Context, keys map[int64]*store.SortKeys) error {
	ids := make([]int64, 0, len(keys))
	for id, k := range keys {
		if k != nil {
			ids = append(ids, id)
		}
	}
	if len(ids) == 0 {
		return nil
	}
	slices.Sort(ids)
	packed := make([][]byte, len(ids))
	for i, id := range ids {
		packed[i] = store.PackSortKeys(keys[id])
	}
	return s.write(ctx, func(t *tx) error {
		if _, err := t.exec(`SELECT id FROM blobs WHERE id = ANY(?) ORDER BY id FOR NO KEY UPDATE`, ids); err != nil {
			return err
		}
		_, err := t.exec(`UPDATE blobs b SET sort_keys = k.keys FROM unnest(?1::bigint[], ?2::bytea[]) k(id, keys)
			WHERE b.id = k.id AND b.sort_keys IS NULL`, ids, packed)
		return err
	})
}
