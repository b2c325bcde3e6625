package sqlite

import (
	"bufio"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"petrel/internal/store"
)

// waitReclaimed waits until the garbage list is empty.
func (s *Store) waitReclaimed(tb testing.TB) {
	tb.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		var n int
		if err := s.rdb.QueryRow("SELECT count(*) FROM garbage").Scan(&n); err != nil {
			tb.Fatal(err)
		}
		if n == 0 {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("%d blobs still listed for the reclaim after 20 s", n)
		}
		time.Sleep(time.Millisecond)
	}
}

// wantReclaimed waits until the reclaim has counted want freed blobs: the count is raised
// just after the commit that emptied the list, so a moment after waitReclaimed returns.
func (s *Store) wantReclaimed(t testing.TB, want int64) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for s.reclaimed.Load() < want && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if n := s.reclaimed.Load(); n != want {
		t.Errorf("reclaimed %d blobs, want %d", n, want)
	}
}

// count runs a count(*) query on a read connection.
func count(t testing.TB, db *sql.DB, query string) int {
	t.Helper()
	var n int
	if err := db.QueryRow(query).Scan(&n); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return n
}

// checkConsistent checks the database file at path from a connection of its own: SQLite's
// integrity check, the foreign keys, and that every blob is either referenced by a message
// or listed for the reclaim, never both (nothing leaked, nothing readable freed). It
// returns the number of blobs still listed.
func checkConsistent(t testing.TB, path string) (listed int) {
	t.Helper()
	db, err := sql.Open("sqlite", path+"?_pragma=query_only(1)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var res string
	if err := db.QueryRow("PRAGMA integrity_check").Scan(&res); err != nil || res != "ok" {
		t.Errorf("integrity_check: %q, %v", res, err)
	}
	if n := count(t, db, "SELECT count(*) FROM pragma_foreign_key_check"); n != 0 {
		t.Errorf("%d foreign key violations", n)
	}
	if n := count(t, db, `SELECT count(*) FROM blobs WHERE id NOT IN (SELECT blob_id FROM messages)
		AND id NOT IN (SELECT blob_id FROM garbage)`); n != 0 {
		t.Errorf("%d blobs neither referenced nor listed for the reclaim: leaked", n)
	}
	if n := count(t, db, "SELECT count(*) FROM garbage WHERE blob_id IN (SELECT blob_id FROM messages)"); n != 0 {
		t.Errorf("%d blobs listed for the reclaim are still referenced", n)
	}
	if n := count(t, db, "SELECT count(*) FROM blob_chunks WHERE blob_id NOT IN (SELECT id FROM blobs)"); n != 0 {
		t.Errorf("%d orphan chunks", n)
	}
	return count(t, db, "SELECT count(*) FROM garbage")
}

// expungeAll expunges every message of a mailbox and returns their blob IDs.
func expungeAll(t testing.TB, s *Store, mailboxID int64) []int64 {
	t.Helper()
	ctx := context.Background()
	ms, err := s.Messages(ctx, mailboxID, store.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	var uids []uint32
	var blobs []int64
	for _, m := range ms {
		uids = append(uids, m.UID)
		blobs = append(blobs, m.BlobID)
	}
	if _, err := s.Expunge(ctx, mailboxID, uids); err != nil {
		t.Fatal(err)
	}
	return blobs
}

// TestReclaimResumesAfterClose: a store that stopped before freeing what it expunged leaves
// the bodies listed; they stay invisible, and the next Open frees them.
func TestReclaimResumesAfterClose(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "petrel.db")
	s := openPath(t, path, Options{reclaimOff: true})
	a := setup(t, s, "a@example.org")
	b := setup(t, s, "b@example.org")
	large := strings.Repeat("x", 3*blobChunkSize+100) + "\r\n" // has blob_chunks rows
	for i := range 20 {
		s.Deliver(ctx, message(fmt.Sprintf("only a %d\r\n", i), a.ID))
	}
	s.Deliver(ctx, message(large, a.ID))
	shared, err := s.Deliver(ctx, &store.Delivery{
		Targets: []store.Target{{AccountID: a.ID}, {AccountID: b.ID}},
		Body:    strings.NewReader("shared\r\n"), Size: 8,
	})
	if err != nil {
		t.Fatal(err)
	}
	box, _ := s.Mailbox(ctx, a.ID, store.Inbox)
	gone := expungeAll(t, s, box.ID)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if listed := checkConsistent(t, path); listed != 21 {
		t.Fatalf("%d blobs listed after close, want 21 (the shared one is still b's)", listed)
	}

	s = openPath(t, path, Options{})
	defer s.Close()
	for _, id := range gone {
		if id == shared.BlobID {
			if got := readBlob(t, s, id); got != "shared\r\n" {
				t.Errorf("shared blob = %q", got)
			}
			continue
		}
		if _, err := s.OpenBlob(ctx, id); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("OpenBlob(%d) of an expunged message: %v, want ErrNotFound", id, err)
		}
		if _, err := s.Parsed(ctx, id); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("Parsed(%d) of an expunged message: %v, want ErrNotFound", id, err)
		}
	}
	s.waitReclaimed(t)
	s.wantReclaimed(t, 21)
	if listed := checkConsistent(t, path); listed != 0 {
		t.Errorf("%d blobs still listed", listed)
	}
	if n := count(t, s.rdb, "SELECT count(*) FROM blobs"); n != 1 {
		t.Errorf("%d blobs left, want only the shared one", n)
	}
}

func readBlob(t testing.TB, s *Store, id int64) string {
	t.Helper()
	r, err := s.OpenBlob(context.Background(), id)
	if err != nil {
		t.Fatalf("OpenBlob(%d): %v", id, err)
	}
	defer r.Close()
	var b strings.Builder
	sc := bufio.NewReader(r)
	if _, err := sc.WriteTo(&b); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// TestReclaimReusesSpace: the pages of reclaimed bodies go to the free list and the next
// deliveries use them instead of growing the file.
func TestReclaimReusesSpace(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "petrel.db")
	s := openPath(t, path, Options{})
	defer s.Close()
	a := setup(t, s, "a@example.org")
	box, _ := s.Mailbox(ctx, a.ID, store.Inbox)
	body := strings.Repeat("0123456789abcdef", 256) // 4 KB: an overflow page each
	deliver := func() {
		for range 300 {
			if _, err := s.Deliver(ctx, message(body, a.ID)); err != nil {
				t.Fatal(err)
			}
		}
	}
	deliver()
	expungeAll(t, s, box.ID)
	s.waitReclaimed(t)
	pages := count(t, s.rdb, "PRAGMA page_count")
	free := count(t, s.rdb, "PRAGMA freelist_count")
	if free < 300 {
		t.Fatalf("%d free pages after reclaiming 300 bodies of 4 KB", free)
	}
	deliver()
	if grown := count(t, s.rdb, "PRAGMA page_count") - pages; grown > 30 {
		t.Errorf("the file grew by %d pages with %d free ones to reuse", grown, free)
	}
	checkConsistent(t, path)
}

// TestReclaimWhileBusy: deliveries and expunges keep coming; every expunged body is freed
// in the end and the database stays consistent.
func TestReclaimWhileBusy(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "petrel.db")
	s := openPath(t, path, Options{})
	a := setup(t, s, "a@example.org")
	box, _ := s.Mailbox(ctx, a.ID, store.Inbox)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range 400 {
			if _, err := s.Deliver(ctx, message(fmt.Sprintf("busy %d\r\n", i), a.ID)); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	expunged := 0
	for range 20 {
		expunged += len(expungeAll(t, s, box.ID))
		time.Sleep(5 * time.Millisecond)
	}
	<-done
	expunged += len(expungeAll(t, s, box.ID))
	s.waitReclaimed(t)
	if expunged != 400 {
		t.Errorf("expunged %d of 400", expunged)
	}
	s.wantReclaimed(t, int64(expunged))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if listed := checkConsistent(t, path); listed != 0 {
		t.Errorf("%d blobs still listed after close", listed)
	}
}

// TestCloseReclaims: a short-lived process (the CLI deleting an account) frees the bodies
// it listed before Close returns.
func TestCloseReclaims(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "petrel.db")
	s := openPath(t, path, Options{})
	a := setup(t, s, "a@example.org")
	for i := range 10 {
		s.Deliver(ctx, message(fmt.Sprintf("%d\r\n", i), a.ID))
	}
	if err := s.DeleteAccount(ctx, a.Address); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if listed := checkConsistent(t, path); listed != 0 {
		t.Errorf("%d blobs still listed after Close", listed)
	}
}

// TestExpungeCrash kills a process with SIGKILL right after its Expunge returned and before
// it could free anything: the expunge is durable, nothing is readable or leaked, and the
// next Open frees the bodies and reuses their space.
func TestExpungeCrash(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "petrel.db")
	s := openPath(t, path, Options{})
	a := setup(t, s, "crash@example.org")
	s.Close()

	cmd := runHelper(t, "expunge", path)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, _ := bufio.NewReader(stdout).ReadString('\n')
	cmd.Process.Kill() // SIGKILL: no Close, no reclaim
	cmd.Wait()
	if line != "EXPUNGED\n" {
		t.Fatalf("helper said %q:\n%s", line, stderr.String())
	}
	if listed := checkConsistent(t, path); listed != crashMessages {
		t.Fatalf("%d blobs listed after the crash, want %d", listed, crashMessages)
	}

	s = openPath(t, path, Options{})
	defer s.Close()
	box, _ := s.Mailbox(ctx, a.ID, store.Inbox)
	if ms, err := s.Messages(ctx, box.ID, store.Filter{}); err != nil || len(ms) != 0 || box.Messages != 0 {
		t.Fatalf("after the crash: %d messages listed, mailbox says %d, %v", len(ms), box.Messages, err)
	}
	s.waitReclaimed(t)
	s.wantReclaimed(t, crashMessages)
	if listed := checkConsistent(t, path); listed != 0 {
		t.Errorf("%d blobs still listed", listed)
	}
	free := count(t, s.rdb, "PRAGMA freelist_count")
	pages := count(t, s.rdb, "PRAGMA page_count")
	for range crashMessages {
		if _, err := s.Deliver(ctx, message(crashBody, a.ID)); err != nil {
			t.Fatal(err)
		}
	}
	if grown := count(t, s.rdb, "PRAGMA page_count") - pages; grown > free/2 {
		t.Errorf("the file grew by %d pages with %d free ones to reuse", grown, free)
	}
}

const crashMessages = 50

var crashBody = strings.Repeat("crash body 0123456789\r\n", 200) // 4.6 KB

// helperExpunge is the other process of TestExpungeCrash: it delivers and expunges with
// the reclaim off, says so, and waits to be killed.
func helperExpunge(path string) {
	ctx := context.Background()
	s, err := Open(path, Options{reclaimOff: true})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	a, err := s.AccountByAddress(ctx, "crash@example.org")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	var uids []uint32
	var box int64
	for range crashMessages {
		d, err := s.Deliver(ctx, message(crashBody, a.ID))
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		uids = append(uids, d.Messages[0].UID)
		box = d.Messages[0].MailboxID
	}
	if _, err := s.Expunge(ctx, box, uids); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	fmt.Println("EXPUNGED")
	time.Sleep(30 * time.Second) // the parent kills us long before
	os.Exit(3)
}

// TestReclaimLeavesIndex: a freed body leaves the full-text index (the trigger on blobs),
// while a body still referenced by another mailbox stays in it.
func TestReclaimLeavesIndex(t *testing.T) {
	ctx := context.Background()
	s := openTemp(t, Options{})
	a := setup(t, s, "a@example.org")
	indexed := func(word string) int {
		t.Helper()
		var n int
		if err := s.rdb.QueryRowContext(ctx, `SELECT count(*) FROM search WHERE search MATCH ?`, word).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	for _, w := range []string{"alpha", "beta"} {
		d := message("Subject: "+w+"\r\n\r\n"+w+"\r\n", a.ID)
		d.Parsed.Text = &store.SearchText{Subject: w, Body: w}
		if _, err := s.Deliver(ctx, d); err != nil {
			t.Fatal(err)
		}
	}
	// Both bodies in the index first (the background indexer may not have run yet).
	if err := s.IndexQueued(ctx); err != nil {
		t.Fatal(err)
	}
	box, err := s.Mailbox(ctx, a.ID, store.Inbox)
	if err != nil {
		t.Fatal(err)
	}
	arch, err := s.Mailbox(ctx, a.ID, store.Archive)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Copy(ctx, box.ID, []uint32{2}, arch.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Expunge(ctx, box.ID, []uint32{1, 2}); err != nil {
		t.Fatal(err)
	}
	s.waitReclaimed(t)
	if n := indexed("alpha"); n != 0 {
		t.Errorf("the freed body is still indexed (%d rows)", n)
	}
	if n := indexed("beta"); n != 1 {
		t.Errorf("the copied body has %d index rows, want 1", n)
	}
}
