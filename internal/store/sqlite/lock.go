package sqlite

import (
	"context"
	"sync"

	"petrel/internal/store"
)

// LockMaildrop implements store.Mail; lockByte (lock_linux.go) says how the lock is held.
func (s *Store) LockMaildrop(ctx context.Context, accountID int64) (func(), error) {
	s.lockMu.Lock()
	defer s.lockMu.Unlock()
	if s.locked[accountID] {
		return nil, store.ErrLocked
	}
	if err := lockByte(s.lockFile, accountID, true); err != nil {
		return nil, err
	}
	s.locked[accountID] = true
	var once sync.Once
	return func() {
		once.Do(func() {
			s.lockMu.Lock()
			defer s.lockMu.Unlock()
			if err := lockByte(s.lockFile, accountID, false); err != nil {
				s.log.Error("store: releasing a POP3 maildrop lock", "account", accountID, "err", err)
			}
			delete(s.locked, accountID)
		})
	}, nil
}
