package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"petrel/internal/store"
)

// Sending limits: the tables of migration 4. An override is one row of sending_limits
// (NULL columns inherit the default); the counters are one sending_usage row per account
// and period ('hour', 'day'), holding the start of the window they count. A row whose
// window has passed counts as zero and is overwritten by the next charge.

var _ store.Sending = (*Store)(nil)

// SendingOverride implements store.Sending.
func (s *Store) SendingOverride(ctx context.Context, accountID int64) (store.SendingLimits, error) {
	// One query for both questions (does the account exist, has it an override): every
	// submitted message asks, and a query costs more than the join. No override row reads as
	// four NULLs, which are Inherit, as store.NoOverride is.
	var id int64
	var v [4]sql.NullInt64
	err := s.queryRow(ctx, `SELECT a.id, l.hour_messages, l.hour_recipients, l.day_messages, l.day_recipients
		FROM accounts a LEFT JOIN sending_limits l ON l.account_id = a.id WHERE a.id = ?`, accountID).Scan(&id, &v[0], &v[1], &v[2], &v[3])
	if errors.Is(err, sql.ErrNoRows) {
		return store.SendingLimits{}, fmt.Errorf("account %d: %w", accountID, store.ErrNotFound)
	}
	if err != nil {
		return store.SendingLimits{}, err
	}
	get := func(n sql.NullInt64) int {
		if !n.Valid {
			return store.Inherit
		}
		return int(n.Int64)
	}
	return store.SendingLimits{HourMessages: get(v[0]), HourRecipients: get(v[1]), DayMessages: get(v[2]), DayRecipients: get(v[3])}, nil
}

// SetSendingOverride implements store.Sending.
func (s *Store) SetSendingOverride(ctx context.Context, accountID int64, o store.SendingLimits) error {
	val := func(v int) any {
		if v < 0 {
			return nil
		}
		return int64(v)
	}
	return s.write(ctx, 0, func(t *tx) error {
		if err := t.accountExists(accountID); err != nil {
			return err
		}
		if o == store.NoOverride {
			_, err := t.exec(`DELETE FROM sending_limits WHERE account_id = ?`, accountID)
			return err
		}
		_, err := t.exec(`INSERT INTO sending_limits (account_id, hour_messages, hour_recipients, day_messages, day_recipients)
			VALUES (?, ?, ?, ?, ?) ON CONFLICT (account_id) DO UPDATE SET hour_messages = excluded.hour_messages,
			hour_recipients = excluded.hour_recipients, day_messages = excluded.day_messages,
			day_recipients = excluded.day_recipients`,
			accountID, val(o.HourMessages), val(o.HourRecipients), val(o.DayMessages), val(o.DayRecipients))
		return err
	})
}

// SendingUsage implements store.Sending.
func (s *Store) SendingUsage(ctx context.Context, accountID int64, now time.Time) (store.SendingUsage, error) {
	if err := s.accountExists(ctx, accountID); err != nil {
		return store.SendingUsage{}, err
	}
	rows, err := s.query(ctx, usageQuery, accountID)
	if err != nil {
		return store.SendingUsage{}, err
	}
	u, err := readUsage(rows, now)
	if err != nil {
		return store.SendingUsage{}, err
	}
	return u, nil
}

const usageQuery = `SELECT period, start, messages, recipients FROM sending_usage WHERE account_id = ?`

// readUsage reads the counter rows of usageQuery into the usage of now's windows, and
// closes the rows.
func readUsage(rows *sql.Rows, now time.Time) (store.SendingUsage, error) {
	defer rows.Close()
	var stored []store.SendingRow
	for rows.Next() {
		var r store.SendingRow
		if err := rows.Scan(&r.Period, &r.Start, &r.Messages, &r.Recipients); err != nil {
			return store.SendingUsage{}, err
		}
		stored = append(stored, r)
	}
	return store.UsageOf(stored, now), rows.Err()
}

// ChargeSending implements store.Sending: the counters are read, checked and written in
// one write transaction, which the committer runs alone or in a group commit.
func (s *Store) ChargeSending(ctx context.Context, accountID int64, now time.Time, messages, recipients int, limits store.SendingLimits) (store.SendingUsage, error) {
	var out store.SendingUsage
	err := s.write(ctx, 0, func(t *tx) error {
		var err error
		out, err = t.chargeSending(&store.SendingCharge{AccountID: accountID, Now: now, Messages: messages,
			Recipients: recipients, Limits: limits})
		return err
	})
	return out, err
}

// chargeSending applies c inside a write transaction (ChargeSending's, or a delivery's:
// store.Delivery.Charge).
func (t *tx) chargeSending(c *store.SendingCharge) (store.SendingUsage, error) {
	if err := t.accountExists(c.AccountID); err != nil {
		return store.SendingUsage{}, err
	}
	rows, err := t.query(usageQuery, c.AccountID)
	if err != nil {
		return store.SendingUsage{}, err
	}
	u, err := readUsage(rows, c.Now)
	if err != nil {
		return store.SendingUsage{}, err
	}
	u, counters, err := c.Apply(u)
	if err != nil {
		return u, err
	}
	for _, r := range counters {
		if _, err := t.exec(`INSERT INTO sending_usage (account_id, period, start, messages, recipients)
			VALUES (?, ?, ?, ?, ?) ON CONFLICT (account_id, period) DO UPDATE SET start = excluded.start,
			messages = excluded.messages, recipients = excluded.recipients`,
			c.AccountID, r.Period, r.Start, r.Messages, r.Recipients); err != nil {
			return store.SendingUsage{}, err
		}
	}
	return u, nil
}

// accountExists is ErrNotFound for an account that does not exist, read outside a write.
func (s *Store) accountExists(ctx context.Context, accountID int64) error {
	var one int
	err := s.queryRow(ctx, `SELECT 1 FROM accounts WHERE id = ?`, accountID).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("account %d: %w", accountID, store.ErrNotFound)
	}
	return err
}
