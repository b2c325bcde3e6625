package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"golang.org/x/time/rate"
	"modernc.org/sqlite/vfs"
)

// Pacing of a backup beside a running server. A backup's cost to the server's deliveries
// is what it takes of the two things they need: the disk, where the server's commit fsync
// waits behind whatever the backup has queued, and the CPU, where the server's goroutines
// wait for a core the backup's copy, hashing and integrity check hold. Neither priority
// helps enough: the disk's scheduler (none, mq-deadline) ignores I/O classes, and a niced
// process still runs whenever a core is idle for a moment, which on a server that waits for
// fsyncs is most moments, and holds it until the next tick. So the backup bounds itself:
// every byte of the store it copies, hashes or verifies passes a token bucket, which keeps
// its share of disk and CPU at a fixed rate that the operator sets (store.backup_rate).

// PaceChunk is how many bytes a paced job handles between two waits for the bucket: the
// bucket's burst, and what it may put in the disk's queue at once.
const PaceChunk = 256 << 10

// NewPace returns a token bucket of bytesPerSecond for Backup and VerifyPaced, or nil (no
// bound) for 0 or less.
func NewPace(bytesPerSecond int64) *rate.Limiter {
	if bytesPerSecond <= 0 {
		return nil
	}
	return rate.NewLimiter(rate.Limit(bytesPerSecond), PaceChunk)
}

// pacer takes bytes from a bucket in PaceChunk pieces, so that a job handling 4 KiB pages
// sleeps a few times a second instead of at every page. The zero pacer (no bucket) never
// waits. Not safe for concurrent use.
type pacer struct {
	ctx  context.Context
	lim  *rate.Limiter
	owed int
}

func (p *pacer) take(n int) error {
	if p.lim == nil {
		return nil
	}
	p.owed += n
	for p.owed >= PaceChunk {
		if err := p.lim.WaitN(p.ctx, PaceChunk); err != nil {
			return err
		}
		p.owed -= PaceChunk
	}
	return nil
}

// pacedFS is the directory of a database, read through a bucket: SQLite reads the database
// through it (vfs.New), so that an integrity check, whose CPU time follows the pages it
// reads, runs at the bucket's rate. Read only.
type pacedFS struct {
	dir string
	ctx context.Context
	lim *rate.Limiter
}

func (d pacedFS) Open(name string) (fs.File, error) {
	if !fs.ValidPath(name) {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrInvalid}
	}
	f, err := os.Open(filepath.Join(d.dir, filepath.FromSlash(name)))
	if err != nil {
		return nil, err
	}
	return &pacedFile{File: f, r: pacedReader{r: f, p: pacer{ctx: d.ctx, lim: d.lim}}}, nil
}

// pacedFile is an open file of a pacedFS: SQLite seeks it and reads it, one thread at a time.
type pacedFile struct {
	*os.File
	r pacedReader
}

func (f *pacedFile) Read(b []byte) (int, error) { return f.r.Read(b) }

// openPaced opens the database at path read-only through a pacedFS; close the database,
// then call the returned function. The database must not be in WAL mode (a backup's copy
// is not): the read-only VFS has no shared memory for a WAL index.
func openPaced(ctx context.Context, path string, lim *rate.Limiter, query string) (*sql.DB, func(), error) {
	name, fsys, err := vfs.New(pacedFS{dir: filepath.Dir(path), ctx: ctx, lim: lim})
	if err != nil {
		return nil, nil, err
	}
	db, err := sql.Open("sqlite", fmt.Sprintf("file:%s?vfs=%s&mode=ro&%s", filepath.Base(path), name, query))
	if err != nil {
		fsys.Close()
		return nil, nil, err
	}
	return db, func() { fsys.Close() }, nil
}

// PacedReader reads r at pace's rate (NewPace); with a nil pace it is r.
func PacedReader(ctx context.Context, r io.Reader, pace *rate.Limiter) io.Reader {
	if pace == nil {
		return r
	}
	return &pacedReader{r: r, p: pacer{ctx: ctx, lim: pace}}
}

type pacedReader struct {
	r io.Reader
	p pacer
}

func (pr *pacedReader) Read(b []byte) (int, error) {
	n, err := pr.r.Read(b)
	if perr := pr.p.take(n); err == nil {
		err = perr
	}
	return n, err
}
