package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"

	"petrel/internal/config"
	"petrel/internal/mail/deliver"
	"petrel/internal/store"
	"petrel/internal/store/postgres"
	"petrel/internal/store/sqlite"
)

// Copying a whole store between the embedded and the PostgreSQL backend (petrel store
// copy): the rows go over as they are (store.CopyStore), then the copy is compared with
// the source and its full-text index is rebuilt from the bodies.

// IsPostgresDSN reports whether a store location is a PostgreSQL connection string (a
// postgres:// URL or libpq key=value words) rather than a data directory.
func IsPostgresDSN(loc string) bool {
	return strings.HasPrefix(loc, "postgres://") || strings.HasPrefix(loc, "postgresql://") || strings.Contains(loc, "=")
}

// locationName names a store location as a copy records its source: a data directory by
// its absolute path, a database by user, host, port and name (never the password).
func locationName(loc string) string {
	if !IsPostgresDSN(loc) {
		if abs, err := filepath.Abs(loc); err == nil {
			return abs
		}
		return loc
	}
	cfg, err := pgconn.ParseConfig(loc)
	if err != nil {
		return "postgres (unparsable connection string)"
	}
	return fmt.Sprintf("postgres://%s@%s:%d/%s", cfg.User, cfg.Host, cfg.Port, cfg.Database)
}

// configuredName names the store of the config as locationName names a location.
func configuredName(c *config.Config) string {
	if c.Store.Backend == "postgres" {
		return locationName(c.Store.DSN)
	}
	return locationName(c.Data)
}

// copyStore is a store that a whole-store copy reads or writes.
type copyStore interface {
	store.Store
	store.ResumableExporter // a resumed copy reads on from where it stopped
	store.Importer
}

// openLocation opens the store at a location: a PostgreSQL database (its schema brought up
// to date; the password from the connection string or the environment) or the embedded
// store of a data directory.
func openLocation(ctx context.Context, loc string, quota config.Quota) (copyStore, error) {
	if IsPostgresDSN(loc) {
		return postgres.Open(ctx, loc, postgres.Options{DefaultQuota: quotaLimits(quota)})
	}
	if err := os.MkdirAll(loc, 0o700); err != nil {
		return nil, dataDirError(loc, err)
	}
	st, err := openStore(loc, sqlite.Options{DefaultQuota: quotaLimits(quota)})
	if err != nil {
		return nil, err
	}
	return st.(*sqlite.Store), nil
}

// openConfiguredCopy opens the store the config names, for a copy.
func openConfiguredCopy(ctx context.Context, c *config.Config) (copyStore, error) {
	st, err := OpenConfiguredStore(ctx, c, slog.New(slog.DiscardHandler))
	if err != nil {
		return nil, err
	}
	cs, ok := st.(copyStore)
	if !ok {
		st.Close()
		return nil, errors.New("this store cannot be copied")
	}
	return cs, nil
}

// CopyResult is what CopyStore did.
type CopyResult struct {
	Rows     map[string]int64 // copied, per table
	Indexed  int              // bodies indexed for search in the destination
	DKIMKeys int              // DKIM keys written into the destination
}

// copyStoreDKIM copies the DKIM keys of from into to; pg says which of them is a
// PostgreSQL store (its keys sealed with the config's key file).
func copyStoreDKIM(ctx context.Context, c *config.Config, from, to store.Store, fromPG, toPG bool) (int, error) {
	src, ok := from.(store.DKIMKeys)
	if !ok {
		return 0, nil
	}
	if all, err := src.AllDKIMKeys(ctx); err != nil || len(all) == 0 {
		return 0, err // no key: no key file needed either
	}
	fk, err := openDKIMStore(c, from, fromPG, false)
	if err != nil {
		return 0, err
	}
	tk, err := openDKIMStore(c, to, toPG, true)
	if err != nil {
		return 0, err
	}
	n, err := CopyDKIMKeys(ctx, fk, tk)
	if err != nil {
		return n, fmt.Errorf("DKIM keys: %w", err)
	}
	return n, nil
}

// CopyOptions tune CopyStore.
type CopyOptions struct {
	// Progress, if set, is called as tables advance (store.CopyOptions).
	Progress func(store.CopyProgress)
	// AfterBatch, if set, is called after each batch written; an error stops the copy
	// there as a crash would (tests).
	AfterBatch func(store.CopyProgress) error
	// Source names the source as the destination records it, for resuming (by default
	// its location: locationName).
	Source string
	// Live skips the comparison with the source after the copy and the index rebuild: the
	// source is a running server's store (a backup), which may change meanwhile, and the
	// destination an intermediate file.
	Live bool
}

// CopyStore copies the configured store into the empty store at loc (toLoc) or the store
// at loc into the configured one, which must then be empty. Unless opts.Live, the source
// should not change meanwhile (stop the server): the copy is one snapshot of it, and the
// comparison after the copy reads the source again.
func CopyStore(ctx context.Context, c *config.Config, loc string, toLoc bool, opts CopyOptions) (CopyResult, error) {
	var res CopyResult
	configured, err := openConfiguredCopy(ctx, c)
	if err != nil {
		return res, err
	}
	other, err := openLocation(ctx, loc, c.Quota)
	if err != nil {
		configured.Close()
		return res, err
	}
	from, to := copyStore(configured), other
	source := configuredName(c)
	if !toLoc {
		from, to = other, configured
		source = locationName(loc)
	}
	if opts.Source != "" {
		source = opts.Source
	}
	err = copyAndCompare(ctx, from, to, source, &res, opts)
	if err == nil {
		// The DKIM keys are no rows of CopyTables (the embedded store keeps them as files,
		// PostgreSQL sealed): they go over through store.DKIMKeys, opened and sealed
		// again as each side keeps them. Put-if-absent, so a rerun copies them again
		// harmlessly.
		fromPG, toPG := IsPostgres(c), IsPostgresDSN(loc)
		if !toLoc {
			fromPG, toPG = toPG, fromPG
		}
		res.DKIMKeys, err = copyStoreDKIM(ctx, c, from, to, fromPG, toPG)
	}
	// The embedded store lists the bodies to index when it opens: both are closed, and
	// the destination opened again.
	err = errors.Join(err, configured.Close(), other.Close())
	if err != nil || opts.Live {
		return res, err
	}
	if toLoc {
		to, err = openLocation(ctx, loc, c.Quota)
	} else {
		to, err = openConfiguredCopy(ctx, c)
	}
	if err != nil {
		return res, err
	}
	defer to.Close()
	res.Indexed, err = deliver.IndexBacklog(ctx, to, slog.New(slog.DiscardHandler))
	return res, err
}

func copyAndCompare(ctx context.Context, from, to copyStore, source string, res *CopyResult, opts CopyOptions) error {
	var err error
	res.Rows, err = store.CopyStore(ctx, from, to, store.CopyOptions{Source: source, Progress: opts.Progress, AfterBatch: opts.AfterBatch})
	if errors.Is(err, store.ErrExists) {
		return fmt.Errorf("%w (a copy goes into an empty store, or resumes its own unfinished copy)", err)
	}
	if errors.Is(err, store.ErrOtherCopy) {
		return fmt.Errorf("%w: finish that copy, or empty the destination", err)
	}
	if err != nil {
		return fmt.Errorf("%w (the destination holds part of the copy: run the same copy again to resume it)", err)
	}
	if opts.Live {
		return nil
	}
	if err := store.CompareStores(ctx, from, to); err != nil {
		return fmt.Errorf("after the copy: %w (did the source change meanwhile?)", err)
	}
	return nil
}
