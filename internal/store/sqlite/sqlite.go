// Package sqlite is the embedded store: one SQLite database file (modernc.org/sqlite, pure Go)
// in the data directory.
//
// # Writes: one committer, group commit
//
// All writes go through a single committer goroutine that owns the only write connection.
// A write method packs its work into a closure (a request) and sends it on a channel. The
// committer takes every request already waiting (up to Options.MaxBatch requests or
// Options.MaxBatchBytes of message bodies), opens one BEGIN IMMEDIATE transaction, runs the
// requests one after another without savepoints (SQLite would copy every page a savepoint
// touches into a statement journal), COMMITs once and then wakes each waiter with its own
// result. Only if a request fails is the whole attempt rolled back and the batch run again
// with a SAVEPOINT around each request, so that the failure undoes only itself (commit.go).
// With synchronous=FULL in WAL mode the COMMIT is one fsync of the WAL, so N concurrent
// deliveries cost one fsync instead of N.
//
// Checkpoints (copying the WAL into the database file) run on a third connection in the
// background, so commits pay only for their WAL fsync (checkpoint.go).
//
// Reads use a separate pool of query-only connections; WAL lets them run while the committer
// writes, and every read starts a fresh snapshot, so a change committed by another process
// (the CLI adding an account while the server runs) is visible to the next read. Nothing
// from the database is cached in memory, except the committer's delivery counters (the
// MODSEQ and usage of accounts and the UIDNEXT and counts of mailboxes that deliveries
// raise, delivercache.go), which it checks against PRAGMA data_version at the start of
// each write transaction.
//
// # Across processes
//
// The server and the management commands open the same file. Writes of both are ordered by
// SQLite's write lock (beginImmediate), and every read sees the other's commits. Two things
// of store.Store are more than rows:
//   - The POP3 maildrop lock is an open-file-description lock on a byte of
//     petrel.db-pop3lock (lock.go): every process sees it, the kernel releases it when
//     its holder exits however it exits, and it costs no transaction.
//   - Change events (changes.go) are published by the Store whose commit made the change,
//     to its own subscribers. A commit of another process is not announced; a session
//     learns of it by MODSEQ, as the store.Changes contract requires anyway (only the
//     server runs sessions; the CLI changes accounts, not messages).
//
// Invariants a contributor must keep:
//   - Only the committer goroutine touches the write connection and its statement cache.
//   - A request closure does all its work through its *tx and never blocks on anything but
//     SQLite: it runs while every other writer waits. It may run twice (its first run
//     rolled back, see commitBatch), so it only sets its results and never adds to state
//     outside its transaction.
//   - Message bodies are read from the caller's reader before the request is submitted, so
//     a slow client never stalls the committer.
//   - A request whose context ends before the committer takes it is dropped; once taken it
//     runs and its caller waits for the outcome, so nil always means committed and an error
//     always means nothing of it was.
//   - Change events are published after COMMIT succeeded and before the waiter is woken, so
//     a caller subscribed to its own account sees its change before its call returns.
//   - IDs (accounts, mailboxes, messages, blobs) are AUTOINCREMENT: never reused, so a stale
//     reference can never name a different object.
//
// # Layout
//
// Bodies are stored once per delivery in blobs: one row with the cached parse and the first
// blobChunkSize bytes, then blob_chunks rows for the rest, so that reading a large message
// streams instead of loading it whole while a typical message is a single row. A message
// row points at its blob; a copy (store.Mail.Copy) is another message row on the same blob.
// The transaction that removes the last message of a blob only lists the blob as garbage,
// which hides it from readers at once; the committer frees listed blobs in the background
// when it has nothing else to do (reclaim.go).
//
// Every account has a MODSEQ counter (RFC 7162) that each change of its mailboxes or
// messages raises once; mailboxes and messages store the value of their last change, and an
// expunge (or a move away) leaves a row in expunged with the UID and that value, for
// QRESYNC. Mailbox rows carry their counts (messages, unseen, deleted, size) and keyword
// list, account rows their usage (messages, size); the request that changes messages
// changes these in the same transaction, so they are never summed on demand. UIDVALIDITY
// values come from one database-wide counter, so they are never reused. Subscriptions are
// rows of their own, independent of mailboxes (RFC 9051 §6.3.9).
package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver

	"petrel/internal/store"
	"petrel/internal/store/broker"
)

// Options tune the store. The zero value is ready to use.
type Options struct {
	// MaxBatch bounds how many write requests share one transaction (and one fsync).
	// Default 128; 1 disables grouping (useful to measure what group commit buys).
	MaxBatch int
	// MaxBatchBytes stops gathering a batch once the message bodies in it reach this many
	// bytes. Default 32 MiB. A single larger message still goes through, alone.
	MaxBatchBytes int64
	// Logger receives commit failures and dropped subscribers. Default: discard.
	Logger *slog.Logger
	// DefaultQuota is the quota of every account without limits of its own (SetQuota);
	// zero fields are no limit.
	DefaultQuota store.QuotaLimits
	// ObserveCommit, if set, is called by the committer after each write batch with the time
	// from BEGIN to the end of COMMIT (its fsync included) and the number of requests in it
	// (metrics). It runs on the committer: it must return at once.
	ObserveCommit func(d time.Duration, requests int)
	// IndexInCommit writes each body's full-text index row in the commit that stores the
	// body, as before the background indexer (indexer.go): benchmarks set it to measure what
	// the indexer gains. `petrel serve` never does.
	IndexInCommit bool

	// reclaimOff stops the background reclaim of freed bodies (tests: a store that died
	// before reclaiming).
	reclaimOff bool
}

const (
	defaultMaxBatch      = 128
	defaultMaxBatchBytes = 32 << 20
	// busyTimeout is how long we wait for a lock held by another connection or process
	// (the CLI writing while the server runs) before failing with SQLITE_BUSY.
	busyTimeout = 10 * time.Second
	// queueLen is the capacity of the request channel; senders block beyond it.
	queueLen = 1024
)

// errClosed is returned by writes after Close.
var errClosed = errors.New("store: closed")

// Store is the SQLite implementation of store.Store.
type Store struct {
	log *slog.Logger

	dkimDir string // DATA/dkim: the DKIM keys (dkim.go)

	wdb *sql.DB // holds the single write connection
	wc  *sql.Conn
	rdb *sql.DB // query-only pool for reads
	// reads caches prepared read statements by query text: preparing costs more than running
	// the small lookups on the hot paths (RCPT, login, RETR). database/sql re-prepares a Stmt
	// on each pooled connection as needed.
	reads sync.Map // string -> *sql.Stmt
	opts  Options

	closeIndex sync.Once
	mu         sync.RWMutex // guards closed and sending on reqs (see write)
	closed     bool
	reqs       chan *request
	stopped    chan struct{} // closed when the committer has exited

	changes *broker.Broker

	index *indexer // the background full-text indexer (indexer.go)
	// queueBodies holds recently queued bodies for the queue's first attempt (queuebodies.go).
	queueBodies queueBodies
	// searchMaps maps index hits to UIDs for searches with many hits (searchmap.go).
	searchMaps searchMapCache
	// backlogMax is the highest body in search_pending at Open: the bodies up to it are the
	// mail layer's to index (Unindexed), those above it the indexer's.
	backlogMax int64

	ckdb   *sql.DB       // one connection for background checkpoints
	ckWake chan struct{} // buffered(1); closed by Close after the committer stopped
	ckDone chan struct{} // closed when the checkpointer has exited

	batches     atomic.Int64 // write batches the committer ran, for tests
	reclaimed   atomic.Int64 // blobs the background reclaim freed, for tests
	indexWrites atomic.Int64 // write requests of the background indexer, for tests

	lockMu   sync.Mutex
	locked   map[int64]bool // accounts whose POP3 maildrop this Store holds (lock.go)
	lockFile *os.File       // holds the maildrop locks for other processes to see
}

var _ store.Store = (*Store)(nil)

// readStmt returns the prepared form of a read query.
func (s *Store) readStmt(ctx context.Context, query string) (*sql.Stmt, error) {
	if st, ok := s.reads.Load(query); ok {
		return st.(*sql.Stmt), nil
	}
	st, err := s.rdb.PrepareContext(ctx, query)
	if err != nil {
		return nil, err
	}
	if prev, loaded := s.reads.LoadOrStore(query, st); loaded {
		st.Close()
		return prev.(*sql.Stmt), nil
	}
	return st, nil
}

// queryRow runs a single-row read query through the statement cache.
func (s *Store) queryRow(ctx context.Context, query string, args ...any) *sql.Row {
	st, err := s.readStmt(ctx, query)
	if err != nil {
		// Let the unprepared path report the same error through Row.Scan.
		return s.rdb.QueryRowContext(ctx, query, args...)
	}
	return st.QueryRowContext(ctx, args...)
}

// query runs a read query through the statement cache.
func (s *Store) query(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	st, err := s.readStmt(ctx, query)
	if err != nil {
		return nil, err
	}
	return st.QueryContext(ctx, args...)
}

// Open opens (creating if needed) the database at path, runs pending schema migrations and
// starts the committer.
func Open(path string, opts Options) (*Store, error) {
	if strings.ContainsAny(path, "?") {
		// The driver takes everything after '?' as connection parameters.
		return nil, fmt.Errorf("store: database path %q must not contain '?'", path)
	}
	if opts.MaxBatch <= 0 {
		opts.MaxBatch = defaultMaxBatch
	}
	if opts.MaxBatchBytes <= 0 {
		opts.MaxBatchBytes = defaultMaxBatchBytes
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}

	common := fmt.Sprintf("?_pragma=busy_timeout(%d)&_pragma=foreign_keys(1)", busyTimeout.Milliseconds())
	// synchronous=FULL: in WAL mode every COMMIT fsyncs the WAL, so a returned commit
	// survives power loss (https://www.sqlite.org/pragma.html#pragma_synchronous).
	//
	// The checkpointer (checkpoint.go) keeps the WAL short; wal_autocheckpoint is only a
	// backstop, and journal_size_limit gives back the space of a WAL that grew anyway.
	wdb, err := sql.Open("sqlite", path+common+"&_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)"+
		"&_pragma=temp_store(2)&_pragma=wal_autocheckpoint(16384)&_pragma=journal_size_limit(67108864)")
	if err != nil {
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	wdb.SetMaxOpenConns(1)
	wdb.SetConnMaxIdleTime(0)
	wdb.SetConnMaxLifetime(0)
	ctx := context.Background()
	wc, err := wdb.Conn(ctx)
	if err != nil {
		wdb.Close()
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	var mode string
	if err := wc.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil || !strings.EqualFold(mode, "wal") {
		wc.Close()
		wdb.Close()
		return nil, fmt.Errorf("store: open %s: cannot enable WAL (journal_mode %q): %v", path, mode, err)
	}
	// The committer waits for the write lock itself (see beginImmediate).
	if _, err := wc.ExecContext(ctx, "PRAGMA busy_timeout = 0"); err != nil {
		wc.Close()
		wdb.Close()
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	if err := migrate(ctx, wc); err != nil {
		wc.Close()
		wdb.Close()
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	// Bodies an earlier process listed for the reclaim and did not free (reclaim.go).
	var garbage int64
	if err := wc.QueryRowContext(ctx, "SELECT count(*) FROM garbage").Scan(&garbage); err != nil {
		wc.Close()
		wdb.Close()
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}

	var backlogMax int64
	if err := wc.QueryRowContext(ctx, "SELECT coalesce(max(blob_id), 0) FROM search_pending").Scan(&backlogMax); err != nil {
		wc.Close()
		wdb.Close()
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}

	rdb, err := sql.Open("sqlite", path+common+"&_pragma=query_only(1)")
	if err != nil {
		wc.Close()
		wdb.Close()
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	ckdb, err := sql.Open("sqlite", path+common)
	if err != nil {
		rdb.Close()
		wc.Close()
		wdb.Close()
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	ckdb.SetMaxOpenConns(1)
	lockFile, err := openLockFile(path)
	if err != nil {
		ckdb.Close()
		rdb.Close()
		wc.Close()
		wdb.Close()
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	readers := max(4, 2*runtime.GOMAXPROCS(0))
	rdb.SetMaxOpenConns(readers)
	rdb.SetMaxIdleConns(readers)

	s := &Store{
		dkimDir:  KeyFiles(path),
		log:      log,
		wdb:      wdb,
		wc:       wc,
		rdb:      rdb,
		opts:     opts,
		reqs:     make(chan *request, queueLen),
		stopped:  make(chan struct{}),
		changes:  broker.New(log),
		ckdb:     ckdb,
		ckWake:   make(chan struct{}, 1),
		ckDone:   make(chan struct{}),
		locked:   map[int64]bool{},
		lockFile: lockFile,

		index:      newIndexer(),
		backlogMax: backlogMax,
		searchMaps: searchMapCache{min: searchMapMin},
	}
	go s.commitLoop(garbage)
	go s.checkpointLoop()
	go s.indexLoop()
	return s, nil
}

// Close waits for queued writes to commit, stops the committer, closes every subscription
// and the database. Calling it again does nothing.
func (s *Store) Close() error {
	s.closeIndex.Do(func() {
		// The indexer writes what is queued through the committer, so it stops first.
		close(s.index.stop)
		<-s.index.done
	})
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	close(s.reqs)
	s.mu.Unlock()

	<-s.stopped
	close(s.ckWake) // only the committer sends on it
	<-s.ckDone
	s.changes.CloseAll()
	return errors.Join(s.wc.Close(), s.wdb.Close(), s.rdb.Close(), s.ckdb.Close(), s.lockFile.Close())
}
