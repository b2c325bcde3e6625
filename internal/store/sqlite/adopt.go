package sqlite

import (
	"context"
	"errors"
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
	return s.write(ctx, 0, adoptUIDs(mailboxID, uidValidity, uidNext, false))
}

// adoptUIDs is the work of AdoptUIDs. With raiseOnly, a UIDNEXT at or below the mailbox's
// is no error and changes nothing (AppendBatch: the message then takes the next UID).
func adoptUIDs(mailboxID int64, uidValidity, uidNext uint32, raiseOnly bool) func(*tx) error {
	return func(t *tx) error {
		var accountID, curValidity, curNext int64
		if err := t.queryRow(`SELECT account_id, uidvalidity, uidnext FROM mailboxes WHERE id = ?`, []any{mailboxID},
			&accountID, &curValidity, &curNext); err != nil {
			return fmt.Errorf("mailbox %d: %w", mailboxID, err)
		}
		if raiseOnly && int64(uidNext) <= curNext {
			return nil
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
			// Values given later come from the counter: keep it above the adopted one so that
			// no mailbox created afterwards gets it.
			if _, err := t.exec(`UPDATE counters SET value = max(value, ?) WHERE name = 'uidvalidity'`, int64(uidValidity)); err != nil {
				return err
			}
			if err := t.freeUIDValidity(accountID, uidValidity); err != nil {
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
	}
}

// freeUIDValidity makes sure no other mailbox of the account has uidValidity: one that has
// never held a message gets a fresh value, any other is ErrExists.
func (t *tx) freeUIDValidity(accountID int64, uidValidity uint32) error {
	var otherID, otherNext int64
	err := t.queryRow(`SELECT id, uidnext FROM mailboxes WHERE account_id = ? AND uidvalidity = ?`,
		[]any{accountID, int64(uidValidity)}, &otherID, &otherNext)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if otherNext != 1 {
		return fmt.Errorf("store: UIDVALIDITY %d is another mailbox's of the account: %w", uidValidity, store.ErrExists)
	}
	modseq, err := t.raiseModSeq(accountID)
	if err != nil {
		return err
	}
	var fresh int64
	if err := t.queryRow(`UPDATE counters SET value = value + 1 WHERE name = 'uidvalidity' RETURNING value`, nil, &fresh); err != nil {
		return err
	}
	if _, err := t.exec(`UPDATE mailboxes SET uidvalidity = ?, modseq = ? WHERE id = ?`, fresh, modseq, otherID); err != nil {
		return err
	}
	t.change(store.ChangeMailbox, accountID, otherID, modseq)
	return nil
}
