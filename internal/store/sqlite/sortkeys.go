package sqlite

import (
	"context"
	"database/sql"
	"strings"
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
	_, err := t.exec(`INSERT OR IGNORE INTO sort_keys (blob_id, date, subject, reply, from_key, to_key, cc_key,
		display_from, display_to, message_id, refs) SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11
		WHERE EXISTS (SELECT 1 FROM blobs WHERE id = ?1)`,
		blobID, nullTime(k.Date), k.Subject, k.Reply, k.From, k.To, k.Cc, k.DisplayFrom, k.DisplayTo,
		k.MessageID, strings.Join(k.References, " "))
	return err
}

// nullTime is a time in unix nanoseconds, or NULL for the zero time.
func nullTime(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UnixNano()
}

// SortRows implements store.Sorter.
func (s *Store) SortRows(ctx context.Context, mailboxID int64) ([]store.SortRow, error) {
	rows, err := s.query(ctx, `SELECT m.uid, m.blob_id, m.size, m.internal_date, k.blob_id, k.date, k.subject,
		k.reply, k.from_key, k.to_key, k.cc_key, k.display_from, k.display_to, k.message_id, k.refs
		FROM messages m LEFT JOIN sort_keys k ON k.blob_id = m.blob_id
		WHERE m.mailbox_id = ? ORDER BY m.uid`, mailboxID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []store.SortRow
	// The same address or subject comes back in many rows of a mailbox: one string each.
	intern := map[string]string{}
	str := func(ns sql.NullString) string {
		if v, ok := intern[ns.String]; ok {
			return v
		}
		intern[ns.String] = ns.String
		return ns.String
	}
	var (
		internal          int64
		keyed, date       sql.NullInt64
		reply             sql.NullBool
		subject, from, to sql.NullString
		cc, dFrom, dTo    sql.NullString
		messageID, refs   sql.NullString
	)
	for rows.Next() {
		var r store.SortRow
		if err := rows.Scan(&r.UID, &r.BlobID, &r.Size, &internal, &keyed, &date, &subject, &reply,
			&from, &to, &cc, &dFrom, &dTo, &messageID, &refs); err != nil {
			return nil, err
		}
		r.InternalDate = time.Unix(0, internal).UTC()
		if keyed.Valid {
			k := &store.SortKeys{Subject: str(subject), Reply: reply.Bool, From: str(from), To: str(to),
				Cc: str(cc), DisplayFrom: str(dFrom), DisplayTo: str(dTo), MessageID: messageID.String}
			if date.Valid {
				k.Date = time.Unix(0, date.Int64).UTC()
			}
			if refs.String != "" {
				k.References = strings.Fields(refs.String)
			}
			r.Keys = k
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
