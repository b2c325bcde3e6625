package postgres

import (
	"context"
	"errors"
	"fmt"

	"petrel/internal/store"
)

// AdoptUIDs implements store.Mailboxes.
func (s *Store) AdoptUIDs(ctx context.Context, mailboxID int64, uidValidity, uidNext uint32) error {
	if uidNext == 0 {
		return fmt.Errorf("store: UIDNEXT 0: %w", store.ErrInvalid)
	}
	return s.write(ctx, func(t *tx) error {
		accountID, err := t.mailboxAccount(mailboxID)
		if err != nil {
			return err
		}
		var curValidity, curNext int64
		if err := t.queryRow(`SELECT uidvalidity, uidnext FROM mailboxes WHERE id = ?`, []any{mailboxID},
			&curValidity, &curNext); err != nil {
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
			// Values given later come from the counter: keep it above the adopted one so that
			// no mailbox created afterwards gets it.
			// (A sequence cannot be raised atomically; the lock orders the adopters, and the
			// worst a concurrent nextval can do is to give one value below the adopted one,
			// which freeUIDValidity keeps apart within the account.)
			if _, err := t.exec(`SELECT setval('uidvalidity', greatest(?::bigint, (SELECT last_value FROM uidvalidity)))`, int64(uidValidity)); err != nil {
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
	})
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
	if err := t.queryRow(`SELECT nextval('uidvalidity')`, nil, &fresh); err != nil {
		return err
	}
	if _, err := t.exec(`UPDATE mailboxes SET uidvalidity = ?, modseq = ? WHERE id = ?`, fresh, modseq, otherID); err != nil {
		return err
	}
	t.change(store.ChangeMailbox, accountID, otherID, modseq)
	return nil
}
