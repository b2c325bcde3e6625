package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"slices"

	"petrel/internal/store"
)

// Quotas (RFC 9208). An account row carries its own limits (NULL: the default of
// Options.DefaultQuota, 0: none) next to its usage, which every commit keeps. The check is
// made inside the write request that adds messages, against the usage as that request
// sees it, so it is atomic with the commit: the committer runs requests one at a time, and
// a delivery sees the usage of every delivery before it, committed or only counted in the
// committer's counters (delivercache.go). Two deliveries near the limit therefore never
// both pass it (store.Quota).

// SetQuota implements store.Quotas.
func (s *Store) SetQuota(ctx context.Context, accountID int64, l store.QuotaLimits) error {
	arg := func(v int64) (any, error) {
		switch {
		case v == store.QuotaDefault:
			return nil, nil
		case v < 0:
			return nil, fmt.Errorf("store: quota limit %d: %w", v, store.ErrInvalid)
		}
		return v, nil
	}
	storage, err := arg(l.Storage)
	if err != nil {
		return err
	}
	messages, err := arg(l.Messages)
	if err != nil {
		return err
	}
	return s.write(ctx, 0, func(t *tx) error {
		res, err := t.exec(`UPDATE accounts SET quota_storage = ?, quota_messages = ? WHERE id = ?`, storage, messages, accountID)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil || n == 0 {
			return fmt.Errorf("account %d: %w", accountID, orNotFound(err))
		}
		return nil
	})
}

func orNotFound(err error) error {
	if err != nil {
		return err
	}
	return store.ErrNotFound
}

// Quota implements store.Quotas.
func (s *Store) Quota(ctx context.Context, accountID int64) (store.Quota, error) {
	var q store.Quota
	var storage, messages sql.NullInt64
	err := s.queryRow(ctx, `SELECT messages, size, (SELECT count(*) FROM mailboxes WHERE account_id = ?1),
		quota_storage, quota_messages FROM accounts WHERE id = ?1`, accountID).
		Scan(&q.Usage.Messages, &q.Usage.Size, &q.Usage.Mailboxes, &storage, &messages)
	if err != nil {
		return store.Quota{}, fmt.Errorf("account %d: %w", accountID, notFound(err))
	}
	q.Setting = store.QuotaLimits{Storage: store.QuotaDefault, Messages: store.QuotaDefault}
	q.Limits = s.opts.DefaultQuota
	if storage.Valid {
		q.Setting.Storage, q.Limits.Storage = storage.Int64, storage.Int64
	}
	if messages.Valid {
		q.Setting.Messages, q.Limits.Messages = messages.Int64, messages.Int64
	}
	return q, nil
}

// quotaOf reads an account's limits in force and usage inside a write request that is not
// a delivery (its rows are current: the committer flushed its counters before it).
func (t *tx) quotaOf(accountID int64) (store.Quota, error) {
	var q store.Quota
	d := t.c.defaultQuota
	err := t.queryRow(`SELECT messages, size, coalesce(quota_storage, ?), coalesce(quota_messages, ?) FROM accounts WHERE id = ?`,
		[]any{d.Storage, d.Messages, accountID}, &q.Usage.Messages, &q.Usage.Size, &q.Limits.Storage, &q.Limits.Messages)
	return q, err
}

// checkDeliveryQuota refuses a delivery whose targets would take an account over its
// quota, before anything is written: every target adds one message of size bytes to its
// account. It names every account over quota (store.QuotaError).
// overQuota reports whether adding n messages of size bytes in all would pass an account's
// quota, as the delivery counters see its usage.
func (t *tx) overQuota(accountID, n, size int64) (bool, error) {
	a, err := t.deliveryAccount(accountID)
	if err != nil {
		return false, fmt.Errorf("delivery target account %d: %w", accountID, err)
	}
	q := store.Quota{Limits: a.limits,
		Usage: store.Usage{Messages: a.base.messages + a.added.messages, Size: a.base.size + a.added.size}}
	return q.Over(n, size), nil
}

func (t *tx) checkDeliveryQuota(targets []store.Target, size int64) error {
	added := map[int64]int64{}
	for _, tg := range targets {
		added[tg.AccountID]++
	}
	var over []int64
	for id, n := range added {
		o, err := t.overQuota(id, n, n*size)
		if err != nil {
			return err
		}
		if o {
			over = append(over, id)
		}
	}
	if len(over) > 0 {
		slices.Sort(over)
		return &store.QuotaError{Accounts: over}
	}
	return nil
}
