package sqlite

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"petrel/internal/lib/safefile"
	"petrel/internal/store"
)

// The embedded store keeps DKIM keys as files of its data directory,
// DATA/dkim/DOMAIN/SELECTOR.pem (mode 0600), not in the database: that is where they were
// before the store had an interface for them, so existing keys, `petrel backup` (which
// copies the data directory's files), restore and verify go on unchanged, and an operator
// can still install a key made elsewhere by copying a file. One server uses one data
// directory, so files have no race between nodes to solve.

var _ store.DKIMKeys = (*Store)(nil)

// KeyFiles is the DKIM key directory of the data directory that holds the database at
// dbPath.
func KeyFiles(dbPath string) string { return filepath.Join(filepath.Dir(dbPath), "dkim") }

// keyFile is the file of one key.
func (s *Store) keyFile(domain, selector string) (string, error) {
	if err := store.CheckDKIMName(domain, selector); err != nil {
		return "", err
	}
	return filepath.Join(s.dkimDir, domain, selector+".pem"), nil
}

// PutDKIMKey implements store.DKIMKeys. The key is written to a temporary file and linked
// to its name, which fails if the name exists: a key never replaces another, even between
// two commands at once, and a crash leaves the whole key or none.
func (s *Store) PutDKIMKey(ctx context.Context, k store.DKIMKey) (store.DKIMKey, error) {
	path, err := s.keyFile(k.Domain, k.Selector)
	if err != nil {
		return store.DKIMKey{}, err
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return store.DKIMKey{}, err
	}
	tmp, err := os.CreateTemp(dir, ".key-*")
	if err != nil {
		return store.DKIMKey{}, err
	}
	defer os.Remove(tmp.Name())
	_, err = tmp.Write(k.Private)
	if err = errors.Join(err, tmp.Chmod(0o600), tmp.Sync(), tmp.Close()); err != nil {
		return store.DKIMKey{}, fmt.Errorf("store: DKIM key %s: %w", path, err)
	}
	if err := os.Link(tmp.Name(), path); errors.Is(err, fs.ErrExist) {
		b, err := os.ReadFile(path)
		if err != nil {
			return store.DKIMKey{}, err
		}
		return store.DKIMKey{Domain: k.Domain, Selector: k.Selector, Private: b}, nil
	} else if err != nil {
		return store.DKIMKey{}, err
	}
	if err := errors.Join(safefile.SyncDir(dir), safefile.SyncDir(s.dkimDir)); err != nil {
		return store.DKIMKey{}, err
	}
	return k, nil
}

// DKIMKeys implements store.DKIMKeys.
func (s *Store) DKIMKeys(ctx context.Context, domain string) ([]store.DKIMKey, error) {
	if _, err := s.keyFile(domain, "x"); err != nil {
		return nil, err
	}
	return readKeyDir(filepath.Join(s.dkimDir, domain), domain)
}

// AllDKIMKeys implements store.DKIMKeys.
func (s *Store) AllDKIMKeys(ctx context.Context) ([]store.DKIMKey, error) {
	entries, err := os.ReadDir(s.dkimDir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	} else if err != nil {
		return nil, err
	}
	var all []store.DKIMKey
	for _, e := range entries { // ReadDir sorts by name
		if !e.IsDir() || store.CheckDKIMName(e.Name(), "x") != nil {
			continue
		}
		keys, err := readKeyDir(filepath.Join(s.dkimDir, e.Name()), e.Name())
		if err != nil {
			return nil, err
		}
		all = append(all, keys...)
	}
	return all, nil
}

// readKeyDir reads the key files of one domain, by selector; files that are not keys
// (temporary files of a write, other names) are left alone.
func readKeyDir(dir, domain string) ([]store.DKIMKey, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	} else if err != nil {
		return nil, err
	}
	var keys []store.DKIMKey
	for _, e := range entries {
		sel, ok := strings.CutSuffix(e.Name(), ".pem")
		if !ok || !e.Type().IsRegular() || store.CheckDKIMName(domain, sel) != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			return nil, err
		}
		keys = append(keys, store.DKIMKey{Domain: domain, Selector: sel, Private: b})
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i].Selector < keys[j].Selector })
	return keys, nil
}

// DeleteDKIMKey implements store.DKIMKeys.
func (s *Store) DeleteDKIMKey(ctx context.Context, domain, selector string) error {
	path, err := s.keyFile(domain, selector)
	if err != nil {
		return err
	}
	if err := os.Remove(path); errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("DKIM key %s of %s: %w", selector, domain, store.ErrNotFound)
	} else if err != nil {
		return err
	}
	return safefile.SyncDir(filepath.Dir(path))
}
