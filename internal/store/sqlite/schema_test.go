package sqlite

import (
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"petrel/internal/store"
)

// TestUpgradeFromVersion2 opens a database that Petrel wrote before the IMAP preparation
// (testdata/schema2.sql, a dump of schema version 2 with data) and checks that Open
// migrates it: counts, usage, keywords, special use and subscriptions computed from the
// data, nothing lost, and the store usable at once.
func TestUpgradeFromVersion2(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "petrel.db")
	dump, err := os.ReadFile("testdata/schema2.sql")
	if err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(string(dump)); err != nil {
		t.Fatalf("loading the version 2 database: %v", err)
	}
	var version int
	if err := db.QueryRow("PRAGMA user_version").Scan(&version); err != nil || version != 2 {
		t.Fatalf("fixture at version %d (%v), want 2", version, err)
	}
	db.Close()

	s := openPath(t, path, Options{})
	defer s.Close()
	if err := s.wc.QueryRowContext(ctx, "PRAGMA user_version").Scan(&version); err != nil || version != len(migrations) {
		t.Fatalf("after Open: version %d (%v), want %d", version, err, len(migrations))
	}
	a, err := s.AccountByAddress(ctx, "a@example.org")
	if err != nil {
		t.Fatal(err)
	}
	b, err := s.AccountByAddress(ctx, "b@example.org")
	if err != nil {
		t.Fatal(err)
	}
	mailbox := func(id int64, name string) store.Mailbox {
		t.Helper()
		m, err := s.Mailbox(ctx, id, name)
		if err != nil {
			t.Fatalf("Mailbox(%q): %v", name, err)
		}
		return m
	}
	// What the fixture holds: a's INBOX has UID 2 ("$Label1 \Seen", 20 bytes) and UID 3
	// ("\Deleted", 23 bytes); Archive UID 1 (\Seen, 19 bytes, moved there); b's INBOX UID 1
	// ($Label1, 20 bytes, the body shared with a's UID 2).
	for _, tc := range []struct {
		got                       store.Mailbox
		messages, unseen, deleted int
		size                      int64
		uidnext                   uint32
		use                       store.SpecialUse
		keywords                  []string
	}{
		{mailbox(a.ID, store.Inbox), 2, 1, 1, 43, 5, "", []string{"$Label1"}},
		{mailbox(a.ID, store.Archive), 1, 0, 0, 19, 2, store.UseArchive, nil},
		{mailbox(a.ID, store.Sent), 0, 0, 0, 0, 1, store.UseSent, nil},
		{mailbox(a.ID, "Projects/Petrel"), 0, 0, 0, 0, 1, "", nil},
		{mailbox(b.ID, store.Inbox), 1, 1, 0, 20, 2, "", []string{"$Label1"}},
		{mailbox(b.ID, store.Junk), 0, 0, 0, 0, 1, store.UseJunk, nil},
	} {
		m := tc.got
		if m.Messages != tc.messages || m.Unseen != tc.unseen || m.Deleted != tc.deleted || m.Size != tc.size ||
			m.UIDNext != tc.uidnext || m.SpecialUse != tc.use || !slices.Equal(m.Keywords, tc.keywords) {
			t.Errorf("%s after the upgrade: %+v", m.Name, m)
		}
	}
	for _, tc := range []struct {
		id   int64
		want store.Usage
	}{{a.ID, store.Usage{Messages: 3, Size: 62, Mailboxes: 7}}, {b.ID, store.Usage{Messages: 1, Size: 20, Mailboxes: 6}}} {
		if u, err := s.Usage(ctx, tc.id); err != nil || u != tc.want {
			t.Errorf("Usage(%d) = %+v, %v; want %+v", tc.id, u, err, tc.want)
		}
	}
	subs, err := s.Subscriptions(ctx, a.ID)
	if want := []string{"Archive", "Drafts", "INBOX", "Junk", "Projects/Petrel", "Sent", "Trash"}; err != nil || !slices.Equal(subs, want) {
		t.Errorf("subscriptions %q, %v; want %q", subs, err, want)
	}

	// The bodies stored before the full-text index wait to be indexed (the shared one
	// once), are not found until they are, and are found after.
	pending, err := s.Unindexed(ctx, 100)
	if err != nil || len(pending) != 3 {
		t.Fatalf("Unindexed after the upgrade = %v, %v; want the 3 bodies", pending, err)
	}
	bInbox := mailbox(b.ID, store.Inbox)
	if got, err := s.Search(ctx, bInbox.ID, store.FieldBody, "22"); err != nil || len(got) != 0 {
		t.Errorf("Search before indexing = %v, %v", got, err)
	}
	for _, id := range pending {
		if err := s.IndexBlob(ctx, id, store.SearchText{Body: readBlob(t, s, id)}); err != nil {
			t.Fatal(err)
		}
	}
	if got, err := s.Search(ctx, bInbox.ID, store.FieldBody, "22"); err != nil || !slices.Equal(got, []uint32{1}) {
		t.Errorf("Search after indexing = %v, %v; want UID 1", got, err)
	}
	if rest, err := s.Unindexed(ctx, 100); err != nil || len(rest) != 0 {
		t.Errorf("Unindexed after indexing = %v, %v", rest, err)
	}

	// The upgraded store works: a delivery gets the next UID and MODSEQ, a flag change and
	// an expunge keep the counts, and the expunge leaves a tombstone.
	inbox := mailbox(a.ID, store.Inbox)
	d, err := s.Deliver(ctx, message("Subject: after\r\n\r\nupgrade\r\n", a.ID))
	if err != nil {
		t.Fatal(err)
	}
	if m := d.Messages[0]; m.UID != 5 || m.ModSeq != 11 {
		t.Errorf("first delivery after the upgrade: UID %d MODSEQ %d, want 5 and 11", m.UID, m.ModSeq)
	}
	if _, err := s.SetFlags(ctx, inbox.ID, []uint32{3}, store.FlagChange{Mode: store.FlagsRemove, Flags: []string{store.FlagDeleted}}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Expunge(ctx, inbox.ID, []uint32{2}); err != nil {
		t.Fatal(err)
	}
	if got := mailbox(a.ID, store.Inbox); got.Messages != 2 || got.Unseen != 2 || got.Deleted != 0 || got.Size != 23+int64(d.Messages[0].Size) {
		t.Errorf("INBOX after changes: %+v", got)
	}
	if v, err := s.Vanished(ctx, inbox.ID, store.Filter{}); err != nil || !slices.Equal(v, []uint32{2}) {
		t.Errorf("tombstones after the upgrade %v, %v", v, err)
	}
	// The body of UID 2 is still b's.
	ms, err := s.Messages(ctx, mailbox(b.ID, store.Inbox).ID, store.Filter{})
	if err != nil || len(ms) != 1 {
		t.Fatalf("b's INBOX %+v, %v", ms, err)
	}
	if got := readBlob(t, s, ms[0].BlobID); got != "Subject: two\r\n\r\n22\r\n" {
		t.Errorf("shared body %q", got)
	}
}
