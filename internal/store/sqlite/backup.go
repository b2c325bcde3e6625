package sqlite

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
	"golang.org/x/time/rate"
)

// Backup and verification of the database file, for `petrel backup`, `restore` and `verify`.
//
// A backup copies the database's pages as they are in one read transaction of a
// connection of its own, through SQLite's sqlite_dbpage table
// (https://www.sqlite.org/dbpage.html): the pager serves each page from the WAL where a
// commit of the snapshot changed it and from the file elsewhere, so the copy is the state
// of one commit, and in WAL mode that read blocks neither the committer nor readers of the
// running server. Message bodies live in the database (blobs and blob_chunks), so the one
// snapshot covers them too: no body can be missing from a copy whose messages name it. A
// delivery acknowledged before the backup began is committed, hence in the snapshot; one
// committed while the copy runs is not (it is in the next).
//
// The pages are copied as they are, not rebuilt (VACUUM INTO rebuilds every b-tree, which
// took ten times as long as a plain copy of the file, and a read transaction that long
// keeps the server's WAL from being reset: docs/benchmarks.md). The copy is marked as a
// rollback-journal database, so it opens with no WAL to replay; the server puts it back in
// WAL mode when it opens it.

// Backup writes a consistent copy of the database at path into dst, which must not exist,
// and syncs it to disk. It works while another process (the server) writes the database.
// pace, if not nil, bounds the bytes it copies per second (NewPace; see pace.go for why).
func Backup(ctx context.Context, path, dst string, pace *rate.Limiter) error {
	if _, err := os.Stat(path); err != nil {
		return fmt.Errorf("store: backup: %w", err)
	}
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("store: backup: %w", err)
	}
	err = copyPages(ctx, path, out, pace, nil)
	if err == nil {
		// Only the tail: copyPages wrote the rest out in steps.
		err = out.Sync()
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(dst)
		return fmt.Errorf("store: backup of %s: %w", path, err)
	}
	return nil
}

// copyPages writes every page of one snapshot of the database at path to out. Tests pass
// inSnapshot, called once the snapshot is taken, before any page is copied.
func copyPages(ctx context.Context, path string, out *os.File, pace *rate.Limiter, inSnapshot func()) error {
	db, err := sql.Open("sqlite", path+fmt.Sprintf("?_pragma=busy_timeout(%d)&_pragma=query_only(1)", busyTimeout.Milliseconds()))
	if err != nil {
		return err
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	tx, err := db.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return err
	}
	defer tx.Rollback()
	// The first read starts the snapshot; the page count is the snapshot's.
	var pages, pageSize int64
	if err := tx.QueryRowContext(ctx, `PRAGMA page_count`).Scan(&pages); err != nil {
		return err
	}
	if err := tx.QueryRowContext(ctx, `PRAGMA page_size`).Scan(&pageSize); err != nil {
		return err
	}
	if inSnapshot != nil {
		inSnapshot()
	}
	rows, err := tx.QueryContext(ctx, `SELECT pgno, data FROM sqlite_dbpage('main') WHERE pgno <= ? ORDER BY pgno`, pages)
	if err != nil {
		return err
	}
	defer rows.Close()
	w := &flushWriter{f: out, buf: make([]byte, 0, PaceChunk)}
	p := pacer{ctx: ctx, lim: pace}
	var want int64 = 1
	for rows.Next() {
		var pgno int64
		var data sql.RawBytes // the driver's bytes, appended to w's buffer before the next row
		if err := rows.Scan(&pgno, &data); err != nil {
			return err
		}
		if pgno != want || int64(len(data)) != pageSize {
			return fmt.Errorf("page %d of %d bytes read where page %d of %d was due", pgno, len(data), want, pageSize)
		}
		page := w.add(data)
		if pgno == 1 && len(page) > 19 {
			// The file format bytes (https://www.sqlite.org/fileformat2.html#database_header):
			// 1 is rollback journal, 2 is WAL. The copy has no WAL.
			page[18], page[19] = 1, 1
		}
		if err := w.writeFull(); err != nil {
			return err
		}
		if err := p.take(len(data)); err != nil {
			return err
		}
		want++
	}
	if err := rows.Err(); err != nil {
		return err
	}
	if want-1 != pages {
		return fmt.Errorf("%d pages read of the snapshot's %d", want-1, pages)
	}
	return w.flush()
}

// flushStep is how much of a backup being written may wait in the page cache before it is
// written to disk: also the most of it in the disk's queue at once, in front of the
// server's next commit fsync. 8 MiB steps, unpaced, made commits wait tens of milliseconds.
const flushStep = 1 << 20

// flushWriter writes the copy and puts it on disk in steps of flushStep. Left to the
// kernel, the whole copy would sit in the page cache until the final fsync, and on ext4
// (data=ordered) every fsync of the server's commits in the meantime waits for the journal
// to take whatever is dirty: a server delivering beside a backup had its commits wait for
// the backup's writes. sync_file_range writes the pages of a range without a journal
// commit.
// Pages are gathered into buf and written PaceChunk at a time: one write(2) per 64 pages
// rather than per page.
type flushWriter struct {
	f                *os.File
	buf              []byte
	written, flushed int64
}

// add appends b to the buffer and returns the copy of it there.
func (w *flushWriter) add(b []byte) []byte {
	w.buf = append(w.buf, b...)
	return w.buf[len(w.buf)-len(b):]
}

// writeFull writes the buffer out once it is full.
func (w *flushWriter) writeFull() error {
	if len(w.buf) < cap(w.buf) {
		return nil
	}
	return w.flush()
}

// flush writes the buffer out, and the file to disk every flushStep.
func (w *flushWriter) flush() error {
	n, err := w.f.Write(w.buf)
	w.written += int64(n)
	w.buf = w.buf[:0]
	if err != nil {
		return err
	}
	if w.written-w.flushed >= flushStep {
		// An error only means the final fsync has more to do.
		unix.SyncFileRange(int(w.f.Fd()), w.flushed, w.written-w.flushed,
			unix.SYNC_FILE_RANGE_WAIT_BEFORE|unix.SYNC_FILE_RANGE_WRITE|unix.SYNC_FILE_RANGE_WAIT_AFTER)
		w.flushed = w.written
	}
	return nil
}

// Compact writes a compacted copy of the database at path into dst, which must not exist,
// and syncs it: VACUUM INTO (https://www.sqlite.org/lang_vacuum.html#vacuuminto), which
// rebuilds every table and index, so the copy has no free pages. For a database that no
// server is writing (the intermediate store of a PostgreSQL backup), where the length of its
// read transaction does not matter.
func Compact(ctx context.Context, path, dst string) error {
	if _, err := os.Stat(path); err != nil {
		return fmt.Errorf("store: compact: %w", err)
	}
	if _, err := os.Stat(dst); err == nil {
		return fmt.Errorf("store: compact: %s exists", dst)
	}
	db, err := sql.Open("sqlite", path+fmt.Sprintf("?_pragma=busy_timeout(%d)", busyTimeout.Milliseconds()))
	if err != nil {
		return fmt.Errorf("store: compact: %w", err)
	}
	defer db.Close()
	if _, err = db.ExecContext(ctx, "VACUUM INTO ?", dst); err != nil {
		os.Remove(dst)
		return fmt.Errorf("store: compact of %s: %w", path, err)
	}
	// VACUUM INTO does not sync its output unless told to.
	f, err := os.OpenFile(dst, os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("store: compact: %w", err)
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("store: compact: %w", err)
	}
	return nil
}

// Report is what Verify found: the problems, each saying what and where in the operator's
// terms (account, mailbox, UID, table), and what was checked.
type Report struct {
	Problems  []string
	Accounts  int64
	Mailboxes int64
	Messages  int64
	Bodies    int64
	Bytes     int64 // of the bodies
	// Undigested counts bodies stored before bodies had a SHA-256 (schema 8): their bytes
	// are checked by size only.
	Undigested int64
}

// Verify checks the database at path without changing it: SQLite's own integrity check
// (every page and index), that every message has its body, that every body has all its
// bytes and, where the body has one, the SHA-256 stored with it, and that the counts the store keeps agree with the messages (mailbox counts,
// account usage, UIDNEXT above every UID, MODSEQs that only grow upwards). It runs in one
// read transaction, so it may run beside the server and sees the state of one commit. An
// error means the check itself could not run; what it found is in the Report.
func Verify(ctx context.Context, path string) (Report, error) {
	return VerifyPaced(ctx, path, nil)
}

// VerifyPaced is Verify reading the database at pace's rate (NewPace), for the check of a
// backup's copy beside the server: the integrity check's CPU time follows the pages it
// reads. A database in WAL mode (not a backup's copy) is read unpaced.
func VerifyPaced(ctx context.Context, path string, pace *rate.Limiter) (Report, error) {
	var r Report
	if _, err := os.Stat(path); err != nil {
		return r, fmt.Errorf("store: verify: %w", err)
	}
	query := fmt.Sprintf("_pragma=busy_timeout(%d)&_pragma=query_only(1)", busyTimeout.Milliseconds())
	var db *sql.DB
	var err error
	if pace == nil || walMode(path) {
		db, err = sql.Open("sqlite", path+"?"+query)
	} else {
		var closeFS func()
		db, closeFS, err = openPaced(ctx, path, pace, query)
		if err == nil {
			defer closeFS() // after db.Close, deferred below
		}
	}
	if err != nil {
		return r, fmt.Errorf("store: verify: %w", err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	tx, err := db.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return r, fmt.Errorf("store: verify %s: %w", path, err)
	}
	defer tx.Rollback()
	v := &verifier{ctx: ctx, tx: tx, r: &r}
	// The integrity check first: if pages are broken, the queries below may fail, and the
	// operator learns which table is hit before any query error.
	v.integrity()
	for _, check := range []func() error{v.version, v.totals, v.missingBodies, v.bodies, v.digests, v.mailboxCounts, v.accountUsage} {
		if err := check(); err != nil {
			r.Problems = append(r.Problems, "cannot check: "+err.Error())
		}
	}
	if err := ctx.Err(); err != nil {
		// Stopped: what it could not check is not a problem of the database.
		return Report{}, fmt.Errorf("store: verify %s: %w", path, err)
	}
	return r, nil
}

// walMode reports whether the database file at path says it is in WAL mode (its file format
// bytes, https://www.sqlite.org/fileformat2.html#database_header), which the paced,
// read-only VFS cannot read: it has no shared memory for the WAL index.
func walMode(path string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	var h [20]byte
	_, err = io.ReadFull(f, h[:])
	return err == nil && h[18] == 2
}

type verifier struct {
	ctx context.Context
	tx  *sql.Tx
	r   *Report
}

func (v *verifier) problem(format string, args ...any) {
	v.r.Problems = append(v.r.Problems, fmt.Sprintf(format, args...))
}

// each runs a query in the verification's transaction and calls fn with each row's Scan.
func (v *verifier) each(query string, fn func(scan func(...any) error) error, args ...any) error {
	rows, err := v.tx.QueryContext(v.ctx, query, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		if err := fn(rows.Scan); err != nil {
			return err
		}
	}
	return rows.Err()
}

// treeRef finds the b-tree root page numbers in integrity_check messages ("Tree 7 page 12
// cell 3: ...") so that they can be named.
var treeRef = regexp.MustCompile(`\b[Tt]ree (\d+)\b`)

// integrity runs PRAGMA integrity_check and reports its lines with the table or index each
// damaged b-tree belongs to.
func (v *verifier) integrity() {
	names := map[string]string{}
	if rows, err := v.tx.QueryContext(v.ctx, `SELECT type, name, rootpage FROM sqlite_schema WHERE rootpage > 0`); err == nil {
		for rows.Next() {
			var typ, name string
			var root int64
			if rows.Scan(&typ, &name, &root) == nil {
				names[strconv.FormatInt(root, 10)] = typ + " " + name
			}
		}
		rows.Close()
	}
	rows, err := v.tx.QueryContext(v.ctx, `PRAGMA integrity_check(100)`)
	if err != nil {
		v.problem("database is damaged: %v", err)
		return
	}
	defer rows.Close()
	for rows.Next() {
		var line string
		if err := rows.Scan(&line); err != nil {
			v.problem("database is damaged: %v", err)
			return
		}
		if line == "ok" {
			continue
		}
		where := ""
		if m := treeRef.FindStringSubmatch(line); m != nil && names[m[1]] != "" {
			where = " (" + names[m[1]] + ")"
		}
		v.problem("database page damaged%s: %s", where, strings.TrimSpace(line))
	}
	if err := rows.Err(); err != nil {
		v.problem("database is damaged: %v", err)
	}
}

func (v *verifier) version() error {
	var version int
	if err := v.tx.QueryRowContext(v.ctx, "PRAGMA user_version").Scan(&version); err != nil {
		return err
	}
	// An older version is no problem: the next Open migrates it.
	if version > len(migrations) {
		v.problem("schema version %d is newer than this binary knows (%d): verify with the newer petrel", version, len(migrations))
	}
	return nil
}

func (v *verifier) totals() error {
	return v.tx.QueryRowContext(v.ctx, `SELECT (SELECT count(*) FROM accounts), (SELECT count(*) FROM mailboxes),
		(SELECT count(*) FROM messages), (SELECT count(*) FROM blobs), (SELECT coalesce(sum(size), 0) FROM blobs)`).
		Scan(&v.r.Accounts, &v.r.Mailboxes, &v.r.Messages, &v.r.Bodies, &v.r.Bytes)
}

// where names a message for the operator.
const messageWhere = `a.address, mb.name, m.uid`

// missingBodies reports messages whose body is gone: no blob row, or a blob already listed
// for the reclaim.
func (v *verifier) missingBodies() error {
	return v.each(`SELECT `+messageWhere+`, m.blob_id, g.blob_id IS NOT NULL
		FROM messages m JOIN mailboxes mb ON mb.id = m.mailbox_id JOIN accounts a ON a.id = mb.account_id
		LEFT JOIN blobs b ON b.id = m.blob_id LEFT JOIN garbage g ON g.blob_id = m.blob_id
		WHERE b.id IS NULL OR g.blob_id IS NOT NULL ORDER BY a.address, mb.name, m.uid`, func(scan func(...any) error) error {
		var addr, box string
		var uid uint32
		var blob int64
		var garbage bool
		if err := scan(&addr, &box, &uid, &blob, &garbage); err != nil {
			return err
		}
		if garbage {
			v.problem("%s %s UID %d: body %d was freed while the message still refers to it", addr, box, uid, blob)
		} else {
			v.problem("%s %s UID %d: body %d is missing", addr, box, uid, blob)
		}
		return nil
	})
}

// digests reads every body that has a SHA-256 and reports those whose bytes no longer give
// it: a bit flipped on disk, which SQLite (no page checksums) does not see. A body whose
// length is wrong is left to bodies, which reports it already.
func (v *verifier) digests() error {
	type body struct {
		id, size int64
		digest   []byte
		who      sql.NullString
		base, at sql.NullInt64 // a spliced copy's shared body and where its fields go
	}
	var list []body
	err := v.each(`SELECT b.id, b.size, b.digest, b.base_id, b.fields_at,
		(SELECT a.address || ' ' || mb.name || ' UID ' || m.uid FROM messages m
			JOIN mailboxes mb ON mb.id = m.mailbox_id JOIN accounts a ON a.id = mb.account_id
			WHERE m.blob_id = b.id ORDER BY m.id LIMIT 1)
		FROM blobs b WHERE b.digest IS NOT NULL ORDER BY b.id`, func(scan func(...any) error) error {
		var b body
		if err := scan(&b.id, &b.size, &b.digest, &b.base, &b.at, &b.who); err != nil {
			return err
		}
		list = append(list, b)
		return nil
	})
	if err != nil {
		return err
	}
	if err := v.tx.QueryRowContext(v.ctx, `SELECT count(*) FROM blobs WHERE digest IS NULL`).Scan(&v.r.Undigested); err != nil {
		return err
	}
	for _, b := range list {
		name := fmt.Sprintf("body %d", b.id)
		if b.who.Valid {
			name = b.who.String + ": " + name
		} else {
			name += " (no message refers to it)"
		}
		data, err := v.blobBytes(b.id)
		if err != nil {
			return err
		}
		if b.base.Valid {
			// A spliced copy (fields.go): its data is its fields, in the shared body.
			var baseSize int64
			err := v.tx.QueryRowContext(v.ctx, `SELECT size FROM blobs WHERE id = ?`, b.base.Int64).Scan(&baseSize)
			if errors.Is(err, sql.ErrNoRows) {
				v.problem("%s: its shared body %d is missing", name, b.base.Int64)
				continue
			}
			if err != nil {
				return err
			}
			base, err := v.blobBytes(b.base.Int64)
			if err != nil {
				return err
			}
			if b.at.Int64 < 0 || b.at.Int64 > int64(len(base)) {
				v.problem("%s: its shared body %d is missing or shorter than %d bytes", name, b.base.Int64, b.at.Int64)
				continue
			}
			data = slices.Concat(base[:b.at.Int64], data, base[b.at.Int64:])
			if int64(len(data)) != b.size {
				v.problem("%s has %d bytes with its shared body, not its size %d", name, len(data), b.size)
				continue
			}
		}
		if sum := sha256.Sum256(data); int64(len(data)) != b.size || bytes.Equal(sum[:], b.digest) {
			continue
		}
		v.problem("%s is damaged: its bytes do not match its SHA-256", name)
	}
	return nil
}

// blobBytes reads the stored bytes of a blob: its first chunk and the rest.
func (v *verifier) blobBytes(id int64) ([]byte, error) {
	var out []byte
	add := func(scan func(...any) error) error {
		var data []byte
		if err := scan(&data); err != nil {
			return err
		}
		out = append(out, data...)
		return nil
	}
	if err := v.each(`SELECT data FROM blobs WHERE id = ?`, add, id); err != nil {
		return nil, err
	}
	err := v.each(`SELECT data FROM blob_chunks WHERE blob_id = ? ORDER BY seq`, add, id)
	return out, err
}

// bodies reports bodies whose stored bytes are not their size (a lost or cut chunk) and
// messages whose size is not their body's.
func (v *verifier) bodies() error {
	err := v.each(`SELECT b.id, b.size, length(b.data) + coalesce(c.bytes, 0),
		coalesce(c.n, 0), coalesce(c.last, 0),
		(SELECT a.address || ' ' || mb.name || ' UID ' || m.uid FROM messages m
			JOIN mailboxes mb ON mb.id = m.mailbox_id JOIN accounts a ON a.id = mb.account_id
			WHERE m.blob_id = b.id ORDER BY m.id LIMIT 1)
		FROM blobs b LEFT JOIN (SELECT blob_id, sum(length(data)) AS bytes, count(*) AS n, max(seq) AS last
			FROM blob_chunks GROUP BY blob_id) c ON c.blob_id = b.id
		WHERE b.base_id IS NULL AND (b.size != length(b.data) + coalesce(c.bytes, 0) OR coalesce(c.n, 0) != coalesce(c.last, 0)
			OR (coalesce(c.n, 0) > 0 AND length(b.data) != ?))
		ORDER BY b.id`, func(scan func(...any) error) error {
		var id, size, stored, chunks, last int64
		var who sql.NullString
		if err := scan(&id, &size, &stored, &chunks, &last, &who); err != nil {
			return err
		}
		name := fmt.Sprintf("body %d", id)
		if who.Valid {
			name = who.String + ": " + name
		} else {
			name += " (no message refers to it)"
		}
		if chunks != last {
			v.problem("%s: %d of its %d chunks are missing (%d of %d bytes stored)", name, last-chunks, last+1, stored, size)
		} else {
			v.problem("%s is truncated or damaged: %d bytes stored, %d expected", name, stored, size)
		}
		return nil
	}, blobChunkSize)
	if err != nil {
		return err
	}
	return v.each(`SELECT `+messageWhere+`, m.size, b.size
		FROM messages m JOIN mailboxes mb ON mb.id = m.mailbox_id JOIN accounts a ON a.id = mb.account_id
		JOIN blobs b ON b.id = m.blob_id WHERE m.size != b.size ORDER BY a.address, mb.name, m.uid`, func(scan func(...any) error) error {
		var addr, box string
		var uid uint32
		var msize, bsize int64
		if err := scan(&addr, &box, &uid, &msize, &bsize); err != nil {
			return err
		}
		v.problem("%s %s UID %d: size %d, but its body has %d bytes", addr, box, uid, msize, bsize)
		return nil
	})
}

// mailboxCounts compares each mailbox's kept counts with its messages, and its UIDNEXT and
// MODSEQ with its messages and tombstones.
func (v *verifier) mailboxCounts() error {
	return v.each(`SELECT a.address, mb.name, mb.messages, mb.unseen, mb.deleted, mb.size,
		mb.uidnext, mb.modseq, a.modseq,
		count(m.id), coalesce(sum(instr(' ' || m.flags || ' ', ' \Seen ') = 0), 0),
		coalesce(sum(instr(' ' || m.flags || ' ', ' \Deleted ') > 0), 0), coalesce(sum(m.size), 0),
		max(coalesce(max(m.uid), 0), coalesce((SELECT max(uid) FROM expunged e WHERE e.mailbox_id = mb.id), 0)),
		max(coalesce(max(m.modseq), 0), coalesce((SELECT max(modseq) FROM expunged e WHERE e.mailbox_id = mb.id), 0))
		FROM mailboxes mb JOIN accounts a ON a.id = mb.account_id LEFT JOIN messages m ON m.mailbox_id = mb.id
		GROUP BY mb.id ORDER BY a.address, mb.name`, func(scan func(...any) error) error {
		var addr, box string
		var kept, real [4]int64
		var uidnext, modseq, accModseq, maxUID, maxModseq int64
		if err := scan(&addr, &box, &kept[0], &kept[1], &kept[2], &kept[3], &uidnext, &modseq, &accModseq,
			&real[0], &real[1], &real[2], &real[3], &maxUID, &maxModseq); err != nil {
			return err
		}
		for i, what := range []string{"messages", "unseen", "deleted", "size"} {
			if kept[i] != real[i] {
				v.problem("%s %s: %s count is %d, its messages say %d", addr, box, what, kept[i], real[i])
			}
		}
		if uidnext <= maxUID {
			v.problem("%s %s: UIDNEXT %d is not above UID %d, which it holds or held", addr, box, uidnext, maxUID)
		}
		if modseq < maxModseq {
			v.problem("%s %s: HIGHESTMODSEQ %d is below the MODSEQ %d of a message in it", addr, box, modseq, maxModseq)
		}
		if accModseq < modseq {
			v.problem("%s %s: the account's MODSEQ %d is below the mailbox's %d", addr, box, accModseq, modseq)
		}
		return nil
	})
}

// accountUsage compares each account's kept usage with its mailboxes' counts.
func (v *verifier) accountUsage() error {
	return v.each(`SELECT a.address, a.messages, a.size,
		coalesce(sum(mb.messages), 0), coalesce(sum(mb.size), 0)
		FROM accounts a LEFT JOIN mailboxes mb ON mb.account_id = a.id GROUP BY a.id ORDER BY a.address`, func(scan func(...any) error) error {
		var addr string
		var msgs, size, boxMsgs, boxSize int64
		if err := scan(&addr, &msgs, &size, &boxMsgs, &boxSize); err != nil {
			return err
		}
		if msgs != boxMsgs || size != boxSize {
			v.problem("%s: usage says %d messages of %d bytes, its mailboxes hold %d of %d", addr, msgs, size, boxMsgs, boxSize)
		}
		return nil
	})
}

// SchemaVersions reads the schema version of the database at path without changing it, and
// the version this binary brings it to.
func SchemaVersions(ctx context.Context, path string) (have, want int, err error) {
	if _, err := os.Stat(path); err != nil {
		return 0, len(migrations), err
	}
	db, err := sql.Open("sqlite", path+fmt.Sprintf("?_pragma=busy_timeout(%d)&_pragma=query_only(1)", busyTimeout.Milliseconds()))
	if err != nil {
		return 0, len(migrations), err
	}
	defer db.Close()
	err = db.QueryRowContext(ctx, "PRAGMA user_version").Scan(&have)
	return have, len(migrations), err
}
