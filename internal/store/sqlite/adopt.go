package sqlite

import (
	"context"
	"fmt"

	"petrel/internal/store"
)

// AdoptUIDs implements store.Mailboxes. It is a write request of the ordinary kind, so the
// committer writes out and forgets its delivery counters before it runs (delivercache.go):
// the next delivery reads the new UIDNEXT from the row.
func (s *Store) AdoptUIDs(ctx context.Context, mailboxID int64, uidValidity, uidNext uint32) error {
	if uidNext == 0 {
		return fmt.Errorf("store: UIDNEXT 0: %w", store.ErrInvalid)
	}
	return s.write(ctx, 0, func(t *tx) error {
		var accountID, curValidity, curNext int64
		if err := t.queryRow(`SELECT account_id, uidvalidity, uidnext FROM mailboxes WHERE id = ?`, []any{mailboxID},
			&accountID, &curValidity, &curNext); err != nil {
			return fmt.Errorf("mailbox %d: %w", mailboxID, err)
		}
		if int64(uidNext) < curNext {
			return fmt.Errorf("store: UIDNEXT %d is below the mailbox's %d (UIDs are never reused): %w", uidNext, curNext, store.ErrInvalid)
		}
		if uidValidity == 0 {
			uidValidity = uint32(curValidity)
		}
		if int64(uidValidity) != curValidity {
			if curNext != 1 {
				return fmt.Errorf("store: mailbox %d has held messages; its UIDVALIDITY stays %d: %w", mailboxID, curValidity, store.ErrInvalid)
			}
			var n int
			if err := t.queryRow(`SELECT count(*) FROM mailboxes WHERE uidvalidity = ?`, []any{uidValidity}, &n); err != nil {
				return err
			}
			if n > 0 {
				return fmt.Errorf("store: UIDVALIDITY %d is another mailbox's: %w", uidValidity, store.ErrExists)
			}
			// Values given later come from the counter: keep it above the adopted one so that
			// no mailbox created afterwards gets it.
			if _, err := t.exec(`UPDATE counters SET value = max(value, ?) WHERE name = 'uidvalidity'`, int64(uidValidity)); err != nil {
				return err
			}
		}
		if int64(uidValidity) == curValidity && int64(uidNext) == curNext {
			return nil // nothing changes, nothing raised
		}
		modseq, err := t.raiseModSeq(accountID)
		if err != nil {
			return err
		}
		if _, err := t.exec(`UPDATE mailboxes SET uidvalidity = ?, uidnext = ?, modseq = ? WHERE id = ?`,
			int64(uidValidity), int64(uidNext), modseq, mailboxID); err != nil {
			return err
		}
		t.change(store.ChangeMailbox, accountID, mailboxID, modseq)
		return nil
	})
}
