package postgres

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/jackc/pgx/v5"

	"petrel/internal/store"
)

// The junk classifier's counts: the tables of migration 2, keyed as in the embedded store
// (store.JunkTokenID). A message's tokens travel as one bigint[] parameter, so a delivery
// reads exactly its tokens' rows in one statement whatever their number.
//
// A training locks the account's junk_accounts row first (the upsert of its counts), so
// the trainings of one account run one after the other on every node and the marker of
// junk_trained is read under that lock: a message is never counted twice.

var _ store.JunkStats = (*Store)(nil)

// junkTokenIDs returns the distinct row keys of tokens, sorted, and for each the indexes of
// the tokens that have it (more than one only when two tokens collide).
func junkTokenIDs(accountID int64, tokens []string) ([]int64, map[int64][]int) {
	idx := make(map[int64][]int, len(tokens))
	for i, t := range tokens {
		id := store.JunkTokenID(accountID, t)
		idx[id] = append(idx[id], i)
	}
	ids := make([]int64, 0, len(idx))
	for id := range idx {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids, idx
}

// JunkState implements store.JunkStats. One statement, one round trip per delivery: the
// account's row is the left side, so an account that never trained still answers (with
// zero counts) and an unknown one answers nothing.
func (s *Store) JunkState(ctx context.Context, accountID int64, tokens []string) (store.JunkState, error) {
	st := store.JunkState{Threshold: -1}
	ids, idx := junkTokenIDs(accountID, tokens)
	var threshold *float64
	var ham, spam, version *int64
	var rowIDs, hams, spams []int64
	err := s.queryRow(ctx, `SELECT a.ham, a.spam, a.threshold, a.version, t.ids, t.hams, t.spams
		FROM accounts acc LEFT JOIN junk_accounts a ON a.account_id = acc.id,
		LATERAL (SELECT array_agg(id ORDER BY id) ids, array_agg(ham ORDER BY id) hams,
			array_agg(spam ORDER BY id) spams FROM junk_tokens WHERE id = ANY(?2) AND a.account_id IS NOT NULL) t
		WHERE acc.id = ?1`, accountID, ids).
		Scan(&ham, &spam, &threshold, &version, &rowIDs, &hams, &spams)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return st, fmt.Errorf("account %d: %w", accountID, store.ErrNotFound)
	case err != nil:
		return st, err
	}
	if ham == nil {
		// Nothing trained yet: the tokens have no rows either.
		return st, nil
	}
	st.Trained.Ham, st.Trained.Spam, st.Version = *ham, *spam, *version
	if threshold != nil {
		st.Threshold = *threshold
	}
	if len(rowIDs) == 0 {
		return st, nil
	}
	st.Tokens = make(map[string]store.JunkCount, len(rowIDs))
	for i, id := range rowIDs {
		for _, k := range idx[id] {
			st.Tokens[tokens[k]] = store.JunkCount{Ham: hams[i], Spam: spams[i]}
		}
	}
	return st, nil
}

// TrainJunk implements store.JunkStats.
func (s *Store) TrainJunk(ctx context.Context, accountID int64, key []byte, tokens []string, junk bool) (bool, error) {
	ids, _ := junkTokenIDs(accountID, tokens)
	changed := false
	err := s.write(ctx, func(t *tx) error {
		changed = false
		if err := t.accountExists(accountID); err != nil {
			return err
		}
		// The lock of the account's counts (see above).
		if _, err := t.exec(`INSERT INTO junk_accounts (account_id) VALUES (?)
			ON CONFLICT (account_id) DO UPDATE SET account_id = excluded.account_id`, accountID); err != nil {
			return err
		}
		var was bool
		err := t.queryRow(`SELECT junk FROM junk_trained WHERE account_id = ? AND key = ?`, []any{accountID, key}, &was)
		switch {
		case err == nil && was == junk:
			return nil
		case err == nil:
			if err := t.countJunk(accountID, ids, was, -1); err != nil {
				return err
			}
		case !errors.Is(err, store.ErrNotFound):
			return err
		}
		if err := t.countJunk(accountID, ids, junk, 1); err != nil {
			return err
		}
		if _, err := t.exec(`INSERT INTO junk_trained (account_id, key, junk) VALUES (?, ?, ?)
			ON CONFLICT (account_id, key) DO UPDATE SET junk = excluded.junk`, accountID, key, junk); err != nil {
			return err
		}
		changed = true
		return nil
	})
	return changed, err
}

// countJunk adds n (1 or -1) to the junk or not-junk count of the account and of every
// token row of ids (sorted, distinct). Rows that fall to zero are deleted, so that an
// untrained token costs nothing.
func (t *tx) countJunk(accountID int64, ids []int64, junk bool, n int) error {
	ham, spam := n, 0
	if junk {
		ham, spam = 0, n
	}
	if _, err := t.exec(`UPDATE junk_accounts SET ham = greatest(ham + ?, 0), spam = greatest(spam + ?, 0),
		version = version + 1 WHERE account_id = ?`, ham, spam, accountID); err != nil {
		return err
	}
	if n > 0 {
		_, err := t.exec(`INSERT INTO junk_tokens (id, account_id, ham, spam)
			SELECT id, ?, ?, ? FROM unnest(?::bigint[]) AS id
			ON CONFLICT (id) DO UPDATE SET ham = junk_tokens.ham + excluded.ham, spam = junk_tokens.spam + excluded.spam`,
			accountID, ham, spam, ids)
		return err
	}
	if _, err := t.exec(`UPDATE junk_tokens SET ham = greatest(ham + ?, 0), spam = greatest(spam + ?, 0)
		WHERE id = ANY(?)`, ham, spam, ids); err != nil {
		return err
	}
	_, err := t.exec(`DELETE FROM junk_tokens WHERE ham = 0 AND spam = 0 AND id = ANY(?)`, ids)
	return err
}

// SetJunkThreshold implements store.JunkStats.
func (s *Store) SetJunkThreshold(ctx context.Context, accountID int64, threshold float64) error {
	var v any
	if threshold >= 0 {
		v = threshold
	}
	return s.write(ctx, func(t *tx) error {
		if err := t.accountExists(accountID); err != nil {
			return err
		}
		_, err := t.exec(`INSERT INTO junk_accounts (account_id, threshold) VALUES (?, ?)
			ON CONFLICT (account_id) DO UPDATE SET threshold = excluded.threshold`, accountID, v)
		return err
	})
}

var _ store.JunkVocabulary = (*Store)(nil)

// JunkTokens implements store.JunkVocabulary in one statement (one snapshot).
func (s *Store) JunkTokens(ctx context.Context, accountID int64, max int) (store.JunkState, map[int64]store.JunkCount, bool, error) {
	st := store.JunkState{Threshold: -1}
	var threshold *float64
	var rowIDs, hams, spams []int64
	err := s.queryRow(ctx, `SELECT a.ham, a.spam, a.threshold, a.version, t.ids, t.hams, t.spams
		FROM junk_accounts a, LATERAL (SELECT array_agg(id) ids, array_agg(ham) hams, array_agg(spam) spams
			FROM (SELECT id, ham, spam FROM junk_tokens WHERE account_id = ?1 LIMIT ?2) r) t
		WHERE a.account_id = ?1`, accountID, max+1).
		Scan(&st.Trained.Ham, &st.Trained.Spam, &threshold, &st.Version, &rowIDs, &hams, &spams)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		// Nothing trained yet: no token rows either.
		return st, map[int64]store.JunkCount{}, true, s.accountExists(ctx, accountID)
	case err != nil:
		return st, nil, false, err
	}
	if threshold != nil {
		st.Threshold = *threshold
	}
	if len(rowIDs) > max {
		return st, nil, false, nil
	}
	counts := make(map[int64]store.JunkCount, len(rowIDs))
	for i, id := range rowIDs {
		counts[id] = store.JunkCount{Ham: hams[i], Spam: spams[i]}
	}
	return st, counts, true, nil
}
