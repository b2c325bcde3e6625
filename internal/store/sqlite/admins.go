package sqlite

import (
	"context"
	"database/sql"
	"errors"

	"petrel/internal/store"
)

// SetAdmin implements store.Admins.
func (s *Store) SetAdmin(ctx context.Context, accountID int64, admin bool) error {
	v := 0
	if admin {
		v = 1
	}
	return s.write(ctx, 0, func(t *tx) error {
		return affected(t.exec(`UPDATE accounts SET admin = ? WHERE id = ?`, v, accountID))
	})
}

// IsAdmin implements store.Admins.
func (s *Store) IsAdmin(ctx context.Context, accountID int64) (bool, error) {
	var v int
	err := s.queryRow(ctx, `SELECT admin FROM accounts WHERE id = ?`, accountID).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return false, store.ErrNotFound
	}
	return v == 1, err
}
