package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"petrel/internal/store"
)

const (
	// blobChunkSize is the size of the rows a body is split into, so that reading a large
	// message streams chunk by chunk instead of loading it whole.
	blobChunkSize = 256 << 10
	// maxBodySize bounds what Deliver accepts; callers enforce far smaller message limits.
	maxBodySize = 1 << 30
)

// Deliver implements store.Mail. The body is read into memory before the request is queued
// (see the package comment) and written once, whatever the number of targets.
func (s *Store) Deliver(ctx context.Context, d *store.Delivery) (store.Delivered, error) {
	if len(d.Targets) == 0 {
		return store.Delivered{}, errors.New("store: delivery without targets")
	}
	flags, err := normalizeFlags(d.Flags)
	if err != nil {
		return store.Delivered{}, err
	}
	body, err := readBody(d.Body, d.Size)
	if err != nil {
		return store.Delivered{}, err
	}
	received := d.ReceivedAt
	if received.IsZero() {
		received = time.Now()
	}
	var date any // NULL for a missing Date header
	if !d.Parsed.Date.IsZero() {
		date = d.Parsed.Date.UnixNano()
	}
	flagText := strings.Join(flags, " ")

	var out store.Delivered
	r := &request{size: int64(len(body)), delivery: true}
	r.fn = func(t *tx) error {
		p := &d.Parsed
		first := body[:min(blobChunkSize, len(body))]
		res, err := t.exec(`INSERT INTO blobs (size, mail_from, received, message_id, subject, from_addr, date, envelope, structure, data)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			len(body), d.MailFrom, received.UnixNano(), p.MessageID, p.Subject, p.From, date, p.Envelope, p.Structure, first)
		if err != nil {
			return err
		}
		blobID, err := res.LastInsertId()
		if err != nil {
			return err
		}
		for seq, off := 1, blobChunkSize; off < len(body); seq, off = seq+1, off+blobChunkSize {
			chunk := body[off:min(off+blobChunkSize, len(body))]
			if _, err := t.exec(`INSERT INTO blob_chunks (blob_id, seq, data) VALUES (?, ?, ?)`, blobID, seq, chunk); err != nil {
				return err
			}
		}

		out = store.Delivered{BlobID: blobID, Messages: make([]store.Message, len(d.Targets))}
		for i, tg := range d.Targets {
			// The account's MODSEQ and the mailbox's UID come from the committer's counters
			// (delivercache.go): this runs once per recipient per message.
			modseq, err := t.deliveryModSeq(tg.AccountID)
			if err != nil {
				return fmt.Errorf("delivery target account %d: %w", tg.AccountID, err)
			}
			mboxID, uid, err := t.takeUID(tg.AccountID, canonicalMailbox(tg.Mailbox), modseq)
			if err != nil {
				return fmt.Errorf("delivery target account %d: %w", tg.AccountID, err)
			}
			res, err := t.exec(`INSERT INTO messages (mailbox_id, uid, blob_id, size, internal_date, flags, modseq)
				VALUES (?, ?, ?, ?, ?, ?, ?)`, mboxID, uid, blobID, len(body), received.UnixNano(), flagText, modseq)
			if err != nil {
				return err
			}
			id, err := res.LastInsertId()
			if err != nil {
				return err
			}
			out.Messages[i] = store.Message{
				ID:           id,
				MailboxID:    mboxID,
				UID:          uid,
				BlobID:       blobID,
				Size:         int64(len(body)),
				InternalDate: time.Unix(0, received.UnixNano()).UTC(),
				Flags:        slices.Clone(flags),
				ModSeq:       modseq,
			}
			t.change(store.ChangeAdd, tg.AccountID, mboxID, modseq, uid)
		}
		return nil
	}
	if err := s.submit(ctx, r); err != nil {
		return store.Delivered{}, err
	}
	return out, nil
}

// readBody reads exactly size bytes; a body shorter or longer than announced is an error
// rather than a silently truncated message.
func readBody(r io.Reader, size int64) ([]byte, error) {
	if size < 0 || size > maxBodySize {
		return nil, fmt.Errorf("store: invalid body size %d", size)
	}
	if r == nil {
		if size == 0 {
			return nil, nil
		}
		return nil, errors.New("store: delivery without body")
	}
	buf := make([]byte, size)
	if _, err := io.ReadFull(r, buf); err != nil {
		return nil, fmt.Errorf("store: reading body of %d bytes: %w", size, err)
	}
	var one [1]byte
	switch n, err := io.ReadFull(r, one[:]); {
	case n > 0:
		return nil, fmt.Errorf("store: body is longer than its size %d", size)
	case err != io.EOF:
		return nil, fmt.Errorf("store: reading body: %w", err)
	}
	return buf, nil
}

// canonicalMailbox spells INBOX in upper case: the name is case-insensitive (RFC 9051
// §5.1), every other name is case-sensitive.
func canonicalMailbox(name string) string {
	if name == "" || strings.EqualFold(name, store.Inbox) {
		return store.Inbox
	}
	return name
}

// checkMailboxName refuses names IMAP clients could not use: empty hierarchy levels,
// control characters and the LIST wildcards (RFC 9051 §5.1).
func checkMailboxName(name string) error {
	bad := name == "" || !utf8.ValidString(name) || strings.HasPrefix(name, "/") ||
		strings.HasSuffix(name, "/") || strings.Contains(name, "//") ||
		strings.ContainsFunc(name, func(r rune) bool { return r < 0x20 || r == 0x7f || r == '*' || r == '%' })
	if bad {
		return fmt.Errorf("store: invalid mailbox name %q", name)
	}
	return nil
}

// createMailbox adds a mailbox with a fresh UIDVALIDITY; an existing name is ErrExists and
// a missing account ErrNotFound.
func (t *tx) createMailbox(accountID int64, name string) (store.Mailbox, error) {
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
	m := store.Mailbox{AccountID: accountID, Name: name, UIDValidity: uint32(uidvalidity), UIDNext: 1, HighestModSeq: modseq}
	err = t.queryRow(`INSERT INTO mailboxes (account_id, name, uidvalidity, modseq) VALUES (?, ?, ?, ?)
		ON CONFLICT DO NOTHING RETURNING id`, []any{accountID, name, uidvalidity, modseq}, &m.ID)
	if errors.Is(err, store.ErrNotFound) {
		return store.Mailbox{}, fmt.Errorf("mailbox %q: %w", name, store.ErrExists)
	}
	return m, err
}

const mailboxColumns = `id, account_id, name, uidvalidity, uidnext, modseq, messages`

func scanMailbox(sc interface{ Scan(...any) error }) (store.Mailbox, error) {
	var m store.Mailbox
	err := sc.Scan(&m.ID, &m.AccountID, &m.Name, &m.UIDValidity, &m.UIDNext, &m.HighestModSeq, &m.Messages)
	return m, err
}

// Mailboxes implements store.Mail, in creation order (so DefaultMailboxes come first, in
// their display order). An unknown account is ErrNotFound: every account has an INBOX.
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
		accountID, canonicalMailbox(name)))
	return m, notFound(err)
}

func (s *Store) CreateMailbox(ctx context.Context, accountID int64, name string) (store.Mailbox, error) {
	if err := checkMailboxName(name); err != nil {
		return store.Mailbox{}, err
	}
	name = canonicalMailbox(name)
	var m store.Mailbox
	err := s.write(ctx, 0, func(t *tx) error {
		var err error
		if m, err = t.createMailbox(accountID, name); err != nil {
			return err
		}
		t.change(store.ChangeMailbox, accountID, m.ID, m.HighestModSeq)
		return nil
	})
	if err != nil {
		return store.Mailbox{}, err
	}
	return m, nil
}

// Messages implements store.Mail. An unknown mailbox is ErrNotFound, an empty one is not.
func (s *Store) Messages(ctx context.Context, mailboxID int64) ([]store.Message, error) {
	rows, err := s.query(ctx, `SELECT id, uid, blob_id, size, internal_date, flags, modseq
		FROM messages WHERE mailbox_id = ? ORDER BY uid`, mailboxID)
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
		var one int
		if err := s.queryRow(ctx, `SELECT 1 FROM mailboxes WHERE id = ?`, mailboxID).Scan(&one); err != nil {
			return nil, notFound(err)
		}
	}
	return out, nil
}

// OpenBlob implements store.Mail. The reader fetches one chunk at a time and holds no
// connection between reads; the first chunk is in the blobs row, so a message smaller than
// a chunk costs one query. A blob listed as garbage is not found, though not yet freed.
func (s *Store) OpenBlob(ctx context.Context, blobID int64) (io.ReadCloser, error) {
	r := &blobReader{ctx: ctx, s: s, id: blobID}
	err := s.queryRow(ctx, `SELECT size, data FROM blobs WHERE id = ?1
		AND NOT EXISTS (SELECT 1 FROM garbage WHERE blob_id = ?1)`, blobID).Scan(&r.size, &r.buf)
	if err != nil {
		return nil, notFound(err)
	}
	r.seq = 1
	return r, nil
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

// mailboxAccount returns the account owning a mailbox, or ErrNotFound.
func (t *tx) mailboxAccount(mailboxID int64) (int64, error) {
	var acct int64
	if err := t.queryRow(`SELECT account_id FROM mailboxes WHERE id = ?`, []any{mailboxID}, &acct); err != nil {
		return 0, fmt.Errorf("mailbox %d: %w", mailboxID, err)
	}
	return acct, nil
}

// SetFlags implements store.Mail. Only messages whose flags really change get a new MODSEQ
// and appear in the ChangeFlags event (RFC 7162 §3.1.3).
func (s *Store) SetFlags(ctx context.Context, mailboxID int64, uids []uint32, flags []string, add bool) error {
	flags, err := normalizeFlags(flags)
	if err != nil {
		return err
	}
	list := uidList(uids)
	return s.write(ctx, 0, func(t *tx) error {
		acct, err := t.mailboxAccount(mailboxID)
		if err != nil {
			return err
		}
		rows, err := t.query(`SELECT id, uid, flags FROM messages
			WHERE mailbox_id = ? AND uid IN (SELECT value FROM json_each(?)) ORDER BY uid`, mailboxID, list)
		if err != nil {
			return err
		}
		type update struct {
			id    int64
			uid   uint32
			flags string
		}
		var updates []update
		for rows.Next() {
			var u update
			var old string
			if err := rows.Scan(&u.id, &u.uid, &old); err != nil {
				rows.Close()
				return err
			}
			if u.flags = applyFlags(old, flags, add); u.flags != old {
				updates = append(updates, u)
			}
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
		changed := make([]uint32, len(updates))
		for i, u := range updates {
			if _, err := t.exec(`UPDATE messages SET flags = ?, modseq = ? WHERE id = ?`, u.flags, modseq, u.id); err != nil {
				return err
			}
			changed[i] = u.uid
		}
		if _, err := t.exec(`UPDATE mailboxes SET modseq = ? WHERE id = ?`, modseq, mailboxID); err != nil {
			return err
		}
		t.change(store.ChangeFlags, acct, mailboxID, modseq, changed...)
		return nil
	})
}

// Expunge implements store.Mail. UIDs not in the mailbox are ignored. Bodies left without
// a message are gone for readers when Expunge returns and freed in the background
// (reclaim.go).
func (s *Store) Expunge(ctx context.Context, mailboxID int64, uids []uint32) error {
	list := uidList(uids)
	return s.write(ctx, 0, func(t *tx) error {
		acct, err := t.mailboxAccount(mailboxID)
		if err != nil {
			return err
		}
		rows, err := t.query(`DELETE FROM messages WHERE mailbox_id = ? AND uid IN (SELECT value FROM json_each(?))
			RETURNING uid, blob_id`, mailboxID, list)
		if err != nil {
			return err
		}
		var gone []uint32
		var blobs []int64
		for rows.Next() {
			var uid uint32
			var blob int64
			if err := rows.Scan(&uid, &blob); err != nil {
				rows.Close()
				return err
			}
			gone = append(gone, uid)
			blobs = append(blobs, blob)
		}
		if err := errors.Join(rows.Err(), rows.Close()); err != nil {
			return err
		}
		if len(gone) == 0 {
			return nil
		}
		modseq, err := t.raiseModSeq(acct)
		if err != nil {
			return err
		}
		if _, err := t.exec(`UPDATE mailboxes SET messages = messages - ?, modseq = ? WHERE id = ?`, len(gone), modseq, mailboxID); err != nil {
			return err
		}
		if err := t.markGarbage(blobs); err != nil {
			return err
		}
		slices.Sort(gone)
		t.change(store.ChangeExpunge, acct, mailboxID, modseq, gone...)
		return nil
	})
}

// Move implements store.Mail (RFC 6851). Moved messages keep their ID, body and flags and
// get new UIDs in the destination, in the order of their old UIDs.
func (s *Store) Move(ctx context.Context, from int64, uids []uint32, to int64) error {
	list := uidList(uids)
	return s.write(ctx, 0, func(t *tx) error {
		acct, err := t.mailboxAccount(from)
		if err != nil {
			return err
		}
		toAcct, err := t.mailboxAccount(to)
		if err != nil {
			return err
		}
		if acct != toAcct {
			return fmt.Errorf("store: cannot move from mailbox %d to mailbox %d of another account", from, to)
		}
		rows, err := t.query(`SELECT id, uid FROM messages WHERE mailbox_id = ? AND uid IN (SELECT value FROM json_each(?))
			ORDER BY uid`, from, list)
		if err != nil {
			return err
		}
		var ids []int64
		var old []uint32
		for rows.Next() {
			var id int64
			var uid uint32
			if err := rows.Scan(&id, &uid); err != nil {
				rows.Close()
				return err
			}
			ids = append(ids, id)
			old = append(old, uid)
		}
		if err := errors.Join(rows.Err(), rows.Close()); err != nil {
			return err
		}
		if len(ids) == 0 {
			return nil
		}
		modseq, err := t.raiseModSeq(acct)
		if err != nil {
			return err
		}
		n := len(ids)
		var first uint32
		if err := t.queryRow(`UPDATE mailboxes SET uidnext = uidnext + ?1, messages = messages + ?1, modseq = ?2
			WHERE id = ?3 RETURNING uidnext - ?1`, []any{n, modseq, to}, &first); err != nil {
			return err
		}
		moved := make([]uint32, n)
		for i, id := range ids {
			moved[i] = first + uint32(i)
			if _, err := t.exec(`UPDATE messages SET mailbox_id = ?, uid = ?, modseq = ? WHERE id = ?`, to, moved[i], modseq, id); err != nil {
				return err
			}
		}
		if _, err := t.exec(`UPDATE mailboxes SET messages = messages - ?, modseq = ? WHERE id = ?`, n, modseq, from); err != nil {
			return err
		}
		t.change(store.ChangeExpunge, acct, from, modseq, old...)
		t.change(store.ChangeAdd, acct, to, modseq, moved...)
		return nil
	})
}

// LockMaildrop implements store.Mail. The lock lives in this process only: it keeps two
// POP3 sessions of one server apart, not two servers sharing a database.
func (s *Store) LockMaildrop(ctx context.Context, accountID int64) (func(), error) {
	s.lockMu.Lock()
	defer s.lockMu.Unlock()
	if s.locked[accountID] {
		return nil, store.ErrLocked
	}
	s.locked[accountID] = true
	var once sync.Once
	return func() {
		once.Do(func() {
			s.lockMu.Lock()
			delete(s.locked, accountID)
			s.lockMu.Unlock()
		})
	}, nil
}

// systemFlags maps the lower-cased system flags to their canonical spelling.
var systemFlags = map[string]string{
	`\seen`: store.FlagSeen, `\answered`: store.FlagAnswered, `\flagged`: store.FlagFlagged,
	`\deleted`: store.FlagDeleted, `\draft`: store.FlagDraft,
}

// normalizeFlags spells system flags canonically, drops duplicates (flags are
// case-insensitive, RFC 9051 §2.3.2) and sorts. A flag must be a non-empty atom.
func normalizeFlags(flags []string) ([]string, error) {
	out := make([]string, 0, len(flags))
	for _, f := range flags {
		if f == "" || strings.ContainsFunc(f, func(r rune) bool {
			return r <= ' ' || r == 0x7f || strings.ContainsRune(`(){%*"]`, r)
		}) {
			return nil, fmt.Errorf("store: invalid flag %q", f)
		}
		if c, ok := systemFlags[strings.ToLower(f)]; ok {
			f = c
		} else if strings.HasPrefix(f, `\`) {
			return nil, fmt.Errorf("store: unknown system flag %q", f)
		}
		if !slices.ContainsFunc(out, func(o string) bool { return strings.EqualFold(o, f) }) {
			out = append(out, f)
		}
	}
	if len(out) == 0 {
		return nil, nil
	}
	slices.Sort(out)
	return out, nil
}

// applyFlags adds or removes flags (already normalized) from a stored flag string.
func applyFlags(stored string, flags []string, add bool) string {
	cur := strings.Fields(stored)
	for _, f := range flags {
		i := slices.IndexFunc(cur, func(c string) bool { return strings.EqualFold(c, f) })
		switch {
		case add && i < 0:
			cur = append(cur, f)
		case !add && i >= 0:
			cur = slices.Delete(cur, i, i+1)
		}
	}
	slices.Sort(cur)
	return strings.Join(cur, " ")
}
