package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/time/rate"

	"petrel/internal/store"
)

// backupStore opens a store in a new directory (path is its file) with alice's account.
func backupStore(t *testing.T) (s *Store, path string, alice store.Account) {
	t.Helper()
	path = filepath.Join(t.TempDir(), "petrel.db")
	s = openPath(t, path, Options{})
	return s, path, setup(t, s, "alice@example.org")
}

// deliverSized delivers a message with that subject and a body of size bytes to a's INBOX.
func deliverSized(t *testing.T, s *Store, a store.Account, subject string, size int) {
	t.Helper()
	body := "Subject: " + subject + "\r\n\r\n" + strings.Repeat("x", size)
	if _, err := s.Deliver(context.Background(), &store.Delivery{Targets: []store.Target{{AccountID: a.ID}},
		Body: strings.NewReader(body), Size: int64(len(body))}); err != nil {
		t.Fatal(err)
	}
}

// backupFixture is a store with three messages in alice's INBOX, the second one larger than
// a chunk, backed up into a file of its own.
func backupFixture(t *testing.T) (copyPath string, inbox store.Mailbox, msgs []store.Message) {
	t.Helper()
	ctx := context.Background()
	s, path, a := backupStore(t)
	for i, size := range []int{100, blobChunkSize*2 + 17, 300} {
		deliverSized(t, s, a, fmt.Sprint(i), size)
	}
	inbox, err := s.Mailbox(ctx, a.ID, store.Inbox)
	if err != nil {
		t.Fatal(err)
	}
	if msgs, err = s.Messages(ctx, inbox.ID, store.Filter{}); err != nil {
		t.Fatal(err)
	}
	// The backup is taken while the store is open, as the server would have it.
	copyPath = filepath.Join(filepath.Dir(path), "copy.db")
	if err := Backup(ctx, path, copyPath, nil); err != nil {
		t.Fatal(err)
	}
	if err := Backup(ctx, path, copyPath, nil); err == nil {
		t.Error("Backup overwrote an existing file")
	}
	s.Close()
	return copyPath, inbox, msgs
}

func TestBackupVerify(t *testing.T) {
	copyPath, inbox, msgs := backupFixture(t)
	ctx := context.Background()
	r, err := Verify(ctx, copyPath)
	if err != nil || len(r.Problems) > 0 {
		t.Fatalf("Verify of a fresh backup: %v %q", err, r.Problems)
	}
	if r.Accounts != 1 || r.Messages != 3 || r.Bodies != 3 {
		t.Errorf("Verify counted %+v, want 1 account, 3 messages, 3 bodies", r)
	}
	// The copy opens as a store with the same mailbox, UIDs and MODSEQs.
	c := openPath(t, copyPath, Options{})
	got, err := c.MailboxByID(ctx, inbox.ID)
	if err != nil || got.UIDValidity != inbox.UIDValidity || got.UIDNext != inbox.UIDNext || got.HighestModSeq != inbox.HighestModSeq {
		t.Errorf("copy's INBOX %+v, %v; want %+v", got, err, inbox)
	}
	again, _ := c.Messages(ctx, inbox.ID, store.Filter{})
	if fmt.Sprint(again) != fmt.Sprint(msgs) {
		t.Errorf("copy's messages %v, want %v", again, msgs)
	}
	c.Close()
}

// damage changes the backup copy with foreign keys off, as a disk or a hand would.
func damage(t *testing.T, path, query string, args ...any) {
	t.Helper()
	db, err := sql.Open("sqlite", path+"?_pragma=foreign_keys(0)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(query, args...); err != nil {
		t.Fatal(err)
	}
}

func TestVerifyFindsDamage(t *testing.T) {
	ctx := context.Background()
	want := func(t *testing.T, path string, wants ...string) {
		t.Helper()
		// Unpaced, and paced as a backup verifies its copy (read through the paced VFS).
		for _, pace := range []*rate.Limiter{nil, NewPace(1 << 40)} {
			r, err := VerifyPaced(ctx, path, pace)
			if err != nil {
				t.Fatal(err)
			}
			all := strings.Join(r.Problems, "\n")
			for _, w := range wants {
				if !strings.Contains(all, w) {
					t.Errorf("Verify (paced %v) did not report %q; it reported:\n%s", pace != nil, w, all)
				}
			}
		}
	}
	t.Run("removed body", func(t *testing.T) {
		path, _, msgs := backupFixture(t)
		damage(t, path, `DELETE FROM blobs WHERE id = ?`, msgs[0].BlobID)
		want(t, path, fmt.Sprintf("alice@example.org INBOX UID %d: body %d is missing", msgs[0].UID, msgs[0].BlobID))
	})
	t.Run("truncated body", func(t *testing.T) {
		path, _, msgs := backupFixture(t)
		damage(t, path, `UPDATE blobs SET data = substr(data, 1, 10) WHERE id = ?`, msgs[2].BlobID)
		want(t, path, fmt.Sprintf("alice@example.org INBOX UID %d: body %d is truncated or damaged: 10 bytes stored, %d expected",
			msgs[2].UID, msgs[2].BlobID, msgs[2].Size))
	})
	t.Run("changed bytes", func(t *testing.T) {
		path, _, msgs := backupFixture(t)
		// The same length, one byte different: only the digest can tell.
		damage(t, path, `UPDATE blobs SET data = 'X' || substr(data, 2) WHERE id = ?`, msgs[2].BlobID)
		want(t, path, fmt.Sprintf("alice@example.org INBOX UID %d: body %d is damaged: its bytes do not match its SHA-256",
			msgs[2].UID, msgs[2].BlobID))
	})
	t.Run("lost chunk", func(t *testing.T) {
		path, _, msgs := backupFixture(t)
		damage(t, path, `DELETE FROM blob_chunks WHERE blob_id = ? AND seq = 1`, msgs[1].BlobID)
		want(t, path, fmt.Sprintf("alice@example.org INBOX UID %d: body %d: 1 of its 3 chunks are missing", msgs[1].UID, msgs[1].BlobID))
	})
	t.Run("counts", func(t *testing.T) {
		path, _, _ := backupFixture(t)
		damage(t, path, `UPDATE mailboxes SET unseen = unseen + 1, uidnext = 2 WHERE name = 'INBOX'`)
		want(t, path, "alice@example.org INBOX: unseen count is 4, its messages say 3",
			"alice@example.org INBOX: UIDNEXT 2 is not above UID 3")
	})
	t.Run("corrupted page", func(t *testing.T) {
		path, _, _ := backupFixture(t)
		// Overwrite the middle of the root page of the messages index with garbage (the
		// file is a fresh VACUUM INTO: no WAL, so the page in the file is the page).
		db, err := sql.Open("sqlite", path)
		if err != nil {
			t.Fatal(err)
		}
		var root, pageSize int64
		if err := db.QueryRow(`SELECT rootpage FROM sqlite_schema WHERE name = 'messages_blob'`).Scan(&root); err != nil {
			t.Fatal(err)
		}
		if err := db.QueryRow(`PRAGMA page_size`).Scan(&pageSize); err != nil {
			t.Fatal(err)
		}
		db.Close()
		f, err := os.OpenFile(path, os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.WriteAt([]byte(strings.Repeat("\xff", 64)), (root-1)*pageSize+8); err != nil {
			t.Fatal(err)
		}
		f.Close()
		want(t, path, "database page damaged (index messages_blob)")
	})
}

// TestVerifySplicedCopies: a message whose copies carry each account's own fields
// (DeliverFields) verifies clean, small or larger than a chunk; a changed byte in a copy's
// fields and a lost shared body are each reported.
func TestVerifySplicedCopies(t *testing.T) {
	ctx := context.Background()
	fixture := func(t *testing.T) (path string, copies []store.Message, bases []int64) {
		dir := t.TempDir()
		s := openPath(t, filepath.Join(dir, "petrel.db"), Options{})
		a := setup(t, s, "alice@example.org")
		b := setup(t, s, "bob@example.org")
		for _, size := range []int{100, blobChunkSize + 99} {
			body := "Return-Path: <x@remote.example>\r\nSubject: s\r\n\r\n" + strings.Repeat("y", size)
			at := int64(len("Return-Path: <x@remote.example>\r\n"))
			d, err := s.DeliverFields(ctx, &store.Delivery{Targets: []store.Target{{AccountID: a.ID}, {AccountID: b.ID}},
				Body: strings.NewReader(body), Size: int64(len(body))},
				[]store.AccountFields{{AccountID: a.ID, Fields: "X-Spam-Status: Yes\r\n", At: at}, {AccountID: b.ID, Fields: "X-Spam-Status: No\r\n", At: at}})
			if err != nil {
				t.Fatal(err)
			}
			copies, bases = append(copies, d.Messages...), append(bases, d.BlobID)
		}
		path = filepath.Join(dir, "copy.db")
		if err := Backup(ctx, filepath.Join(dir, "petrel.db"), path, nil); err != nil {
			t.Fatal(err)
		}
		s.Close()
		return path, copies, bases
	}
	path, copies, bases := fixture(t)
	if r, err := Verify(ctx, path); err != nil || len(r.Problems) > 0 {
		t.Fatalf("spliced copies: %v, %q", err, r.Problems)
	}
	damage(t, path, `UPDATE blobs SET data = CAST('Y' || substr(data, 2) AS BLOB) WHERE id = ?`, copies[0].BlobID)
	damage(t, path, `DELETE FROM blobs WHERE id = ?`, bases[1])
	r, err := Verify(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	all := strings.Join(r.Problems, "\n")
	for _, w := range []string{
		fmt.Sprintf("alice@example.org INBOX UID %d: body %d is damaged: its bytes do not match its SHA-256", copies[0].UID, copies[0].BlobID),
		fmt.Sprintf("alice@example.org INBOX UID %d: body %d: its shared body %d is missing", copies[2].UID, copies[2].BlobID, bases[1]),
	} {
		if !strings.Contains(all, w) {
			t.Errorf("Verify did not report %q; it reported:\n%s", w, all)
		}
	}
}

// TestBackupSnapshot: the page copy is the state of the commit its snapshot saw, WAL
// included: a message delivered before the backup is in the copy (while it is still only
// in the server's WAL), one delivered while the pages are copied is not; the copy passes
// the integrity check and opens with no WAL.
func TestBackupSnapshot(t *testing.T) {
	ctx := context.Background()
	s, path, a := backupStore(t)
	defer s.Close()
	deliver := func(subject string) { deliverSized(t, s, a, subject, blobChunkSize+5) }
	deliver("before")
	if fi, err := os.Stat(path + "-wal"); err != nil || fi.Size() == 0 {
		t.Fatalf("the delivery before the backup is not in a WAL (%v): the test would not test the WAL", err)
	}
	dst := filepath.Join(filepath.Dir(path), "copy.db")
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if err := copyPages(ctx, path, out, nil, func() { deliver("during") }); err != nil {
		t.Fatal(err)
	}
	out.Close()
	header := make([]byte, 20)
	if f, err := os.Open(dst); err == nil {
		f.Read(header)
		f.Close()
	}
	if header[18] != 1 || header[19] != 1 {
		t.Errorf("the copy's file format bytes are %d %d, want 1 1 (no WAL)", header[18], header[19])
	}
	r, err := Verify(ctx, dst)
	if err != nil || len(r.Problems) > 0 {
		t.Fatalf("Verify of the copy: %v %q", err, r.Problems)
	}
	if _, err := os.Stat(dst + "-wal"); err == nil {
		t.Error("verifying the copy made a WAL: the copy was left in WAL mode")
	}
	db, err := sql.Open("sqlite", dst)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	// Each delivery is a message and a body whose second part is a blob_chunks row.
	var msgs, chunks int
	if err := db.QueryRow(`SELECT (SELECT count(*) FROM messages), (SELECT count(*) FROM blob_chunks)`).Scan(&msgs, &chunks); err != nil {
		t.Fatal(err)
	}
	if msgs != 1 || chunks != 1 {
		t.Errorf("the copy has %d messages and %d body chunks, want those of the delivery before the backup only (1, 1)", msgs, chunks)
	}
	// The server still has both.
	var n int
	if err := s.rdb.QueryRowContext(ctx, `SELECT count(*) FROM messages`).Scan(&n); err != nil || n != 2 {
		t.Errorf("the store has %d messages (%v), want 2", n, err)
	}
}

// TestBackupPaced: a paced backup and a paced verification take every byte they copy or
// read from the bucket, and give what the unpaced ones give. The bucket has rate 0, where
// no token comes back, so what was taken is counted without a clock.
func TestBackupPaced(t *testing.T) {
	ctx := context.Background()
	s, path, a := backupStore(t)
	defer s.Close()
	for i := range 20 {
		deliverSized(t, s, a, fmt.Sprint(i), blobChunkSize+i*1000)
	}
	const budget = 1 << 40
	bucket := rate.NewLimiter(0, budget)
	dst := filepath.Join(filepath.Dir(path), "copy.db")
	if err := Backup(ctx, path, dst, bucket); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(dst)
	if err != nil {
		t.Fatal(err)
	}
	if taken, want := budget-int64(bucket.Tokens()), fi.Size()/PaceChunk*PaceChunk; taken != want || want == 0 {
		t.Errorf("the backup of %d bytes took %d from the bucket, want %d", fi.Size(), taken, want)
	}
	before := int64(bucket.Tokens())
	paced, err := VerifyPaced(ctx, dst, bucket)
	if err != nil || len(paced.Problems) > 0 {
		t.Fatalf("VerifyPaced of the copy: %v %q", err, paced.Problems)
	}
	if taken := before - int64(bucket.Tokens()); taken < fi.Size()/PaceChunk*PaceChunk {
		t.Errorf("the verification took %d bytes from the bucket, less than the %d-byte copy it read", taken, fi.Size())
	}
	plain, err := Verify(ctx, dst)
	if err != nil || fmt.Sprint(plain) != fmt.Sprint(paced) {
		t.Errorf("Verify %+v, %v; VerifyPaced %+v", plain, err, paced)
	}
	if _, err := os.Stat(dst + "-wal"); err == nil {
		t.Error("verifying the copy made a WAL")
	}
	// The live store is in WAL mode, which the paced VFS cannot read: it is read unpaced.
	if r, err := VerifyPaced(ctx, path, bucket); err != nil || len(r.Problems) > 0 || r.Messages != plain.Messages {
		t.Errorf("VerifyPaced of the live store: %+v, %v", r, err)
	}
}
