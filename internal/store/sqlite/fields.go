package sqlite

import (
	"crypto/sha256"
	"fmt"
	"time"

	"petrel/internal/store"
)

// Spliced blobs (store.FieldDeliverer): an account's copy of a shared body with header
// fields of its own. The blobs row holds the copy's metadata and parse, its size (the
// shared body's plus the fields'), the SHA-256 of its whole bytes, and as data only the
// fields; base_id names the shared body and fields_at where the fields go. The shared
// body stays while a spliced blob names it (markGarbage), and goes with the last one.

// splicedBlob is one account's spliced copy in a delivery.
type splicedBlob struct {
	f      *store.AccountFields
	size   int64
	digest [sha256.Size]byte
	id     int64 // set by the request
}

// splicedBodies returns the spliced copies of a delivery, one per account among its targets
// that has fields; plain reports whether some target takes the body as it is, and
// quotaSize is the largest size a target's copy has.
func splicedBodies(d *store.Delivery, body []byte, fields []store.AccountFields) (spliced []splicedBlob, plain bool, quotaSize int64, err error) {
	quotaSize = int64(len(body))
	for _, tg := range d.Targets {
		f := store.FieldsFor(fields, tg.AccountID)
		if f == nil {
			plain = true
			continue
		}
		if splicedFor(spliced, tg.AccountID) != nil {
			continue
		}
		// The fields go into the first chunk (the export splices them there, copy.go):
		// they belong in the header, far before its end.
		if f.At < 0 || f.At > int64(len(body)) || f.At > blobChunkSize {
			return nil, false, 0, fmt.Errorf("store: fields of account %d at %d, outside the first chunk of the body of %d bytes", f.AccountID, f.At, len(body))
		}
		h := sha256.New()
		h.Write(body[:f.At])
		h.Write([]byte(f.Fields))
		h.Write(body[f.At:])
		sb := splicedBlob{f: f, size: int64(len(body) + len(f.Fields))}
		h.Sum(sb.digest[:0])
		spliced = append(spliced, sb)
		quotaSize = max(quotaSize, sb.size)
	}
	return spliced, plain, quotaSize, nil
}

// splicedFor returns the spliced copy of an account, or nil.
func splicedFor(spliced []splicedBlob, accountID int64) *splicedBlob {
	for i := range spliced {
		if spliced[i].f.AccountID == accountID {
			return &spliced[i]
		}
	}
	return nil
}

// insertSpliced stores an account's spliced copy of the body baseID and lists it for the
// index; it returns the copy's blob ID.
func (t *tx) insertSpliced(baseID int64, sb *splicedBlob, mailFrom string, received time.Time) (int64, error) {
	p := &sb.f.Parsed
	var date any
	if !p.Date.IsZero() {
		date = p.Date.UnixNano()
	}
	res, err := t.exec(`INSERT INTO blobs (size, mail_from, received, message_id, subject, from_addr, date, envelope, structure, data, digest, base_id, fields_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		sb.size, mailFrom, received.UnixNano(), p.MessageID, p.Subject, p.From, date, p.Envelope, p.Structure,
		[]byte(sb.f.Fields), sb.digest[:], baseID, sb.f.At)
	if err != nil {
		return 0, err
	}
	id, err := res.LastInsertId()
	if err != nil {
		return 0, err
	}
	if err := t.searchLater(id, p); err != nil {
		return 0, err
	}
	return id, t.insertSortKeys(id, p.Sort)
}
