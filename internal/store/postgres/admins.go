package postgres

import (
	"context"

	"petrel/internal/store"
)

var _ store.Admins = (*Store)(nil)

// SetAdmin implements store.Admins.
func (s *Store) SetAdmin(ctx context.Context, accountID int64, admin bool) error {
	return s.write(ctx, func(t *tx) error {
		return affected(t.exec(`UPDATE accounts SET admin = ? WHERE id = ?`, admin, accountID))
	})
}

// IsAdmin implements store.Admins.
func (s *Store) IsAdmin(ctx context.Context, accountID int64) (bool, error) {
	var admin bool
	err := s.queryRow(ctx, `SELECT admin FROM accounts WHERE id = ?`, accountID).Scan(&admin)
	return admin, notFound(err)
}
