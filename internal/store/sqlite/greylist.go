package sqlite

import (
	"context"
	"strings"
	"time"

	"petrel/internal/store"
)

// Greylisting state: the greylist table, one row per key.

var _ store.Greylist = (*Store)(nil)

// GreyGet implements store.Greylist.
func (s *Store) GreyGet(ctx context.Context, keys []string) ([]store.GreyEntry, error) {
	if len(keys) == 0 {
		return nil, nil
	}
	args := make([]any, len(keys))
	for i, k := range keys {
		args[i] = k
	}
	rows, err := s.query(ctx, `SELECT key, first, last, passed FROM greylist WHERE key IN (?`+
		strings.Repeat(", ?", len(keys)-1)+`)`, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []store.GreyEntry
	for rows.Next() {
		var e store.GreyEntry
		var first, last int64
		if err := rows.Scan(&e.Key, &first, &last, &e.Passed); err != nil {
			return nil, err
		}
		e.First, e.Last = time.Unix(0, first), time.Unix(0, last)
		out = append(out, e)
	}
	return out, rows.Err()
}

// GreyPut implements store.Greylist.
func (s *Store) GreyPut(ctx context.Context, entries []store.GreyEntry) error {
	if len(entries) == 0 {
		return nil
	}
	return s.write(ctx, 0, func(t *tx) error {
		for _, e := range entries {
			if _, err := t.exec(`INSERT INTO greylist (key, first, last, passed) VALUES (?, ?, ?, ?)
				ON CONFLICT (key) DO UPDATE SET first = excluded.first, last = excluded.last, passed = excluded.passed`,
				e.Key, e.First.UnixNano(), e.Last.UnixNano(), e.Passed); err != nil {
				return err
			}
		}
		return nil
	})
}

// GreyExpire implements store.Greylist.
func (s *Store) GreyExpire(ctx context.Context, before time.Time) (int64, error) {
	var n int64
	err := s.write(ctx, 0, func(t *tx) error {
		res, err := t.exec(`DELETE FROM greylist WHERE last < ?`, before.UnixNano())
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	return n, err
}
