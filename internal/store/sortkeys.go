package store

import (
	"context"
	"encoding/binary"
	"errors"
	"strings"
	"time"
)

// SortKeys are what IMAP SORT (RFC 5256, RFC 5957 SORT=DISPLAY) orders a message by and
// what THREAD (RFC 5256 §2) links it by, beyond the message row's own INTERNALDATE and size.
// They depend on the body only, so they are kept once per body, like the cached parse, and
// computed by the mail layer (message.Parse); the store keeps them as given.
//
// The address and subject keys are already in the form they are compared in: folded for
// the i;ascii-casemap collation (RFC 4790 §9.2: ASCII letters in upper case), so that a
// sort compares bytes and folds nothing per command.
type SortKeys struct {
	Date time.Time // the Date header, zero when missing or unparseable (SORT uses INTERNALDATE then)
	// Subject is the base subject (RFC 5256 §2.1), folded; Reply says whether extracting it
	// removed a "Re:", "Fwd:", "(fwd)" or "[fwd: ...]" (THREAD=REFERENCES step 5).
	Subject string
	Reply   bool
	// From, To and Cc are the addr-mailbox (local part) of the first address of each field
	// (RFC 5256 §3), folded; "" when there is none.
	From, To, Cc string
	// DisplayFrom and DisplayTo are the display names of the first From and To address,
	// or their addr-spec when the name is empty (RFC 5957 §3), folded.
	DisplayFrom, DisplayTo string
	// MessageID is the Message-ID without brackets ("" when missing); References are the
	// message IDs of the References field in order, or the first of In-Reply-To when
	// References has none (RFC 5256 §2.2 step 1).
	MessageID  string
	References []string
}

// SortRow is one message of a mailbox with its sort keys.
type SortRow struct {
	UID          uint32
	BlobID       int64
	Size         int64
	InternalDate time.Time
	// Keys are the body's sort keys; nil when the store has none for it (a body stored
	// before the keys were kept): the caller computes them and hands them to SetSortKeys.
	Keys *SortKeys
}

// Sorter gives IMAP SORT and THREAD the keys of a mailbox's messages in one read, without
// reading or parsing a body. It is apart from Store so that a backend can come without it;
// the IMAP server offers SORT and THREAD only with a store that has it.
type Sorter interface {
	// SortRows lists a mailbox's messages with UIDs in the ranges (all of them when uids
	// is empty), in UID order, with their keys. An unknown mailbox is ErrNotFound.
	SortRows(ctx context.Context, mailboxID int64, uids []UIDRange) ([]SortRow, error)
	// SetSortKeys stores keys for bodies that had none (ParsedMessage.Sort was nil when
	// they were stored). Keys a body already has are kept; a freed body is skipped.
	SetSortKeys(ctx context.Context, keys map[int64]*SortKeys) error
}

// Flags of the first octet of packed keys.
const (
	keysReply   = 1 << 0 // SortKeys.Reply
	keysHasDate = 1 << 1 // a varint of the Date in unix nanoseconds follows
)

// PackSortKeys encodes keys as both backends keep them (one column, read in one piece by a
// SORT): a flags octet, the date if any, then Subject, From, To, Cc, DisplayFrom,
// DisplayTo, MessageID and the References joined by spaces (message IDs hold none), each a
// uvarint length and its octets.
func PackSortKeys(k *SortKeys) []byte {
	refs := strings.Join(k.References, " ")
	fields := [...]string{k.Subject, k.From, k.To, k.Cc, k.DisplayFrom, k.DisplayTo, k.MessageID, refs}
	n := 1 + binary.MaxVarintLen64
	for _, f := range fields {
		n += binary.MaxVarintLen64 + len(f)
	}
	b := make([]byte, 1, n)
	if k.Reply {
		b[0] |= keysReply
	}
	if !k.Date.IsZero() {
		b[0] |= keysHasDate
		b = binary.AppendVarint(b, k.Date.UnixNano())
	}
	for _, f := range fields {
		b = binary.AppendUvarint(b, uint64(len(f)))
		b = append(b, f...)
	}
	return b
}

var errBadSortKeys = errors.New("store: damaged sort keys")

// UnpackSortKeys decodes PackSortKeys's encoding. The strings share one allocation.
func UnpackSortKeys(raw []byte) (*SortKeys, error) {
	if len(raw) == 0 {
		return nil, errBadSortKeys
	}
	s := string(raw)
	k := &SortKeys{Reply: s[0]&keysReply != 0}
	pos := 1
	if s[0]&keysHasDate != 0 {
		d, n := binary.Varint(raw[pos:])
		if n <= 0 {
			return nil, errBadSortKeys
		}
		k.Date, pos = time.Unix(0, d).UTC(), pos+n
	}
	var refs string
	for _, f := range [...]*string{&k.Subject, &k.From, &k.To, &k.Cc, &k.DisplayFrom, &k.DisplayTo, &k.MessageID, &refs} {
		l, n := binary.Uvarint(raw[pos:])
		if n <= 0 || uint64(len(s)-pos-n) < l {
			return nil, errBadSortKeys
		}
		pos += n
		*f, pos = s[pos:pos+int(l)], pos+int(l)
	}
	if refs != "" {
		k.References = strings.Split(refs, " ")
	}
	return k, nil
}

// ScanSortRow reads a SortRow from a row of uid, blob_id, size, internal_date (unix
// nanoseconds) and the packed keys (NULL when the body has none), as both backends select
// it; scan is the row's Scan. Damaged keys count as none: the caller computes them again
// from the header, and they are not stored over.
func ScanSortRow(scan func(dest ...any) error) (SortRow, error) {
	var r SortRow
	var internal int64
	var keys []byte
	if err := scan(&r.UID, &r.BlobID, &r.Size, &internal, &keys); err != nil {
		return SortRow{}, err
	}
	r.InternalDate = time.Unix(0, internal).UTC()
	if keys != nil {
		r.Keys, _ = UnpackSortKeys(keys)
	}
	return r, nil
}
