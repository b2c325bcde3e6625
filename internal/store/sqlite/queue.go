package sqlite

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"petrel/internal/store"
)

// The outbound queue (store.Queue). Entries and their recipients are rows; the body is a
// blob that no message refers to, listed as garbage in the commit that removes the entry so
// that the reclaim frees it like any other body. Due is served by the index on
// next_attempt; the number of open recipients is small next to the messages, so Due reads
// and filters them without more indexes.

var _ store.Queue = (*Store)(nil)

// enqueue writes an entry with its body and recipients inside a request.
func (t *tx) enqueue(o *store.Outbound, body []byte, now time.Time) (int64, error) {
	blobID, err := t.insertBlob(body, sha256.Sum256(body), o.MailFrom, now, nil, &store.ParsedMessage{})
	if err != nil {
		return 0, err
	}
	res, err := t.exec(`INSERT INTO queue (blob_id, mail_from, ret, envid, eight_bit, utf8_headers, created)
		VALUES (?, ?, ?, ?, ?, ?, ?)`, blobID, o.MailFrom, o.Ret, o.EnvID, o.EightBit, o.UTF8Headers, now.UnixNano())
	if err != nil {
		return 0, err
	}
	id, err := res.LastInsertId()
	if err != nil {
		return 0, err
	}
	t.queued = append(t.queued, queuedBody{id: blobID, body: body})
	next := o.NextAttempt
	if next.IsZero() {
		next = now
	}
	for _, r := range o.Recipients {
		if _, err := t.exec(`INSERT INTO queue_rcpts (queue_id, address, domain, notify, orcpt, orcpt_type, next_attempt)
			VALUES (?, ?, ?, ?, ?, ?, ?)`, id, r.Address, strings.ToLower(r.Domain), r.Notify, r.ORcpt, r.ORcptType, next.UnixNano()); err != nil {
			return 0, err
		}
	}
	return id, nil
}

// Enqueue implements store.Queue.
func (s *Store) Enqueue(ctx context.Context, o *store.Outbound) (int64, error) {
	body, err := store.ReadOutbound(o)
	if err != nil {
		return 0, err
	}
	var id int64
	err = s.write(ctx, int64(len(body)), func(t *tx) error {
		id, err = t.enqueue(o, body, time.Now())
		return err
	})
	return id, err
}

// Due implements store.Queue. All domains and one domain are two statements, and the
// limit is part of their text: with a bound LIMIT and an "either any domain or this one"
// term in one statement, SQLite prepared it again on every call (sqlite3Reprepare was half
// of Due's CPU under the relay load); the queue uses two limits, so two cached statements.
func (s *Store) Due(ctx context.Context, now time.Time, domain string, limit int) ([]store.QueueGroup, error) {
	const head = `SELECT r.queue_id, r.domain, min(r.next_attempt) FROM queue_rcpts r
		JOIN queue q ON q.id = r.queue_id
		WHERE r.next_attempt <= ?1 AND r.lease_until <= ?1 AND q.held = 0`
	tail := ` GROUP BY r.queue_id, r.domain ORDER BY 3, 1 LIMIT ` + strconv.Itoa(max(limit, 0))
	var rows *sql.Rows
	var err error
	if domain == "" {
		rows, err = s.query(ctx, head+tail, now.UnixNano())
	} else {
		rows, err = s.query(ctx, head+` AND r.domain = ?2`+tail, now.UnixNano(), strings.ToLower(domain))
	}
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []store.QueueGroup
	for rows.Next() {
		var g store.QueueGroup
		var due int64
		if err := rows.Scan(&g.EntryID, &g.Domain, &due); err != nil {
			return nil, err
		}
		g.Due = time.Unix(0, due)
		out = append(out, g)
	}
	return out, rows.Err()
}

// NextDue implements store.Queue.
func (s *Store) NextDue(ctx context.Context) (time.Time, error) {
	var next sql.NullInt64
	err := s.queryRow(ctx, `SELECT min(max(r.next_attempt, r.lease_until)) FROM queue_rcpts r
		JOIN queue q ON q.id = r.queue_id WHERE q.held = 0`).Scan(&next)
	if err != nil || !next.Valid {
		return time.Time{}, err
	}
	return time.Unix(0, next.Int64), nil
}

// Claim implements store.Queue.
func (s *Store) Claim(ctx context.Context, g store.QueueGroup, now, until time.Time) (store.QueueEntry, error) {
	var e store.QueueEntry
	err := s.write(ctx, 0, func(t *tx) error {
		var err error
		e, err = t.entry(g.EntryID)
		if err != nil {
			return err
		}
		if e.Held {
			return store.ErrNotFound
		}
		var claimed []store.QueueRecipient
		for _, r := range e.Recipients {
			if r.Domain == g.Domain && !r.NextAttempt.After(now) && !r.LeaseUntil.After(now) {
				if _, err := t.exec(`UPDATE queue_rcpts SET lease_until = ? WHERE id = ?`, until.UnixNano(), r.ID); err != nil {
					return err
				}
				r.LeaseUntil = until
				claimed = append(claimed, r)
			}
		}
		if len(claimed) == 0 {
			return store.ErrNotFound
		}
		e.Recipients = claimed
		return nil
	})
	return e, err
}

// Record implements store.Queue.
func (s *Store) Record(ctx context.Context, entryID int64, updates []store.QueueUpdate) error {
	return s.write(ctx, 0, func(t *tx) error {
		for _, u := range updates {
			var err error
			if u.Done {
				_, err = t.exec(`DELETE FROM queue_rcpts WHERE id = ? AND queue_id = ?`, u.RecipientID, entryID)
			} else {
				_, err = t.exec(`UPDATE queue_rcpts SET attempts = attempts + 1, next_attempt = ?, last_error = ?,
					warned = ?, lease_until = 0 WHERE id = ? AND queue_id = ?`,
					u.NextAttempt.UnixNano(), u.LastError, u.Warned, u.RecipientID, entryID)
			}
			if err != nil {
				return err
			}
		}
		return t.removeIfEmpty(entryID)
	})
}

// removeIfEmpty removes an entry without recipients and lists its body as garbage.
func (t *tx) removeIfEmpty(entryID int64) error {
	var blobID int64
	err := t.queryRow(`DELETE FROM queue WHERE id = ?1 AND NOT EXISTS (SELECT 1 FROM queue_rcpts WHERE queue_id = ?1)
		RETURNING blob_id`, []any{entryID}, &blobID)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	t.dequeue = append(t.dequeue, blobID)
	return t.markGarbage([]int64{blobID})
}

// ReleaseLeases implements store.Queue.
func (s *Store) ReleaseLeases(ctx context.Context) error {
	return s.write(ctx, 0, func(t *tx) error {
		_, err := t.exec(`UPDATE queue_rcpts SET lease_until = 0 WHERE lease_until != 0`)
		return err
	})
}

const entryColumns = `id, blob_id, mail_from, ret, envid, eight_bit, utf8_headers, created, held,
	(SELECT size FROM blobs WHERE blobs.id = queue.blob_id)`

const rcptColumns = `id, queue_id, address, domain, notify, orcpt, orcpt_type, attempts, next_attempt, lease_until,
	last_error, warned, bounce`

type scanner interface{ Scan(...any) error }

func scanEntry(sc scanner) (store.QueueEntry, error) {
	var e store.QueueEntry
	var created int64
	err := sc.Scan(&e.ID, &e.BlobID, &e.MailFrom, &e.Ret, &e.EnvID, &e.EightBit, &e.UTF8Headers, &created, &e.Held, &e.Size)
	e.Created = time.Unix(0, created)
	return e, err
}

func scanRecipient(sc scanner) (int64, store.QueueRecipient, error) {
	var r store.QueueRecipient
	var entry, next, lease int64
	err := sc.Scan(&r.ID, &entry, &r.Address, &r.Domain, &r.Notify, &r.ORcpt, &r.ORcptType, &r.Attempts, &next, &lease,
		&r.LastError, &r.Warned, &r.Bounce)
	r.NextAttempt = time.Unix(0, next)
	if lease != 0 {
		r.LeaseUntil = time.Unix(0, lease)
	}
	return entry, r, err
}

// entry reads one entry with its recipients inside a request.
func (t *tx) entry(id int64) (store.QueueEntry, error) {
	st, err := t.c.stmt(`SELECT ` + entryColumns + ` FROM queue WHERE id = ?`)
	if err != nil {
		return store.QueueEntry{}, err
	}
	e, err := scanEntry(st.QueryRowContext(t.c.ctx, id))
	if err != nil {
		return store.QueueEntry{}, notFound(err)
	}
	rows, err := t.query(`SELECT `+rcptColumns+` FROM queue_rcpts WHERE queue_id = ? ORDER BY id`, id)
	if err != nil {
		return store.QueueEntry{}, err
	}
	defer rows.Close()
	for rows.Next() {
		_, r, err := scanRecipient(rows)
		if err != nil {
			return store.QueueEntry{}, err
		}
		e.Recipients = append(e.Recipients, r)
	}
	return e, rows.Err()
}

// Entries implements store.Queue.
func (s *Store) Entries(ctx context.Context) ([]store.QueueEntry, error) {
	return s.entries(ctx, 0)
}

// Entry implements store.Queue.
func (s *Store) Entry(ctx context.Context, id int64) (store.QueueEntry, error) {
	es, err := s.entries(ctx, id)
	if err != nil {
		return store.QueueEntry{}, err
	}
	if len(es) == 0 {
		return store.QueueEntry{}, fmt.Errorf("queue entry %d: %w", id, store.ErrNotFound)
	}
	return es[0], nil
}

// entries reads one entry (id) or all (id 0), in one read transaction so that entries and
// recipients agree.
func (s *Store) entries(ctx context.Context, id int64) ([]store.QueueEntry, error) {
	tx, err := s.rdb.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	rows, err := tx.QueryContext(ctx, `SELECT `+entryColumns+` FROM queue WHERE ?1 = 0 OR id = ?1 ORDER BY id`, id)
	if err != nil {
		return nil, err
	}
	var out []store.QueueEntry
	index := map[int64]int{}
	for rows.Next() {
		e, err := scanEntry(rows)
		if err != nil {
			rows.Close()
			return nil, err
		}
		index[e.ID] = len(out)
		out = append(out, e)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	rows, err = tx.QueryContext(ctx, `SELECT `+rcptColumns+` FROM queue_rcpts WHERE ?1 = 0 OR queue_id = ?1 ORDER BY id`, id)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		entry, r, err := scanRecipient(rows)
		if err != nil {
			return nil, err
		}
		if i, ok := index[entry]; ok {
			out[i].Recipients = append(out[i].Recipients, r)
		}
	}
	return out, rows.Err()
}

// change runs one statement on an entry (id 0: every entry where allowed) and reports a
// missing entry.
func (s *Store) changeEntry(ctx context.Context, id int64, fn func(t *tx) error) error {
	return s.write(ctx, 0, func(t *tx) error {
		if id != 0 {
			var one int
			if err := t.queryRow(`SELECT 1 FROM queue WHERE id = ?`, []any{id}, &one); err != nil {
				return fmt.Errorf("queue entry %d: %w", id, err)
			}
		}
		return fn(t)
	})
}

// Retry implements store.Queue.
func (s *Store) Retry(ctx context.Context, id int64, now time.Time) error {
	return s.changeEntry(ctx, id, func(t *tx) error {
		_, err := t.exec(`UPDATE queue_rcpts SET next_attempt = min(next_attempt, ?1) WHERE ?2 = 0 OR queue_id = ?2`, now.UnixNano(), id)
		return err
	})
}

// Hold implements store.Queue.
func (s *Store) Hold(ctx context.Context, id int64, held bool) error {
	if id == 0 {
		return fmt.Errorf("store: hold needs an entry: %w", store.ErrInvalid)
	}
	return s.changeEntry(ctx, id, func(t *tx) error {
		_, err := t.exec(`UPDATE queue SET held = ? WHERE id = ?`, held, id)
		return err
	})
}

// Delete implements store.Queue.
func (s *Store) Delete(ctx context.Context, id int64) error {
	if id == 0 {
		return fmt.Errorf("store: delete needs an entry: %w", store.ErrInvalid)
	}
	return s.changeEntry(ctx, id, func(t *tx) error {
		if _, err := t.exec(`DELETE FROM queue_rcpts WHERE queue_id = ?`, id); err != nil {
			return err
		}
		return t.removeIfEmpty(id)
	})
}

// Bounce implements store.Queue.
func (s *Store) Bounce(ctx context.Context, id int64, now time.Time) error {
	if id == 0 {
		return fmt.Errorf("store: bounce needs an entry: %w", store.ErrInvalid)
	}
	return s.changeEntry(ctx, id, func(t *tx) error {
		_, err := t.exec(`UPDATE queue_rcpts SET bounce = 1, next_attempt = min(next_attempt, ?) WHERE queue_id = ?`, now.UnixNano(), id)
		return err
	})
}

// MTASTSPolicy implements store.Queue.
func (s *Store) MTASTSPolicy(ctx context.Context, domain string) ([]byte, error) {
	var p []byte
	if err := s.queryRow(ctx, `SELECT policy FROM mta_sts WHERE domain = ?`, strings.ToLower(domain)).Scan(&p); err != nil {
		return nil, notFound(err)
	}
	return p, nil
}

// SetMTASTSPolicy implements store.Queue.
func (s *Store) SetMTASTSPolicy(ctx context.Context, domain string, policy []byte) error {
	return s.write(ctx, int64(len(policy)), func(t *tx) error {
		_, err := t.exec(`INSERT INTO mta_sts (domain, policy) VALUES (?, ?) ON CONFLICT (domain) DO UPDATE SET policy = excluded.policy`,
			strings.ToLower(domain), policy)
		return err
	})
}
