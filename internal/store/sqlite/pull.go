package sqlite

import (
	"context"
	"time"

	"petrel/internal/store"
)

// Pull sources and the unique-ids each delivered: the pull_sources and pull_seen tables of
// migration 15 (store.Pulls).

var (
	_ store.Pulls        = (*Store)(nil)
	_ store.PullState    = (*Store)(nil)
	_ store.PulledCopies = (*Store)(nil)
)

// AddPullSource implements store.Pulls.
func (s *Store) AddPullSource(ctx context.Context, p store.PullSource) (int64, error) {
	var id int64
	err := s.write(ctx, 0, func(t *tx) error {
		var n int
		if err := t.queryRow(`SELECT count(*) FROM accounts WHERE id = ?`, []any{p.AccountID}, &n); err != nil {
			return err
		}
		if n == 0 {
			return store.ErrNotFound
		}
		res, err := t.exec(`INSERT INTO pull_sources (account_id, protocol, addr, tls, ca_file, username, secret, keep, every, folder, next_poll)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, p.AccountID, p.Protocol, p.Addr, p.TLS, p.CAFile, p.User, p.Secret, p.Keep,
			int64(p.Every), p.Folder, p.NextPoll.UnixNano())
		if err != nil {
			return err
		}
		id, err = res.LastInsertId()
		return err
	})
	return id, err
}

// PullSources implements store.Pulls.
func (s *Store) PullSources(ctx context.Context, accountID int64) ([]store.PullSource, error) {
	rows, err := s.query(ctx, `SELECT `+store.PullColumns+` FROM pull_sources WHERE account_id = ? ORDER BY id`, accountID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []store.PullSource
	for rows.Next() {
		p, err := store.ScanPullSource(rows.Scan)
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, rows.Err()
}

// pullUpdate runs one UPDATE of a source of the account; no such source is ErrNotFound.
func (s *Store) pullUpdate(ctx context.Context, query string, args ...any) error {
	return s.write(ctx, 0, func(t *tx) error { return t.execSome(query, args...) })
}

// execSome runs a statement that must change a row: none changed is ErrNotFound.
func (t *tx) execSome(query string, args ...any) error {
	return t.execOr(store.ErrNotFound, query, args...)
}

// execOr runs a statement that must change a row, and returns none if none changed.
func (t *tx) execOr(none error, query string, args ...any) error {
	res, err := t.exec(query, args...)
	if err != nil {
		return err
	}
	if n, err := res.RowsAffected(); err != nil {
		return err
	} else if n == 0 {
		return none
	}
	return nil
}

// RemovePullSource implements store.Pulls.
func (s *Store) RemovePullSource(ctx context.Context, accountID, id int64) error {
	return s.pullUpdate(ctx, `DELETE FROM pull_sources WHERE id = ? AND account_id = ?`, id, accountID)
}

// PullNow implements store.Pulls.
func (s *Store) PullNow(ctx context.Context, accountID, id int64) error {
	return s.pullUpdate(ctx, `UPDATE pull_sources SET next_poll = 0 WHERE id = ? AND account_id = ?`, id, accountID)
}

// ClaimPull implements store.Pulls. The one writer of SQLite serializes claims; the lease
// keeps a second process (a CLI `pull now` beside the server does not claim) or a poll that
// outlived its lease from taking the source twice.
func (s *Store) ClaimPull(ctx context.Context, now time.Time, lease time.Duration) (store.PullSource, error) {
	var p store.PullSource
	until := now.Add(lease).UnixNano()
	err := s.write(ctx, 0, func(t *tx) error {
		rows, err := t.query(`UPDATE pull_sources SET lease_until = ?1
			WHERE id = (SELECT id FROM pull_sources WHERE next_poll <= ?2 AND lease_until <= ?2 ORDER BY next_poll, id LIMIT 1)
			RETURNING `+store.PullColumns, until, now.UnixNano())
		if err != nil {
			return err
		}
		defer rows.Close()
		if !rows.Next() {
			if err := rows.Err(); err != nil {
				return err
			}
			return store.ErrNotFound
		}
		p, err = store.ScanPullSource(rows.Scan)
		return err
	})
	return p, err
}

// FinishPull implements store.Pulls.
func (s *Store) FinishPull(ctx context.Context, p store.PullSource, o store.PullOutcome) error {
	return s.pullUpdate(ctx, `UPDATE pull_sources SET lease_until = 0, next_poll = ?, last_poll = ?, last_error = ?, failures = ?,
		notice = CASE WHEN CAST(? AS text) = '' THEN notice ELSE CAST(? AS text) END
		WHERE id = ? AND lease_until = ?`, o.NextPoll.UnixNano(), o.Polled.UnixNano(), o.LastError, o.Failures, o.Notice, o.Notice, p.ID, p.Lease.UnixNano())
}

// ReleasePullLeases implements store.Pulls.
func (s *Store) ReleasePullLeases(ctx context.Context) error {
	return s.write(ctx, 0, func(t *tx) error {
		_, err := t.exec(`UPDATE pull_sources SET lease_until = 0 WHERE lease_until != 0`)
		return err
	})
}

// PulledUIDs implements store.Pulls.
func (s *Store) PulledUIDs(ctx context.Context, sourceID int64) (map[string]time.Time, error) {
	rows, err := s.query(ctx, `SELECT uid, seen FROM pull_seen WHERE source_id = ?`, sourceID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]time.Time{}
	for rows.Next() {
		var uid string
		var seen int64
		if err := rows.Scan(&uid, &seen); err != nil {
			return nil, err
		}
		out[uid] = time.Unix(0, seen)
	}
	return out, rows.Err()
}

// MarkPulled implements store.Pulls.
func (s *Store) MarkPulled(ctx context.Context, sourceID int64, uids []string, now time.Time) error {
	if len(uids) == 0 {
		return nil
	}
	return s.write(ctx, 0, func(t *tx) error {
		for _, u := range uids {
			if _, err := t.exec(`INSERT INTO pull_seen (source_id, uid, seen) VALUES (?, ?, ?) ON CONFLICT DO NOTHING`,
				sourceID, u, now.UnixNano()); err != nil {
				return err
			}
		}
		return nil
	})
}

// ForgetPulled implements store.Pulls.
func (s *Store) ForgetPulled(ctx context.Context, sourceID int64, uids []string) error {
	if len(uids) == 0 {
		return nil
	}
	return s.write(ctx, 0, func(t *tx) error {
		for _, u := range uids {
			if _, err := t.exec(`DELETE FROM pull_seen WHERE source_id = ? AND uid = ?`, sourceID, u); err != nil {
				return err
			}
		}
		return nil
	})
}

// recordPulled records the unique-id of a delivery's pulled message in its transaction;
// recorded before, it is store.ErrExists and the delivery commits nothing.
func (t *tx) recordPulled(p *store.PulledMessage, now time.Time) error {
	return t.execOr(store.ErrExists, `INSERT INTO pull_seen (source_id, uid, seen, fingerprint) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING`,
		p.SourceID, p.UID, now.UnixNano(), p.Fingerprint)
}

// EditPullSource implements store.PullState.
func (s *Store) EditPullSource(ctx context.Context, p store.PullSource) error {
	return s.pullUpdate(ctx, `UPDATE pull_sources SET addr = ?, tls = ?, ca_file = ?, username = ?, secret = ?, keep = ?, every = ?,
		folder = ?, next_poll = 0 WHERE id = ? AND account_id = ?`, p.Addr, p.TLS, p.CAFile, p.User, p.Secret, p.Keep, int64(p.Every),
		p.Folder, p.ID, p.AccountID)
}

// PulledFingerprints implements store.PullState.
func (s *Store) PulledFingerprints(ctx context.Context, sourceID int64) (map[string]string, error) {
	rows, err := s.query(ctx, `SELECT uid, fingerprint FROM pull_seen WHERE source_id = ?`, sourceID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]string{}
	for rows.Next() {
		var uid, fp string
		if err := rows.Scan(&uid, &fp); err != nil {
			return nil, err
		}
		out[uid] = fp
	}
	return out, rows.Err()
}

// MarkPulledWith implements store.PullState.
func (s *Store) MarkPulledWith(ctx context.Context, msgs []store.PulledMessage, now time.Time) error {
	if len(msgs) == 0 {
		return nil
	}
	return s.write(ctx, 0, func(t *tx) error {
		for _, m := range msgs {
			if _, err := t.exec(`INSERT INTO pull_seen (source_id, uid, seen, fingerprint) VALUES (?, ?, ?, ?)
				ON CONFLICT (source_id, uid) DO UPDATE SET fingerprint = excluded.fingerprint WHERE pull_seen.fingerprint = ''`,
				m.SourceID, m.UID, now.UnixNano(), m.Fingerprint); err != nil {
				return err
			}
		}
		return nil
	})
}

// RekeyPulled implements store.PullState.
func (s *Store) RekeyPulled(ctx context.Context, sourceID int64, from, to string) error {
	return s.write(ctx, 0, func(t *tx) error {
		var n int
		if err := t.queryRow(`SELECT count(*) FROM pull_seen WHERE source_id = ? AND uid = ?`, []any{sourceID, to}, &n); err != nil {
			return err
		}
		if n != 0 {
			return store.ErrExists
		}
		return t.execSome(`UPDATE pull_seen SET uid = ? WHERE source_id = ? AND uid = ?`, to, sourceID, from)
	})
}

// RetirePulled implements store.PullState.
func (s *Store) RetirePulled(ctx context.Context, sourceID int64) error {
	return s.write(ctx, 0, func(t *tx) error {
		_, err := t.exec(`UPDATE pull_seen SET uid = CAST(? AS text) || uid WHERE source_id = ? AND uid NOT LIKE ?`,
			store.RetiredPrefix, sourceID, store.RetiredPrefix+"%")
		return err
	})
}

// PulledBlobs implements store.PulledCopies.
func (s *Store) PulledBlobs(ctx context.Context, sourceID int64, uids []string) (map[string][]int64, error) {
	return store.QueryPulledBlobs(ctx, s.query, sourceID, uids)
}
