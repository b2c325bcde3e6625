package postgres

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"petrel/internal/store"
)

const (
	// blobChunkSize is the size of the slices a body is read in, so that reading a large
	// message streams instead of loading it whole.
	blobChunkSize = 256 << 10
)

// counts are what messages add to the counts of a mailbox (all four) or an account
// (messages and size).
type counts struct {
	messages, unseen, deleted int64
	size                      int64
}

// countsOf returns the counts of one message with the given stored flag string.
func countsOf(flags string, size int64) counts {
	c := counts{messages: 1, unseen: 1, size: size}
	if hasFlag(flags, store.FlagSeen) {
		c.unseen = 0
	}
	if hasFlag(flags, store.FlagDeleted) {
		c.deleted = 1
	}
	return c
}

// hasFlag reports whether a stored flag string (sorted, space separated) holds flag.
func hasFlag(flags, flag string) bool {
	for flags != "" {
		var f string
		f, flags, _ = strings.Cut(flags, " ")
		if f == flag {
			return true
		}
	}
	return false
}

func (c *counts) add(d counts) {
	c.messages += d.messages
	c.unseen += d.unseen
	c.deleted += d.deleted
	c.size += d.size
}

func (c *counts) sub(d counts) {
	c.messages -= d.messages
	c.unseen -= d.unseen
	c.deleted -= d.deleted
	c.size -= d.size
}

// adjustMailbox adds d to a mailbox's counts and gives it modseq.
func (t *tx) adjustMailbox(mailboxID int64, d counts, modseq uint64) error {
	_, err := t.exec(`UPDATE mailboxes SET messages = messages + ?, unseen = unseen + ?, deleted = deleted + ?,
		size = size + ?, modseq = ? WHERE id = ?`, d.messages, d.unseen, d.deleted, d.size, int64(modseq), mailboxID)
	return err
}

// adjustUsage adds d to an account's usage.
func (t *tx) adjustUsage(accountID int64, d counts) error {
	if d.messages == 0 && d.size == 0 {
		return nil
	}
	_, err := t.exec(`UPDATE accounts SET messages = messages + ?, size = size + ? WHERE id = ?`, d.messages, d.size, accountID)
	return err
}

// addKeywords makes the keywords among flags part of a mailbox's keyword list.
func (t *tx) addKeywords(mailboxID int64, flags []string) error {
	if !slices.ContainsFunc(flags, store.IsKeyword) {
		return nil
	}
	var stored string
	if err := t.queryRow(`SELECT keywords FROM mailboxes WHERE id = ?`, []any{mailboxID}, &stored); err != nil {
		return err
	}
	kw := strings.Fields(stored)
	n := len(kw)
	for _, f := range flags {
		// Keywords are case-insensitive (RFC 9051 §2.3.2): the first spelling stays.
		if store.IsKeyword(f) && !slices.ContainsFunc(kw, func(k string) bool { return strings.EqualFold(k, f) }) {
			kw = append(kw, f)
		}
	}
	if len(kw) == n {
		return nil
	}
	slices.Sort(kw)
	_, err := t.exec(`UPDATE mailboxes SET keywords = ? WHERE id = ?`, strings.Join(kw, " "), mailboxID)
	return err
}

// Deliver implements store.Mail. The body is read into memory before the transaction
// begins, so a slow client holds no lock, and written once, whatever the number of targets.
func (s *Store) Deliver(ctx context.Context, d *store.Delivery) (store.Delivered, error) {
	if len(d.Targets) == 0 && d.Outbound == nil && len(d.More) == 0 {
		return store.Delivered{}, errors.New("store: delivery without targets")
	}
	if len(d.More) > 0 || slices.ContainsFunc(d.TargetFlags, func(f []string) bool { return f != nil }) {
		// What a Sieve script adds (redirects, vacation replies, per-target flags): a
		// transaction of its own shape (sieve.go), so that this path stays the plain one.
		// Delivery with Sieve on passes a nil entry per target that no script gave flags
		// to: those still take the plain path (a round trip per statement there was most
		// of a delivery's cost: docs/benchmarks.md).
		return s.deliverSieve(ctx, d)
	}
	out, _, err := s.deliver(ctx, d)
	return out, err
}

// Append implements store.Mail: a delivery to one mailbox that must exist.
func (s *Store) Append(ctx context.Context, accountID int64, mailbox string, m *store.AppendMessage) (store.Appended, error) {
	d := &store.Delivery{
		Targets:    []store.Target{{AccountID: accountID, Mailbox: mailbox}},
		Body:       m.Body,
		Size:       m.Size,
		Parsed:     m.Parsed,
		ReceivedAt: m.InternalDate,
		Flags:      m.Flags,
	}
	out, uidvalidity, err := s.deliver(ctx, d)
	if err != nil {
		return store.Appended{}, err
	}
	return store.Appended{UIDValidity: uidvalidity, Message: out.Messages[0]}, nil
}

// deliver commits d and also returns the UIDVALIDITY of its last target's mailbox.
func (s *Store) deliver(ctx context.Context, d *store.Delivery) (store.Delivered, uint32, error) {
	flags, err := store.NormalizeFlags(d.Flags)
	if err != nil {
		return store.Delivered{}, 0, fmt.Errorf("store: %w", err)
	}
	var body, outBody []byte
	if len(d.Targets) > 0 {
		if body, err = store.ReadBody(d.Body, d.Size); err != nil {
			return store.Delivered{}, 0, err
		}
	}
	if d.Outbound != nil {
		if outBody, err = store.ReadOutbound(d.Outbound); err != nil {
			return store.Delivered{}, 0, err
		}
	}
	received := d.ReceivedAt
	if received.IsZero() {
		received = time.Now()
	}
	var date any // NULL for a missing Date header
	if !d.Parsed.Date.IsZero() {
		date = d.Parsed.Date.UnixNano()
	}

	var out store.Delivered
	var uidvalidity uint32
	// Inbound mail (no sending charge, no remote copy, no keywords to add to the mailbox)
	// is one batch: BEGIN goes in it (writePipelined).
	write := s.write
	if d.Charge == nil && d.Outbound == nil && d.Pulled == nil && len(d.Targets) > 0 && !slices.ContainsFunc(flags, store.IsKeyword) {
		write = s.writePipelined
	}
	err = write(ctx, func(t *tx) error {
		if d.Pulled != nil {
			if err := t.recordPulled(d.Pulled, received); err != nil {
				return err
			}
		}
		if d.Charge != nil || d.Outbound != nil {
			// Submission: lock and check the targets' accounts first (the lock order), then
			// charge the sender and queue the remote copy, a few round trips more.
			if err := t.checkDeliveryQuota(d.Targets, int64(len(body))); err != nil {
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
		}
		if len(d.Targets) == 0 {
			return nil
		}
		var err error
		out, uidvalidity, err = t.deliverTargets(d, body, flags, received, date)
		return err
	})
	if err != nil {
		return store.Delivered{}, 0, err
	}
	return out, uidvalidity, nil
}

// The codes petrel_refuse raises (migration 12) when a delivery's statements refuse it.
const (
	refuseQuota   = "PT001" // the message: the accounts over quota, space separated
	refuseMailbox = "PT002" // the target's mailbox (or account) does not exist
	refuseUIDs    = "PT003" // the mailbox has no UID left
)

// refusal turns the error of a statement that petrel_refuse aborted into the store's
// error for it; other errors pass unchanged.
func refusal(err error, tg store.Target) error {
	var pe *pgconn.PgError
	if !errors.As(err, &pe) {
		return err
	}
	switch pe.Code {
	case refuseQuota:
		qe := &store.QuotaError{}
		for f := range strings.FieldsSeq(pe.Message) {
			var id int64
			if _, err := fmt.Sscan(f, &id); err == nil {
				qe.Accounts = append(qe.Accounts, id)
			}
		}
		return qe
	case refuseMailbox:
		return fmt.Errorf("delivery target account %d: mailbox %q: %w", tg.AccountID, tg.Mailbox, store.ErrNotFound)
	case refuseUIDs:
		return fmt.Errorf("delivery target account %d: mailbox %q: UIDs exhausted", tg.AccountID, tg.Mailbox)
	}
	return err
}

// deliverTargets stores the body, its index row and a message in each target's mailbox,
// and returns them with the UIDVALIDITY of the last target's mailbox. Its statements go
// as one pipelined batch, one round trip whatever the number of targets (a delivery used
// to be a dozen, and round trips were most of its cost: docs/benchmarks.md); none of them
// needs another's result in Go, because the blob's ID reaches the messages through
// currval and each account's new MODSEQ through its (locked, updated) row. The checks run
// in the statements too: the quota on the accounts' new usage, the mailbox and its UIDs in
// each target's statement, which petrel_refuse aborts. So in a write begun by
// writePipelined the COMMIT and the NOTIFY go in the same batch (the whole delivery is one
// round trip), and a refusal makes the server skip them and roll back.
func (t *tx) deliverTargets(d *store.Delivery, body []byte, flags []string, received time.Time, date any) (store.Delivered, uint32, error) {
	size := int64(len(body))
	flagText := strings.Join(flags, " ")
	c := countsOf(flagText, size)
	added := map[int64]int64{}
	for _, tg := range d.Targets {
		added[tg.AccountID]++
	}
	ids := slices.Sorted(maps.Keys(added))
	dq := t.s.opts.DefaultQuota
	commit := t.tx == nil // writePipelined: this batch is the whole write

	b := &pgx.Batch{}
	// Accounts in ascending ID order (the lock order): lock, raise MODSEQ once, count the
	// usage. The quota is checked on the new usage: with one account (most mail) by the
	// account's own statement; with several, by one statement after them all, so that the
	// refusal names every account over.
	overQuota := `(coalesce(quota_storage, $2) > 0 AND size > coalesce(quota_storage, $2)
		OR coalesce(quota_messages, $3) > 0 AND messages > coalesce(quota_messages, $3))`
	if len(ids) == 1 {
		id := ids[0]
		b.Queue(`UPDATE accounts SET modseq = modseq + 1, messages = messages + $5, size = size + $6 WHERE id = $1
			RETURNING modseq, CASE WHEN `+overQuota+` THEN petrel_refuse($4, id::text) END`,
			id, dq.Storage, dq.Messages, refuseQuota, added[id], added[id]*size)
	} else {
		for _, id := range ids {
			b.Queue(`UPDATE accounts SET modseq = modseq + 1, messages = messages + $2, size = size + $3 WHERE id = $1
				RETURNING modseq, NULL::bigint`, id, added[id], added[id]*size)
		}
		b.Queue(`SELECT petrel_refuse($4, string_agg(id::text, ' ' ORDER BY id)) FROM accounts
			WHERE id = ANY($1) AND `+overQuota+` HAVING count(*) > 0`, ids, dq.Storage, dq.Messages, refuseQuota)
	}
	blobSQL, blobArgs := blobInsert(body, d.MailFrom, received, date, &d.Parsed, true)
	b.Queue(blobSQL, blobArgs...)
	for i, tg := range d.Targets {
		target := `SELECT id FROM mailboxes WHERE account_id = $6 AND name = $7`
		if d.InboxFallback {
			target = `SELECT id FROM mailboxes WHERE account_id = $6 AND name IN ($7, 'INBOX') ORDER BY name = 'INBOX' LIMIT 1`
		}
		// The change this target makes, for the NOTIFY after the COMMIT: kept in a
		// session setting, which the COMMIT keeps and a rollback undoes.
		notices := `''`
		if i > 0 {
			notices = `current_setting('petrel.notices') || E'\n'`
		}
		b.Queue(`WITH box AS (
				UPDATE mailboxes SET uidnext = uidnext + 1, messages = messages + $1, unseen = unseen + $2,
					deleted = deleted + $3, size = size + $4, modseq = (SELECT modseq FROM accounts WHERE id = $6)
				WHERE id = (`+target+`) RETURNING id, uidvalidity, uidnext - 1 AS uid, modseq),
			msg AS (
				INSERT INTO messages (mailbox_id, uid, blob_id, size, internal_date, flags, modseq)
				SELECT id, uid, currval(pg_get_serial_sequence('blobs', 'id')), $4, $5, $8, modseq FROM box
				RETURNING id)
			SELECT msg.id, box.id, box.uidvalidity, box.uid, box.modseq,
				CASE WHEN box.id IS NULL THEN petrel_refuse($9, '')
					WHEN box.uid <= 0 OR box.uid >= 4294967295 THEN petrel_refuse($10, '') END,
				set_config('petrel.notices', `+notices+` || json_build_object('o', $11::text, 'k', $12::int, 'a', $6::bigint,
					'm', box.id, 's', box.modseq, 'u', json_build_array(box.uid))::text, false)
			FROM (SELECT) one LEFT JOIN (msg CROSS JOIN box) ON true`,
			c.messages, c.unseen, c.deleted, c.size, received.UnixNano(), tg.AccountID, store.LookupMailboxName(tg.Mailbox), flagText,
			refuseMailbox, refuseUIDs, t.s.notifier.origin, int(store.ChangeAdd))
	}
	if commit {
		b.Queue("COMMIT")
		b.Queue(`SELECT pg_notify($1, p) FROM unnest(string_to_array(current_setting('petrel.notices'), E'\n')) p`, notifyChannel)
	}

	br, err := t.sendBatch(b)
	if err != nil {
		return store.Delivered{}, 0, err
	}
	defer br.Close()
	for _, id := range ids {
		var m uint64
		if err := br.QueryRow().Scan(&m, nil); err != nil {
			var pe *pgconn.PgError
			if errors.As(err, &pe) {
				return store.Delivered{}, 0, refusal(err, store.Target{})
			}
			return store.Delivered{}, 0, fmt.Errorf("delivery target account %d: %w", id, notFound(err))
		}
		if t.modseq == nil {
			t.modseq = map[int64]uint64{}
		}
		t.modseq[id] = m
		t.markLocked(id)
	}
	if len(ids) > 1 {
		if _, err := br.Exec(); err != nil {
			return store.Delivered{}, 0, refusal(err, store.Target{})
		}
	}
	out := store.Delivered{Messages: make([]store.Message, len(d.Targets))}
	if err := br.QueryRow().Scan(&out.BlobID); err != nil {
		return store.Delivered{}, 0, err
	}
	var uidvalidity uint32
	for i, tg := range d.Targets {
		m := store.Message{BlobID: out.BlobID, Size: size, InternalDate: time.Unix(0, received.UnixNano()).UTC(), Flags: slices.Clone(flags)}
		var uid int64
		if err := br.QueryRow().Scan(&m.ID, &m.MailboxID, &uidvalidity, &uid, &m.ModSeq, nil, nil); err != nil {
			return store.Delivered{}, 0, refusal(err, tg)
		}
		m.UID = uint32(uid)
		out.Messages[i] = m
		t.change(store.ChangeAdd, tg.AccountID, m.MailboxID, m.ModSeq, m.UID)
	}
	if commit {
		tag, err := br.Exec()
		if err == nil && tag.String() != "COMMIT" {
			err = pgx.ErrTxCommitRollback
		}
		if err != nil {
			return store.Delivered{}, 0, err
		}
		t.committed = true
		if _, err := br.Exec(); err != nil {
			t.s.log.Warn("store: notifying other nodes of a commit", "err", err)
		}
		br.Close() // committed: what the NOTIFY answered is logged above
	} else if err := br.Close(); err != nil {
		return store.Delivered{}, 0, err
	}
	if slices.ContainsFunc(flags, store.IsKeyword) {
		for _, m := range out.Messages {
			if err := t.addKeywords(m.MailboxID, flags); err != nil {
				return store.Delivered{}, 0, err
			}
		}
	}
	return out, uidvalidity, nil
}

// takeUID finds the mailbox a delivery target goes to (the named one or, with fallback and
// when it does not exist, INBOX: store.Delivery.InboxFallback), gives the message its next
// UID and counts it there: c holds the message's counts, which the account's usage gains
// too. The caller holds the account's row lock (raiseModSeq).
func (t *tx) takeUID(accountID int64, name string, fallback bool, modseq uint64, c counts) (mailboxID int64, uidvalidity, uid uint32, err error) {
	// One statement finds the mailbox and takes the UID.
	target := `SELECT id FROM mailboxes WHERE account_id = ?6 AND name = ?7`
	if fallback {
		target = `SELECT id FROM mailboxes WHERE account_id = ?6 AND name IN (?7, 'INBOX')
			ORDER BY name = 'INBOX' LIMIT 1`
	}
	var next int64
	if err := t.queryRow(`UPDATE mailboxes SET uidnext = uidnext + 1, messages = messages + ?1, unseen = unseen + ?2,
		deleted = deleted + ?3, size = size + ?4, modseq = ?5 WHERE id = (`+target+`) RETURNING id, uidvalidity, uidnext - 1`,
		[]any{c.messages, c.unseen, c.deleted, c.size, modseq, accountID, name}, &mailboxID, &uidvalidity, &next); err != nil {
		return 0, 0, 0, fmt.Errorf("mailbox %q: %w", name, err)
	}
	if next <= 0 || next >= math.MaxUint32 {
		return 0, 0, 0, fmt.Errorf("mailbox %d: UIDs exhausted (UIDNEXT %d)", mailboxID, next)
	}
	if err := t.adjustUsage(accountID, c); err != nil {
		return 0, 0, 0, err
	}
	return mailboxID, uidvalidity, uint32(next), nil
}

// insertBlob stores a body with its metadata and returns its ID; date is the Date header in
// unix nanoseconds, or nil. The bytes are written only if no blob has the same content;
// ON CONFLICT DO UPDATE (not DO NOTHING) locks an existing row, so that a concurrent
// freeBlobs cannot delete it before this transaction commits.
func (t *tx) insertBlob(body []byte, mailFrom string, received time.Time, date any, p *store.ParsedMessage) (int64, error) {
	query, args := blobInsert(body, mailFrom, received, date, p, false)
	var blobID int64
	err := t.tx.QueryRow(t.ctx, query, args...).Scan(&blobID)
	return blobID, err
}

// blobInsert returns the statement that stores a body (insertBlob) and, with index, its
// row in the search index, and its sort keys if it has them; it returns the blob's ID.
// PostgreSQL checks the foreign keys between the inserts at the end of the statement,
// when all the rows exist.
func blobInsert(body []byte, mailFrom string, received time.Time, date any, p *store.ParsedMessage, index bool) (string, []any) {
	digest := sha256.Sum256(body)
	// The keys of SORT and THREAD go in the body's row (sortkeys.go); NULL without them.
	var keys []byte
	if p.Sort != nil {
		keys = store.PackSortKeys(p.Sort)
	}
	query := `WITH data AS (INSERT INTO blob_data (digest, data) VALUES ($1, $2) ON CONFLICT (digest) DO UPDATE SET digest = excluded.digest),
		blob AS (INSERT INTO blobs (digest, size, mail_from, received, message_id, subject, from_addr, date, envelope, structure, sort_keys)
			VALUES ($1, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) RETURNING id)`
	args := []any{digest[:], body, len(body), mailFrom, received.UnixNano(), p.MessageID, p.Subject, p.From, date, p.Envelope, p.Structure, keys}
	if index {
		query += `, idx AS (INSERT INTO search (blob_id, subject, hfrom, hto, hcc, hbcc, header, body)
			SELECT id, $13::tsvector, $14::tsvector, $15::tsvector, $16::tsvector, $17::tsvector, $18::tsvector, $19::tsvector FROM blob)`
		args = append(args, searchVectors(p)...)
	}
	return query + ` SELECT id FROM blob`, args
}

// freeBlobs deletes those of the given blobs that no message or queue entry refers to any
// more, and the bytes no blob points at any more, inside the write that removed their
// last reference. The blob rows are locked first, in ID order: two accounts expunging
// their copies of one body at once then decide one after the other, and the second sees
// the first's message gone.
func (t *tx) freeBlobs(ids []int64) error {
	if len(ids) == 0 {
		return nil
	}
	if _, err := t.exec(`SELECT id FROM blobs WHERE id = ANY(?) ORDER BY id FOR UPDATE`, ids); err != nil {
		return err
	}
	// The index row goes with the body: it has no foreign key (migration 14), and IndexBlob,
	// which adds one later, locks the body's row first, which the lock above waits for.
	r, err := t.query(`WITH gone AS (DELETE FROM blobs WHERE id = ANY(?)
			AND NOT EXISTS (SELECT 1 FROM messages WHERE blob_id = blobs.id)
			AND NOT EXISTS (SELECT 1 FROM queue WHERE blob_id = blobs.id) RETURNING id, digest),
		idx AS (DELETE FROM search WHERE blob_id IN (SELECT id FROM gone))
		SELECT digest FROM gone`, ids)
	if err != nil {
		return err
	}
	digests, err := scanColumn[[]byte](r)
	if err != nil || len(digests) == 0 {
		return err
	}
	// A delivery of the same content may have taken the bytes meanwhile (insertBlob locks
	// them): then the foreign key refuses, inside a savepoint, and the bytes stay.
	sp, err := t.tx.Begin(t.ctx)
	if err != nil {
		return err
	}
	_, err = sp.Exec(t.ctx, `DELETE FROM blob_data WHERE digest = ANY($1)
		AND NOT EXISTS (SELECT 1 FROM blobs WHERE digest = blob_data.digest)`, digests)
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code == "23503" {
		return sp.Rollback(t.ctx)
	}
	if err != nil {
		sp.Rollback(t.ctx)
		return err
	}
	return sp.Commit(t.ctx)
}

// selectFiltered returns the query and arguments that select columns of a table (messages
// or expunged, as t) of one mailbox by a filter, in UID order. It has three shapes, each
// served by the (mailbox_id, uid) index: every UID; one range (IMAP's "1:*" and a single
// UID are one); several ranges, which go in as two array parameters (firsts, lasts), so
// that any number of them is one statement. CHANGEDSINCE alone (an IMAP session's poll)
// can use the (mailbox_id, modseq) index of migration 10; with ranges it is checked on the
// rows the UIDs select.
func selectFiltered(columns, table string, mailboxID int64, f store.Filter) (string, []any) {
	args := []any{mailboxID, int64(f.ChangedSince)}
	ranges := store.MergeUIDRanges(f.UIDs)
	switch len(ranges) {
	case 0:
		return `SELECT ` + columns + ` FROM ` + table + ` t WHERE t.mailbox_id = ?1 AND t.modseq > ?2 ORDER BY t.uid`, args
	case 1:
		return `SELECT ` + columns + ` FROM ` + table + ` t WHERE t.mailbox_id = ?1 AND t.uid BETWEEN ?3 AND ?4
			AND t.modseq > ?2 ORDER BY t.uid`, append(args, ranges[0].First, ranges[0].Last)
	}
	firsts, lasts := make([]int64, len(ranges)), make([]int64, len(ranges))
	for i, r := range ranges {
		firsts[i], lasts[i] = int64(r.First), int64(r.Last)
	}
	return `SELECT ` + columns + ` FROM unnest(?3::bigint[], ?4::bigint[]) r(first, last) JOIN ` + table + ` t
		ON t.mailbox_id = ?1 AND t.uid BETWEEN r.first AND r.last
		WHERE t.modseq > ?2 ORDER BY t.uid`, append(args, firsts, lasts)
}

// Messages implements store.Mail.
func (s *Store) Messages(ctx context.Context, mailboxID int64, f store.Filter) ([]store.Message, error) {
	query, args := selectFiltered(`t.id, t.uid, t.blob_id, t.size, t.internal_date, t.flags, t.modseq`, "messages", mailboxID, f)
	rows, err := s.query(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []store.Message
	for rows.Next() {
		m := store.Message{MailboxID: mailboxID}
		var date int64
		var flags string
		if err := rows.Scan(&m.ID, &m.UID, &m.BlobID, &m.Size, &date, &flags, &m.ModSeq); err != nil {
			return nil, err
		}
		m.InternalDate = time.Unix(0, date).UTC()
		m.Flags = strings.Fields(flags)
		out = append(out, m)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if len(out) == 0 {
		return nil, s.mailboxExists(ctx, mailboxID)
	}
	return out, nil
}

// mailboxExists is nil for an existing mailbox and ErrNotFound for any other ID.
func (s *Store) mailboxExists(ctx context.Context, mailboxID int64) error {
	var one int
	if err := s.queryRow(ctx, `SELECT 1 FROM mailboxes WHERE id = ?`, mailboxID).Scan(&one); err != nil {
		return fmt.Errorf("mailbox %d: %w", mailboxID, notFound(err))
	}
	return nil
}

// Vanished implements store.Mail.
func (s *Store) Vanished(ctx context.Context, mailboxID int64, f store.Filter) ([]uint32, error) {
	query, args := selectFiltered(`t.uid`, "expunged", mailboxID, f)
	return s.mailboxUIDs(ctx, mailboxID, query, args...)
}

// mailboxUIDs runs a query for UIDs of one mailbox; when it finds none, a mailbox that
// does not exist is ErrNotFound.
func (s *Store) mailboxUIDs(ctx context.Context, mailboxID int64, query string, args ...any) ([]uint32, error) {
	rows, err := s.query(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	out, err := scanColumn[uint32](rows)
	if err != nil {
		return nil, err
	}
	if len(out) == 0 {
		return nil, s.mailboxExists(ctx, mailboxID)
	}
	return out, nil
}

// OpenBlob implements store.Mail. The reader fetches one slice of blobChunkSize bytes at a
// time (blob_data is stored uncompressed, so substring reads only that slice) and holds no
// connection between reads.
func (s *Store) OpenBlob(ctx context.Context, blobID int64) (io.ReadCloser, error) {
	r := &blobReader{ctx: ctx, s: s}
	var fields []byte
	var at *int64
	err := s.queryRow(ctx, `SELECT size, digest, fields, fields_at FROM blobs WHERE id = ?`, blobID).Scan(&r.size, &r.digest, &fields, &at)
	if err != nil {
		return nil, notFound(err)
	}
	if at == nil {
		return r, nil
	}
	// A spliced copy (fields.go): the shared bytes with its fields inside.
	r.size -= int64(len(fields))
	return io.NopCloser(store.Spliced(r, *at, fields)), nil
}

type blobReader struct {
	ctx    context.Context
	s      *Store
	digest []byte
	size   int64  // total bytes of the blob
	read   int64  // bytes fetched so far
	buf    []byte // rest of the current slice
}

func (r *blobReader) Read(p []byte) (int, error) {
	for len(r.buf) == 0 {
		if r.read >= r.size {
			return 0, io.EOF
		}
		// substring counts from 1.
		err := r.s.queryRow(r.ctx, `SELECT substring(data FROM ?::int FOR ?::int) FROM blob_data WHERE digest = ?`,
			r.read+1, blobChunkSize, r.digest).Scan(&r.buf)
		if errors.Is(err, pgx.ErrNoRows) || err == nil && len(r.buf) == 0 {
			// Expunged by someone else while we were reading it.
			return 0, fmt.Errorf("store: blob gone while reading: %w", io.ErrUnexpectedEOF)
		}
		if err != nil {
			return 0, err
		}
		r.read += int64(len(r.buf))
	}
	n := copy(p, r.buf)
	r.buf = r.buf[n:]
	return n, nil
}

func (r *blobReader) Close() error { return nil }

// Parsed implements store.Mail.
func (s *Store) Parsed(ctx context.Context, blobID int64) (store.ParsedMessage, error) {
	var p store.ParsedMessage
	var date *int64
	err := s.queryRow(ctx, `SELECT message_id, subject, from_addr, date, envelope, structure FROM blobs WHERE id = ?`,
		blobID).Scan(&p.MessageID, &p.Subject, &p.From, &date, &p.Envelope, &p.Structure)
	if err != nil {
		return store.ParsedMessage{}, notFound(err)
	}
	if date != nil {
		p.Date = time.Unix(0, *date).UTC()
	}
	return p, nil
}
