package sqlite

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strings"
	"unicode"

	"petrel/internal/store"
)

// The full-text index (store.Index) is an FTS5 table, search, with one row per body whose
// rowid is the blob's ID: bodies are shared by the mailboxes that received or copied them,
// so a body is indexed once however many recipients it has. It is contentless (content=''):
// the decoded text lives only in the index, and a search finds bodies, then their messages
// in one mailbox through the messages_blob index. The unicode61 tokenizer folds case and
// (remove_diacritics 2) diacritics of every script; words are runs of letters and digits.
//
// A delivery does not write the row in its commit: it lists the body in search_pending, and
// the background indexer (indexer.go) indexes the bodies that queued in batches, one
// transaction each; a search first indexes what is queued for its mailbox, so it never
// misses a committed message. Expunged messages drop out of results at once (no message
// row refers to the body any more); the row itself goes when the reclaim frees the body (a
// trigger on blobs), so an expunge costs the index nothing. Bodies listed in search_pending
// when the store opens (stored before the index existed, or queued by a process that
// stopped before indexing them) are the server's to index in the background (Unindexed and
// IndexBlob), since only the mail layer can decode MIME.

// searchColumns maps a field to the columns it searches ("" for all of them).
var searchColumns = map[store.SearchField]string{
	store.FieldText:    "",
	store.FieldBody:    "body",
	store.FieldSubject: "subject",
	store.FieldFrom:    "hfrom",
	store.FieldTo:      "hto",
	store.FieldCc:      "hcc",
	store.FieldBcc:     "hbcc",
}

// searchLater lists a body for the background indexer (indexer.go), or indexes it at once
// when the indexer's queue is full (or Options.IndexInCommit says so).
func (t *tx) searchLater(blobID int64, p *store.ParsedMessage) error {
	text := store.SearchText{Subject: p.Subject, From: p.From}
	if p.Text != nil {
		text = *p.Text
	}
	if t.c.indexInCommit || t.c.index.full(textSize(&text)) {
		return t.insertSearch(blobID, p)
	}
	if _, err := t.exec(`INSERT INTO search_pending (blob_id) VALUES (?)`, blobID); err != nil {
		return err
	}
	t.indexed = append(t.indexed, queuedText{blobID: blobID, text: text})
	return nil
}

// insertSearch indexes a body inside the request that stores it.
func (t *tx) insertSearch(blobID int64, p *store.ParsedMessage) error {
	text := store.SearchText{Subject: p.Subject, From: p.From}
	if p.Text != nil {
		text = *p.Text
	}
	_, err := t.exec(`INSERT INTO search (rowid, subject, hfrom, hto, hcc, hbcc, header, body) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
		blobID, text.Subject, text.From, text.To, text.Cc, text.Bcc, text.Header, text.Body)
	return err
}

// matchQuery turns a search text into an FTS5 query on the field's columns: one phrase
// whose last word is a prefix (see store.Index). ok is false when text has no word
// character at all, which matches every message.
func matchQuery(field store.SearchField, text string) (q string, ok bool, err error) {
	cols, known := searchColumns[field]
	if !known {
		return "", false, fmt.Errorf("store: search field %d: %w", field, store.ErrInvalid)
	}
	if !strings.ContainsFunc(text, func(r rune) bool { return unicode.IsLetter(r) || unicode.IsNumber(r) }) {
		return "", false, nil
	}
	// Inside an FTS5 string only '"' is special, written twice. The tokenizer splits the
	// string into the words of one phrase; '*' makes its last word a prefix.
	q = `"` + strings.ReplaceAll(text, `"`, `""`) + `"*`
	if cols != "" {
		q = cols + " : " + q
	}
	return q, true, nil
}

// Search implements store.Index. A word in many bodies is answered from the mailbox's map of
// bodies to UIDs (searchmap.go). Otherwise the FTS5 match drives the query (CROSS JOIN keeps
// it the outer loop), so its cost follows the number of bodies that hold the words, not the
// size of the mailbox. The UIDs come back as one group_concat string rather than a row each:
// for a word in most of a mailbox, database/sql's per-row work cost more than SQLite's
// (88 against 49 ms of CPU for 75,000 hits, docs/benchmarks.md).
func (s *Store) Search(ctx context.Context, mailboxID int64, field store.SearchField, text string) ([]uint32, error) {
	q, ok, err := matchQuery(field, text)
	if err != nil {
		return nil, err
	}
	if !ok {
		return s.mailboxUIDs(ctx, mailboxID, `SELECT uid FROM messages WHERE mailbox_id = ? ORDER BY uid`, mailboxID)
	}
	if err := s.indexFor(ctx, mailboxID); err != nil {
		return nil, err
	}
	if uids, ok, err := s.searchMany(ctx, mailboxID, q); err != nil || ok {
		return uids, err
	}
	uids, err := s.uidList(ctx, `SELECT group_concat(m.uid) FROM search CROSS JOIN messages m ON m.blob_id = search.rowid
		WHERE search MATCH ? AND m.mailbox_id = ?`, q, mailboxID)
	if err != nil {
		return nil, err
	}
	if len(uids) == 0 {
		return nil, s.mailboxExists(ctx, mailboxID)
	}
	return uids, nil
}

// parseUIDList parses a comma-separated list of UIDs and returns it sorted: the query
// yields them in body order, which is UID order unless messages were copied in.
func parseUIDList(b []byte) ([]uint32, error) {
	ids, err := parseIDs(b)
	if err != nil {
		return nil, fmt.Errorf("store: bad UID list from the index")
	}
	out := make([]uint32, len(ids))
	for i, id := range ids {
		if id > math.MaxUint32 {
			return nil, fmt.Errorf("store: bad UID list from the index")
		}
		out[i] = uint32(id)
	}
	if !slices.IsSorted(out) {
		slices.Sort(out)
	}
	return out, nil
}

// Unindexed implements store.Index.
func (s *Store) Unindexed(ctx context.Context, n int) ([]int64, error) {
	rows, err := s.query(ctx, `SELECT blob_id FROM search_pending WHERE blob_id <= ? ORDER BY blob_id LIMIT ?`, s.backlogMax, n)
	if err != nil {
		return nil, err
	}
	return scanColumn[int64](rows)
}

// IndexBlob implements store.Index.
func (s *Store) IndexBlob(ctx context.Context, blobID int64, text store.SearchText) error {
	return s.write(ctx, int64(len(text.Body)), func(t *tx) error {
		res, err := t.exec(`DELETE FROM search_pending WHERE blob_id = ?`, blobID)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil || n == 0 {
			return err // indexed already, or freed
		}
		return t.insertSearch(blobID, &store.ParsedMessage{Text: &text})
	})
}
