package sqlite

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"petrel/internal/store"
)

// Sieve scripts and the vacation log: the tables of migration 8. The database keeps "at
// most one active script per account" with a partial unique index.

var _ store.Sieve = (*Store)(nil)

// vacationKeep is how long a vacation log row is kept: the longest period a script may
// ask for (the sieve package caps :days at 90).
const vacationKeep = 91 * 24 * time.Hour

// SieveScripts implements store.Sieve.
func (s *Store) SieveScripts(ctx context.Context, accountID int64) ([]store.SieveScript, error) {
	if err := s.accountExists(ctx, accountID); err != nil {
		return nil, err
	}
	rows, err := s.query(ctx, `SELECT name, content, active, updated FROM sieve_scripts
		WHERE account_id = ? ORDER BY name`, accountID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []store.SieveScript
	for rows.Next() {
		sc, err := scanScript(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, sc)
	}
	return out, rows.Err()
}

func scanScript(r scanner) (store.SieveScript, error) {
	var sc store.SieveScript
	var updated int64
	if err := r.Scan(&sc.Name, &sc.Content, &sc.Active, &updated); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return sc, store.ErrNotFound
		}
		return sc, err
	}
	sc.Updated = time.Unix(0, updated).UTC()
	return sc, nil
}

// SieveScript implements store.Sieve.
func (s *Store) SieveScript(ctx context.Context, accountID int64, name string) (store.SieveScript, error) {
	return scanScript(s.queryRow(ctx, `SELECT name, content, active, updated FROM sieve_scripts
		WHERE account_id = ? AND name = ?`, accountID, name))
}

// ActiveSieveScript implements store.Sieve.
func (s *Store) ActiveSieveScript(ctx context.Context, accountID int64) (store.SieveScript, error) {
	return scanScript(s.queryRow(ctx, `SELECT name, content, active, updated FROM sieve_scripts
		WHERE account_id = ? AND active`, accountID))
}

// PutSieveScript implements store.Sieve.
func (s *Store) PutSieveScript(ctx context.Context, accountID int64, name, content string) error {
	if !store.ValidSieveName(name) {
		return fmt.Errorf("store: script name %q: %w", name, store.ErrInvalid)
	}
	return s.write(ctx, int64(len(content)), func(t *tx) error {
		if err := t.accountExists(accountID); err != nil {
			return err
		}
		_, err := t.exec(`INSERT INTO sieve_scripts (account_id, name, content, updated) VALUES (?, ?, ?, ?)
			ON CONFLICT (account_id, name) DO UPDATE SET content = excluded.content, updated = excluded.updated`,
			accountID, name, content, time.Now().UnixNano())
		return err
	})
}

// SetActiveSieveScript implements store.Sieve.
func (s *Store) SetActiveSieveScript(ctx context.Context, accountID int64, name string) error {
	return s.write(ctx, 0, func(t *tx) error {
		if err := t.accountExists(accountID); err != nil {
			return err
		}
		if name != "" {
			var one int
			if err := t.queryRow(`SELECT 1 FROM sieve_scripts WHERE account_id = ? AND name = ?`, []any{accountID, name}, &one); err != nil {
				return err
			}
		}
		if _, err := t.exec(`UPDATE sieve_scripts SET active = 0 WHERE account_id = ? AND active`, accountID); err != nil {
			return err
		}
		if name == "" {
			return nil
		}
		_, err := t.exec(`UPDATE sieve_scripts SET active = 1 WHERE account_id = ? AND name = ?`, accountID, name)
		return err
	})
}

// DeleteSieveScript implements store.Sieve.
func (s *Store) DeleteSieveScript(ctx context.Context, accountID int64, name string) error {
	return s.write(ctx, 0, func(t *tx) error {
		var active bool
		if err := t.queryRow(`SELECT active FROM sieve_scripts WHERE account_id = ? AND name = ?`, []any{accountID, name}, &active); err != nil {
			return err
		}
		if active {
			return fmt.Errorf("store: script %q is active: %w", name, store.ErrInvalid)
		}
		_, err := t.exec(`DELETE FROM sieve_scripts WHERE account_id = ? AND name = ?`, accountID, name)
		return err
	})
}

// RenameSieveScript implements store.Sieve.
func (s *Store) RenameSieveScript(ctx context.Context, accountID int64, from, to string) error {
	if !store.ValidSieveName(to) {
		return fmt.Errorf("store: script name %q: %w", to, store.ErrInvalid)
	}
	return s.write(ctx, 0, func(t *tx) error {
		var one int
		if err := t.queryRow(`SELECT 1 FROM sieve_scripts WHERE account_id = ? AND name = ?`, []any{accountID, from}, &one); err != nil {
			return err
		}
		if from == to {
			return nil
		}
		err := t.queryRow(`SELECT 1 FROM sieve_scripts WHERE account_id = ? AND name = ?`, []any{accountID, to}, &one)
		if err == nil {
			return store.ErrExists
		}
		if !errors.Is(err, store.ErrNotFound) {
			return err
		}
		_, err = t.exec(`UPDATE sieve_scripts SET name = ?, updated = ? WHERE account_id = ? AND name = ?`,
			to, time.Now().UnixNano(), accountID, from)
		return err
	})
}

// VacationReply implements store.Sieve. Handles are hashed: the default handle of a
// script holds its whole reply text.
func (s *Store) VacationReply(ctx context.Context, accountID int64, handle, sender string, now time.Time, period time.Duration) (bool, error) {
	sum := sha256.Sum256([]byte(handle))
	h := hex.EncodeToString(sum[:16])
	sender = strings.ToLower(sender)
	due := false
	err := s.write(ctx, 0, func(t *tx) error {
		due = false
		if err := t.accountExists(accountID); err != nil {
			return err
		}
		var sent int64
		err := t.queryRow(`SELECT sent FROM vacation_log WHERE account_id = ? AND handle = ? AND sender = ?`,
			[]any{accountID, h, sender}, &sent)
		switch {
		case err == nil:
			if now.Sub(time.Unix(0, sent)) < period {
				return nil
			}
		case !errors.Is(err, store.ErrNotFound):
			return err
		}
		due = true
		if _, err := t.exec(`INSERT INTO vacation_log (account_id, handle, sender, sent) VALUES (?, ?, ?, ?)
			ON CONFLICT (account_id, handle, sender) DO UPDATE SET sent = excluded.sent`,
			accountID, h, sender, now.UnixNano()); err != nil {
			return err
		}
		// Rows past any period are forgotten, so the log stays as small as the set of
		// recent correspondents.
		_, err = t.exec(`DELETE FROM vacation_log WHERE account_id = ? AND sent < ?`, accountID, now.Add(-vacationKeep).UnixNano())
		return err
	})
	return due, err
}
