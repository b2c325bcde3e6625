package app

import (
	"context"
	"fmt"
	"path/filepath"

	"petrel/internal/store/sqlite"
)

// What the operations commands (backup, restore, verify, check) need of the store backend.
// Only the embedded store exists; with the PostgreSQL store, backup will say what it covers
// and leave the database to PostgreSQL's own tools.

// StoreFiles are the names in a data directory that belong to the embedded store and are
// copied only through BackupStore (the database with its WAL, shared memory and lock files)
// or not at all (the server's lock).
var StoreFiles = []string{storeFile, storeFile + "-wal", storeFile + "-shm", storeFile + "-pop3lock", lockName}

// storeFile is the embedded store's database in the data directory.
const storeFile = "petrel.db"

// StorePath is the database of a data directory (or of a backup, which has the same layout).
func StorePath(dir string) string { return filepath.Join(dir, storeFile) }

// BackupStore writes a consistent copy of the data directory's store into the database
// file dst while the server may run and deliver.
func BackupStore(ctx context.Context, dataDir, dst string) error {
	return sqlite.Backup(ctx, StorePath(dataDir), dst)
}

// StoreReport is what VerifyStore found.
type StoreReport struct {
	Problems                              []string
	Accounts, Mailboxes, Messages, Bodies int64
	Bytes                                 int64
	Undigested                            int64 // bodies from before digests: checked by size only
}

// Summary is one line for the operator.
func (r StoreReport) Summary() string {
	s := fmt.Sprintf("%d accounts, %d mailboxes, %d messages, %d bodies (%.1f MB)",
		r.Accounts, r.Mailboxes, r.Messages, r.Bodies, float64(r.Bytes)/1e6)
	if r.Undigested > 0 {
		s += fmt.Sprintf("; %d bodies stored before digests were kept are checked by size only", r.Undigested)
	}
	return s
}

// VerifyStore checks the store database at path without changing it.
func VerifyStore(ctx context.Context, path string) (StoreReport, error) {
	r, err := sqlite.Verify(ctx, path)
	return StoreReport{Problems: r.Problems, Accounts: r.Accounts, Mailboxes: r.Mailboxes, Messages: r.Messages,
		Bodies: r.Bodies, Bytes: r.Bytes, Undigested: r.Undigested}, err
}
