package postgres

import (
	"context"
	"fmt"
	"maps"
	"slices"

	"petrel/internal/store"
)

// Quotas (RFC 9208). An account row carries its own limits (NULL: the default of
// Options.DefaultQuota, 0: none) next to its usage, which every commit keeps. The check is
// made inside the write that adds messages, against the usage as that write sees it,
// so it is atomic with the commit: every write that adds messages holds the
// account's row lock from the check to its commit (checkDeliveryQuota, lockAccount), so
// two deliveries near the limit, on any nodes, never both pass it (store.Quota).

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
	return s.write(ctx, func(t *tx) error {
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
	var storage, messages *int64
	err := s.queryRow(ctx, `SELECT messages, size, (SELECT count(*) FROM mailboxes WHERE account_id = ?1),
		quota_storage, quota_messages FROM accounts WHERE id = ?1`, accountID).
		Scan(&q.Usage.Messages, &q.Usage.Size, &q.Usage.Mailboxes, &storage, &messages)
	if err != nil {
		return store.Quota{}, fmt.Errorf("account %d: %w", accountID, notFound(err))
	}
	q.Setting = store.QuotaLimits{Storage: store.QuotaDefault, Messages: store.QuotaDefault}
	q.Limits = s.opts.DefaultQuota
	if storage != nil {
		q.Setting.Storage, q.Limits.Storage = *storage, *storage
	}
	if messages != nil {
		q.Setting.Messages, q.Limits.Messages = *messages, *messages
	}
	return q, nil
}

// quotaOf reads an account's limits in force and usage inside a write that holds the
// account's row lock, so they stay until its commit.
func (t *tx) quotaOf(accountID int64) (store.Quota, error) {
	var q store.Quota
	d := t.s.opts.DefaultQuota
	err := t.queryRow(`SELECT messages, size, coalesce(quota_storage, ?), coalesce(quota_messages, ?) FROM accounts WHERE id = ?`,
		[]any{d.Storage, d.Messages, accountID}, &q.Usage.Messages, &q.Usage.Size, &q.Limits.Storage, &q.Limits.Messages)
	return q, err
}

// checkDeliveryQuota locks the accounts of a delivery's targets, in ascending ID order so
// that deliveries to overlapping sets of accounts cannot deadlock, and refuses the delivery
// if it would take one of them over its quota, before anything is written: every target
// adds one message of size bytes to its account. It names every account over quota
// (store.QuotaError). Under the locks, the usage it reads stays until the commit.
func (t *tx) checkDeliveryQuota(targets []store.Target, size int64) error {
	added := map[int64]int64{}
	for _, tg := range targets {
		added[tg.AccountID]++
	}
	ids := slices.Sorted(maps.Keys(added))
	var over []int64
	for _, id := range ids {
		// Locked and read in one statement: a round trip less per delivery.
		var q store.Quota
		d := t.s.opts.DefaultQuota
		err := t.queryRow(`SELECT messages, size, coalesce(quota_storage, ?), coalesce(quota_messages, ?) FROM accounts WHERE id = ? FOR UPDATE`,
			[]any{d.Storage, d.Messages, id}, &q.Usage.Messages, &q.Usage.Size, &q.Limits.Storage, &q.Limits.Messages)
		if err != nil {
			return fmt.Errorf("delivery target account %d: %w", id, err)
		}
		t.markLocked(id)
		if q.Over(added[id], added[id]*size) {
			over = append(over, id)
		}
	}
	if len(over) > 0 {
		return &store.QuotaError{Accounts: over}
	}
	return nil
}
