package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"petrel/internal/store"
)

// The junk classifier's counts: the tables of the junk migration. A message's tokens
// travel as one JSON array of row keys (json_each), so each statement is prepared once
// whatever the number of tokens, and a delivery reads exactly its tokens' rows: one
// query, one integer probe per token.

var _ store.JunkStats = (*Store)(nil)

// tokenIDs returns the keys of tokens as a JSON array.
func tokenIDs(accountID int64, tokens []string) string {
	b := make([]byte, 0, 2+20*len(tokens))
	b = append(b, '[')
	for i, t := range tokens {
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendInt(b, store.JunkTokenID(accountID, t), 10)
	}
	return string(append(b, ']'))
}

// JunkState implements store.JunkStats.
func (s *Store) JunkState(ctx context.Context, accountID int64, tokens []string) (store.JunkState, error) {
	st := store.JunkState{Threshold: -1}
	var threshold sql.NullFloat64
	var packed sql.NullString
	// CROSS JOIN keeps json_each as the outer loop (SQLite does not reorder it), so each
	// token is one probe instead of a scan; the rows come back as one string (the index
	// into tokens and the counts), since a row through database/sql costs more than its
	// probe.
	err := s.queryRow(ctx, `SELECT a.ham, a.spam, a.threshold, a.version,
		(SELECT group_concat(j.key || ' ' || t.ham || ' ' || t.spam, ' ')
			FROM json_each(?) AS j CROSS JOIN junk_tokens AS t ON t.id = j.value)
		FROM junk_accounts AS a WHERE a.account_id = ?`, tokenIDs(accountID, tokens), accountID).
		Scan(&st.Trained.Ham, &st.Trained.Spam, &threshold, &st.Version, &packed)
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
	if !packed.Valid {
		return st, nil
	}
	f := strings.Fields(packed.String)
	st.Tokens = make(map[string]store.JunkCount, len(f)/3)
	for i := 0; i+2 < len(f); i += 3 {
		k, err1 := strconv.Atoi(f[i])
		ham, err2 := strconv.ParseInt(f[i+1], 10, 64)
		spam, err3 := strconv.ParseInt(f[i+2], 10, 64)
		if err1 != nil || err2 != nil || err3 != nil || k < 0 || k >= len(tokens) {
			return st, fmt.Errorf("junk counts: bad row %q", f[i:i+3])
		}
		c := st.Tokens[tokens[k]]
		st.Tokens[tokens[k]] = store.JunkCount{Ham: c.Ham + ham, Spam: c.Spam + spam}
	}
	return st, nil
}

// TrainJunk implements store.JunkStats: the marker, the message counts and every token row
// change in one write request.
func (s *Store) TrainJunk(ctx context.Context, accountID int64, key []byte, tokens []string, junk bool) (bool, error) {
	ids := tokenIDs(accountID, tokens)
	changed := false
	err := s.write(ctx, 0, func(t *tx) error {
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

// countJunk adds n (1 or -1) to the junk or not-junk count of the account and of every token
// row in the JSON array ids. Rows that fall to zero are deleted, so that an untrained
// token costs nothing.
func (t *tx) countJunk(accountID int64, ids string, junk bool, n int) error {
	ham, spam := n, 0
	if junk {
		ham, spam = 0, n
	}
	if _, err := t.exec(`INSERT INTO junk_accounts (account_id, ham, spam) VALUES (?, max(?, 0), max(?, 0))
		ON CONFLICT (account_id) DO UPDATE SET ham = max(ham + ?, 0), spam = max(spam + ?, 0), version = version + 1`,
		accountID, ham, spam, ham, spam); err != nil {
		return fmt.Errorf("junk counts: %w", err)
	}
	if n > 0 {
		_, err := t.exec(`INSERT INTO junk_tokens (id, account_id, ham, spam)
			SELECT value, ?, ?, ? FROM json_each(?) WHERE true
			ON CONFLICT (id) DO UPDATE SET ham = ham + excluded.ham, spam = spam + excluded.spam`,
			accountID, ham, spam, ids)
		return err
	}
	if _, err := t.exec(`UPDATE junk_tokens SET ham = max(ham + ?, 0), spam = max(spam + ?, 0)
		WHERE id IN (SELECT value FROM json_each(?))`, ham, spam, ids); err != nil {
		return err
	}
	_, err := t.exec(`DELETE FROM junk_tokens WHERE ham = 0 AND spam = 0
		AND id IN (SELECT value FROM json_each(?))`, ids)
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

var _ store.JunkVocabulary = (*Store)(nil)

// JunkTokens implements store.JunkVocabulary in one statement (one snapshot); the rows
// come back as one string, as in JunkState.
func (s *Store) JunkTokens(ctx context.Context, accountID int64, max int) (store.JunkState, map[int64]store.JunkCount, bool, error) {
	st := store.JunkState{Threshold: -1}
	var threshold sql.NullFloat64
	var packed sql.NullString
	err := s.queryRow(ctx, `SELECT a.ham, a.spam, a.threshold, a.version,
		(SELECT group_concat(t.id || ' ' || t.ham || ' ' || t.spam, ' ')
			FROM (SELECT id, ham, spam FROM junk_tokens WHERE account_id = ?1 LIMIT ?2) AS t)
		FROM junk_accounts AS a WHERE a.account_id = ?1`, accountID, max+1).
		Scan(&st.Trained.Ham, &st.Trained.Spam, &threshold, &st.Version, &packed)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		// Nothing trained yet: no token rows either.
		return st, map[int64]store.JunkCount{}, true, s.accountExists(ctx, accountID)
	case err != nil:
		return st, nil, false, err
	}
	if threshold.Valid {
		st.Threshold = threshold.Float64
	}
	f := strings.Fields(packed.String)
	if len(f)/3 > max {
		return st, nil, false, nil
	}
	counts := make(map[int64]store.JunkCount, len(f)/3)
	for i := 0; i+2 < len(f); i += 3 {
		id, err1 := strconv.ParseInt(f[i], 10, 64)
		ham, err2 := strconv.ParseInt(f[i+1], 10, 64)
		spam, err3 := strconv.ParseInt(f[i+2], 10, 64)
		if err1 != nil || err2 != nil || err3 != nil {
			return st, nil, false, fmt.Errorf("junk counts: bad row %q", f[i:i+3])
		}
		counts[id] = store.JunkCount{Ham: ham, Spam: spam}
	}
	return st, counts, true, nil
}
