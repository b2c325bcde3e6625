package postgres

import (
	"context"
	"errors"
	"time"

	"petrel/internal/store"
)

// Spliced blobs (store.FieldDeliverer): an account's copy of a shared body with header
// fields of its own is a blobs row of its own (its size, parse and index entry) pointing at
// the shared bytes in blob_data by digest, like every blob, with the fields and where they
// go (fields, fields_at). The bytes stay while any blob points at them (freeBlobs), so a
// spliced copy needs nothing more to keep its shared body.

var _ store.FieldDeliverer = (*Store)(nil)

// DeliverFields implements store.FieldDeliverer, on the path of Sieve's deliveries: few
// messages go to several accounts.
func (s *Store) DeliverFields(ctx context.Context, d *store.Delivery, fields []store.AccountFields) (store.Delivered, error) {
	if len(d.Targets) == 0 && d.Outbound == nil && len(d.More) == 0 {
		return store.Delivered{}, errors.New("store: delivery without targets")
	}
	return s.deliverSieve(ctx, d, fields...)
}

// insertSplicedBlob stores a blob row for body, with f's fields spliced in when f is not
// nil, and returns its ID; p is the parse of that copy.
func (t *tx) insertSplicedBlob(body []byte, mailFrom string, received time.Time, p *store.ParsedMessage, f *store.AccountFields) (int64, error) {
	var date any // NULL for a missing Date header
	if !p.Date.IsZero() {
		date = p.Date.UnixNano()
	}
	id, err := t.insertBlob(body, mailFrom, received, date, p)
	if err != nil || f == nil {
		return id, err
	}
	_, err = t.exec(`UPDATE blobs SET fields = ?, fields_at = ?, size = size + length(?) WHERE id = ?`,
		[]byte(f.Fields), f.At, []byte(f.Fields), id)
	return id, err
}
