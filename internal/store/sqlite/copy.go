package sqlite

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"fmt"
	"strings"

	"petrel/internal/store"
)

// Copying a whole store in and out (store.Exporter, store.Importer): petrel store copy
// between the embedded and the PostgreSQL store, and the backup of a PostgreSQL store into
// an embedded store file.

var (
	_ store.ResumableExporter = (*Store)(nil)
	_ store.Importer          = (*Store)(nil)
)

// exportedBody is the condition on a blobs row b that a copy exports: not reclaimed, and
// not a shared body that only spliced copies name (each copy goes out whole).
const exportedBody = `b.id NOT IN (SELECT blob_id FROM garbage)
	AND (NOT EXISTS (SELECT 1 FROM blobs s WHERE s.base_id = b.id) OR EXISTS (SELECT 1 FROM messages WHERE blob_id = b.id))`

// exportQuery selects a copy table's rows in key order (SQLite compares text byte by byte).
// With after, it selects only the rows whose key is above the key given as its parameters
// (ExportAfter), by a row-value comparison, which the key's index serves.
func exportQuery(t store.CopyTable, after bool) string {
	keys := t.ColumnNames()[:t.Key]
	if t.Name == "blobs" {
		keys = []string{"b.id"}
	}
	// where returns the WHERE clause of conds and, with after, the key's.
	where := func(conds ...string) string {
		if after {
			conds = append(conds, "("+strings.Join(keys, ", ")+") > (?"+strings.Repeat(", ?", len(keys)-1)+")")
		}
		if len(conds) == 0 {
			return ""
		}
		return " WHERE " + strings.Join(conds, " AND ")
	}
	by := " ORDER BY " + strings.Join(keys, ", ")
	switch t.Name {
	case "domain_catch_all":
		return `SELECT name, catch_all FROM domains` + where("catch_all IS NOT NULL") + by
	case "blobs":
		// A body is its first chunk (blobs.data) and the rows of blob_chunks, joined here
		// and put together by exportBlobs. Bodies listed for the reclaim are gone already.
		// A spliced copy (fields.go) goes out whole: its fields inside the shared body's
		// first chunk (where DeliverFields keeps them), then the shared body's chunks. A
		// shared body that only spliced copies name does not go out.
		names := t.ColumnNames()
		for i, n := range names {
			names[i] = "b." + n
		}
		names[len(names)-1] = `CASE WHEN b.base_id IS NULL THEN b.data
			ELSE CAST(substr(base.data, 1, b.fields_at) AS BLOB) || CAST(b.data AS BLOB) || CAST(substr(base.data, b.fields_at + 1) AS BLOB) END`
		return `SELECT ` + strings.Join(names, ", ") + `, c.data FROM blobs b LEFT JOIN blobs base ON base.id = b.base_id
			LEFT JOIN blob_chunks c ON c.blob_id = coalesce(b.base_id, b.id)` + where(exportedBody) + by + `, c.seq`
	}
	return `SELECT ` + strings.Join(t.ColumnNames(), ", ") + ` FROM ` + t.Name + where() + by
}

// Export implements store.Exporter: every table is read in one read transaction, which in
// WAL mode sees the database as of its first read and blocks no writer.
func (s *Store) Export(ctx context.Context, fn func(table string, row []any) error) error {
	return s.export(ctx, store.ExportFrom{}, fn)
}

// ExportAfter implements store.ResumableExporter: Export from the row after key of table
// on, in the same kind of transaction.
func (s *Store) ExportAfter(ctx context.Context, table string, key []any, fn func(table string, row []any) error) error {
	from, err := store.ExportAfterPoint(table, key)
	if err != nil {
		return err
	}
	return s.export(ctx, from, fn)
}

// export reads the tables of CopyTables from from.Table on in one read transaction.
func (s *Store) export(ctx context.Context, from store.ExportFrom, fn func(table string, row []any) error) error {
	tx, err := s.rdb.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	for i, t := range store.CopyTables[from.Table:] {
		var after []any
		if i == 0 {
			after = from.After
		}
		if err := exportTable(ctx, tx, t, after, fn); err != nil {
			return fmt.Errorf("export %s: %w", t.Name, err)
		}
	}
	return tx.Commit()
}

// exportTable exports the rows of t, all of them or (after not nil) those whose key is
// above after.
func exportTable(ctx context.Context, tx *sql.Tx, t store.CopyTable, after []any, fn func(table string, row []any) error) error {
	rows, err := tx.QueryContext(ctx, exportQuery(t, after != nil), after...)
	if err != nil {
		return err
	}
	defer rows.Close()
	n := len(t.Columns)
	if t.Name == "blobs" {
		n++ // the chunk after the first
	}
	vals := make([]any, n)
	ptrs := make([]any, n)
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	var blob []any // the body being put together
	emit := func() error {
		if blob == nil {
			return nil
		}
		data := blob[len(blob)-1].([]byte)
		if blob[1] == nil { // stored before digests were kept
			sum := sha256.Sum256(data)
			blob[1] = sum[:]
		}
		err := fn(t.Name, blob)
		blob = nil
		return err
	}
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			return err
		}
		if t.Name == "blobs" {
			if blob != nil && blob[0] == vals[0] {
				blob[len(blob)-1] = append(blob[len(blob)-1].([]byte), toBytes(vals[n-1])...)
				continue
			}
			if err := emit(); err != nil {
				return err
			}
		}
		row := make([]any, len(t.Columns))
		for i, c := range t.Columns {
			if row[i], err = c.Normalize(vals[i]); err != nil {
				return err
			}
		}
		if t.Name != "blobs" {
			if err := fn(t.Name, row); err != nil {
				return err
			}
			continue
		}
		data := append([]byte(nil), toBytes(row[len(row)-1])...)
		row[len(row)-1] = append(data, toBytes(vals[n-1])...)
		blob = row
	}
	if err := rows.Err(); err != nil {
		return err
	}
	return emit()
}

func toBytes(v any) []byte {
	switch v := v.(type) {
	case []byte:
		return v
	case string:
		return []byte(v)
	}
	return nil
}

// ImportState implements store.Importer.
func (s *Store) ImportState(ctx context.Context) (state []byte, used bool, err error) {
	err = s.queryRow(ctx, `SELECT (SELECT state FROM copy_state), EXISTS (SELECT 1 FROM domains) OR EXISTS (SELECT 1 FROM accounts)`).Scan(&state, &used)
	return state, used, err
}

// ExportCounts implements store.Exporter.
func (s *Store) ExportCounts(ctx context.Context) (map[string]int64, error) {
	tx, err := s.rdb.BeginTx(ctx, nil)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	out := map[string]int64{}
	for _, t := range store.CopyTables {
		q := `SELECT count(*) FROM (` + exportQuery(t, false) + `)`
		if t.Name == "blobs" { // its export has a row per chunk; the bodies are exportQuery's
			q = `SELECT count(*) FROM blobs b WHERE ` + exportedBody
		}
		var n int64
		if err := tx.QueryRowContext(ctx, q).Scan(&n); err != nil {
			return nil, fmt.Errorf("count %s: %w", t.Name, err)
		}
		out[t.Name] = n
	}
	return out, tx.Commit()
}

// ImportRows implements store.Importer: one write request per call.
func (s *Store) ImportRows(ctx context.Context, table string, rows [][]any, state []byte) error {
	t, ok := store.CopyTableNamed(table)
	if !ok {
		return fmt.Errorf("store: no table %q in a copy: %w", table, store.ErrInvalid)
	}
	names := t.ColumnNames()
	query := `INSERT INTO ` + table + ` (` + strings.Join(names, ", ") + `) VALUES (?` + strings.Repeat(", ?", len(names)-1) + `)`
	if table == "domain_catch_all" {
		query = `UPDATE domains SET catch_all = ?2 WHERE name = ?1`
	}
	var size int64
	for _, r := range rows {
		for _, v := range r {
			size += int64(len(toBytes(v)))
		}
	}
	return s.write(ctx, size, func(tx *tx) error {
		for _, r := range rows {
			if table == "blobs" {
				if err := tx.importBlob(query, r); err != nil {
					return err
				}
				continue
			}
			if _, err := tx.exec(query, r...); err != nil {
				return err
			}
		}
		_, err := tx.exec(`INSERT INTO copy_state (id, state) VALUES (1, ?) ON CONFLICT (id) DO UPDATE SET state = excluded.state`, state)
		return err
	})
}

// importBlob writes a body as Deliver does: the first chunk in the blobs row, the rest in
// blob_chunks; and lists it for the full-text index, whose form differs between backends.
func (t *tx) importBlob(query string, r []any) error {
	data := toBytes(r[len(r)-1])
	row := append([]any(nil), r...)
	row[len(row)-1] = data[:min(blobChunkSize, len(data))]
	if _, err := t.exec(query, row...); err != nil {
		return err
	}
	for seq, off := 1, blobChunkSize; off < len(data); seq, off = seq+1, off+blobChunkSize {
		if _, err := t.exec(`INSERT INTO blob_chunks (blob_id, seq, data) VALUES (?, ?, ?)`, r[0], seq, data[off:min(off+blobChunkSize, len(data))]); err != nil {
			return err
		}
	}
	_, err := t.exec(`INSERT INTO search_pending (blob_id) VALUES (?)`, r[0])
	return err
}

// FinishImport implements store.Importer: the UIDVALIDITY counter continues after every
// imported UIDVALIDITY (AUTOINCREMENT already continues after the imported IDs). The
// bodies listed for the index are indexed once the store is opened again (Unindexed).
func (s *Store) FinishImport(ctx context.Context) error {
	return s.write(ctx, 0, func(t *tx) error {
		if _, err := t.exec(`UPDATE counters SET value = max(value, (SELECT coalesce(max(uidvalidity), 0) FROM mailboxes))
			WHERE name = 'uidvalidity'`); err != nil {
			return err
		}
		_, err := t.exec(`DELETE FROM copy_state`)
		return err
	})
}
