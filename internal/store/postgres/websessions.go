package postgres

import (
	"context"
	"fmt"
	"time"

	"petrel/internal/store"
)

// The webmail's sessions live in the shared database: a session started on one node is
// known to every node, and a revocation on any node ends it everywhere at its next request.

var _ store.WebSessions = (*Store)(nil)

// AddWebSession implements store.WebSessions.
func (s *Store) AddWebSession(ctx context.Context, ws store.WebSession) error {
	return s.write(ctx, func(t *tx) error {
		_, err := t.exec(`INSERT INTO web_sessions (id, account_id, created, seen, remote) VALUES (?, ?, ?, ?, ?)`,
			ws.ID, ws.AccountID, ws.Created.Unix(), ws.Seen.Unix(), ws.Remote)
		return err
	})
}

// WebSessionExists implements store.WebSessions.
func (s *Store) WebSessionExists(ctx context.Context, id string) (bool, error) {
	var ok bool
	err := s.queryRow(ctx, `SELECT EXISTS (SELECT 1 FROM web_sessions WHERE id = ?)`, id).Scan(&ok)
	return ok, err
}

// WebSession implements store.WebSessions.
func (s *Store) WebSession(ctx context.Context, id string) (store.WebSession, error) {
	ws, err := store.ScanWebSession(s.queryRow(ctx, `SELECT `+store.WebSessionColumns+`
		FROM web_sessions w JOIN accounts a ON a.id = w.account_id WHERE w.id = ?`, id).Scan)
	if err != nil {
		return store.WebSession{}, fmt.Errorf("web session: %w", notFound(err))
	}
	return ws, nil
}

// TouchWebSession implements store.WebSessions.
func (s *Store) TouchWebSession(ctx context.Context, id string, seen time.Time) error {
	return s.write(ctx, func(t *tx) error {
		_, err := t.exec(`UPDATE web_sessions SET seen = ? WHERE id = ?`, seen.Unix(), id)
		return err
	})
}

// ListWebSessions implements store.WebSessions.
func (s *Store) ListWebSessions(ctx context.Context) ([]store.WebSession, error) {
	rows, err := s.query(ctx, `SELECT `+store.WebSessionColumns+`
		FROM web_sessions w JOIN accounts a ON a.id = w.account_id ORDER BY w.created, w.id COLLATE "C"`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []store.WebSession
	for rows.Next() {
		ws, err := store.ScanWebSession(rows.Scan)
		if err != nil {
			return nil, err
		}
		out = append(out, ws)
	}
	return out, rows.Err()
}

// RevokeWebSessions implements store.WebSessions.
func (s *Store) RevokeWebSessions(ctx context.Context, accountID int64, id string) (int, error) {
	var n int64
	err := s.write(ctx, func(t *tx) error {
		q, args := `DELETE FROM web_sessions`, []any(nil)
		switch {
		case id != "":
			q, args = q+` WHERE id = ?`, []any{id}
		case accountID != 0:
			q, args = q+` WHERE account_id = ?`, []any{accountID}
		}
		res, err := t.exec(q, args...)
		n, _ = res.RowsAffected()
		return err
	})
	return int(n), err
}
