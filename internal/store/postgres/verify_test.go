package postgres

import (
	"context"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"petrel/internal/mailtest"
	"petrel/internal/store"
	"petrel/internal/store/storetest"
)

// TestVerifyExport: a filled store of either backend verifies clean; in PostgreSQL, a body
// whose bytes changed, a message count that went wrong and a UIDNEXT below a UID are
// each found and named.
func TestVerifyExport(t *testing.T) {
	ctx := context.Background()
	sq := openCopySQLite(t)
	defer sq.Close()
	storetest.FillForCopy(t, sq)
	if r, err := store.VerifyExport(ctx, sq); err != nil || len(r.Problems) > 0 || r.Messages == 0 || r.Bodies == 0 {
		t.Fatalf("embedded store: %+v, %v", r, err)
	}

	dsn := mailtest.PostgresDSN(t)
	s := openDSN(t, dsn, Options{})
	defer s.Close()
	storetest.FillForCopy(t, s)
	r, err := store.VerifyExport(ctx, s)
	if err != nil || len(r.Problems) > 0 || r.Messages == 0 || r.Bodies == 0 {
		t.Fatalf("PostgreSQL store: %+v, %v", r, err)
	}
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var blobID, mailboxID int64
	if err := conn.QueryRow(ctx, `SELECT b.id, m.mailbox_id FROM blobs b JOIN messages m ON m.blob_id = b.id ORDER BY b.id LIMIT 1`).Scan(&blobID, &mailboxID); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		q  string
		id int64
	}{
		{`UPDATE blob_data SET data = overlay(data PLACING 'X' FROM 1) WHERE digest = (SELECT digest FROM blobs WHERE id = $1)`, blobID},
		{`UPDATE mailboxes SET messages = messages + 1 WHERE id = $1`, mailboxID},
		{`UPDATE mailboxes SET uidnext = 1 WHERE id = $1`, mailboxID},
	} {
		if _, err := conn.Exec(ctx, c.q, c.id); err != nil {
			t.Fatal(err)
		}
	}
	r, err = store.VerifyExport(ctx, s)
	if err != nil {
		t.Fatal(err)
	}
	all := strings.Join(r.Problems, "\n")
	for _, want := range []string{"differ from their SHA-256", "kept counts", "UIDNEXT 1"} {
		if !strings.Contains(all, want) {
			t.Errorf("problems do not name %q:\n%s", want, all)
		}
	}
}

// TestFreedBodyTakesItsIndexRow: the search index's row has no foreign key to its body
// (migration 14), so freeBlobs deletes it with the body; after accounts are deleted, no
// index row is left without its body, and the bodies they held are gone.
func TestFreedBodyTakesItsIndexRow(t *testing.T) {
	ctx := context.Background()
	dsn := mailtest.PostgresDSN(t)
	s := openDSN(t, dsn, Options{})
	defer s.Close()
	storetest.FillForCopy(t, s)
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	count := func(q string) int {
		t.Helper()
		var n int
		if err := conn.QueryRow(ctx, q).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	const orphans = `SELECT count(*) FROM search s WHERE NOT EXISTS (SELECT 1 FROM blobs b WHERE b.id = s.blob_id)`
	blobs, indexed := count(`SELECT count(*) FROM blobs`), count(`SELECT count(*) FROM search`)
	if indexed == 0 || count(orphans) != 0 {
		t.Fatalf("after filling: %d index rows, %d without a body", indexed, count(orphans))
	}
	for _, a := range []string{"ann@copy.test", "bob@copy.test"} {
		if err := s.DeleteAccount(ctx, a); err != nil {
			t.Fatal(err)
		}
	}
	if n := count(`SELECT count(*) FROM blobs`); n >= blobs {
		t.Fatalf("deleting the accounts freed no body (%d before, %d after)", blobs, n)
	}
	if n := count(orphans); n != 0 {
		t.Errorf("%d index rows left without their body", n)
	}
	if n := count(`SELECT count(*) FROM search`); n >= indexed {
		t.Errorf("index rows: %d before, %d after freeing bodies", indexed, n)
	}
}
