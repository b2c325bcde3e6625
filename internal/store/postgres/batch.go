package postgres

import (
	"context"
	"fmt"
	"time"

	"petrel/internal/store"
)

// Appends of several messages to one mailbox: IMAP MULTIAPPEND (store.MultiAppender, all
// in one transaction) and imports (store.BatchAppender, runs of messages sharing
// transactions). Both write each message as Append does; the delivery path (mail.go) is
// kept apart from them, since it is shaped for one body going to many targets.

var (
	_ store.MultiAppender = (*Store)(nil)
	_ store.BatchAppender = (*Store)(nil)
)

// batchMessages and batchBytes bound one transaction of AppendBatch: large enough that a
// commit's WAL flush is shared by many messages, small enough that a failure redoes
// little and the row lock of the account is not held for long.
const (
	batchMessages = 100
	batchBytes    = 16 << 20
)

// appendItem is one message read and ready to write.
type appendItem struct {
	body     []byte
	flags    []string
	parsed   *store.ParsedMessage
	received time.Time
	uid      uint32 // the UID wanted (BatchMessage.UID); 0: the next
}

func readAppend(m *store.AppendMessage, uid uint32) (appendItem, error) {
	flags, err := store.NormalizeFlags(m.Flags)
	if err != nil {
		return appendItem{}, fmt.Errorf("store: %w", err)
	}
	body, err := store.ReadBody(m.Body, m.Size)
	if err != nil {
		return appendItem{}, err
	}
	received := m.InternalDate
	if received.IsZero() {
		received = time.Now()
	}
	return appendItem{body: body, flags: flags, parsed: &m.Parsed, received: received, uid: uid}, nil
}

// AppendMany implements store.MultiAppender.
func (s *Store) AppendMany(ctx context.Context, accountID int64, mailbox string, msgs []*store.AppendMessage) (store.AppendedMany, error) {
	if len(msgs) == 0 {
		return store.AppendedMany{}, fmt.Errorf("store: no message to append: %w", store.ErrInvalid)
	}
	items := make([]appendItem, len(msgs))
	for i, m := range msgs {
		var err error
		if items[i], err = readAppend(m, 0); err != nil {
			return store.AppendedMany{}, err
		}
	}
	var out []store.Appended
	err := s.write(ctx, func(t *tx) error {
		var err error
		out, err = t.appendItems(accountID, mailbox, items)
		return err
	})
	if err != nil {
		return store.AppendedMany{}, err
	}
	res := store.AppendedMany{UIDValidity: out[0].UIDValidity, Messages: make([]store.Message, len(out))}
	for i, a := range out {
		res.Messages[i] = a.Message
	}
	return res, nil
}

// AppendBatch implements store.BatchAppender: the messages go in transactions of up to
// batchMessages messages (batchBytes of bodies). A message whose body cannot be read ends
// the run: the ones before it are committed first.
func (s *Store) AppendBatch(ctx context.Context, accountID int64, mailbox string, msgs []store.BatchMessage) ([]store.Appended, error) {
	var out []store.Appended
	var chunk []appendItem
	size := 0
	flush := func() error {
		if len(chunk) == 0 {
			return nil
		}
		var done []store.Appended
		err := s.write(ctx, func(t *tx) error {
			var err error
			done, err = t.appendItems(accountID, mailbox, chunk)
			return err
		})
		if err != nil {
			return err
		}
		out = append(out, done...)
		chunk, size = chunk[:0], 0
		return nil
	}
	for i := range msgs {
		it, err := readAppend(&msgs[i].AppendMessage, msgs[i].UID)
		if err != nil {
			if ferr := flush(); ferr != nil {
				return out, ferr
			}
			return out, err
		}
		if len(chunk) > 0 && (len(chunk) >= batchMessages || size+len(it.body) > batchBytes) {
			if err := flush(); err != nil {
				return out, err
			}
		}
		chunk = append(chunk, it)
		size += len(it.body)
	}
	return out, flush()
}

// appendItems writes messages to a mailbox (which must exist) in the order given, under
// the account's row lock, after checking the quota for all of them together. A message
// with a wanted UID raises UIDNEXT to it first (never lowers it).
func (t *tx) appendItems(accountID int64, mailbox string, items []appendItem) ([]store.Appended, error) {
	name := store.LookupMailboxName(mailbox)
	if err := t.lockAccount(accountID); err != nil {
		return nil, err
	}
	mboxID, err := t.mailboxID(accountID, name)
	if err != nil {
		return nil, err
	}
	var total int64
	for _, it := range items {
		total += int64(len(it.body))
	}
	q, err := t.quotaOf(accountID)
	if err != nil {
		return nil, err
	}
	if q.Over(int64(len(items)), total) {
		return nil, &store.QuotaError{Accounts: []int64{accountID}}
	}
	out := make([]store.Appended, len(items))
	for i, it := range items {
		if it.uid != 0 {
			if _, err := t.exec(`UPDATE mailboxes SET uidnext = ? WHERE id = ? AND uidnext < ?`, int64(it.uid), mboxID, int64(it.uid)); err != nil {
				return nil, err
			}
		}
		var date any // NULL for a missing Date header
		if !it.parsed.Date.IsZero() {
			date = it.parsed.Date.UnixNano()
		}
		blobID, err := t.insertBlob(it.body, "", it.received, date, it.parsed)
		if err != nil {
			return nil, err
		}
		if err := t.insertSearch(blobID, it.parsed); err != nil {
			return nil, err
		}
		m, validity, err := t.insertMessage(accountID, name, false, blobID, int64(len(it.body)), it.received, it.flags)
		if err != nil {
			return nil, err
		}
		out[i] = store.Appended{UIDValidity: validity, Message: m}
	}
	return out, nil
}
