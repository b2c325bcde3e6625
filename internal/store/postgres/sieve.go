package postgres

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"petrel/internal/store"
)

// Sieve scripts and the vacation log: the tables of migration 2, the embedded store's rows.
// The database keeps "at most one active script per account" with a partial unique index;
// the writes that change scripts lock the account's row, so that two activations on two
// nodes run one after the other instead of one failing on that index.

var _ store.Sieve = (*Store)(nil)

// vacationKeep is how long a vacation log row is kept: the longest period a script may
// ask for (the sieve package caps :days at 90).
const vacationKeep = 91 * 24 * time.Hour

const scriptColumns = `name, content, active, updated`

func scanScript(r pgx.Row) (store.SieveScript, error) {
	var sc store.SieveScript
	var updated int64
	if err := r.Scan(&sc.Name, &sc.Content, &sc.Active, &updated); err != nil {
		return sc, notFound(err)
	}
	sc.Updated = time.Unix(0, updated).UTC()
	return sc, nil
}

// SieveScripts implements store.Sieve.
func (s *Store) SieveScripts(ctx context.Context, accountID int64) ([]store.SieveScript, error) {
	if err := s.accountExists(ctx, accountID); err != nil {
		return nil, err
	}
	rows, err := s.query(ctx, `SELECT `+scriptColumns+` FROM sieve_scripts WHERE account_id = ? ORDER BY name`, accountID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []store.SieveScript
	for rows.Next() {
		sc, err := scanScript(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, sc)
	}
	return out, rows.Err()
}

// SieveScript implements store.Sieve.
func (s *Store) SieveScript(ctx context.Context, accountID int64, name string) (store.SieveScript, error) {
	return scanScript(s.queryRow(ctx, `SELECT `+scriptColumns+` FROM sieve_scripts WHERE account_id = ? AND name = ?`, accountID, name))
}

// ActiveSieveScript implements store.Sieve.
func (s *Store) ActiveSieveScript(ctx context.Context, accountID int64) (store.SieveScript, error) {
	return scanScript(s.queryRow(ctx, `SELECT `+scriptColumns+` FROM sieve_scripts WHERE account_id = ? AND active`, accountID))
}

// PutSieveScript implements store.Sieve.
func (s *Store) PutSieveScript(ctx context.Context, accountID int64, name, content string) error {
	if !store.ValidSieveName(name) {
		return fmt.Errorf("store: script name %q: %w", name, store.ErrInvalid)
	}
	return s.write(ctx, func(t *tx) error {
		if err := t.lockAccount(accountID); err != nil {
			return err
		}
		_, err := t.exec(`INSERT INTO sieve_scripts (account_id, name, content, updated) VALUES (?, ?, ?, ?)
			ON CONFLICT (account_id, name) DO UPDATE SET content = excluded.content, updated = excluded.updated`,
			accountID, name, content, time.Now().UnixNano())
		return err
	})
}

// SetActiveSieveScript implements store.Sieve.
func (s *Store) SetActiveSieveScript(ctx context.Context, accountID int64, name string) error {
	return s.write(ctx, func(t *tx) error {
		if err := t.lockAccount(accountID); err != nil {
			return err
		}
		if name != "" {
			if err := t.scriptExists(accountID, name); err != nil {
				return err
			}
		}
		if _, err := t.exec(`UPDATE sieve_scripts SET active = false WHERE account_id = ? AND active`, accountID); err != nil {
			return err
		}
		if name == "" {
			return nil
		}
		_, err := t.exec(`UPDATE sieve_scripts SET active = true WHERE account_id = ? AND name = ?`, accountID, name)
		return err
	})
}

func (t *tx) scriptExists(accountID int64, name string) error {
	var one int
	return t.queryRow(`SELECT 1 FROM sieve_scripts WHERE account_id = ? AND name = ?`, []any{accountID, name}, &one)
}

// DeleteSieveScript implements store.Sieve.
func (s *Store) DeleteSieveScript(ctx context.Context, accountID int64, name string) error {
	return s.write(ctx, func(t *tx) error {
		if err := t.lockAccount(accountID); err != nil {
			return err
		}
		var active bool
		if err := t.queryRow(`SELECT active FROM sieve_scripts WHERE account_id = ? AND name = ?`, []any{accountID, name}, &active); err != nil {
			return err
		}
		if active {
			return fmt.Errorf("store: script %q is active: %w", name, store.ErrInvalid)
		}
		_, err := t.exec(`DELETE FROM sieve_scripts WHERE account_id = ? AND name = ?`, accountID, name)
		return err
	})
}

// RenameSieveScript implements store.Sieve.
func (s *Store) RenameSieveScript(ctx context.Context, accountID int64, from, to string) error {
	if !store.ValidSieveName(to) {
		return fmt.Errorf("store: script name %q: %w", to, store.ErrInvalid)
	}
	return s.write(ctx, func(t *tx) error {
		if err := t.lockAccount(accountID); err != nil {
			return err
		}
		if err := t.scriptExists(accountID, from); err != nil {
			return err
		}
		if from == to {
			return nil
		}
		err := t.scriptExists(accountID, to)
		if err == nil {
			return store.ErrExists
		}
		if !errors.Is(err, store.ErrNotFound) {
			return err
		}
		_, err = t.exec(`UPDATE sieve_scripts SET name = ?, updated = ? WHERE account_id = ? AND name = ?`,
			to, time.Now().UnixNano(), accountID, from)
		return err
	})
}

// VacationReply implements store.Sieve. Handles are hashed: the default handle of a script
// holds its whole reply text. The decision is one upsert that writes only when no reply
// went within the period: PostgreSQL runs concurrent upserts of one row one after the
// other and re-checks the condition on the row the first committed, so two deliveries at
// once, on any nodes, never both reply.
func (s *Store) VacationReply(ctx context.Context, accountID int64, handle, sender string, now time.Time, period time.Duration) (bool, error) {
	sum := sha256.Sum256([]byte(handle))
	h := hex.EncodeToString(sum[:16])
	sender = strings.ToLower(sender)
	due := false
	err := s.write(ctx, func(t *tx) error {
		due = false
		if err := t.accountExists(accountID); err != nil {
			return err
		}
		r, err := t.query(`INSERT INTO vacation_log (account_id, handle, sender, sent) VALUES (?, ?, ?, ?)
			ON CONFLICT (account_id, handle, sender) DO UPDATE SET sent = excluded.sent
			WHERE vacation_log.sent <= ? RETURNING 1`, accountID, h, sender, now.UnixNano(), now.Add(-period).UnixNano())
		if err != nil {
			return err
		}
		n, err := scanColumn[int](r)
		if err != nil {
			return err
		}
		if due = len(n) > 0; !due {
			return nil
		}
		// Rows past any period are forgotten, so the log stays as small as the set of
		// recent correspondents.
		_, err = t.exec(`DELETE FROM vacation_log WHERE account_id = ? AND sent < ?`, accountID, now.Add(-vacationKeep).UnixNano())
		return err
	})
	return due, err
}

// deliverSieve commits a delivery that a Sieve script shaped: as Deliver, plus the further
// outbound messages of Delivery.More (redirects, vacation replies), each its own queue
// entry in the same transaction, and each target's own flags (Delivery.TargetFlags,
// imap4flags). Such deliveries are few, so this path favours plainness over round trips.
// With fields, the targets of those accounts get spliced copies (DeliverFields).
func (s *Store) deliverSieve(ctx context.Context, d *store.Delivery, fields ...store.AccountFields) (store.Delivered, error) {
	flags, err := store.NormalizeFlags(d.Flags)
	if err != nil {
		return store.Delivered{}, fmt.Errorf("store: %w", err)
	}
	targetFlags := make([][]string, len(d.Targets))
	for i := range d.Targets {
		targetFlags[i] = flags
		if i < len(d.TargetFlags) && d.TargetFlags[i] != nil {
			if targetFlags[i], err = store.NormalizeFlags(d.TargetFlags[i]); err != nil {
				return store.Delivered{}, fmt.Errorf("store: %w", err)
			}
		}
	}
	var body, outBody []byte
	if len(d.Targets) > 0 {
		if body, err = store.ReadBody(d.Body, d.Size); err != nil {
			return store.Delivered{}, err
		}
	}
	if d.Outbound != nil {
		if outBody, err = store.ReadOutbound(d.Outbound); err != nil {
			return store.Delivered{}, err
		}
	}
	more := make([][]byte, len(d.More))
	for i, o := range d.More {
		if more[i], err = store.ReadOutbound(o); err != nil {
			return store.Delivered{}, err
		}
	}
	received := d.ReceivedAt
	if received.IsZero() {
		received = time.Now()
	}
	quotaSize := int64(len(body))
	for _, f := range fields {
		if f.At < 0 || f.At > int64(len(body)) {
			return store.Delivered{}, fmt.Errorf("store: fields of account %d at %d, outside the body of %d bytes", f.AccountID, f.At, len(body))
		}
		quotaSize = max(quotaSize, int64(len(body)+len(f.Fields)))
	}
	var out store.Delivered
	err = s.write(ctx, func(t *tx) error {
		out = store.Delivered{}
		if d.Pulled != nil {
			if err := t.recordPulled(d.Pulled, received); err != nil {
				return err
			}
		}
		if err := t.checkDeliveryQuota(d.Targets, quotaSize); err != nil {
			return err
		}
		if d.Charge != nil {
			if _, err := t.chargeSending(d.Charge); err != nil {
				return err
			}
		}
		if d.Outbound != nil {
			if _, err := t.enqueue(d.Outbound, outBody, received); err != nil {
				return err
			}
		}
		for i, o := range d.More {
			if _, err := t.enqueue(o, more[i], received); err != nil {
				return err
			}
		}
		if len(d.Targets) == 0 {
			return nil
		}
		// One blob row per copy: the body as it is, and each account's spliced copy; the
		// bytes are stored once (blob_data, by digest) for all of them.
		blobs := map[int64]int64{} // account (0: the plain body) → blob
		blobFor := func(accountID int64) (int64, int64, error) {
			f := store.FieldsFor(fields, accountID)
			key, p, size := int64(0), &d.Parsed, int64(len(body))
			if f != nil {
				key, p, size = accountID, &f.Parsed, size+int64(len(f.Fields))
			}
			if id, ok := blobs[key]; ok {
				return id, size, nil
			}
			id, err := t.insertSplicedBlob(body, d.MailFrom, received, p, f)
			if err == nil {
				err = t.insertSearch(id, p)
			}
			blobs[key] = id
			return id, size, err
		}
		out = store.Delivered{Messages: make([]store.Message, len(d.Targets))}
		for i, tg := range d.Targets {
			blobID, size, err := blobFor(tg.AccountID)
			if err != nil {
				return err
			}
			if i == 0 {
				out.BlobID = blobID
			}
			out.Messages[i], _, err = t.insertMessage(tg.AccountID, store.LookupMailboxName(tg.Mailbox), d.InboxFallback,
				blobID, size, received, targetFlags[i])
			if err != nil {
				return fmt.Errorf("delivery target account %d: %w", tg.AccountID, err)
			}
		}
		return nil
	})
	if err != nil {
		return store.Delivered{}, err
	}
	return out, nil
}

// insertMessage adds a message with a stored body to an account's mailbox by name (or, with
// fallback, INBOX when that mailbox is gone): the account's MODSEQ raised once per write,
// the mailbox's next UID, its counts, its keywords. It returns the message and the
// mailbox's UIDVALIDITY.
func (t *tx) insertMessage(accountID int64, name string, fallback bool, blobID, size int64, received time.Time, flags []string) (store.Message, uint32, error) {
	modseq, err := t.raiseModSeq(accountID)
	if err != nil {
		return store.Message{}, 0, err
	}
	flagText := strings.Join(flags, " ")
	mboxID, validity, uid, err := t.takeUID(accountID, name, fallback, modseq, countsOf(flagText, size))
	if err != nil {
		return store.Message{}, 0, err
	}
	var id int64
	if err := t.queryRow(`INSERT INTO messages (mailbox_id, uid, blob_id, size, internal_date, flags, modseq)
		VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id`, []any{mboxID, uid, blobID, size, received.UnixNano(), flagText, modseq}, &id); err != nil {
		return store.Message{}, 0, err
	}
	if err := t.addKeywords(mboxID, flags); err != nil {
		return store.Message{}, 0, err
	}
	t.change(store.ChangeAdd, accountID, mboxID, modseq, uid)
	return store.Message{ID: id, MailboxID: mboxID, UID: uid, BlobID: blobID, Size: size,
		InternalDate: time.Unix(0, received.UnixNano()).UTC(), Flags: slices.Clone(flags), ModSeq: modseq}, validity, nil
}
