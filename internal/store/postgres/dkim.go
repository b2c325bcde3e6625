package postgres

import (
	"context"
	"fmt"

	"petrel/internal/store"
)

// DKIM keys live in the shared database, so that every node signs with the same keys. Two
// nodes that make a domain's first keys at the same moment (both start with it in their
// config) race on the primary key: INSERT ... ON CONFLICT DO NOTHING lets the first commit
// win and the second wait for it and do nothing, and the read after it, a statement of its
// own under READ COMMITTED, sees the winner's row. Both then sign with the winner's key.

var _ store.DKIMKeys = (*Store)(nil)

// PutDKIMKey implements store.DKIMKeys.
func (s *Store) PutDKIMKey(ctx context.Context, k store.DKIMKey) (store.DKIMKey, error) {
	if err := store.CheckDKIMName(k.Domain, k.Selector); err != nil {
		return store.DKIMKey{}, err
	}
	out := store.DKIMKey{Domain: k.Domain, Selector: k.Selector}
	err := s.write(ctx, func(t *tx) error {
		if _, err := t.exec(`INSERT INTO dkim_keys (domain, selector, private) VALUES (?, ?, ?) ON CONFLICT DO NOTHING`,
			k.Domain, k.Selector, k.Private); err != nil {
			return err
		}
		return t.queryRow(`SELECT private FROM dkim_keys WHERE domain = ? AND selector = ?`,
			[]any{k.Domain, k.Selector}, &out.Private)
	})
	if err != nil {
		return store.DKIMKey{}, fmt.Errorf("DKIM key %s of %s: %w", k.Selector, k.Domain, err)
	}
	return out, nil
}

// DKIMKeys implements store.DKIMKeys.
func (s *Store) DKIMKeys(ctx context.Context, domain string) ([]store.DKIMKey, error) {
	return s.dkimKeys(ctx, `SELECT domain, selector, private FROM dkim_keys WHERE domain = ? ORDER BY selector COLLATE "C"`, domain)
}

// AllDKIMKeys implements store.DKIMKeys.
func (s *Store) AllDKIMKeys(ctx context.Context) ([]store.DKIMKey, error) {
	return s.dkimKeys(ctx, `SELECT domain, selector, private FROM dkim_keys ORDER BY domain COLLATE "C", selector COLLATE "C"`)
}

func (s *Store) dkimKeys(ctx context.Context, q string, args ...any) ([]store.DKIMKey, error) {
	rows, err := s.query(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []store.DKIMKey
	for rows.Next() {
		var k store.DKIMKey
		if err := rows.Scan(&k.Domain, &k.Selector, &k.Private); err != nil {
			return nil, err
		}
		out = append(out, k)
	}
	return out, rows.Err()
}

// DeleteDKIMKey implements store.DKIMKeys.
func (s *Store) DeleteDKIMKey(ctx context.Context, domain, selector string) error {
	return s.write(ctx, func(t *tx) error {
		res, err := t.exec(`DELETE FROM dkim_keys WHERE domain = ? AND selector = ?`, domain, selector)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("DKIM key %s of %s: %w", selector, domain, store.ErrNotFound)
		}
		return nil
	})
}
