package app

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"golang.org/x/time/rate"

	"petrel/internal/config"
	"petrel/internal/store"

	"petrel/internal/store/sqlite"
)

// What the operations commands (backup, restore, verify, check) need of the store backend.
// A backup's store is always an embedded store file; the PostgreSQL store is backed up into
// one and restored from one (BackupConfiguredStore, RestoreConfiguredStore).

// StoreFiles are the names in a data directory that belong to the embedded store and are
// copied only through BackupStore (the database with its WAL, shared memory and lock files)
// or not at all (the server's lock).
var StoreFiles = []string{storeFile, storeFile + "-wal", storeFile + "-shm", storeFile + "-pop3lock", lockName}

// storeFile is the embedded store's database in the data directory.
const storeFile = "petrel.db"

// StorePath is the database of a data directory (or of a backup, which has the same layout).
func StorePath(dir string) string { return filepath.Join(dir, storeFile) }

// BackupStore writes a consistent copy of the data directory's store into the database
// file dst while the server may run and deliver, at pace's rate (NewBackupPace).
func BackupStore(ctx context.Context, dataDir, dst string, pace *rate.Limiter) error {
	return sqlite.Backup(ctx, StorePath(dataDir), dst, pace)
}

// NewBackupPace is the token bucket that bounds a backup's bytes per second (store.backup_rate
// or backup --rate, in MB/s): nil, no bound, for 0.
func NewBackupPace(mbPerSecond int) *rate.Limiter {
	return sqlite.NewPace(int64(mbPerSecond) * 1e6)
}

// PacedReader reads r at pace's rate.
func PacedReader(ctx context.Context, r io.Reader, pace *rate.Limiter) io.Reader {
	return sqlite.PacedReader(ctx, r, pace)
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
	return VerifyStorePaced(ctx, path, nil)
}

// VerifyStorePaced is VerifyStore reading at pace's rate, for a backup's copy (which is
// not in WAL mode) beside the server.
func VerifyStorePaced(ctx context.Context, path string, pace *rate.Limiter) (StoreReport, error) {
	r, err := sqlite.VerifyPaced(ctx, path, pace)
	return StoreReport{Problems: r.Problems, Accounts: r.Accounts, Mailboxes: r.Mailboxes, Messages: r.Messages,
		Bodies: r.Bodies, Bytes: r.Bytes, Undigested: r.Undigested}, err
}

// IsPostgres reports whether the config's store is a PostgreSQL database.
func IsPostgres(c *config.Config) bool { return c.Store.Backend == "postgres" }

// BackupConfiguredStore writes a consistent copy of the configured store into the embedded
// store database file dst while the server may run and deliver. A PostgreSQL store is
// copied from one REPEATABLE READ snapshot (every commit before it began, nothing after)
// into an embedded store, so that a backup has one form whatever the backend: it is
// verified, restored and even served like any other (see RestoreConfiguredStore). The
// intermediate database is then compacted into dst as an embedded backup is.
func BackupConfiguredStore(ctx context.Context, c *config.Config, dst string, pace *rate.Limiter) error {
	if !IsPostgres(c) {
		return BackupStore(ctx, c.Data, dst, pace)
	}
	tmp, err := os.MkdirTemp(filepath.Dir(dst), ".petrel-backup-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	if _, err := CopyStore(ctx, c, tmp, true, CopyOptions{Live: true}); err != nil {
		return err
	}
	if err := sqlite.Compact(ctx, StorePath(tmp), dst); err != nil {
		return err
	}
	// The store's DKIM keys, opened, where an embedded store keeps them: beside the
	// database, in the backup's dkim directory (the caller lists them in the manifest).
	if _, err := os.Stat(DKIMDir(tmp)); err == nil {
		return os.Rename(DKIMDir(tmp), DKIMDir(filepath.Dir(dst)))
	}
	return nil
}

// RestoreConfiguredStore copies the store database of a backup (checked by the caller)
// into the configured PostgreSQL store, which must be empty, and compares the two; the
// backup itself is left as it was (a copy of its file is opened, since opening may migrate
// it).
func RestoreConfiguredStore(ctx context.Context, c *config.Config, backupDB string) (CopyResult, error) {
	tmp, err := os.MkdirTemp("", "petrel-restore-")
	if err != nil {
		return CopyResult{}, err
	}
	defer os.RemoveAll(tmp)
	if err := copyPlainFile(backupDB, StorePath(tmp)); err != nil {
		return CopyResult{}, err
	}
	// The backup's DKIM keys (files, as the embedded store keeps them) go into the
	// database with the rows, sealed there.
	if keys := DKIMDir(filepath.Dir(backupDB)); dirExists(keys) {
		if err := os.CopyFS(DKIMDir(tmp), os.DirFS(keys)); err != nil {
			return CopyResult{}, err
		}
	}
	// Recorded as the backup file's, not the temporary copy's: a restore interrupted part
	// way resumes when run again with the same backup.
	return CopyStore(ctx, c, tmp, false, CopyOptions{Source: "backup " + locationName(backupDB)})
}

func copyPlainFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// VerifyConfiguredStore checks the configured PostgreSQL store from one snapshot
// (store.VerifyExport); an embedded store is checked by VerifyStore on its file.
func VerifyConfiguredStore(ctx context.Context, c *config.Config) (StoreReport, error) {
	st, err := openConfiguredCopy(ctx, c)
	if err != nil {
		return StoreReport{}, err
	}
	defer st.Close()
	r, err := store.VerifyExport(ctx, st)
	return StoreReport{Problems: r.Problems, Accounts: r.Accounts, Mailboxes: r.Mailboxes, Messages: r.Messages,
		Bodies: r.Bodies, Bytes: r.Bytes}, err
}

func dirExists(dir string) bool {
	fi, err := os.Stat(dir)
	return err == nil && fi.IsDir()
}
