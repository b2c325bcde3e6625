package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"

	"petrel/internal/store"
)

// The junk classifier's counts: the tables of the junk migration. A message's tokens travel
// as one JSON array parameter (json_each), so each statement is prepared once whatever the
// number of tokens, and a delivery reads exactly its tokens' rows by primary key.

var _ store.JunkStats = (*Store)(nil)

// JunkState implements store.JunkStats.
func (s *Store) JunkState(ctx context.Context, accountID int64, tokens []string) (store.JunkState, error) {
	st := store.JunkState{Threshold: -1}
	var threshold sql.NullFloat64
	err := s.queryRow(ctx, `SELECT ham, spam, threshold FROM junk_accounts WHERE account_id = ?`, accountID).
		Scan(&st.Trained.Ham, &st.Trained.Spam, &threshold)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		// Nothing trained yet: the tokens have no rows either.
		return st, s.accountExists(ctx, accountID)
	case err != nil:
		return st, err
	}
	if threshold.Valid {
		st.Threshold = threshold.Float64
	}
	if len(tokens) == 0 {
		return st, nil
	}
	list, err := json.Marshal(tokens)
	if err != nil {
		return st, err
	}
	rows, err := s.query(ctx, `SELECT token, ham, spam FROM junk_tokens
		WHERE account_id = ? AND token IN (SELECT value FROM json_each(?))`, accountID, string(list))
	if err != nil {
		return st, err
	}
	defer rows.Close()
	st.Tokens = make(map[string]store.JunkCount, len(tokens)/2)
	for rows.Next() {
		var tok string
		var c store.JunkCount
		if err := rows.Scan(&tok, &c.Ham, &c.Spam); err != nil {
			return st, err
		}
		st.Tokens[tok] = c
	}
	return st, rows.Err()
}

// TrainJunk implements store.JunkStats: the marker, the message counts and every token row
// change in one write request.
func (s *Store) TrainJunk(ctx context.Context, accountID int64, key []byte, tokens []string, junk bool) (bool, error) {
	list, err := json.Marshal(tokens)
	if err != nil {
		return false, err
	}
	changed := false
	err = s.write(ctx, 0, func(t *tx) error {
		changed = false
		if err := t.accountExists(accountID); err != nil {
			return err
		}
		var was bool
		err := t.queryRow(`SELECT junk FROM junk_trained WHERE account_id = ? AND key = ?`, []any{accountID, key}, &was)
		switch {
		case err == nil && was == junk:
			return nil
		case err == nil:
			if err := t.countJunk(accountID, string(list), was, -1); err != nil {
				return err
			}
		case !errors.Is(err, store.ErrNotFound):
			return err
		}
		if err := t.countJunk(accountID, string(list), junk, 1); err != nil {
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

// countJunk adds n (1 or -1) to the junk or not-junk count of the account and of every token
// in the JSON array list. Rows that fall to zero are deleted, so that an untrained token
// costs nothing.
func (t *tx) countJunk(accountID int64, list string, junk bool, n int) error {
	ham, spam := n, 0
	if junk {
		ham, spam = 0, n
	}
	if _, err := t.exec(`INSERT INTO junk_accounts (account_id, ham, spam) VALUES (?, max(?, 0), max(?, 0))
		ON CONFLICT (account_id) DO UPDATE SET ham = max(ham + ?, 0), spam = max(spam + ?, 0)`,
		accountID, ham, spam, ham, spam); err != nil {
		return fmt.Errorf("junk counts: %w", err)
	}
	if n > 0 {
		_, err := t.exec(`INSERT INTO junk_tokens (account_id, token, ham, spam)
			SELECT ?, value, ?, ? FROM json_each(?) WHERE true
			ON CONFLICT (account_id, token) DO UPDATE SET ham = ham + excluded.ham, spam = spam + excluded.spam`,
			accountID, ham, spam, list)
		return err
	}
	if _, err := t.exec(`UPDATE junk_tokens SET ham = max(ham + ?, 0), spam = max(spam + ?, 0)
		WHERE account_id = ? AND token IN (SELECT value FROM json_each(?))`, ham, spam, accountID, list); err != nil {
		return err
	}
	_, err := t.exec(`DELETE FROM junk_tokens WHERE account_id = ? AND ham = 0 AND spam = 0
		AND token IN (SELECT value FROM json_each(?))`, accountID, list)
	return err
}

// SetJunkThreshold implements store.JunkStats.
func (s *Store) SetJunkThreshold(ctx context.Context, accountID int64, threshold float64) error {
	var v any
	if threshold >= 0 {
		v = threshold
	}
	return s.write(ctx, 0, func(t *tx) error {
		if err := t.accountExists(accountID); err != nil {
			return err
		}
		_, err := t.exec(`INSERT INTO junk_accounts (account_id, threshold) VALUES (?, ?)
			ON CONFLICT (account_id) DO UPDATE SET threshold = excluded.threshold`, accountID, v)
		return err
	})
}
