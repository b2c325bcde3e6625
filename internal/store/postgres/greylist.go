package postgres

import (
	"context"
	"slices"
	"strings"
	"time"

	"petrel/internal/store"
)

// Greylisting state: the greylist table of migration 2, one row per key, shared by every
// node so that a client retrying through another node is recognized.

var _ store.Greylist = (*Store)(nil)

// GreyGet implements store.Greylist.
func (s *Store) GreyGet(ctx context.Context, keys []string) ([]store.GreyEntry, error) {
	if len(keys) == 0 {
		return nil, nil
	}
	rows, err := s.query(ctx, `SELECT key, first, last, passed FROM greylist WHERE key = ANY(?)`, keys)
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

// GreyPut implements store.Greylist. The rows are written in key order, so that two nodes
// writing overlapping keys lock them in the same order.
func (s *Store) GreyPut(ctx context.Context, entries []store.GreyEntry) error {
	if len(entries) == 0 {
		return nil
	}
	sorted := slices.SortedFunc(slices.Values(entries), func(a, b store.GreyEntry) int { return strings.Compare(a.Key, b.Key) })
	return s.write(ctx, func(t *tx) error {
		for _, e := range sorted {
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
	err := s.write(ctx, func(t *tx) error {
		res, err := t.exec(`DELETE FROM greylist WHERE last < ?`, before.UnixNano())
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	return n, err
}
