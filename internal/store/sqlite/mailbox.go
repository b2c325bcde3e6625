package sqlite

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"

	"petrel/internal/store"
)

// Mailboxes, their attributes and subscriptions (store.Mailboxes).

const mailboxColumns = `id, account_id, name, uidvalidity, uidnext, modseq, special_use, keywords,
	messages, unseen, deleted, size`

func scanMailbox(sc interface{ Scan(...any) error }) (store.Mailbox, error) {
	var m store.Mailbox
	var use, keywords string
	err := sc.Scan(&m.ID, &m.AccountID, &m.Name, &m.UIDValidity, &m.UIDNext, &m.HighestModSeq, &use, &keywords,
		&m.Messages, &m.Unseen, &m.Deleted, &m.Size)
	m.SpecialUse = store.SpecialUse(use)
	m.Keywords = strings.Fields(keywords)
	return m, err
}

// Mailboxes implements store.Mailboxes. An unknown account is ErrNotFound: every account
// has an INBOX.
func (s *Store) Mailboxes(ctx context.Context, accountID int64) ([]store.Mailbox, error) {
	rows, err := s.query(ctx, `SELECT `+mailboxColumns+` FROM mailboxes WHERE account_id = ? ORDER BY id`, accountID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []store.Mailbox
	for rows.Next() {
		m, err := scanMailbox(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("account %d: %w", accountID, store.ErrNotFound)
	}
	return out, nil
}

func (s *Store) Mailbox(ctx context.Context, accountID int64, name string) (store.Mailbox, error) {
	m, err := scanMailbox(s.queryRow(ctx, `SELECT `+mailboxColumns+` FROM mailboxes WHERE account_id = ? AND name = ?`,
		accountID, store.LookupMailboxName(name)))
	if err != nil {
		return store.Mailbox{}, fmt.Errorf("mailbox %q: %w", name, notFound(err))
	}
	return m, nil
}

func (s *Store) MailboxByID(ctx context.Context, mailboxID int64) (store.Mailbox, error) {
	m, err := scanMailbox(s.queryRow(ctx, `SELECT `+mailboxColumns+` FROM mailboxes WHERE id = ?`, mailboxID))
	if err != nil {
		return store.Mailbox{}, fmt.Errorf("mailbox %d: %w", mailboxID, notFound(err))
	}
	return m, nil
}

// createMailbox adds a mailbox with a fresh UIDVALIDITY; an existing name is ErrExists and
// a missing account ErrNotFound. The name is canonical.
func (t *tx) createMailbox(accountID int64, name string, use store.SpecialUse) (store.Mailbox, error) {
	modseq, err := t.raiseModSeq(accountID)
	if err != nil {
		return store.Mailbox{}, fmt.Errorf("account %d: %w", accountID, err)
	}
	var uidvalidity int64
	if err := t.queryRow(`UPDATE counters SET value = value + 1 WHERE name = 'uidvalidity' RETURNING value`, nil, &uidvalidity); err != nil {
		return store.Mailbox{}, err
	}
	if uidvalidity <= 0 || uidvalidity > math.MaxUint32 {
		return store.Mailbox{}, fmt.Errorf("store: UIDVALIDITY counter out of range (%d)", uidvalidity)
	}
	m := store.Mailbox{AccountID: accountID, Name: name, UIDValidity: uint32(uidvalidity), UIDNext: 1,
		HighestModSeq: modseq, SpecialUse: use}
	err = t.queryRow(`INSERT INTO mailboxes (account_id, name, uidvalidity, modseq, special_use) VALUES (?, ?, ?, ?, ?)
		ON CONFLICT DO NOTHING RETURNING id`, []any{accountID, name, uidvalidity, modseq, string(use)}, &m.ID)
	if errors.Is(err, store.ErrNotFound) {
		return store.Mailbox{}, fmt.Errorf("mailbox %q: %w", name, store.ErrExists)
	}
	if err != nil {
		return store.Mailbox{}, err
	}
	t.change(store.ChangeMailbox, accountID, m.ID, modseq)
	return m, nil
}

// mailboxID returns the ID of an account's mailbox by canonical name, or ErrNotFound.
func (t *tx) mailboxID(accountID int64, name string) (int64, error) {
	var id int64
	if err := t.queryRow(`SELECT id FROM mailboxes WHERE account_id = ? AND name = ?`, []any{accountID, name}, &id); err != nil {
		return 0, fmt.Errorf("mailbox %q: %w", name, err)
	}
	return id, nil
}

// createSuperiors creates the missing mailboxes above a canonical name (RFC 9051 §6.3.4:
// the server SHOULD create them).
func (t *tx) createSuperiors(accountID int64, name string) error {
	for _, sup := range store.Superiors(name) {
		if _, err := t.createMailbox(accountID, sup, ""); err != nil && !errors.Is(err, store.ErrExists) {
			return err
		}
	}
	return nil
}

// CreateMailbox implements store.Mailboxes.
func (s *Store) CreateMailbox(ctx context.Context, accountID int64, name string) (store.Mailbox, error) {
	name, err := store.CanonicalMailboxName(name)
	if err != nil {
		return store.Mailbox{}, fmt.Errorf("store: %w", err)
	}
	var m store.Mailbox
	err = s.write(ctx, 0, func(t *tx) error {
		if err := t.createSuperiors(accountID, name); err != nil {
			return err
		}
		m, err = t.createMailbox(accountID, name, "")
		return err
	})
	if err != nil {
		return store.Mailbox{}, err
	}
	return m, nil
}

// RenameMailbox implements store.Mailboxes.
func (s *Store) RenameMailbox(ctx context.Context, accountID int64, from, to string) error {
	from = store.LookupMailboxName(from)
	to, err := store.CanonicalMailboxName(to)
	if err != nil {
		return fmt.Errorf("store: %w", err)
	}
	if from == store.Inbox {
		return s.write(ctx, 0, func(t *tx) error { return t.renameInbox(accountID, to) })
	}
	if to == from {
		return fmt.Errorf("store: mailbox %q: %w", to, store.ErrExists)
	}
	if store.IsInferior(to, from) {
		return fmt.Errorf("store: cannot rename %q into its own hierarchy (%q): %w", from, to, store.ErrInvalid)
	}
	return s.write(ctx, 0, func(t *tx) error {
		rows, err := t.query(`SELECT id, name FROM mailboxes WHERE account_id = ?`, accountID)
		if err != nil {
			return err
		}
		type renamed struct {
			id        int64
			old, name string
		}
		var moves []renamed
		existing := map[string]bool{}
		for rows.Next() {
			var r renamed
			if err := rows.Scan(&r.id, &r.old); err != nil {
				rows.Close()
				return err
			}
			existing[r.old] = true
			if r.old == from || store.IsInferior(r.old, from) {
				r.name = to + r.old[len(from):]
				moves = append(moves, r)
			}
		}
		if err := errors.Join(rows.Err(), rows.Close()); err != nil {
			return err
		}
		if len(moves) == 0 {
			return fmt.Errorf("mailbox %q: %w", from, store.ErrNotFound)
		}
		for _, r := range moves {
			if existing[r.name] {
				return fmt.Errorf("mailbox %q: %w", r.name, store.ErrExists)
			}
		}
		modseq, err := t.raiseModSeq(accountID)
		if err != nil {
			return err
		}
		for _, r := range moves {
			if _, err := t.exec(`UPDATE mailboxes SET name = ?, modseq = ? WHERE id = ?`, r.name, int64(modseq), r.id); err != nil {
				return err
			}
			// Subscriptions follow the rename: the user renamed that very mailbox, so this
			// is not the unilateral removal RFC 9051 §6.3.9 forbids.
			res, err := t.exec(`DELETE FROM subscriptions WHERE account_id = ? AND name = ?`, accountID, r.old)
			if err != nil {
				return err
			}
			if n, err := res.RowsAffected(); err != nil {
				return err
			} else if n > 0 {
				if _, err := t.exec(`INSERT OR IGNORE INTO subscriptions (account_id, name) VALUES (?, ?)`, accountID, r.name); err != nil {
					return err
				}
			}
			t.change(store.ChangeMailbox, accountID, r.id, modseq)
		}
		// After the rename, so that a superior that is one of the renamed names exists.
		return t.createSuperiors(accountID, to)
	})
}

// renameInbox is RENAME of INBOX (RFC 9051 §6.3.6): its messages move to a new mailbox,
// INBOX stays, empty, and its inferiors stay where they are.
func (t *tx) renameInbox(accountID int64, to string) error {
	inbox, err := t.mailboxID(accountID, store.Inbox)
	if err != nil {
		return err
	}
	if err := t.createSuperiors(accountID, to); err != nil {
		return err
	}
	m, err := t.createMailbox(accountID, to, "")
	if err != nil {
		return err
	}
	rows, err := t.query(`SELECT uid FROM messages WHERE mailbox_id = ?`, inbox)
	if err != nil {
		return err
	}
	uids, err := scanColumn[uint32](rows)
	if err != nil {
		return err
	}
	_, err = t.copyMessages(inbox, uids, m.ID, true)
	return err
}

// DeleteMailbox implements store.Mailboxes.
func (s *Store) DeleteMailbox(ctx context.Context, accountID int64, name string) error {
	name = store.LookupMailboxName(name)
	if name == store.Inbox {
		return fmt.Errorf("store: INBOX cannot be deleted: %w", store.ErrInvalid)
	}
	return s.write(ctx, 0, func(t *tx) error {
		var id int64
		var gone counts
		if err := t.queryRow(`SELECT id, messages, size FROM mailboxes WHERE account_id = ? AND name = ?`,
			[]any{accountID, name}, &id, &gone.messages, &gone.size); err != nil {
			return fmt.Errorf("mailbox %q: %w", name, err)
		}
		var one int
		// substr rather than LIKE, whose wildcards may appear in names.
		switch err := t.queryRow(`SELECT 1 FROM mailboxes WHERE account_id = ?1 AND substr(name, 1, length(?2)) = ?2 LIMIT 1`,
			[]any{accountID, name + store.Separator}, &one); {
		case err == nil:
			return fmt.Errorf("mailbox %q: %w", name, store.ErrHasChildren)
		case !errors.Is(err, store.ErrNotFound):
			return err
		}
		rows, err := t.query(`SELECT DISTINCT blob_id FROM messages WHERE mailbox_id = ?`, id)
		if err != nil {
			return err
		}
		blobs, err := scanColumn[int64](rows)
		if err != nil {
			return err
		}
		modseq, err := t.raiseModSeq(accountID)
		if err != nil {
			return err
		}
		// Its messages and tombstones go with it (ON DELETE CASCADE).
		if _, err := t.exec(`DELETE FROM mailboxes WHERE id = ?`, id); err != nil {
			return err
		}
		gone.messages, gone.size = -gone.messages, -gone.size
		if err := t.adjustUsage(accountID, gone); err != nil {
			return err
		}
		if err := t.markGarbage(blobs); err != nil {
			return err
		}
		t.change(store.ChangeMailbox, accountID, id, modseq)
		return nil
	})
}

// SetSpecialUse implements store.Mailboxes.
func (s *Store) SetSpecialUse(ctx context.Context, accountID int64, name string, use store.SpecialUse) error {
	if !use.Valid() {
		return fmt.Errorf("store: special-use attribute %q: %w", use, store.ErrInvalid)
	}
	name = store.LookupMailboxName(name)
	return s.write(ctx, 0, func(t *tx) error {
		var id int64
		var cur string
		if err := t.queryRow(`SELECT id, special_use FROM mailboxes WHERE account_id = ? AND name = ?`,
			[]any{accountID, name}, &id, &cur); err != nil {
			return fmt.Errorf("mailbox %q: %w", name, err)
		}
		if cur == string(use) {
			return nil // no change, no MODSEQ
		}
		modseq, err := t.raiseModSeq(accountID)
		if err != nil {
			return err
		}
		if _, err := t.exec(`UPDATE mailboxes SET special_use = ?, modseq = ? WHERE id = ?`, string(use), int64(modseq), id); err != nil {
			return err
		}
		t.change(store.ChangeMailbox, accountID, id, modseq)
		return nil
	})
}

// SetSubscribed implements store.Mailboxes.
func (s *Store) SetSubscribed(ctx context.Context, accountID int64, name string, subscribed bool) error {
	_, err := s.SetSubscribedNotify(ctx, accountID, name, subscribed)
	return err
}

// SetSubscribedNotify implements store.SubscriptionChanges.
func (s *Store) SetSubscribedNotify(ctx context.Context, accountID int64, name string, subscribed bool) (changed bool, err error) {
	name, err = store.CanonicalMailboxName(name)
	if err != nil {
		return false, fmt.Errorf("store: %w", err)
	}
	err = s.write(ctx, 0, func(t *tx) error {
		changed = false // a retried transaction starts again
		if err := t.accountExists(accountID); err != nil {
			return err
		}
		var res interface{ RowsAffected() (int64, error) }
		var err error
		if subscribed {
			res, err = t.exec(`INSERT OR IGNORE INTO subscriptions (account_id, name) VALUES (?, ?)`, accountID, name)
		} else {
			res, err = t.exec(`DELETE FROM subscriptions WHERE account_id = ? AND name = ?`, accountID, name)
		}
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil || n == 0 {
			return err
		}
		changed = true
		// The change takes a MODSEQ of the account (no mailbox's): a node that lost
		// notifications finds it in its catch-up by MODSEQ like any other change.
		modseq, err := t.raiseModSeq(accountID)
		if err != nil {
			return err
		}
		t.change(store.ChangeSubscription, accountID, 0, modseq)
		return nil
	})
	return changed, err
}

// accountExists is ErrNotFound (wrapped) for an unknown account.
func (t *tx) accountExists(accountID int64) error {
	var one int
	if err := t.queryRow(`SELECT 1 FROM accounts WHERE id = ?`, []any{accountID}, &one); err != nil {
		return fmt.Errorf("account %d: %w", accountID, err)
	}
	return nil
}

// Subscriptions implements store.Mailboxes.
func (s *Store) Subscriptions(ctx context.Context, accountID int64) ([]string, error) {
	rows, err := s.query(ctx, `SELECT name FROM subscriptions WHERE account_id = ? ORDER BY name`, accountID)
	if err != nil {
		return nil, err
	}
	out, err := scanColumn[string](rows)
	if err != nil {
		return nil, err
	}
	if len(out) == 0 {
		// An account without subscriptions, or no account?
		if _, err := s.Usage(ctx, accountID); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// Usage implements store.Mailboxes: two counters of the account row, kept by every commit,
// and its mailboxes counted by index.
func (s *Store) Usage(ctx context.Context, accountID int64) (store.Usage, error) {
	var u store.Usage
	err := s.queryRow(ctx, `SELECT messages, size, (SELECT count(*) FROM mailboxes WHERE account_id = ?1)
		FROM accounts WHERE id = ?1`, accountID).Scan(&u.Messages, &u.Size, &u.Mailboxes)
	if err != nil {
		return store.Usage{}, fmt.Errorf("account %d: %w", accountID, notFound(err))
	}
	return u, nil
}
