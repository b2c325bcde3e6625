package app

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"petrel/internal/config"
	"petrel/internal/store"
	"petrel/internal/store/postgres"
	"petrel/internal/store/sqlite"
)

// OpenConfiguredStore opens the store the config's [store] names: the embedded store of the
// data directory (OpenStore) or a PostgreSQL database. Management commands use it, so they
// work on whatever the server works on.
func OpenConfiguredStore(ctx context.Context, c *config.Config, log *slog.Logger) (store.Store, error) {
	return openConfigured(ctx, c, log, nil)
}

// openConfigured is OpenConfiguredStore with the server's commit metrics.
func openConfigured(ctx context.Context, c *config.Config, log *slog.Logger, observe func(time.Duration, int)) (store.Store, error) {
	if c.Store.Backend != "postgres" {
		return openStore(c.Data, sqlite.Options{Logger: log, ObserveCommit: observe, DefaultQuota: quotaLimits(c.Quota)})
	}
	pw, err := storePassword(c.Store)
	if err != nil {
		return nil, err
	}
	st, err := postgres.Open(ctx, c.Store.DSN, postgres.Options{PoolSize: c.Store.PoolSize, Logger: log,
		DefaultQuota: quotaLimits(c.Quota), ObserveCommit: observe, NoMigrate: !c.Store.Migrate, Password: pw})
	if err != nil {
		return nil, err // not a typed nil inside the interface
	}
	return st, nil
}

// The IMAP server finds the bulk reads of FETCH, SELECT and SEARCH by a type assertion on
// the store it is given; on a PostgreSQL node that is the *postgres.Store openConfigured
// returns, which must have them.
var _ interface {
	store.BlobBatch
	store.FlagSearch
} = (*postgres.Store)(nil)

// storePassword reads the PostgreSQL password of store.password_file; "" leaves it to the
// environment (PGPASSWORD, ~/.pgpass).
func storePassword(s config.Store) (string, error) {
	if s.PasswordFile == "" {
		return "", nil
	}
	b, err := os.ReadFile(s.PasswordFile)
	if err != nil {
		return "", fmt.Errorf("store.password_file: %w", err)
	}
	pw, _, _ := strings.Cut(string(b), "\n")
	return strings.TrimRight(pw, "\r"), nil
}

// MigrateStore brings the configured store's schema up to date (petrel migrate) and
// reports the versions before and after.
func MigrateStore(ctx context.Context, c *config.Config) (from, to int, err error) {
	if c.Store.Backend == "postgres" {
		pw, err := storePassword(c.Store)
		if err != nil {
			return 0, 0, err
		}
		return postgres.Migrate(ctx, c.Store.DSN, pw)
	}
	path := filepath.Join(c.Data, "petrel.db")
	from, _, err = sqlite.SchemaVersions(ctx, path)
	if err != nil && !os.IsNotExist(err) {
		return 0, 0, err
	}
	st, err := OpenStore(c.Data, c.Quota, slog.New(slog.DiscardHandler)) // migrates at open
	if err != nil {
		return from, from, err
	}
	if err := st.Close(); err != nil {
		return from, from, err
	}
	_, to, err = sqlite.SchemaVersions(ctx, path)
	return from, to, err
}
