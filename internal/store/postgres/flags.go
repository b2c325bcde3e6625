package postgres

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"petrel/internal/store"
)

// Changes to messages already stored: flags, expunge, copy and move.

// mailboxAccount returns the account owning a mailbox, or ErrNotFound, and locks the
// account's row (see the package comment): what the caller reads next is current.
func (t *tx) mailboxAccount(mailboxID int64) (int64, error) {
	var acct int64
	if err := t.queryRow(`SELECT account_id FROM mailboxes WHERE id = ?`, []any{mailboxID}, &acct); err != nil {
		return 0, fmt.Errorf("mailbox %d: %w", mailboxID, err)
	}
	if err := t.lockAccount(acct); err != nil {
		return 0, err
	}
	// The mailbox may have been deleted while we waited for the lock.
	var one int
	if err := t.queryRow(`SELECT 1 FROM mailboxes WHERE id = ?`, []any{mailboxID}, &one); err != nil {
		return 0, fmt.Errorf("mailbox %d: %w", mailboxID, err)
	}
	return acct, nil
}

// SetFlags implements store.Mail.
func (s *Store) SetFlags(ctx context.Context, mailboxID int64, uids []uint32, c store.FlagChange) (store.FlagsUpdated, error) {
	if c.Mode != store.FlagsAdd && c.Mode != store.FlagsRemove && c.Mode != store.FlagsReplace {
		return store.FlagsUpdated{}, fmt.Errorf("store: flag mode %d: %w", c.Mode, store.ErrInvalid)
	}
	flags, err := store.NormalizeFlags(c.Flags)
	if err != nil {
		return store.FlagsUpdated{}, fmt.Errorf("store: %w", err)
	}
	list := int64s(uids)
	var out store.FlagsUpdated
	err = s.write(ctx, func(t *tx) error {
		out = store.FlagsUpdated{}
		acct, err := t.mailboxAccount(mailboxID)
		if err != nil {
			return err
		}
		rows, err := t.query(`SELECT id, uid, flags, modseq FROM messages
			WHERE mailbox_id = ? AND uid = ANY(?) ORDER BY uid`, mailboxID, list)
		if err != nil {
			return err
		}
		type update struct {
			id    int64
			flags string
		}
		var updates []update
		var delta counts // of unseen and deleted
		for rows.Next() {
			var id int64
			var uid uint32
			var old string
			var modseq uint64
			if err := rows.Scan(&id, &uid, &old, &modseq); err != nil {
				rows.Close()
				return err
			}
			// RFC 7162 §3.1.3: a message changed after UNCHANGEDSINCE is not touched.
			if c.Conditional && modseq > c.UnchangedSince {
				out.Failed = append(out.Failed, uid)
				continue
			}
			now := store.ApplyFlags(strings.Fields(old), c.Mode, flags)
			text := strings.Join(now, " ")
			if text == old {
				continue
			}
			updates = append(updates, update{id, text})
			out.Changed = append(out.Changed, store.UIDFlags{UID: uid, Flags: now})
			delta.add(countsOf(text, 0))
			delta.sub(countsOf(old, 0))
		}
		if err := errors.Join(rows.Err(), rows.Close()); err != nil {
			return err
		}
		if len(updates) == 0 {
			return nil
		}
		modseq, err := t.raiseModSeq(acct)
		if err != nil {
			return err
		}
		for _, u := range updates {
			if _, err := t.exec(`UPDATE messages SET flags = ?, modseq = ? WHERE id = ?`, u.flags, int64(modseq), u.id); err != nil {
				return err
			}
		}
		if err := t.adjustMailbox(mailboxID, delta, modseq); err != nil {
			return err
		}
		if c.Mode != store.FlagsRemove {
			if err := t.addKeywords(mailboxID, flags); err != nil {
				return err
			}
		}
		out.ModSeq = modseq
		changed := make([]uint32, len(out.Changed))
		for i, u := range out.Changed {
			changed[i] = u.UID
		}
		t.change(store.ChangeFlags, acct, mailboxID, modseq, changed...)
		return nil
	})
	if err != nil {
		return store.FlagsUpdated{}, err
	}
	return out, nil
}

// Expunge implements store.Mail. Bodies left without a message are freed in its
// transaction (freeBlobs).
func (s *Store) Expunge(ctx context.Context, mailboxID int64, uids []uint32) (store.Expunged, error) {
	list := int64s(uids)
	var out store.Expunged
	err := s.write(ctx, func(t *tx) error {
		out = store.Expunged{}
		acct, err := t.mailboxAccount(mailboxID)
		if err != nil {
			return err
		}
		rows, err := t.query(`DELETE FROM messages WHERE mailbox_id = ? AND uid = ANY(?)
			RETURNING uid, blob_id, size, flags`, mailboxID, list)
		if err != nil {
			return err
		}
		var gone []uint32
		var blobs []int64
		var delta counts
		for rows.Next() {
			var uid uint32
			var blob, size int64
			var flags string
			if err := rows.Scan(&uid, &blob, &size, &flags); err != nil {
				rows.Close()
				return err
			}
			gone = append(gone, uid)
			blobs = append(blobs, blob)
			delta.sub(countsOf(flags, size))
		}
		if err := errors.Join(rows.Err(), rows.Close()); err != nil {
			return err
		}
		if len(gone) == 0 {
			return nil
		}
		slices.Sort(gone)
		modseq, err := t.raiseModSeq(acct)
		if err != nil {
			return err
		}
		if err := t.tombstones(mailboxID, gone, modseq); err != nil {
			return err
		}
		if err := t.adjustMailbox(mailboxID, delta, modseq); err != nil {
			return err
		}
		if err := t.adjustUsage(acct, delta); err != nil {
			return err
		}
		if err := t.freeBlobs(blobs); err != nil {
			return err
		}
		out = store.Expunged{UIDs: gone, ModSeq: modseq}
		t.change(store.ChangeExpunge, acct, mailboxID, modseq, gone...)
		return nil
	})
	if err != nil {
		return store.Expunged{}, err
	}
	return out, nil
}

// tombstones records that the given UIDs left a mailbox at modseq (QRESYNC VANISHED).
func (t *tx) tombstones(mailboxID int64, uids []uint32, modseq uint64) error {
	_, err := t.exec(`INSERT INTO expunged (mailbox_id, uid, modseq) SELECT ?, u, ? FROM unnest(?::bigint[]) u`,
		mailboxID, int64(modseq), int64s(uids))
	return err
}

// Copy implements store.Mail.
func (s *Store) Copy(ctx context.Context, from int64, uids []uint32, to int64) (store.Copied, error) {
	return s.copy(ctx, from, uids, to, false)
}

// Move implements store.Mail (RFC 6851). Moved messages keep their ID, body and flags.
func (s *Store) Move(ctx context.Context, from int64, uids []uint32, to int64) (store.Copied, error) {
	return s.copy(ctx, from, uids, to, true)
}

func (s *Store) copy(ctx context.Context, from int64, uids []uint32, to int64, move bool) (store.Copied, error) {
	var out store.Copied
	err := s.write(ctx, func(t *tx) error {
		var err error
		out, err = t.copyMessages(from, uids, to, move)
		return err
	})
	if err != nil {
		return store.Copied{}, err
	}
	return out, nil
}

// copyMessages copies (or moves) messages between two mailboxes of one account, giving them
// new UIDs in the destination in the order of the old ones.
func (t *tx) copyMessages(from int64, uids []uint32, to int64, move bool) (store.Copied, error) {
	acct, err := t.mailboxAccount(from)
	if err != nil {
		return store.Copied{}, err
	}
	var toAcct int64
	var uidvalidity uint32
	if err := t.queryRow(`SELECT account_id, uidvalidity FROM mailboxes WHERE id = ?`, []any{to}, &toAcct, &uidvalidity); err != nil {
		return store.Copied{}, fmt.Errorf("mailbox %d: %w", to, err)
	}
	if acct != toAcct {
		// A mailbox of another account does not exist for this one.
		return store.Copied{}, fmt.Errorf("mailbox %d is not in the account of mailbox %d: %w", to, from, store.ErrNotFound)
	}
	rows, err := t.query(`SELECT id, uid, blob_id, size, internal_date, flags FROM messages
		WHERE mailbox_id = ? AND uid = ANY(?) ORDER BY uid`, from, int64s(uids))
	if err != nil {
		return store.Copied{}, err
	}
	type row struct {
		id, blob, size, date int64
		uid                  uint32
		flags                string
	}
	var msgs []row
	var delta counts
	keywords := map[string]bool{}
	for rows.Next() {
		var r row
		if err := rows.Scan(&r.id, &r.uid, &r.blob, &r.size, &r.date, &r.flags); err != nil {
			rows.Close()
			return store.Copied{}, err
		}
		msgs = append(msgs, r)
		delta.add(countsOf(r.flags, r.size))
		for f := range strings.FieldsSeq(r.flags) {
			if store.IsKeyword(f) {
				keywords[f] = true
			}
		}
	}
	if err := errors.Join(rows.Err(), rows.Close()); err != nil {
		return store.Copied{}, err
	}
	out := store.Copied{UIDValidity: uidvalidity}
	if len(msgs) == 0 {
		return out, nil
	}
	if !move {
		// A move keeps the account's usage; a copy adds to it (RFC 9208 §4.3).
		q, err := t.quotaOf(acct)
		if err != nil {
			return store.Copied{}, err
		}
		if q.Over(delta.messages, delta.size) {
			return store.Copied{}, fmt.Errorf("account %d: %w", acct, store.ErrOverQuota)
		}
	}
	modseq, err := t.raiseModSeq(acct)
	if err != nil {
		return store.Copied{}, err
	}
	n := len(msgs)
	var first uint32
	if err := t.queryRow(`UPDATE mailboxes SET uidnext = uidnext + ?1 WHERE id = ?2 RETURNING uidnext - ?1`,
		[]any{n, to}, &first); err != nil {
		return store.Copied{}, err
	}
	if uint64(first)+uint64(n) > 1<<32 {
		return store.Copied{}, fmt.Errorf("mailbox %d: UIDs exhausted", to)
	}
	out.ModSeq = modseq
	for i, m := range msgs {
		uid := first + uint32(i)
		out.From = append(out.From, m.uid)
		out.To = append(out.To, uid)
		if move {
			_, err = t.exec(`UPDATE messages SET mailbox_id = ?, uid = ?, modseq = ? WHERE id = ?`, to, uid, int64(modseq), m.id)
		} else {
			_, err = t.exec(`INSERT INTO messages (mailbox_id, uid, blob_id, size, internal_date, flags, modseq)
				VALUES (?, ?, ?, ?, ?, ?, ?)`, to, uid, m.blob, m.size, m.date, m.flags, int64(modseq))
		}
		if err != nil {
			return store.Copied{}, err
		}
	}
	if err := t.adjustMailbox(to, delta, modseq); err != nil {
		return store.Copied{}, err
	}
	kw := make([]string, 0, len(keywords))
	for k := range keywords {
		kw = append(kw, k)
	}
	if err := t.addKeywords(to, kw); err != nil {
		return store.Copied{}, err
	}
	if move {
		if err := t.tombstones(from, out.From, modseq); err != nil {
			return store.Copied{}, err
		}
		var gone counts
		gone.sub(delta)
		if err := t.adjustMailbox(from, gone, modseq); err != nil {
			return store.Copied{}, err
		}
		t.change(store.ChangeExpunge, acct, from, modseq, out.From...)
	} else if err := t.adjustUsage(acct, delta); err != nil {
		return store.Copied{}, err
	}
	t.change(store.ChangeAdd, acct, to, modseq, out.To...)
	return out, nil
}
