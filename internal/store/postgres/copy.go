package postgres

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"

	"petrel/internal/store"
)

// Copying a whole store in and out (store.Exporter, store.Importer): petrel store copy,
// and backup and restore, which go through an embedded store file.

var (
	_ store.ResumableExporter = (*Store)(nil)
	_ store.Importer          = (*Store)(nil)
)

// identityTables are the tables whose id column is GENERATED ALWAYS AS IDENTITY: an import
// writes their IDs (OVERRIDING SYSTEM VALUE) and then moves their sequences past them.
// pull_sources' id is a bigserial, which takes the same two steps.
var identityTables = []string{"accounts", "mailboxes", "blobs", "messages", "queue", "queue_rcpts", "pull_sources"}

// exportQuery selects a copy table's rows in key order; text keys are compared byte by
// byte (COLLATE "C"), as the embedded store orders them, whatever the database's locale.
// With after, it selects only the rows whose key is above the key given as its parameters
// (ExportAfter): a row comparison, which an index on the key serves for integer keys.
func exportQuery(t store.CopyTable, after bool) string {
	var order, params []string
	for i, c := range t.Columns[:t.Key] {
		o := c.Name
		if t.Name == "blobs" {
			o = "b." + o
		}
		if c.Kind == store.Text {
			o += ` COLLATE "C"`
		}
		order = append(order, o)
		params = append(params, fmt.Sprintf("$%d", i+1))
	}
	// where returns the WHERE clause of conds and, with after, the key's.
	where := func(conds ...string) string {
		if after {
			conds = append(conds, "("+strings.Join(order, ", ")+") > ("+strings.Join(params, ", ")+")")
		}
		if len(conds) == 0 {
			return ""
		}
		return " WHERE " + strings.Join(conds, " AND ")
	}
	by := " ORDER BY " + strings.Join(order, ", ")
	switch t.Name {
	case "domain_catch_all":
		return `SELECT name, catch_all FROM domains` + where("catch_all IS NOT NULL") + by
	case "blobs":
		names := t.ColumnNames()
		for i, n := range names {
			names[i] = "b." + n
		}
		// A spliced copy (fields.go) goes out whole, with the digest of its whole bytes.
		spliced := `substring(d.data FOR b.fields_at::int) || b.fields || substring(d.data FROM b.fields_at::int + 1)`
		names[1] = `CASE WHEN b.fields IS NULL THEN b.digest ELSE sha256(` + spliced + `) END`
		names[len(names)-1] = `CASE WHEN b.fields IS NULL THEN d.data ELSE ` + spliced + ` END`
		return `SELECT ` + strings.Join(names, ", ") + ` FROM blobs b JOIN blob_data d ON d.digest = b.digest` + where() + by
	}
	return `SELECT ` + strings.Join(t.ColumnNames(), ", ") + ` FROM ` + t.Name + where() + by
}

// Export implements store.Exporter: every table is read in one REPEATABLE READ, read-only
// transaction, so the copy is the state of one moment, every commit before it included,
// while the nodes go on delivering.
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
	tx, err := s.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return err
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	for i, t := range store.CopyTables[from.Table:] {
		var after []any
		if i == 0 {
			after = from.After
		}
		if err := exportTable(ctx, tx, t, after, fn); err != nil {
			return fmt.Errorf("export %s: %w", t.Name, err)
		}
	}
	return tx.Commit(ctx)
}

// exportTable exports the rows of t, all of them or (after not nil) those whose key is
// above after.
func exportTable(ctx context.Context, tx pgx.Tx, t store.CopyTable, after []any, fn func(table string, row []any) error) error {
	rows, err := tx.Query(ctx, exportQuery(t, after != nil), after...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		vals, err := rows.Values()
		if err != nil {
			return err
		}
		for i, c := range t.Columns {
			if vals[i], err = c.Normalize(vals[i]); err != nil {
				return err
			}
		}
		if err := fn(t.Name, vals); err != nil {
			return err
		}
	}
	return rows.Err()
}

// ImportState implements store.Importer.
func (s *Store) ImportState(ctx context.Context) (state []byte, used bool, err error) {
	err = s.queryRow(ctx, `SELECT (SELECT state FROM copy_state), EXISTS (SELECT 1 FROM domains) OR EXISTS (SELECT 1 FROM accounts)`).Scan(&state, &used)
	return state, used, err
}

// ExportCounts implements store.Exporter.
func (s *Store) ExportCounts(ctx context.Context) (map[string]int64, error) {
	tx, err := s.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return nil, err
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	out := map[string]int64{}
	for _, t := range store.CopyTables {
		var n int64
		if err := tx.QueryRow(ctx, `SELECT count(*) FROM (`+exportQuery(t, false)+`) q`).Scan(&n); err != nil {
			return nil, fmt.Errorf("count %s: %w", t.Name, err)
		}
		out[t.Name] = n
	}
	return out, tx.Commit(ctx)
}

// ImportRows implements store.Importer: one transaction per call.
func (s *Store) ImportRows(ctx context.Context, table string, rows [][]any, state []byte) error {
	t, ok := store.CopyTableNamed(table)
	if !ok {
		return fmt.Errorf("store: no table %q in a copy: %w", table, store.ErrInvalid)
	}
	names := t.ColumnNames()
	var query string
	switch table {
	case "domain_catch_all":
		query = `UPDATE domains SET catch_all = $2 WHERE name = $1`
	case "blobs":
		names = names[:len(names)-1] // data goes to blob_data
		fallthrough
	default:
		override := ""
		for _, it := range identityTables {
			if it == table {
				override = " OVERRIDING SYSTEM VALUE"
			}
		}
		params := make([]string, len(names))
		for i := range params {
			params[i] = fmt.Sprintf("$%d", i+1)
		}
		query = `INSERT INTO ` + table + ` (` + strings.Join(names, ", ") + `)` + override +
			` VALUES (` + strings.Join(params, ", ") + `)`
	}
	return s.write(ctx, func(tx *tx) error {
		b := &pgx.Batch{}
		for _, r := range rows {
			if table == "blobs" {
				b.Queue(`INSERT INTO blob_data (digest, data) VALUES ($1, $2) ON CONFLICT (digest) DO NOTHING`, r[1], r[len(r)-1])
				b.Queue(query, r[:len(r)-1]...)
				// The index's form differs between backends: the body is indexed again.
				b.Queue(`INSERT INTO search_pending (blob_id) VALUES ($1)`, r[0])
				continue
			}
			b.Queue(query, r...)
		}
		b.Queue(`INSERT INTO copy_state (id, state) VALUES (1, $1) ON CONFLICT (id) DO UPDATE SET state = excluded.state`, state)
		return tx.tx.SendBatch(tx.ctx, b).Close()
	})
}

// FinishImport implements store.Importer: the identity sequences continue after the
// imported IDs, and the UIDVALIDITY sequence after every imported UIDVALIDITY; the copy's
// state goes.
func (s *Store) FinishImport(ctx context.Context) error {
	return s.write(ctx, func(t *tx) error {
		for _, name := range identityTables {
			if _, err := t.exec(`SELECT setval(pg_get_serial_sequence('` + name + `', 'id'), coalesce(max(id), 0) + 1, false) FROM ` + name); err != nil {
				return err
			}
		}
		if _, err := t.exec(`SELECT setval('uidvalidity', greatest((SELECT last_value FROM uidvalidity),
			(SELECT coalesce(max(uidvalidity), 1) FROM mailboxes)))`); err != nil {
			return err
		}
		_, err := t.exec(`DELETE FROM copy_state`)
		return err
	})
}
