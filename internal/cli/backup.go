package cli

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"petrel/internal/app"
	"petrel/internal/config"
	"petrel/internal/lib/safefile"
)

// A backup is a directory with the layout of a data directory (petrel.db, dkim/, tls/, and
// whatever else the server keeps there), the config file under config/, and manifest.json
// last: the list of every file with its size and SHA-256. A backup without a manifest is
// unfinished. `restore` and `verify` check every file against it before trusting the copy.

func backupCommands() []command {
	return []command{
		{noun: "backup", args: "[--rate MBPS] DIR", help: "copy the data directory (store, bodies, DKIM keys, config) into DIR while the server runs", run: backupRun, flags: backupFlags,
			more: `The store is copied as one consistent snapshot (every message acknowledged before the
backup began is in it, with its body), then the other files of the data directory and
the config file. The DKIM keys are in DIR/dkim (DOMAIN/SELECTOR.pem, mode 0600): the data
directory's files with the embedded store; with PostgreSQL the store's keys, opened with
[pull] key_file, so that the backup restores into either backend. Not in the backup: the
key file itself ([pull] key_file, outside the data directory; back it up apart), and with
PostgreSQL the database's own settings and roles. The copy is verified before the manifest that completes it is written.
DIR must not exist or be empty. So that the server's deliveries keep their pace, the
backup copies, hashes and verifies the store at most --rate MB/s (store.backup_rate,
default 40; 0: no limit, for a backup with the server stopped), writes the copy to disk in
1 MiB steps and, after the store's snapshot, runs at the lowest CPU priority.`},
		{noun: "restore", args: "DIR", help: "restore the backup in DIR into an empty data directory", run: restoreRun,
			more: `The backup is verified first. The data directory (--data, or data in the config file) must
not exist or be empty. Accounts, mailboxes, flags, UIDs, UIDVALIDITY and MODSEQs come back
as they were, so IMAP and POP3 clients see no change. The backup's config file stays in
DIR/config: compare it with the one in use.`},
		{noun: "verify", args: "[DIR]", help: "check a data directory or a backup, and say exactly what is wrong", run: verifyRun,
			more: `Checks the database (every page and index), that every message has its whole body, that
the counts the store keeps agree with the messages, and for a backup every file against
its manifest. Works beside a running server; run it before an upgrade. Without DIR it checks
the data directory. Exits with status 1 if anything is wrong.`},
	}
}

const manifestName = "manifest.json"

type manifest struct {
	Format  int            `json:"format"`
	Created time.Time      `json:"created"`
	Source  string         `json:"source"` // the data directory it was taken from
	Config  string         `json:"config,omitempty"`
	Files   []manifestFile `json:"files"`
}

type manifestFile struct {
	Path   string      `json:"path"` // slash-separated, relative to the backup
	Size   int64       `json:"size"`
	Mode   fs.FileMode `json:"mode"`
	SHA256 string      `json:"sha256"`
}

// emptyDir checks that dir does not exist or is empty.
func emptyDir(dir, what string) error {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if len(entries) > 0 {
		return fmt.Errorf("%s %s is not empty", what, dir)
	}
	return nil
}

func backupFlags() *flag.FlagSet {
	fs := flag.NewFlagSet("backup", flag.ContinueOnError)
	fs.Int("rate", -1, "MB/s of the store to copy, hash and verify at most; 0: no limit (default: store.backup_rate)")
	return fs
}

func backupRun(e *Env, args []string) error {
	fset := backupFlags()
	if err := parseFlags(fset, args, 1, "backup [--rate MBPS] DIR"); err != nil {
		return err
	}
	args = fset.Args()
	c, err := e.config()
	if err != nil {
		return err
	}
	mbps := c.Store.BackupRate
	if r := fset.Lookup("rate").Value.(flag.Getter).Get().(int); r >= 0 {
		mbps = r
	}
	pace := app.NewBackupPace(mbps)
	dst, err := filepath.Abs(args[0])
	if err != nil {
		return err
	}
	if _, err := os.Stat(app.StorePath(c.Data)); err != nil && !app.IsPostgres(c) {
		return fmt.Errorf("no store to back up in %s: %w", c.Data, err)
	}
	if err := emptyDir(dst, "backup directory"); err != nil {
		return err
	}
	if abs, _ := filepath.Abs(c.Data); dst == abs || strings.HasPrefix(dst, abs+string(filepath.Separator)) {
		return fmt.Errorf("the backup directory %s must be outside the data directory %s", dst, c.Data)
	}
	if err := os.MkdirAll(dst, 0o700); err != nil {
		return err
	}
	start := time.Now()
	m := manifest{Format: 1, Created: start.UTC(), Source: c.Data}
	// The store first: its snapshot is the point in time of the backup. Files written
	// afterwards (a DKIM key made meanwhile) may be newer; none of them is referred to by
	// the store. The page copy runs at normal priority, paced: while it runs its read
	// transaction keeps the server's WAL from being reset, so it must end in size/rate
	// seconds even on a machine too busy to give an idle process any time
	// (docs/architecture.md, "A backup yields").
	if err := app.BackupConfiguredStore(e.Ctx, c, app.StorePath(dst), pace); err != nil {
		return err
	}
	snapshot := time.Since(start)
	if e.Yield != nil {
		// Hashing and verifying the copy take minutes of CPU and disk on a large store;
		// the server's deliveries come first (measured in docs/benchmarks.md).
		if err := e.Yield(); err != nil {
			fmt.Fprintf(e.Stderr, "petrel: backup at normal priority: %v\n", err)
		}
	}
	// Read back from the disk for its manifest entry, at the backup's pace.
	f, err := hashFileReader(dst, filepath.Base(app.StorePath(dst)), func(r io.Reader) io.Reader {
		return app.PacedReader(e.Ctx, r, pace)
	})
	if err != nil {
		return err
	}
	m.Files = append(m.Files, f)
	keys := 0
	if app.IsPostgres(c) {
		// The store's DKIM keys, which BackupConfiguredStore wrote beside the database as
		// an embedded store keeps them (opened: the backup restores into either backend).
		err := filepath.WalkDir(app.DKIMDir(dst), func(path string, d fs.DirEntry, err error) error {
			if err != nil || !d.Type().IsRegular() {
				return err
			}
			rel, _ := filepath.Rel(dst, path)
			f, err := hashFile(dst, rel)
			m.Files = append(m.Files, f)
			keys++
			return err
		})
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	err = filepath.WalkDir(c.Data, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if path == c.Data && errors.Is(err, fs.ErrNotExist) && app.IsPostgres(c) {
				return nil // a node that keeps nothing of its own yet
			}
			return err
		}
		rel, _ := filepath.Rel(c.Data, path)
		if d.IsDir() && app.IsPostgres(c) && path == app.DKIMDir(c.Data) {
			return filepath.SkipDir // the store's keys are the ones that sign (above)
		}
		if d.IsDir() || !d.Type().IsRegular() || slices.Contains(app.StoreFiles, rel) || strings.HasPrefix(d.Name(), ".") {
			return nil // the store's own files, and temporary files of atomic writes
		}
		f, err := copyFile(path, dst, rel)
		if err != nil {
			return err
		}
		m.Files = append(m.Files, f)
		return nil
	})
	if err != nil {
		return fmt.Errorf("backup of %s: %w", c.Data, err)
	}
	if e.ConfigFile != "" {
		rel := filepath.Join("config", filepath.Base(e.ConfigFile))
		f, err := copyFile(e.ConfigFile, dst, rel)
		if err != nil {
			return fmt.Errorf("backup of the config: %w", err)
		}
		m.Files = append(m.Files, f)
		m.Config = filepath.ToSlash(rel)
	}
	// Every file's manifest entry was read back from the copy (hashFile); the database is
	// verified as SQLite reads it, at the backup's pace.
	r, err := app.VerifyStorePaced(e.Ctx, app.StorePath(dst), pace)
	if err != nil {
		return err
	}
	if len(r.Problems) > 0 {
		return fmt.Errorf("the copied store in %s has problems (run `petrel verify` on the data directory):\n  %s", dst, strings.Join(r.Problems, "\n  "))
	}
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	if err := safefile.WriteAtomic(filepath.Join(dst, manifestName), append(b, '\n'), 0o600); err != nil {
		return err
	}
	what := c.Data
	if app.IsPostgres(c) {
		what = fmt.Sprintf("the PostgreSQL store (one snapshot, as an embedded store file; its %d DKIM keys opened, as files of mode 0600 in %s: keep the backup as private as the key file) and %s",
			keys, app.DKIMDir(dst), c.Data)
	}
	fmt.Fprintf(e.Stdout, "backed up %s into %s in %s (store copied in %s): %s, %d files; verified\n",
		what, dst, time.Since(start).Round(time.Millisecond), snapshot.Round(time.Millisecond), r.Summary(), len(m.Files))
	return nil
}

// copyFile copies src to dst/rel with its mode, syncs it and returns the manifest entry of
// the copy, read back from the disk.
func copyFile(src, dst, rel string) (manifestFile, error) {
	in, err := os.Open(src)
	if err != nil {
		return manifestFile{}, err
	}
	defer in.Close()
	fi, err := in.Stat()
	if err != nil {
		return manifestFile{}, err
	}
	target := filepath.Join(dst, rel)
	if err := os.MkdirAll(filepath.Dir(target), 0o700); err != nil {
		return manifestFile{}, err
	}
	out, err := os.OpenFile(target, os.O_WRONLY|os.O_CREATE|os.O_EXCL, fi.Mode().Perm())
	if err != nil {
		return manifestFile{}, err
	}
	_, err = io.Copy(out, in)
	if err == nil {
		err = out.Sync()
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = safefile.SyncDir(filepath.Dir(target))
	}
	if err != nil {
		return manifestFile{}, fmt.Errorf("copy %s: %w", src, err)
	}
	return hashFile(dst, rel)
}

// hashFile is the manifest entry of a file already in place.
func hashFile(dir, rel string) (manifestFile, error) {
	return hashFileReader(dir, rel, nil)
}

// hashFileReader is hashFile reading the file through wrap (nil: directly).
func hashFileReader(dir, rel string, wrap func(io.Reader) io.Reader) (manifestFile, error) {
	f, err := os.Open(filepath.Join(dir, rel))
	if err != nil {
		return manifestFile{}, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return manifestFile{}, err
	}
	h := sha256.New()
	var r io.Reader = f
	if wrap != nil {
		r = wrap(f)
	}
	n, err := io.Copy(h, r)
	if err != nil {
		return manifestFile{}, err
	}
	return manifestFile{Path: filepath.ToSlash(rel), Size: n, Mode: fi.Mode().Perm(), SHA256: hex.EncodeToString(h.Sum(nil))}, nil
}

// checkFiles compares the files under dir with their manifest entries.
func checkFiles(dir string, files []manifestFile) []string {
	var problems []string
	for _, want := range files {
		got, err := hashFile(dir, filepath.FromSlash(want.Path))
		switch {
		case errors.Is(err, fs.ErrNotExist):
			problems = append(problems, want.Path+": missing")
		case err != nil:
			problems = append(problems, want.Path+": "+err.Error())
		case got.Size != want.Size:
			problems = append(problems, fmt.Sprintf("%s: %d bytes, the manifest says %d", want.Path, got.Size, want.Size))
		case got.SHA256 != want.SHA256:
			problems = append(problems, want.Path+": content differs from the manifest (SHA-256)")
		}
	}
	return problems
}

// readManifest reads the manifest of a backup directory; a directory without one is not a
// (finished) backup.
func readManifest(dir string) (manifest, error) {
	var m manifest
	b, err := os.ReadFile(filepath.Join(dir, manifestName))
	if errors.Is(err, fs.ErrNotExist) {
		return m, fmt.Errorf("%s is not a finished backup: it has no %s", dir, manifestName)
	}
	if err != nil {
		return m, err
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return m, fmt.Errorf("%s: %w", filepath.Join(dir, manifestName), err)
	}
	for _, f := range m.Files {
		if !filepath.IsLocal(filepath.FromSlash(f.Path)) {
			return m, fmt.Errorf("%s: file %q is outside the backup", filepath.Join(dir, manifestName), f.Path)
		}
	}
	return m, nil
}

func restoreRun(e *Env, args []string) error {
	if err := exactArgs(args, 1, "restore DIR"); err != nil {
		return err
	}
	c, err := e.config()
	if err != nil {
		return err
	}
	src := args[0]
	m, err := readManifest(src)
	if err != nil {
		return err
	}
	if err := emptyDir(c.Data, "the data directory"); err != nil {
		return fmt.Errorf("%w: restore only into a new data directory (--data DIR)", err)
	}
	if problems := checkFiles(src, m.Files); len(problems) > 0 {
		return fmt.Errorf("the backup in %s is damaged, nothing restored:\n  %s", src, strings.Join(problems, "\n  "))
	}
	r, err := app.VerifyStore(e.Ctx, app.StorePath(src))
	if err != nil {
		return err
	}
	if len(r.Problems) > 0 {
		return fmt.Errorf("the store in the backup %s has problems, nothing restored:\n  %s", src, strings.Join(r.Problems, "\n  "))
	}
	if err := os.MkdirAll(c.Data, 0o700); err != nil {
		return err
	}
	// The database last: a data directory without it is plainly unfinished, and a restore
	// that stopped half-way is begun again after emptying the directory.
	files := slices.Clone(m.Files)
	slices.SortStableFunc(files, func(a, b manifestFile) int {
		return compareBool(a.Path == filepath.Base(app.StorePath("")), b.Path == filepath.Base(app.StorePath("")))
	})
	for _, f := range files {
		if m.Config != "" && f.Path == m.Config {
			continue // the config stays in the backup: the operator decides
		}
		if app.IsPostgres(c) && strings.HasPrefix(f.Path, "dkim/") {
			continue // the keys go into the database with the store (RestoreConfiguredStore)
		}
		if app.IsPostgres(c) && f.Path == filepath.Base(app.StorePath("")) {
			// Into the PostgreSQL database, which must be empty, and compared after.
			if _, err := app.RestoreConfiguredStore(e.Ctx, c, filepath.Join(src, filepath.FromSlash(f.Path))); err != nil {
				return fmt.Errorf("restore of the store into PostgreSQL: %w", err)
			}
			continue
		}
		got, err := copyFile(filepath.Join(src, filepath.FromSlash(f.Path)), c.Data, filepath.FromSlash(f.Path))
		if err != nil {
			return err
		}
		if got.SHA256 != f.SHA256 {
			return fmt.Errorf("%s changed while it was restored", f.Path)
		}
	}
	fmt.Fprintf(e.Stdout, "restored %s into %s: %s\n", src, c.Data, r.Summary())
	if m.Config != "" {
		fmt.Fprintf(e.Stdout, "the backup's config file is %s; compare it with the one in use\n", filepath.Join(src, filepath.FromSlash(m.Config)))
	}
	return nil
}

func compareBool(a, b bool) int {
	switch {
	case a == b:
		return 0
	case a:
		return 1
	}
	return -1
}

func verifyRun(e *Env, args []string) error {
	if len(args) > 1 {
		return fmt.Errorf("%w: petrel verify [DIR]", ErrUsage)
	}
	var dir string
	if len(args) == 1 {
		dir = args[0]
	} else {
		c, err := e.config()
		if err != nil {
			return err
		}
		if app.IsPostgres(c) {
			return verifyPostgres(e, c)
		}
		dir = c.Data
	}
	var problems []string
	if _, err := os.Stat(filepath.Join(dir, manifestName)); err == nil {
		m, err := readManifest(dir)
		if err != nil {
			return err
		}
		problems = append(problems, checkFiles(dir, m.Files)...)
	}
	r, err := app.VerifyStore(e.Ctx, app.StorePath(dir))
	if err != nil {
		return err
	}
	problems = append(problems, r.Problems...)
	for _, p := range problems {
		fmt.Fprintln(e.Stdout, p)
	}
	if len(problems) > 0 {
		return fmt.Errorf("%s: %d problems found", dir, len(problems))
	}
	fmt.Fprintf(e.Stdout, "%s: ok: %s\n", dir, r.Summary())
	return nil
}

// verifyPostgres checks the configured PostgreSQL store (the node's data directory holds
// no store; a backup DIR is checked as any other).
func verifyPostgres(e *Env, c *config.Config) error {
	r, err := app.VerifyConfiguredStore(e.Ctx, c)
	if err != nil {
		return err
	}
	for _, p := range r.Problems {
		fmt.Fprintln(e.Stdout, p)
	}
	if len(r.Problems) > 0 {
		return fmt.Errorf("the PostgreSQL store: %d problems found", len(r.Problems))
	}
	fmt.Fprintf(e.Stdout, "the PostgreSQL store: ok: %s\n", r.Summary())
	return nil
}
