package sqlite

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"petrel/internal/store"
)

const (
	// blobChunkSize is the size of the rows a body is split into, so that reading a large
	// message streams chunk by chunk instead of loading it whole.
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

// Deliver implements store.Mail. The body is read into memory before the request is queued
// (see the package comment) and written once, whatever the number of targets.
func (s *Store) Deliver(ctx context.Context, d *store.Delivery) (store.Delivered, error) {
	if len(d.Targets) == 0 && d.Outbound == nil && len(d.More) == 0 {
		return store.Delivered{}, errors.New("store: delivery without targets")
	}
	out, _, err := s.deliver(ctx, d)
	return out, err
}

var _ store.FieldDeliverer = (*Store)(nil)

// DeliverFields implements store.FieldDeliverer. The shared body is stored once as a blob;
// each account with fields gets a blob of its own whose data is only those fields, naming
// the shared one (base_id) and where they go (fields_at). OpenBlob splices them.
func (s *Store) DeliverFields(ctx context.Context, d *store.Delivery, fields []store.AccountFields) (store.Delivered, error) {
	if len(d.Targets) == 0 && d.Outbound == nil && len(d.More) == 0 {
		return store.Delivered{}, errors.New("store: delivery without targets")
	}
	r, result, err := deliveryRequest(d, fields...)
	if err != nil {
		return store.Delivered{}, err
	}
	if err := s.submit(ctx, r); err != nil {
		return store.Delivered{}, err
	}
	out, _ := result()
	return out, nil
}

// Append implements store.Mail: a delivery to one mailbox that must exist.
func (s *Store) Append(ctx context.Context, accountID int64, mailbox string, m *store.AppendMessage) (store.Appended, error) {
	out, uidvalidity, err := s.deliver(ctx, appendDelivery(accountID, mailbox, m))
	if err != nil {
		return store.Appended{}, err
	}
	return store.Appended{UIDValidity: uidvalidity, Message: out.Messages[0]}, nil
}

func appendDelivery(accountID int64, mailbox string, m *store.AppendMessage) *store.Delivery {
	return &store.Delivery{
		Targets:    []store.Target{{AccountID: accountID, Mailbox: mailbox}},
		Body:       m.Body,
		Size:       m.Size,
		Parsed:     m.Parsed,
		ReceivedAt: m.InternalDate,
		Flags:      m.Flags,
	}
}

var _ store.MultiAppender = (*Store)(nil)

// AppendMany implements store.MultiAppender: one delivery request that writes every message,
// so they share the commit (and its rollback).
func (s *Store) AppendMany(ctx context.Context, accountID int64, mailbox string, msgs []*store.AppendMessage) (store.AppendedMany, error) {
	if len(msgs) == 0 {
		return store.AppendedMany{}, fmt.Errorf("store: no message to append: %w", store.ErrInvalid)
	}
	rs := make([]*request, len(msgs))
	results := make([]func() (store.Delivered, uint32), len(msgs))
	var size, bodies int64
	for i, m := range msgs {
		r, result, err := deliveryRequest(appendDelivery(accountID, mailbox, m))
		if err != nil {
			return store.AppendedMany{}, err
		}
		rs[i], results[i] = r, result
		size += r.size
		bodies += m.Size
	}
	fn := func(t *tx) error {
		// Each message's own check sees the usage before this request: check them together.
		over, err := t.overQuota(accountID, int64(len(rs)), bodies)
		if err != nil {
			return err
		}
		if over {
			return &store.QuotaError{Accounts: []int64{accountID}}
		}
		for _, r := range rs {
			if err := r.fn(t); err != nil {
				return err
			}
		}
		return nil
	}
	if err := s.submit(ctx, &request{fn: fn, size: size, delivery: true}); err != nil {
		return store.AppendedMany{}, err
	}
	var out store.AppendedMany
	out.Messages = make([]store.Message, len(rs))
	for i, result := range results {
		d, validity := result()
		out.Messages[i], out.UIDValidity = d.Messages[0], validity
	}
	return out, nil
}

var _ store.BatchAppender = (*Store)(nil)
var _ store.BlobBatch = (*Store)(nil)
var _ store.FlagSearch = (*Store)(nil)
var _ store.FlagFirst = (*Store)(nil)
var _ store.HeaderBatch = (*Store)(nil)

// AppendBatch implements store.BatchAppender. Every message is a request of its own (and a
// message with a UID one more, the adoption of its UID, before it), all enqueued before the
// first is awaited: the committer takes them in order and gathers them into its batches
// (Options.MaxBatch requests, MaxBatchBytes of bodies), so a run of messages costs a commit
// per batch instead of one per message, and each message is still all or nothing.
//
// A message whose UID follows the previous message's needs no adoption: the append gives it
// that UID anyway (or, if a delivery took it in between, the next, as the adoption would
// have). Leaving it out matters beyond the request: an adoption is not a delivery, so the
// committer writes its in-memory UID and MODSEQ counters before it and reads them back
// after (commit.go); with one before every message, a run of kept UIDs (a Dovecot Maildir
// without gaps) lost the two-statement delivery path.
func (s *Store) AppendBatch(ctx context.Context, accountID int64, mailbox string, msgs []store.BatchMessage) ([]store.Appended, error) {
	var mboxID int64
	if slices.ContainsFunc(msgs, func(m store.BatchMessage) bool { return m.UID != 0 }) {
		mb, err := s.Mailbox(ctx, accountID, mailbox)
		if err != nil {
			return nil, err
		}
		mboxID = mb.ID
	}
	type queued struct {
		adopt  *request // raises UIDNEXT to the message's UID; nil without one
		r      *request
		result func() (store.Delivered, uint32)
	}
	var q []queued
	var qerr error
	for i := range msgs {
		m := &msgs[i]
		var e queued
		if m.UID != 0 && (i == 0 || msgs[i-1].UID == 0 || m.UID != msgs[i-1].UID+1) {
			e.adopt = &request{fn: adoptUIDs(mboxID, 0, m.UID, true)}
			if qerr = s.enqueue(ctx, e.adopt); qerr != nil {
				break
			}
		}
		if e.r, e.result, qerr = deliveryRequest(appendDelivery(accountID, mailbox, &m.AppendMessage)); qerr != nil {
			q = append(q, e) // its adoption, if any, is awaited below
			break
		}
		if qerr = s.enqueue(ctx, e.r); qerr != nil {
			e.r = nil
			q = append(q, e)
			break
		}
		q = append(q, e)
	}
	out := make([]store.Appended, 0, len(q))
	var first error
	for _, e := range q {
		// After a failure, what the committer has not taken yet is withdrawn; what it took
		// still has to be awaited before returning.
		for _, r := range []*request{e.adopt, e.r} {
			if r == nil {
				continue
			}
			if first != nil && r.state.CompareAndSwap(pending, cancelled) {
				continue
			}
			if err := s.await(ctx, r); err != nil && first == nil {
				first = err
			}
		}
		if first == nil && e.r != nil {
			d, validity := e.result()
			out = append(out, store.Appended{UIDValidity: validity, Message: d.Messages[0]})
		}
	}
	if first == nil {
		first = qerr
	}
	return out, first
}

// deliver commits d and also returns the UIDVALIDITY of its last target's mailbox.
func (s *Store) deliver(ctx context.Context, d *store.Delivery) (store.Delivered, uint32, error) {
	r, result, err := deliveryRequest(d)
	if err != nil {
		return store.Delivered{}, 0, err
	}
	if err := s.submit(ctx, r); err != nil {
		return store.Delivered{}, 0, err
	}
	out, uidvalidity := result()
	return out, uidvalidity, nil
}

// deliveryRequest reads d's body and makes the request that commits it; result tells what
// the request did once it has run.
// Accounts with fields get their own spliced blob (DeliverFields).
func deliveryRequest(d *store.Delivery, fields ...store.AccountFields) (r *request, result func() (store.Delivered, uint32), err error) {
	flags, err := store.NormalizeFlags(d.Flags)
	if err != nil {
		return nil, nil, fmt.Errorf("store: %w", err)
	}
	var body, outBody []byte
	if len(d.Targets) > 0 {
		if body, err = store.ReadBody(d.Body, d.Size); err != nil {
			return nil, nil, err
		}
	}
	if d.Outbound != nil {
		if outBody, err = store.ReadOutbound(d.Outbound); err != nil {
			return nil, nil, err
		}
	}
	// Sieve's extra messages (redirects, vacation replies) and per-target flags.
	moreBodies := make([][]byte, len(d.More))
	moreSize := 0
	for i, o := range d.More {
		if moreBodies[i], err = store.ReadOutbound(o); err != nil {
			return nil, nil, err
		}
		moreSize += len(moreBodies[i])
	}
	targetFlags := make([][]string, len(d.Targets))
	for i := range d.Targets {
		targetFlags[i] = flags
		if i < len(d.TargetFlags) && d.TargetFlags[i] != nil {
			if targetFlags[i], err = store.NormalizeFlags(d.TargetFlags[i]); err != nil {
				return nil, nil, fmt.Errorf("store: %w", err)
			}
		}
	}
	received := d.ReceivedAt
	if received.IsZero() {
		received = time.Now()
	}
	// Hashed here, by the caller's goroutine, not by the committer that every write waits for.
	digest := sha256.Sum256(body)
	var date any // NULL for a missing Date header
	if !d.Parsed.Date.IsZero() {
		date = d.Parsed.Date.UnixNano()
	}
	flagText := strings.Join(flags, " ")
	msgCounts := countsOf(flagText, int64(len(body)))
	spliced, plain, quotaSize, err := splicedBodies(d, body, fields)
	if err != nil {
		return nil, nil, err
	}

	var out store.Delivered
	var uidvalidity uint32
	r = &request{size: int64(len(body) + len(outBody) + moreSize), delivery: true}
	r.fn = func(t *tx) error {
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
			if _, err := t.enqueue(o, moreBodies[i], received); err != nil {
				return err
			}
		}
		if len(d.Targets) == 0 {
			return nil
		}
		blobID, err := t.insertBlob(body, digest, d.MailFrom, received, date, &d.Parsed)
		if err != nil {
			return err
		}
		// A shared body that only spliced copies use is never served as it is: it needs no
		// index entry or sort keys of its own.
		if plain {
			if err := t.searchLater(blobID, &d.Parsed); err != nil {
				return err
			}
			if err := t.insertSortKeys(blobID, d.Parsed.Sort); err != nil {
				return err
			}
		}
		for i := range spliced {
			if spliced[i].id, err = t.insertSpliced(blobID, &spliced[i], d.MailFrom, received); err != nil {
				return err
			}
		}

		out = store.Delivered{BlobID: blobID, Messages: make([]store.Message, len(d.Targets))}
		for i, tg := range d.Targets {
			// The account's MODSEQ and the mailbox's UID come from the committer's counters
			// (delivercache.go): this runs once per recipient per message.
			flags := targetFlags[i]
			flagText, msgCounts := flagText, msgCounts
			blobID, size := blobID, int64(len(body))
			if sp := splicedFor(spliced, tg.AccountID); sp != nil {
				blobID, size = sp.id, sp.size
				msgCounts = countsOf(flagText, size)
			}
			if i < len(d.TargetFlags) && d.TargetFlags[i] != nil {
				flagText = strings.Join(flags, " ")
				msgCounts = countsOf(flagText, size)
			}
			modseq, err := t.deliveryModSeq(tg.AccountID)
			if err != nil {
				return fmt.Errorf("delivery target account %d: %w", tg.AccountID, err)
			}
			mboxID, validity, uid, err := t.takeUID(tg.AccountID, store.LookupMailboxName(tg.Mailbox), d.InboxFallback, modseq, msgCounts)
			if err != nil {
				return fmt.Errorf("delivery target account %d: %w", tg.AccountID, err)
			}
			uidvalidity = validity
			res, err := t.exec(`INSERT INTO messages (mailbox_id, uid, blob_id, size, internal_date, flags, modseq)
				VALUES (?, ?, ?, ?, ?, ?, ?)`, mboxID, uid, blobID, size, received.UnixNano(), flagText, modseq)
			if err != nil {
				return err
			}
			id, err := res.LastInsertId()
			if err != nil {
				return err
			}
			// The keyword list is not a counter: the rare delivery with keywords writes it
			// at once (the counters never touch that column).
			if err := t.addKeywords(mboxID, flags); err != nil {
				return err
			}
			out.Messages[i] = store.Message{
				ID:           id,
				MailboxID:    mboxID,
				UID:          uid,
				BlobID:       blobID,
				Size:         size,
				InternalDate: time.Unix(0, received.UnixNano()).UTC(),
				Flags:        slices.Clone(flags),
				ModSeq:       modseq,
			}
			t.change(store.ChangeAdd, tg.AccountID, mboxID, modseq, uid)
		}
		return nil
	}
	return r, func() (store.Delivered, uint32) { return out, uidvalidity }, nil
}

// insertBlob stores a body with its SHA-256 and metadata and returns its ID; date is the Date
// header in unix nanoseconds, or nil.
func (t *tx) insertBlob(body []byte, digest [sha256.Size]byte, mailFrom string, received time.Time, date any, p *store.ParsedMessage) (int64, error) {
	first := body[:min(blobChunkSize, len(body))]
	res, err := t.exec(`INSERT INTO blobs (size, mail_from, received, message_id, subject, from_addr, date, envelope, structure, data, digest)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		len(body), mailFrom, received.UnixNano(), p.MessageID, p.Subject, p.From, date, p.Envelope, p.Structure, first, digest[:])
	if err != nil {
		return 0, err
	}
	blobID, err := res.LastInsertId()
	if err != nil {
		return 0, err
	}
	// The header copy of HeaderBatch, when the header ends inside the first chunk.
	if n := store.HeaderSize(first); n < int64(len(first)) || len(first) == len(body) {
		if _, err := t.exec(`INSERT INTO blob_headers (blob_id, data) VALUES (?, ?)`, blobID, first[:n]); err != nil {
			return 0, err
		}
	}
	for seq, off := 1, blobChunkSize; off < len(body); seq, off = seq+1, off+blobChunkSize {
		chunk := body[off:min(off+blobChunkSize, len(body))]
		if _, err := t.exec(`INSERT INTO blob_chunks (blob_id, seq, data) VALUES (?, ?, ?)`, blobID, seq, chunk); err != nil {
			return 0, err
		}
	}
	return blobID, nil
}

// selectFiltered returns the query and arguments that select columns of a table (messages
// or expunged, as t) of one mailbox by a filter, in UID order. Without CHANGEDSINCE it has
// three shapes, each served by the (mailbox_id, uid) index: every UID; one range (IMAP's
// "1:*" and a single UID are one); several ranges, which go in as one JSON parameter of
// [first, last] pairs and drive the search (CROSS JOIN keeps json_each the outer loop), so
// that any number of them is one statement. CHANGEDSINCE alone (an IMAP session's poll
// after each command) reads the (mailbox_id, modseq) index, so that it costs the changes and
// not the mailbox; INDEXED BY because the planner would otherwise walk the UID index to save
// the sort of the few rows found. With ranges, CHANGEDSINCE is checked on the rows the UIDs
// select.
func selectFiltered(columns, table string, mailboxID int64, f store.Filter) (string, []any) {
	args := []any{mailboxID, int64(f.ChangedSince)}
	since := ` AND t.modseq > ?2` // ?2 is unused without it (SQLite allows that)
	if f.ChangedSince == 0 {
		since = "" // every MODSEQ is above 0: no condition, and nothing for the planner to weigh
	}
	ranges := store.MergeUIDRanges(f.UIDs)
	switch {
	case len(ranges) == 0 && since != "":
		return `SELECT ` + columns + ` FROM ` + table + ` t INDEXED BY ` + table + `_modseq
			WHERE t.mailbox_id = ?1 AND t.modseq > ?2 ORDER BY t.uid`, args
	case len(ranges) == 0:
		return `SELECT ` + columns + ` FROM ` + table + ` t WHERE t.mailbox_id = ?1 ORDER BY t.uid`, args
	case len(ranges) == 1:
		return `SELECT ` + columns + ` FROM ` + table + ` t WHERE t.mailbox_id = ?1 AND t.uid BETWEEN ?3 AND ?4` +
			since + ` ORDER BY t.uid`, append(args, ranges[0].First, ranges[0].Last)
	}
	b := []byte{'['}
	for i, r := range ranges {
		if i > 0 {
			b = append(b, ',')
		}
		b = fmt.Appendf(b, "[%d,%d]", r.First, r.Last)
	}
	b = append(b, ']')
	return `SELECT ` + columns + ` FROM json_each(?3) r CROSS JOIN ` + table + ` t
		ON t.mailbox_id = ?1 AND t.uid BETWEEN r.value->>0 AND r.value->>1
		WHERE true` + since + ` ORDER BY t.uid`, append(args, string(b))
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
// does not exist is ErrNotFound. The UIDs come back as one value, a comma-separated list
// made by group_concat: handing database/sql one row per UID cost about three times
// SQLite's own walk of the index (locks, the driver's step and scan per row), and SELECT
// lists every UID of the mailbox (docs/benchmarks.md).
func (s *Store) mailboxUIDs(ctx context.Context, mailboxID int64, query string, args ...any) ([]uint32, error) {
	out, err := s.uidList(ctx, `SELECT group_concat(uid) FROM (`+query+`)`, args...)
	if err != nil {
		return nil, err
	}
	if len(out) == 0 {
		return nil, s.mailboxExists(ctx, mailboxID)
	}
	return out, nil
}

// uidList runs a query whose one row is a group_concat of UIDs and returns them sorted
// (group_concat's order is not promised). It closes its rows before returning, so that the
// caller may query again without holding two of the pool's connections.
func (s *Store) uidList(ctx context.Context, query string, args ...any) ([]uint32, error) {
	rows, err := s.query(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var list sql.RawBytes
	var out []uint32
	if rows.Next() {
		if err := rows.Scan(&list); err != nil {
			return nil, err
		}
		if out, err = parseUIDList(list); err != nil {
			return nil, err
		}
	}
	return out, rows.Err()
}

// OpenBlob implements store.Mail. The reader fetches one chunk at a time and holds no
// connection between reads; the first chunk is in the blobs row, so a message smaller than
// a chunk costs one query. A blob listed as garbage is not found, though not yet freed.
func (s *Store) OpenBlob(ctx context.Context, blobID int64) (io.ReadCloser, error) {
	if b, ok := s.queueBodies.get(blobID); ok {
		return io.NopCloser(bytes.NewReader(b)), nil
	}
	r := &blobReader{ctx: ctx, s: s, id: blobID}
	var base, at sql.NullInt64
	err := s.queryRow(ctx, `SELECT size, data, base_id, fields_at FROM blobs WHERE id = ?1
		AND NOT EXISTS (SELECT 1 FROM garbage WHERE blob_id = ?1)`, blobID).Scan(&r.size, &r.buf, &base, &at)
	if err != nil {
		return nil, notFound(err)
	}
	r.seq = 1
	if !base.Valid {
		return r, nil
	}
	// A spliced copy (fields.go): its data is the fields, the rest is the shared body's.
	fields := r.buf
	b := &blobReader{ctx: ctx, s: s, id: base.Int64, seq: 1}
	if err := s.queryRow(ctx, `SELECT size, data FROM blobs WHERE id = ?`, base.Int64).Scan(&b.size, &b.buf); err != nil {
		return nil, fmt.Errorf("store: blob %d: shared body %d: %w", blobID, base.Int64, notFound(err))
	}
	return io.NopCloser(store.Spliced(b, at.Int64, fields)), nil
}

type blobReader struct {
	ctx  context.Context
	s    *Store
	id   int64
	size int64  // total bytes of the blob
	read int64  // bytes handed out so far
	seq  int    // next chunk to fetch
	buf  []byte // rest of the current chunk
}

func (r *blobReader) Read(p []byte) (int, error) {
	for len(r.buf) == 0 {
		if r.read >= r.size {
			return 0, io.EOF
		}
		err := r.s.queryRow(r.ctx, `SELECT data FROM blob_chunks WHERE blob_id = ? AND seq = ?`, r.id, r.seq).Scan(&r.buf)
		if errors.Is(err, sql.ErrNoRows) {
			// Expunged by someone else while we were reading it.
			return 0, fmt.Errorf("store: blob %d gone while reading: %w", r.id, io.ErrUnexpectedEOF)
		}
		if err != nil {
			return 0, err
		}
		r.seq++
	}
	n := copy(p, r.buf)
	r.buf = r.buf[n:]
	r.read += int64(n)
	return n, nil
}

func (r *blobReader) Close() error { return nil }

// Parsed implements store.Mail.
func (s *Store) Parsed(ctx context.Context, blobID int64) (store.ParsedMessage, error) {
	var p store.ParsedMessage
	var date sql.NullInt64
	err := s.queryRow(ctx, `SELECT message_id, subject, from_addr, date, envelope, structure FROM blobs
		WHERE id = ?1 AND NOT EXISTS (SELECT 1 FROM garbage WHERE blob_id = ?1)`,
		blobID).Scan(&p.MessageID, &p.Subject, &p.From, &date, &p.Envelope, &p.Structure)
	if err != nil {
		return store.ParsedMessage{}, notFound(err)
	}
	if date.Valid {
		p.Date = time.Unix(0, date.Int64).UTC()
	}
	return p, nil
}

// uidList encodes UIDs as a JSON array for json_each, so any number of UIDs fits in one
// bound parameter.
func uidList(uids []uint32) string {
	b := make([]byte, 0, 2+len(uids)*6)
	b = append(b, '[')
	for i, u := range uids {
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendUint(b, uint64(u), 10)
	}
	return string(append(b, ']'))
}

// ReadBlobs implements store.BlobBatch: one query for all of ids, reading only bodies that
// are whole in their blobs row (the first chunk), so a body never needs a second query.
// A spliced copy (fields.go) is left to OpenBlob: its row holds only its header fields.
// Bodies are scanned as sql.RawBytes, so database/sql adds no copy of its own.
func (s *Store) ReadBlobs(ctx context.Context, ids []int64, maxSize int64, fn func(id int64, body []byte) error) error {
	if len(ids) == 0 {
		return nil
	}
	rows, err := s.query(ctx, `SELECT b.id, b.data FROM blobs b
		WHERE b.id IN (SELECT value FROM json_each(?1)) AND b.size <= ?2 AND b.base_id IS NULL
		AND NOT EXISTS (SELECT 1 FROM garbage g WHERE g.blob_id = b.id)`,
		idList(ids), min(maxSize, blobChunkSize))
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var id int64
		var body sql.RawBytes
		if err := rows.Scan(&id, &body); err != nil {
			return err
		}
		if err := fn(id, body); err != nil {
			return err
		}
	}
	return rows.Err()
}

// ReadHeaders implements store.HeaderBatch from the header copies of blob_headers (migration
// 20): small rows, several to a page, where a body of a few KB spills into overflow pages.
// A blob listed as garbage is skipped, as ReadBlobs skips it.
func (s *Store) ReadHeaders(ctx context.Context, ids []int64, fn func(id int64, header []byte) error) error {
	if len(ids) == 0 {
		return nil
	}
	rows, err := s.query(ctx, `SELECT h.blob_id, h.data FROM blob_headers h
		WHERE h.blob_id IN (SELECT value FROM json_each(?1))
		AND NOT EXISTS (SELECT 1 FROM garbage g WHERE g.blob_id = h.blob_id)`, idList(ids))
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var id int64
		var header sql.RawBytes
		if err := rows.Scan(&id, &header); err != nil {
			return err
		}
		if err := fn(id, header); err != nil {
			return err
		}
	}
	return rows.Err()
}

// idList encodes IDs as a JSON array for json_each, like uidList.
func idList(ids []int64) string {
	b := make([]byte, 0, 2+len(ids)*8)
	b = append(b, '[')
	for i, id := range ids {
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendInt(b, id, 10)
	}
	return string(append(b, ']'))
}

// flagIndexes are the partial indexes of migration 19 that list a mailbox's messages by a
// system flag, with their conditions spelled exactly as in the migration.
var flagIndexes = []struct {
	flag  string
	has   bool
	index string
	term  string
}{
	{store.FlagSeen, false, "messages_unseen", `instr(' ' || t.flags || ' ', ' \Seen ') = 0`},
	{store.FlagFlagged, true, "messages_flagged", `instr(' ' || t.flags || ' ', ' \Flagged ') > 0`},
	{store.FlagDeleted, true, "messages_deleted", `instr(' ' || t.flags || ' ', ' \Deleted ') > 0`},
}

// UIDsByFlag implements store.FlagSearch. It returns only UIDs, so a listing costs no
// Message per message. Every message (an empty flag) is a walk along the (mailbox_id, uid)
// index; UNSEEN, FLAGGED and DELETED walk their partial index (flagIndexes), which holds
// only the messages they list; any other flag is checked on each message's row. Every UID
// or one range is a plain range of an index, walked in UID order; several ranges go in as
// JSON pairs (as in selectFiltered).
func (s *Store) UIDsByFlag(ctx context.Context, mailboxID int64, ranges []store.UIDRange, flag string, has bool) ([]uint32, error) {
	query, args := flagQuery(mailboxID, ranges, flag, has)
	return s.mailboxUIDs(ctx, mailboxID, query, args...)
}

// FirstUIDByFlag implements store.FlagFirst: UIDsByFlag's walk, stopped at its first UID.
func (s *Store) FirstUIDByFlag(ctx context.Context, mailboxID int64, flag string, has bool) (uint32, error) {
	query, args := flagQuery(mailboxID, nil, flag, has)
	var uid uint32
	err := s.queryRow(ctx, query+` LIMIT 1`, args...).Scan(&uid)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, s.mailboxExists(ctx, mailboxID)
	}
	return uid, err
}

// flagQuery is the query of UIDsByFlag, in UID order.
func flagQuery(mailboxID int64, ranges []store.UIDRange, flag string, has bool) (string, []any) {
	// Flags are stored normalized, separated by single spaces (store.NormalizeFlags): a
	// system flag is compared in its canonical spelling, a keyword without regard to case.
	from, term := "messages t", "true"
	switch canon, system := store.SystemFlag(flag); {
	case flag == "":
	case system:
		term = `(instr(' ' || t.flags || ' ', ' ' || ?3 || ' ') > 0) = ?4`
		flag = canon
		for _, fi := range flagIndexes {
			if fi.flag == canon && fi.has == has {
				from, term = "messages t INDEXED BY "+fi.index, fi.term
			}
		}
	default:
		term = `(instr(lower(' ' || t.flags || ' '), lower(' ' || ?3 || ' ')) > 0) = ?4`
	}
	merged := store.MergeUIDRanges(ranges)
	if len(merged) <= 1 {
		r := store.UIDRange{First: 0, Last: math.MaxUint32}
		if len(merged) == 1 {
			r = merged[0]
		}
		return `SELECT t.uid FROM ` + from + `
			WHERE t.mailbox_id = ?1 AND t.uid BETWEEN ?2 AND ?5 AND ` + term + `
			ORDER BY t.uid`, []any{mailboxID, r.First, flag, has, r.Last}
	}
	b := []byte{'['}
	for i, r := range merged {
		if i > 0 {
			b = append(b, ',')
		}
		b = fmt.Appendf(b, "[%d,%d]", r.First, r.Last)
	}
	pairs := string(append(b, ']'))
	return `SELECT t.uid FROM json_each(?2) r CROSS JOIN messages t
		ON t.mailbox_id = ?1 AND t.uid BETWEEN r.value->>0 AND r.value->>1
		WHERE ` + term + ` ORDER BY t.uid`, []any{mailboxID, pairs, flag, has}
}
