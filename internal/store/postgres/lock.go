package postgres

import (
	"context"
	"fmt"
	"sync"

	"petrel/internal/store"
)

// The POP3 maildrop lock (store.Mail.LockMaildrop) is a session-level advisory lock of
// PostgreSQL, so every node sees it, and PostgreSQL drops it when the session that holds it
// ends: a node that dies, or loses its connection, frees its maildrops. One connection of
// the Store (lockConn) holds all of its maildrop locks, taken out of the pool while any is
// held; a session may take the same advisory lock twice, so the locked map answers for the
// Store's own sessions first.

// maildropSpace is the first key of the two-key advisory locks of maildrops (two-key
// locks never conflict with the one-key lock of migrations).
const maildropSpace = 0x50657472 // "Petr"

// maildropKeys splits an account ID into the two int4 keys of its lock.
func maildropKeys(accountID int64) (int32, int32) {
	return int32(maildropSpace + accountID>>31), int32(accountID & 0x7fffffff)
}

// LockMaildrop implements store.Mail.
func (s *Store) LockMaildrop(ctx context.Context, accountID int64) (func(), error) {
	s.lockMu.Lock()
	defer s.lockMu.Unlock()
	if _, ok := s.locked[accountID]; ok {
		return nil, store.ErrLocked
	}
	if s.lockConn == nil {
		c, err := s.pool.Acquire(ctx)
		if err != nil {
			return nil, fmt.Errorf("store: maildrop lock: %w", err)
		}
		s.lockConn = c
	}
	k1, k2 := maildropKeys(accountID)
	var ok bool
	if err := s.lockConn.QueryRow(ctx, `SELECT pg_try_advisory_lock($1, $2)`, k1, k2).Scan(&ok); err != nil {
		s.dropLockConn()
		return nil, fmt.Errorf("store: maildrop lock: %w", err)
	}
	if !ok {
		s.releaseIdleLockConn()
		return nil, store.ErrLocked
	}
	s.lockGen++
	gen := s.lockGen
	s.locked[accountID] = gen
	var once sync.Once
	return func() {
		once.Do(func() {
			s.lockMu.Lock()
			defer s.lockMu.Unlock()
			if g, ok := s.locked[accountID]; !ok || g != gen {
				return // its session ended already, and the lock with it
			}
			delete(s.locked, accountID)
			if _, err := s.lockConn.Exec(context.Background(), `SELECT pg_advisory_unlock($1, $2)`, k1, k2); err != nil {
				s.log.Error("store: releasing a POP3 maildrop lock", "account", accountID, "err", err)
				s.dropLockConn()
				return
			}
			s.releaseIdleLockConn()
		})
	}, nil
}

// releaseIdleLockConn gives the lock connection back to the pool when it holds no lock.
// s.lockMu must be held.
func (s *Store) releaseIdleLockConn() {
	if len(s.locked) == 0 && s.lockConn != nil {
		s.lockConn.Release()
		s.lockConn = nil
	}
}

// dropLockConn closes the lock connection after an error: its session, and every lock it
// held, ends (so no other session can find a stale lock), and so do the Store's records of
// them. s.lockMu must be held.
func (s *Store) dropLockConn() {
	if s.lockConn == nil {
		return
	}
	s.lockConn.Conn().Close(context.Background())
	s.lockConn.Release()
	s.lockConn = nil
	clear(s.locked)
}
