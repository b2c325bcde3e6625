package store

import (
	"bytes"
	"context"
	"io"
)

// Header fields of one account's copy (issue 13: per-account junk verdicts). A message
// delivered to several accounts is stored once, but the junk classifier is per account, so
// each account's copy must say its own X-Spam-* verdict. The store keeps, for such a copy,
// a small body of its own that names the shared body and holds only the account's fields
// and the offset where they go; reading it (OpenBlob, Parsed, Message.Size) gives the
// whole message with the fields in place, so every reader (IMAP, POP3, webmail, export,
// backup, search) sees one consistent body whose size is the bytes it serves.

// AccountFields are header fields that one account's copy of a delivery carries.
type AccountFields struct {
	AccountID int64
	// Fields are whole header fields, each ending in CRLF, inserted at At bytes into the
	// delivered body (0 <= At <= Size, on a line boundary of the header).
	Fields string
	At     int64
	// Parsed is the parse of the body with Fields in place (message.Prepended shifts the
	// offsets), with the Text the full-text index keeps of that copy.
	Parsed ParsedMessage
}

// FieldDeliverer delivers a message whose copies differ per account only by a few header
// fields, without storing the body once per account.
type FieldDeliverer interface {
	// DeliverFields commits d as Mail.Deliver does, but every target of an account listed
	// in fields gets the body with that account's fields inserted: the message's BlobID,
	// Size, OpenBlob and Parsed are those of the copy with the fields. Targets of accounts
	// not listed get d's body as it is. Delivered.BlobID is the first body stored. Quotas
	// count each copy's own size.
	DeliverFields(ctx context.Context, d *Delivery, fields []AccountFields) (Delivered, error)
}

// FieldsFor returns the entry of fields for an account, or nil.
func FieldsFor(fields []AccountFields, accountID int64) *AccountFields {
	for i := range fields {
		if fields[i].AccountID == accountID {
			return &fields[i]
		}
	}
	return nil
}

// Spliced reads base with f inserted at offset at: what a copy with its own fields holds.
// base must read at least at bytes.
func Spliced(base io.Reader, at int64, f []byte) io.Reader {
	return io.MultiReader(io.LimitReader(base, at), bytes.NewReader(f), base)
}
