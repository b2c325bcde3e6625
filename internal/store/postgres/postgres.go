// Package postgres is the store for several Petrel nodes sharing one PostgreSQL database
// (pgx v5). It keeps the same rows as the embedded store (sqlite) and passes the same
// conformance suite (storetest).
//
// # Writes
//
// Every write method is one READ COMMITTED transaction on a pooled connection; it returns
// nil only after COMMIT, which PostgreSQL makes durable before answering
// (synchronous_commit on). There is no committer goroutine of our own: PostgreSQL already
// groups the WAL flushes of concurrent commits (commit_delay, and a flush covers every
// commit queued behind it; but see notify.go for the transactions that notify), and
// several nodes could not share one committer anyway.
//
// Concurrency across nodes rests on row locks, taken in one order:
//  1. accounts rows, ascending ID (a delivery to several accounts locks them all first);
//  2. blobs rows being freed, ascending ID;
//  3. blob_data rows (by digest) being written or freed.
//
// Every write that changes an account's mailboxes or messages first locks its account row
// (lockAccount, or raiseModSeq, an UPDATE ... RETURNING) and only then reads what it will
// change, so the writers of one account run one after another whatever node they are on:
// MODSEQs and UIDs are taken under that lock and never given twice, and the counts never
// lose an update. A deadlock or serialization failure all the same (the database detects
// it) makes write run the transaction again.
//
// # Bodies
//
// A body's bytes are stored once per distinct content (blob_data, keyed by SHA-256) and
// written in the delivery's transaction; blobs rows carry each delivery's metadata and
// point at the bytes. The transaction that removes the last message of a blob deletes it,
// and the bytes once no blob points at them (freeBlobs).
//
// # Changes
//
// A commit's change events go to this Store's subscribers at once and, through NOTIFY in
// the same transaction, to every other Store on the database (notify.go).
//
// # POP3 maildrop lock
//
// A session-level advisory lock, held on one connection of the Store (lock.go): PostgreSQL
// releases it when that session ends, so a node that dies frees its maildrops.
package postgres

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"strconv"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"petrel/internal/store"
	"petrel/internal/store/broker"
)

// Options tune the store. The zero value is ready to use.
type Options struct {
	// PoolSize bounds the connections to PostgreSQL; 0 is DefaultPoolSize.
	PoolSize int
	// Logger receives failures of background work. Default: discard.
	Logger *slog.Logger
	// DefaultQuota is the quota of every account without limits of its own.
	DefaultQuota store.QuotaLimits
	// ObserveCommit, if set, is called after each write transaction with the time it took
	// (COMMIT included) and 1 (the requests in it, as the embedded store reports batches).
	ObserveCommit func(d time.Duration, requests int)
	// Password, if set, is the password to log in with; otherwise the connection string's
	// or the environment's (PGPASSWORD, ~/.pgpass), as libpq has it.
	Password string
	// NoMigrate makes Open refuse a database whose schema is not current instead of
	// migrating it (petrel serve with migrations left to `petrel migrate`).
	NoMigrate bool
}

// DefaultPoolSize is the pool's bound when Options.PoolSize is 0. Each delivery holds a
// connection until its COMMIT is durable, so the pool bounds how many deliveries share
// one WAL flush: pgxpool's own default (the CPUs, at least 4) let 4 of 16 SMTP sessions
// commit per flush, which made the disk's flush rate the node's limit
// (docs/benchmarks.md). Three nodes of 16 and their listeners stay well inside
// PostgreSQL's default max_connections (100).
const DefaultPoolSize = 16

// Store is the PostgreSQL implementation of store.Store.
type Store struct {
	log  *slog.Logger
	pool *pgxpool.Pool
	opts Options

	changes  *broker.Broker
	notifier *notifier

	lockMu   sync.Mutex
	locked   map[int64]uint64 // accounts whose POP3 maildrop this Store holds → generation (lock.go)
	lockGen  uint64
	lockConn *pgxpool.Conn // the session holding them; nil while none is held

	closeOnce sync.Once
}

var _ store.Store = (*Store)(nil)

// Open connects to the database named by dsn (a libpq connection string or URL), brings
// its schema up to date (unless opts.NoMigrate) and starts listening for the changes of
// other nodes.
func Open(ctx context.Context, dsn string, opts Options) (*Store, error) {
	size := opts.PoolSize
	if size <= 0 {
		size = DefaultPoolSize
	}
	pool, err := newPool(ctx, dsn, size, opts.Password)
	if err != nil {
		return nil, err
	}
	if opts.NoMigrate {
		err = checkVersion(ctx, pool)
	} else {
		_, _, err = migrate(ctx, pool)
	}
	if err != nil {
		pool.Close()
		return nil, fmt.Errorf("store: %w", err)
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Store{log: log, pool: pool, opts: opts, changes: broker.New(log), locked: map[int64]uint64{}}
	s.notifier = startNotifier(s)
	return s, nil
}

// Migrate brings the schema of the database named by dsn up to date and reports the
// versions before and after (petrel migrate).
func Migrate(ctx context.Context, dsn, password string) (from, to int, err error) {
	pool, err := newPool(ctx, dsn, 1, password)
	if err != nil {
		return 0, 0, err
	}
	defer pool.Close()
	return migrate(ctx, pool)
}

func newPool(ctx context.Context, dsn string, size int, password string) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		// The error may quote the DSN, password included: say only what is wrong.
		return nil, errors.New("store: bad PostgreSQL connection string")
	}
	if password != "" {
		cfg.ConnConfig.Password = password
	}
	if size > 0 {
		cfg.MaxConns = int32(size)
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("store: connecting to PostgreSQL: %w", err)
	}
	return pool, nil
}

// SchemaVersions reports the schema version of the database named by dsn (0 for one
// without Petrel's tables) and the one this binary writes, without changing anything
// (petrel check).
func SchemaVersions(ctx context.Context, dsn, password string) (have, want int, err error) {
	pool, err := newPool(ctx, dsn, 1, password)
	if err != nil {
		return 0, len(migrations), err
	}
	defer pool.Close()
	var exists bool
	if err := pool.QueryRow(ctx, `SELECT to_regclass('schema_version') IS NOT NULL`).Scan(&exists); err != nil || !exists {
		return 0, len(migrations), err
	}
	err = pool.QueryRow(ctx, `SELECT coalesce(max(version), 0) FROM schema_version`).Scan(&have)
	return have, len(migrations), err
}

// checkVersion is nil when the schema is the one this binary writes.
func checkVersion(ctx context.Context, pool *pgxpool.Pool) error {
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return err
	}
	defer conn.Release()
	var exists bool
	if err := conn.QueryRow(ctx, `SELECT to_regclass('schema_version') IS NOT NULL`).Scan(&exists); err != nil {
		return err
	}
	v := 0
	if exists {
		if v, err = readVersion(ctx, conn.Conn()); err != nil {
			return err
		}
	}
	if v != len(migrations) {
		return fmt.Errorf("database schema version %d, this binary needs %d: run petrel migrate", v, len(migrations))
	}
	return nil
}

// Close ends every subscription, releases the maildrop locks and closes the pool.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		s.notifier.stop()
		s.changes.CloseAll()
		s.lockMu.Lock()
		s.dropLockConn() // closing its session releases the maildrop locks
		s.lockMu.Unlock()
		s.pool.Close()
	})
	return nil
}

// placeholder finds the parameters of a query as the embedded store writes them: "?"
// (numbered in order) or "?N".
var placeholder = regexp.MustCompile(`\?(\d*)`)

// rebound caches queries with their parameters rewritten to PostgreSQL's $N.
var rebound sync.Map // string -> string

// rebind rewrites "?" and "?N" parameters to "$N". The queries are constants of this
// package (none has a "?" inside a string literal), so the cache is bounded.
func rebind(query string) string {
	if q, ok := rebound.Load(query); ok {
		return q.(string)
	}
	n := 0
	q := placeholder.ReplaceAllStringFunc(query, func(m string) string {
		if len(m) > 1 {
			return "$" + m[1:]
		}
		n++
		return "$" + strconv.Itoa(n)
	})
	rebound.Store(query, q)
	return q
}

// rows wraps pgx.Rows with the Close of database/sql, so row loops read the same in both
// backends.
type rows struct{ pgx.Rows }

func (r rows) Close() error {
	r.Rows.Close()
	return r.Rows.Err()
}

// result is what exec returns.
type result struct{ tag pgconn.CommandTag }

func (r result) RowsAffected() (int64, error) { return r.tag.RowsAffected(), nil }

// query runs a read query on the pool.
func (s *Store) query(ctx context.Context, query string, args ...any) (rows, error) {
	r, err := s.pool.Query(ctx, rebind(query), args...)
	return rows{r}, err
}

// queryRow runs a single-row read query on the pool.
func (s *Store) queryRow(ctx context.Context, query string, args ...any) pgx.Row {
	return s.pool.QueryRow(ctx, rebind(query), args...)
}

// notFound maps pgx.ErrNoRows to store.ErrNotFound.
func notFound(err error) error {
	if errors.Is(err, pgx.ErrNoRows) {
		return store.ErrNotFound
	}
	return err
}

// tx is what a write sees: its transaction, plus the changes it will publish if it
// commits.
type tx struct {
	ctx context.Context
	// tx is the transaction; nil only in a write started with writePipelined, whose
	// function begins it inside its one batch (sendBatch) and runs nothing else.
	tx      pgx.Tx
	conn    *pgx.Conn // the connection tx runs on
	s       *Store
	changes []store.Change
	modseq  map[int64]uint64 // accounts whose MODSEQ this write already raised
	locked  map[int64]bool   // accounts whose row this write locked
	// committed is set by a function that sent COMMIT and its NOTIFY itself, in its own
	// batch (deliverTargets): there is nothing left to commit.
	committed bool
}

func (t *tx) exec(query string, args ...any) (result, error) {
	tag, err := t.tx.Exec(t.ctx, rebind(query), args...)
	return result{tag}, err
}

func (t *tx) query(query string, args ...any) (rows, error) {
	r, err := t.tx.Query(t.ctx, rebind(query), args...)
	return rows{r}, err
}

// queryRow runs a single-row query and scans it; no row is store.ErrNotFound.
func (t *tx) queryRow(query string, args []any, dest ...any) error {
	return notFound(t.tx.QueryRow(t.ctx, rebind(query), args...).Scan(dest...))
}

// maxAttempts bounds how often write runs a transaction that PostgreSQL aborted for a
// deadlock or serialization failure.
const maxAttempts = 5

// write runs fn in a transaction and commits it. Like the embedded store, once it has
// started it runs to the end whatever happens to ctx, so that nil always means committed
// and an error always means nothing of it was (a connection lost during COMMIT aside,
// which no client of a database can tell). fn may run more than once; it sets its results
// and keeps no other state.
func (s *Store) write(ctx context.Context, fn func(*tx) error) error {
	return s.writeTx(ctx, false, fn)
}

// writePipelined is write for a function that sends all its statements as one batch with
// t.sendBatch and nothing else: the BEGIN then goes in that batch instead of a round trip
// of its own. The function may end the batch with COMMIT and the NOTIFY too, and set
// t.committed (deliverTargets: a delivery is then one round trip); else they follow in
// a round trip of their own.
func (s *Store) writePipelined(ctx context.Context, fn func(*tx) error) error {
	return s.writeTx(ctx, true, fn)
}

func (s *Store) writeTx(ctx context.Context, pipelined bool, fn func(*tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	ctx = context.WithoutCancel(ctx)
	for attempt := 1; ; attempt++ {
		start := time.Now()
		t := &tx{ctx: ctx, s: s}
		err := s.runTx(t, pipelined, fn)
		if err == nil {
			if s.opts.ObserveCommit != nil {
				s.opts.ObserveCommit(time.Since(start), 1)
			}
			for _, c := range t.changes {
				s.changes.Publish(c)
			}
			return nil
		}
		var pe *pgconn.PgError
		if attempt < maxAttempts && errors.As(err, &pe) && (pe.Code == "40P01" || pe.Code == "40001") {
			continue
		}
		return err
	}
}

// runTx runs fn in a transaction on a pooled connection and commits it, with the NOTIFY
// of its changes sent in the same round trip right after the COMMIT (notify.go says why
// not inside the transaction). With pipelined, fn begins the transaction (sendBatch).
func (s *Store) runTx(t *tx, pipelined bool, fn func(*tx) error) error {
	conn, err := s.pool.Acquire(t.ctx)
	if err != nil {
		return err
	}
	// A connection left inside a transaction (a failure between BEGIN and COMMIT) is
	// closed by Release rather than reused.
	defer conn.Release()
	t.conn = conn.Conn()
	if !pipelined {
		if t.tx, err = t.conn.Begin(t.ctx); err != nil {
			return err
		}
	}
	if err := fn(t); err != nil {
		t.rollback()
		return err
	}
	return s.notifier.commit(t)
}

// rollback ends the transaction without committing it.
func (t *tx) rollback() {
	if t.tx != nil {
		t.tx.Rollback(t.ctx)
	} else if t.conn.PgConn().TxStatus() != 'I' {
		t.conn.Exec(t.ctx, "ROLLBACK")
	}
}

// sendBatch sends b inside the transaction, beginning it first in the same round trip
// if it has not begun (writePipelined).
func (t *tx) sendBatch(b *pgx.Batch) (pgx.BatchResults, error) {
	if t.tx != nil {
		return t.tx.SendBatch(t.ctx, b), nil
	}
	b.QueuedQueries = append([]*pgx.QueuedQuery{{SQL: "BEGIN"}}, b.QueuedQueries...)
	br := t.conn.SendBatch(t.ctx, b)
	if _, err := br.Exec(); err != nil {
		br.Close()
		return nil, err
	}
	return br, nil
}

// lockAccount locks an account's row until the end of the transaction (see the package
// comment). A missing account is store.ErrNotFound.
func (t *tx) lockAccount(accountID int64) error {
	if t.locked[accountID] {
		return nil
	}
	var one int
	if err := t.queryRow(`SELECT 1 FROM accounts WHERE id = ? FOR UPDATE`, []any{accountID}, &one); err != nil {
		return fmt.Errorf("account %d: %w", accountID, err)
	}
	t.markLocked(accountID)
	return nil
}

// markLocked records that this transaction holds an account's row lock.
func (t *tx) markLocked(accountID int64) {
	if t.locked == nil {
		t.locked = map[int64]bool{}
	}
	t.locked[accountID] = true
}

// raiseModSeq raises the MODSEQ of an account once per write and returns the new value
// (RFC 7162 §3.1.1 lets one operation give several changes the same mod-sequence). A
// missing account is store.ErrNotFound.
func (t *tx) raiseModSeq(accountID int64) (uint64, error) {
	if m, ok := t.modseq[accountID]; ok {
		return m, nil
	}
	var m uint64
	if err := t.queryRow(`UPDATE accounts SET modseq = modseq + 1 WHERE id = ? RETURNING modseq`, []any{accountID}, &m); err != nil {
		return 0, err
	}
	if t.modseq == nil {
		t.modseq = map[int64]uint64{}
	}
	t.modseq[accountID] = m
	t.markLocked(accountID)
	return m, nil
}

// change records an event for publication after commit, merging UIDs into an earlier
// event of the same kind for the same mailbox.
func (t *tx) change(kind store.ChangeKind, accountID, mailboxID int64, modseq uint64, uids ...uint32) {
	for i := range t.changes {
		c := &t.changes[i]
		if c.Kind == kind && c.MailboxID == mailboxID {
			c.UIDs = append(c.UIDs, uids...)
			c.ModSeq = modseq
			return
		}
	}
	t.changes = append(t.changes, store.Change{Kind: kind, AccountID: accountID, MailboxID: mailboxID, UIDs: uids, ModSeq: modseq})
}

// scanColumn reads a one-column result into a slice and closes rows.
func scanColumn[T any](r rows) ([]T, error) {
	defer r.Close()
	var out []T
	for r.Next() {
		var v T
		if err := r.Scan(&v); err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, r.Err()
}

// int64s converts UIDs for a bigint[] parameter.
func int64s(uids []uint32) []int64 {
	out := make([]int64, len(uids))
	for i, u := range uids {
		out[i] = int64(u)
	}
	return out
}

var _ store.SchemaChecker = (*Store)(nil)

// SchemaCurrent implements store.SchemaChecker: the database answers and its schema is the
// version this binary writes (a newer node may have migrated it since Open).
func (s *Store) SchemaCurrent(ctx context.Context) error {
	if err := checkVersion(ctx, s.pool); err != nil {
		return fmt.Errorf("store: %w", err)
	}
	return nil
}
