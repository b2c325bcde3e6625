package sqlite

import (
	"context"
	"database/sql"
	"encoding/binary"
	"errors"
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

// Flags of the first octet of packed keys.
const (
	keysReply   = 1 << 0 // SortKeys.Reply
	keysHasDate = 1 << 1 // a varint of the Date in unix nanoseconds follows
)

// packSortKeys encodes keys for the sort_keys row: a flags octet, the date if any, then
// Subject, From, To, Cc, DisplayFrom, DisplayTo, MessageID and the References joined by
// spaces (message IDs hold none), each a uvarint length and its octets.
func packSortKeys(k *store.SortKeys) []byte {
	refs := strings.Join(k.References, " ")
	fields := [...]string{k.Subject, k.From, k.To, k.Cc, k.DisplayFrom, k.DisplayTo, k.MessageID, refs}
	n := 1 + binary.MaxVarintLen64
	for _, f := range fields {
		n += binary.MaxVarintLen64 + len(f)
	}
	b := make([]byte, 1, n)
	if k.Reply {
		b[0] |= keysReply
	}
	if !k.Date.IsZero() {
		b[0] |= keysHasDate
		b = binary.AppendVarint(b, k.Date.UnixNano())
	}
	for _, f := range fields {
		b = binary.AppendUvarint(b, uint64(len(f)))
		b = append(b, f...)
	}
	return b
}

var errBadKeys = errors.New("store: damaged sort keys")

// unpackSortKeys decodes packSortKeys's encoding. The strings share one allocation.
func unpackSortKeys(raw []byte) (*store.SortKeys, error) {
	if len(raw) == 0 {
		return nil, errBadKeys
	}
	s := string(raw)
	k := &store.SortKeys{Reply: s[0]&keysReply != 0}
	pos := 1
	if s[0]&keysHasDate != 0 {
		d, n := binary.Varint(raw[pos:])
		if n <= 0 {
			return nil, errBadKeys
		}
		k.Date, pos = time.Unix(0, d).UTC(), pos+n
	}
	var refs string
	for _, f := range [...]*string{&k.Subject, &k.From, &k.To, &k.Cc, &k.DisplayFrom, &k.DisplayTo, &k.MessageID, &refs} {
		l, n := binary.Uvarint(raw[pos:])
		if n <= 0 || uint64(len(s)-pos-n) < l {
			return nil, errBadKeys
		}
		pos += n
		*f, pos = s[pos:pos+int(l)], pos+int(l)
	}
	if refs != "" {
		k.References = strings.Split(refs, " ")
	}
	return k, nil
}

// insertSortKeys stores a body's keys, if the body exists and has none yet; nil keys (a
// queued message, a caller that computed none) leave no row.
func (t *tx) insertSortKeys(blobID int64, k *store.SortKeys) error {
	if k == nil {
		return nil
	}
	_, err := t.exec(`INSERT OR IGNORE INTO sort_keys (blob_id, keys) SELECT ?1, ?2
		WHERE EXISTS (SELECT 1 FROM blobs WHERE id = ?1)`, blobID, packSortKeys(k))
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
	var keys sql.RawBytes
	for rows.Next() {
		var r store.SortRow
		if err := rows.Scan(&r.UID, &r.BlobID, &r.Size, &internal, &keys); err != nil {
			return nil, err
		}
		r.InternalDate = time.Unix(0, internal).UTC()
		if keys != nil {
			if r.Keys, err = unpackSortKeys(keys); err != nil {
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
