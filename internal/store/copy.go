package store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
)

// Moving a whole store from one backend to another (petrel store copy, and the backup and
// restore of the PostgreSQL store, which go through an embedded store file): the two
// backends keep the same rows, so a copy is row for row, IDs included, and keeps what no
// Store method could set: UIDVALIDITY, UIDs, MODSEQs, tombstones, counts, queue leases,
// junk counts and the rest. CopyTables describes those rows in terms both backends map to
// their own tables; the full-text index is not copied (its form differs) but rebuilt from
// the bodies by the destination (Index.Unindexed lists every copied body).

// ColumnKind is the type of a column's values in a copy: every backend exports a value of
// that Go type (or nil for NULL) and accepts it on import.
type ColumnKind int

const (
	Int   ColumnKind = iota + 1 // int64
	Text                        // string
	Bytes                       // []byte
	Bool                        // bool
	Float                       // float64
)

// CopyColumn is one column of a CopyTable.
type CopyColumn struct {
	Name string
	Kind ColumnKind
}

// CopyTable is one table of a copy. Rows are exported in the order of their first Key
// columns (byte order for text), so that two stores' exports can be compared row by row.
type CopyTable struct {
	Name    string
	Columns []CopyColumn
	Key     int
}

func cols(spec string) []CopyColumn {
	var out []CopyColumn
	for _, f := range strings.Fields(spec) {
		name, kind, _ := strings.Cut(f, ":")
		k := Int
		switch kind {
		case "t":
			k = Text
		case "b":
			k = Bytes
		case "bool":
			k = Bool
		case "f":
			k = Float
		}
		out = append(out, CopyColumn{Name: name, Kind: k})
	}
	return out
}

// CopyTables lists the tables of a copy in an order where each comes after those it
// refers to. Two are not tables of their own: domain_catch_all is the catch_all column of
// domains (which refers to accounts, which refer to domains), and the data column of blobs
// is the whole body, however a backend stores it.
var CopyTables = []CopyTable{
	{"domains", cols("name:t"), 1},
	{"accounts", cols(`id address:t domain:t password_hash:t scram_sha256:t pop3_delete:t pop3_uidl:t created
		modseq messages size quota_storage quota_messages admin:bool`), 1},
	{"domain_catch_all", cols("name:t catch_all:t"), 1},
	{"aliases", cols("address:t domain:t targets:t"), 1},
	{"mailboxes", cols("id account_id name:t uidvalidity uidnext modseq messages unseen deleted size special_use:t keywords:t"), 1},
	{"blobs", cols("id digest:b size mail_from:t received message_id:t subject:t from_addr:t date envelope:b structure:b data:b"), 1},
	{"messages", cols("id mailbox_id uid blob_id size internal_date flags:t modseq"), 1},
	{"expunged", cols("mailbox_id uid modseq"), 2},
	{"subscriptions", cols("account_id name:t"), 2},
	{"sending_limits", cols("account_id hour_messages hour_recipients day_messages day_recipients"), 1},
	{"sending_usage", cols("account_id period:t start messages recipients"), 2},
	{"queue", cols("id blob_id mail_from:t ret:t envid:t eight_bit:bool utf8_headers:bool created held:bool"), 1},
	{"queue_rcpts", cols(`id queue_id address:t domain:t notify:t orcpt:t orcpt_type:t attempts next_attempt
		lease_until last_error:t warned:bool bounce:bool`), 1},
	{"mta_sts", cols("domain:t policy:b"), 1},
	{"greylist", cols("key:t first last passed:bool"), 1},
	{"sieve_scripts", cols("account_id name:t content:t active:bool updated"), 2},
	{"vacation_log", cols("account_id handle:t sender:t sent"), 3},
	{"junk_accounts", cols("account_id ham spam threshold:f version"), 1},
	{"junk_tokens", cols("id account_id ham spam"), 1},
	{"junk_trained", cols("account_id key:b junk:bool"), 2},
	{"pull_sources", cols(`id account_id protocol:t addr:t tls:t ca_file:t username:t secret:b keep:bool every folder:t
		next_poll last_poll last_error:t failures lease_until notice:t`), 1},
	{"pull_seen", cols("source_id uid:t seen fingerprint:t"), 2},
}

// Exporter reads a whole store for a copy.
type Exporter interface {
	// Export reads every table of CopyTables in one consistent snapshot (a read
	// transaction: every commit before it began, nothing after) and calls fn for each row,
	// table by table in the order of CopyTables, rows in key order. A row's values follow
	// the table's columns, each of its column's kind or nil. fn may keep neither row nor
	// its byte slices.
	Export(ctx context.Context, fn func(table string, row []any) error) error
	// ExportCounts returns the number of rows Export gives for each table (those without
	// rows may be left out), for a copy to say how far it is.
	ExportCounts(ctx context.Context) (map[string]int64, error)
}

// ResumableExporter is an Exporter that can begin after a given row. A resumed copy reads
// only what is left: reading the source again from the start up to where the copy stopped
// would cost as much as the part already copied, every time it resumes.
type ResumableExporter interface {
	Exporter
	// ExportAfter is Export without the rows up to and including the one of table whose
	// key columns (its first Key columns) are key: the tables before table are not read,
	// and its rows are read from the next key on (keyset: WHERE key > last ORDER BY key,
	// text and bytes compared by octets). key holds an int64 for an integer column, a
	// string for a text column and a []byte for a bytes column (CopyTable.KeyArgs).
	ExportAfter(ctx context.Context, table string, key []any, fn func(table string, row []any) error) error
}

// ExportFrom is where an export begins: the index in CopyTables of its first table and,
// for ExportAfter, the key its rows must be above (nil: the whole table).
type ExportFrom struct {
	Table int
	After []any
}

// ExportAfterPoint checks the arguments of ExportAfter and says where its export begins.
func ExportAfterPoint(table string, key []any) (ExportFrom, error) {
	i := slices.IndexFunc(CopyTables, func(t CopyTable) bool { return t.Name == table })
	if i < 0 || len(key) != CopyTables[i].Key || len(key) == 0 {
		return ExportFrom{}, fmt.Errorf("store: no place to export after (%s %v): %w", table, key, ErrInvalid)
	}
	return ExportFrom{Table: i, After: key}, nil
}

// KeyArgs converts the key of a resume point (int64, or []byte for text and bytes) to the
// query arguments of ExportAfter: text as a string, so that a database compares it as
// text, bytes as []byte.
func (t CopyTable) KeyArgs(key []any) []any {
	out := make([]any, len(key))
	for i, v := range key {
		if b, ok := v.([]byte); ok && t.Columns[i].Kind == Text {
			v = string(b)
		}
		out[i] = v
	}
	return out
}

// Importer writes a copy into a store. A copy is a series of ImportRows, each one
// transaction that also records how far the copy got (its state, opaque to the store), so
// that a copy interrupted at any point, even by kill -9, goes on from the last batch
// written: no row twice, none missing.
type Importer interface {
	// ImportState returns the state the last ImportRows recorded (nil when none: no copy
	// began, or the last one finished), and whether the store holds any data (a domain or
	// an account).
	ImportState(ctx context.Context) (state []byte, used bool, err error)
	// ImportRows writes rows of one table, as Export gives them, and records state, in
	// one transaction, durably.
	ImportRows(ctx context.Context, table string, rows [][]any, state []byte) error
	// FinishImport makes the store ready for use after the last rows: counters and
	// sequences above every imported ID and UIDVALIDITY, every body listed for the
	// full-text index; and it forgets the state. Running it twice does no harm.
	FinishImport(ctx context.Context) error
}

// importBatch bounds the rows and body bytes CopyStore hands to one ImportRows.
const (
	importRows  = 1000
	importBytes = 16 << 20
)

// CopyOptions tune CopyStore.
type CopyOptions struct {
	// Source names the source store (a data directory, a database); a copy resumes only
	// into a destination whose unfinished copy came from the same source.
	Source string
	// Progress, if set, is called after each batch written (and once at the start of a
	// resumed copy) with how far the copy is.
	Progress func(CopyProgress)
	// BatchRows bounds the rows of one batch; 0 is 1000.
	BatchRows int
	// AfterBatch, if set, is called after each batch written; an error stops the copy
	// there, as a crash would (for tests of resuming).
	AfterBatch func(CopyProgress) error
}

// CopyProgress says how far a copy is.
type CopyProgress struct {
	Table   string           // the table being copied
	Rows    int64            // its rows written so far
	Total   map[string]int64 // rows per table in the source
	Done    []string         // the tables written completely, in order
	Resumed bool             // the copy went on from an earlier, interrupted one
	// ResumedRows is the number of rows of the earlier copy found in the destination.
	ResumedRows int64
}

// String says how far the copy is, for an operator: "accounts done, messages 41000/100000".
func (p CopyProgress) String() string {
	var parts []string
	if len(p.Done) > 0 {
		parts = append(parts, strings.Join(p.Done, ", ")+" done")
	}
	if p.Table != "" && !slices.Contains(p.Done, p.Table) {
		parts = append(parts, fmt.Sprintf("%s %d/%d", p.Table, p.Rows, p.Total[p.Table]))
	}
	return strings.Join(parts, ", ")
}

// copyState is what a copy records in the destination with each batch: where it is. It
// is JSON; a key value is a number (an integer column) or base64 (text and bytes columns,
// as octets: a JSON string would not carry text that is not UTF-8).
type copyState struct {
	Source string            `json:"source"`
	Table  string            `json:"table"` // the table of the last batch
	Rows   int64             `json:"rows"`  // rows of it written
	Key    []json.RawMessage `json:"key"`   // the key of its last row
	Counts map[string]int64  `json:"counts"`
}

// resumePoint is a copyState's last row, decoded once.
type resumePoint struct {
	table int   // index in CopyTables
	key   []any // int64 or []byte per key column
}

// point decodes where the state says the copy got.
func (st *copyState) point() (resumePoint, error) {
	ti := slices.IndexFunc(CopyTables, func(c CopyTable) bool { return c.Name == st.Table })
	if ti < 0 {
		return resumePoint{}, fmt.Errorf("store: the copy state names no table of a copy (%q)", st.Table)
	}
	t := CopyTables[ti]
	if len(st.Key) != t.Key {
		return resumePoint{}, fmt.Errorf("store: the copy state's key of %s is damaged", t.Name)
	}
	p := resumePoint{table: ti}
	for i, c := range t.Columns[:t.Key] {
		var err error
		switch c.Kind {
		case Int:
			var n int64
			err = json.Unmarshal(st.Key[i], &n)
			p.key = append(p.key, n)
		case Text, Bytes:
			var b []byte
			err = json.Unmarshal(st.Key[i], &b)
			p.key = append(p.key, b)
		default:
			err = fmt.Errorf("keyed by a column of kind %d", c.Kind)
		}
		if err != nil {
			return resumePoint{}, fmt.Errorf("store: the copy state's key of %s: %w", t.Name, err)
		}
	}
	return p, nil
}

// stateKey encodes the key columns of a row for copyState.
func stateKey(t CopyTable, row []any) ([]json.RawMessage, error) {
	var out []json.RawMessage
	for _, v := range row[:t.Key] {
		if s, ok := v.(string); ok {
			v = []byte(s)
		}
		b, err := json.Marshal(v)
		if err != nil {
			return nil, err
		}
		out = append(out, b)
	}
	return out, nil
}

// after reports whether a row of the table at index ti of CopyTables comes after the
// resume point in the export order (tables in order, rows by key, text and bytes by
// octets): it is still to be copied.
func (p resumePoint) after(ti int, row []any) bool {
	if ti != p.table {
		return ti > p.table
	}
	for i, last := range p.key {
		var cmp int
		switch v := row[i].(type) {
		case int64:
			cmp = cmpInt(v, last.(int64))
		case string:
			cmp = strings.Compare(v, string(last.([]byte)))
		case []byte:
			cmp = bytes.Compare(v, last.([]byte))
		}
		if cmp != 0 {
			return cmp > 0
		}
	}
	return false // the last row itself
}

func cmpInt(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// ErrOtherCopy is the refusal to resume a copy into a destination that holds part of a
// copy from another source.
var ErrOtherCopy = errors.New("store: the destination holds part of a copy from another source")

// CopyStore copies everything of from into to, which must be empty or hold part of an
// earlier copy from the same source (opts.Source), interrupted: that one is resumed after
// the last batch it wrote. A destination with other data is ErrExists. It returns the
// rows copied per table (those of the earlier run included).
func CopyStore(ctx context.Context, from Exporter, to Importer, opts CopyOptions) (map[string]int64, error) {
	raw, used, err := to.ImportState(ctx)
	if err != nil {
		return nil, err
	}
	var resume *copyState
	var from0 resumePoint
	if raw != nil {
		resume = &copyState{}
		if err := json.Unmarshal(raw, resume); err != nil {
			return nil, fmt.Errorf("store: the destination's copy state is damaged: %w", err)
		}
		if resume.Source != opts.Source {
			return nil, fmt.Errorf("%w (%s, not %s)", ErrOtherCopy, resume.Source, opts.Source)
		}
		if from0, err = resume.point(); err != nil {
			return nil, err
		}
	} else if used {
		return nil, fmt.Errorf("store: the destination is not empty and holds no unfinished copy: %w", ErrExists)
	}
	total, err := from.ExportCounts(ctx)
	if err != nil {
		return nil, err
	}
	counts := map[string]int64{}
	p := CopyProgress{Total: total}
	if resume != nil {
		maps.Copy(counts, resume.Counts)
		p.Resumed, p.Table, p.Rows = true, resume.Table, counts[resume.Table]
		for _, t := range CopyTables {
			if t.Name == resume.Table {
				break
			}
			p.Done = append(p.Done, t.Name)
		}
		for _, n := range counts {
			p.ResumedRows += n
		}
		if opts.Progress != nil {
			opts.Progress(p)
		}
	}
	maxRows := opts.BatchRows
	if maxRows <= 0 {
		maxRows = importRows
	}
	var table string
	var ti int
	var batch [][]any
	size := 0
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		t := CopyTables[ti]
		counts[table] += int64(len(batch))
		st := copyState{Source: opts.Source, Table: table, Rows: counts[table], Counts: counts}
		var err error
		if st.Key, err = stateKey(t, batch[len(batch)-1]); err != nil {
			return err
		}
		raw, err := json.Marshal(st)
		if err != nil {
			return err
		}
		if err := to.ImportRows(ctx, table, batch, raw); err != nil {
			counts[table] -= int64(len(batch))
			return fmt.Errorf("copy %s: %w", table, err)
		}
		p.Table, p.Rows = table, counts[table]
		if opts.Progress != nil {
			opts.Progress(p)
		}
		batch, size = batch[:0], 0
		if opts.AfterBatch != nil {
			return opts.AfterBatch(p)
		}
		return nil
	}
	export := from.Export
	if re, ok := from.(ResumableExporter); ok && resume != nil {
		t := CopyTables[from0.table]
		export = func(ctx context.Context, fn func(string, []any) error) error {
			return re.ExportAfter(ctx, t.Name, t.KeyArgs(from0.key), fn)
		}
	}
	err = export(ctx, func(name string, row []any) error {
		if name != table {
			if err := flush(); err != nil {
				return err
			}
			if table != "" && !slices.Contains(p.Done, table) {
				p.Done = append(p.Done, table)
			}
			table = name
			ti = slices.IndexFunc(CopyTables, func(c CopyTable) bool { return c.Name == name })
			if ti < 0 {
				return fmt.Errorf("store: an export gave rows of %q, no table of a copy", name)
			}
		} else if len(batch) >= maxRows || size >= importBytes {
			if err := flush(); err != nil {
				return err
			}
		}
		if resume != nil && !from0.after(ti, row) {
			return nil // written by the earlier run (an Exporter that cannot begin later)
		}
		own := make([]any, len(row))
		for i, v := range row {
			if b, ok := v.([]byte); ok {
				v = slices.Clone(b)
				size += len(b)
			}
			own[i] = v
		}
		batch = append(batch, own)
		return nil
	})
	if err == nil {
		err = flush()
	}
	if err != nil {
		return counts, err
	}
	return counts, to.FinishImport(ctx)
}

// TableDigest sums up a table's rows as exported: their number and a SHA-256 over every
// value in order.
type TableDigest struct {
	Rows int64
	Sum  [sha256.Size]byte
}

// DigestStore returns the digest of each table of a store's export (tables without rows
// included), so that two stores can be compared without holding either: equal digests
// mean equal rows, in every column, IDs included.
func DigestStore(ctx context.Context, e Exporter) (map[string]TableDigest, error) {
	out := map[string]TableDigest{}
	var cur string
	h := sha256.New()
	var n int64
	done := func() {
		if cur != "" {
			d := TableDigest{Rows: n}
			h.Sum(d.Sum[:0])
			out[cur] = d
		}
	}
	var buf []byte
	err := e.Export(ctx, func(table string, row []any) error {
		if table != cur {
			done()
			cur, n = table, 0
			h.Reset()
		}
		n++
		buf = buf[:0]
		for _, v := range row {
			buf = appendValue(buf, v)
		}
		h.Write(buf)
		return nil
	})
	if err != nil {
		return nil, err
	}
	done()
	for _, t := range CopyTables {
		if _, ok := out[t.Name]; !ok {
			out[t.Name] = TableDigest{Sum: sha256.Sum256(nil)}
		}
	}
	return out, nil
}

// appendValue encodes a value unambiguously: a type octet, then a length where the value
// has one. A NULL and an empty byte string are the same (backends differ in which an
// empty column gives back).
func appendValue(b []byte, v any) []byte {
	switch v := v.(type) {
	case nil:
		return append(b, 'b', 0, 0, 0, 0)
	case int64:
		return binary.BigEndian.AppendUint64(append(b, 'i'), uint64(v))
	case float64:
		return binary.BigEndian.AppendUint64(append(b, 'f'), math.Float64bits(v))
	case bool:
		if v {
			return append(b, 'T')
		}
		return append(b, 'F')
	case string:
		return append(binary.BigEndian.AppendUint32(append(b, 's'), uint32(len(v))), v...)
	case []byte:
		return append(binary.BigEndian.AppendUint32(append(b, 'b'), uint32(len(v))), v...)
	}
	return fmt.Appendf(append(b, '?'), "%T%v", v, v)
}

// CompareStores reports every table whose rows differ between two stores; nil when the
// two hold the same rows.
func CompareStores(ctx context.Context, a, b Exporter) error {
	da, err := DigestStore(ctx, a)
	if err != nil {
		return err
	}
	db, err := DigestStore(ctx, b)
	if err != nil {
		return err
	}
	var diff []string
	for _, t := range CopyTables {
		if da[t.Name] != db[t.Name] {
			diff = append(diff, fmt.Sprintf("%s (%d rows and %d rows)", t.Name, da[t.Name].Rows, db[t.Name].Rows))
		}
	}
	if len(diff) > 0 {
		return fmt.Errorf("store: the copies differ in %s", strings.Join(diff, ", "))
	}
	return nil
}

// ColumnNames lists the table's column names in order.
func (t CopyTable) ColumnNames() []string {
	out := make([]string, len(t.Columns))
	for i, c := range t.Columns {
		out[i] = c.Name
	}
	return out
}

// Normalize converts a value a database driver gave for column c to the Go type of its
// kind (integers for booleans, text as bytes and the reverse are what drivers of loosely
// typed databases give); a value it cannot convert is an error.
func (c CopyColumn) Normalize(v any) (any, error) {
	if v == nil {
		return nil, nil
	}
	switch c.Kind {
	case Int:
		if n, ok := v.(int64); ok {
			return n, nil
		}
	case Float:
		switch n := v.(type) {
		case float64:
			return n, nil
		case int64:
			return float64(n), nil
		}
	case Bool:
		switch n := v.(type) {
		case bool:
			return n, nil
		case int64:
			return n != 0, nil
		}
	case Text:
		switch s := v.(type) {
		case string:
			return s, nil
		case []byte:
			return string(s), nil
		}
	case Bytes:
		switch s := v.(type) {
		case []byte:
			return s, nil
		case string:
			return []byte(s), nil
		}
	}
	return nil, fmt.Errorf("store: column %s: unexpected value of type %T", c.Name, v)
}

// CopyTableNamed returns the table of CopyTables with that name.
func CopyTableNamed(name string) (CopyTable, bool) {
	for _, t := range CopyTables {
		if t.Name == name {
			return t, true
		}
	}
	return CopyTable{}, false
}
