package postgres

import "petrel/internal/store"

// Subscribe implements store.Changes (the broker package does the fan-out).
func (s *Store) Subscribe(accountID int64) (<-chan store.Change, func()) {
	return s.changes.Subscribe(accountID)
}
