package cli

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"petrel/internal/app"
	"petrel/internal/mailtest"
	"petrel/internal/store"
	"petrel/internal/store/postgres"
	"petrel/internal/store/sqlite"
)

// pgConfig writes a config naming a PostgreSQL database and a data directory, and returns a
// function that runs commands with it.
func pgConfig(t *testing.T, dsn string) (run func(stdin string, args ...string) (string, error), data string) {
	t.Helper()
	dir := t.TempDir()
	conf := filepath.Join(dir, "petrel.toml")
	data = filepath.Join(dir, "data")
	src := fmt.Sprintf("domains = [\"example.org\"]\ndata = %q\n[tls]\ncert = \"c.pem\"\nkey = \"k.pem\"\n[store]\nbackend = \"postgres\"\ndsn = %q\n", data, dsn)
	if err := os.WriteFile(conf, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	return func(stdin string, args ...string) (string, error) {
		var out bytes.Buffer
		err := Main(&Env{Ctx: context.Background(), ConfigFile: conf, Stdin: strings.NewReader(stdin), Stdout: &out, Stderr: &out}, args)
		return out.String(), err
	}, data
}

// TestBackupRestorePostgres backs a PostgreSQL store up while deliveries go on, verifies
// the backup and restores it into another, empty database: every message delivered before
// the backup began is in it once, and the restored store holds the backup's rows, with its
// UIDVALIDITY, UIDs and MODSEQs.
func TestBackupRestorePostgres(t *testing.T) {
	ctx := context.Background()
	dsn := mailtest.PostgresDSN(t)
	runA, _ := pgConfig(t, dsn)
	if out, err := runA("password-alice\n", "account", "add", "alice@example.org"); err != nil {
		t.Fatalf("account add: %q, %v", out, err)
	}
	// No key yet, and no key file: reading the records needs none.
	if out, err := runA("", "dns", "example.org"); err != nil || !strings.Contains(out, "no DKIM key yet") {
		t.Fatalf("dns before any key: %q, %v", out, err)
	}
	if out, err := runA("", "dkim", "keygen", "example.org"); err != nil {
		t.Fatalf("dkim keygen: %q, %v", out, err)
	}
	recordsA := dkimLines(t, runA)
	pg, err := postgres.Open(ctx, dsn, postgres.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer pg.Close()
	acct, err := pg.AccountByAddress(ctx, "alice@example.org")
	if err != nil {
		t.Fatal(err)
	}
	deliver := func(i int) error {
		body := fmt.Sprintf("Subject: message %d\r\nMessage-ID: <%d@test>\r\n\r\nbody\r\n", i, i)
		_, err := pg.Deliver(ctx, &store.Delivery{Targets: []store.Target{{AccountID: acct.ID}}, Body: strings.NewReader(body),
			Size: int64(len(body)), Parsed: store.ParsedMessage{MessageID: fmt.Sprintf("%d@test", i)}})
		return err
	}
	for i := range 20 {
		if err := deliver(i); err != nil {
			t.Fatal(err)
		}
	}
	inbox, err := pg.Mailbox(ctx, acct.ID, store.Inbox)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pg.SetFlags(ctx, inbox.ID, []uint32{1, 2}, store.FlagChange{Mode: store.FlagsAdd, Flags: []string{store.FlagSeen}}); err != nil {
		t.Fatal(err)
	}
	if _, err := pg.Expunge(ctx, inbox.ID, []uint32{3}); err != nil {
		t.Fatal(err)
	}

	// Deliveries go on during the backup.
	var acked atomic.Int64 // messages 0..acked-1 are committed
	acked.Store(20)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := 20; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			if err := deliver(i); err != nil {
				t.Error(err)
				return
			}
			acked.Store(int64(i + 1))
		}
	})
	before := acked.Load()
	backup := filepath.Join(t.TempDir(), "backup")
	out, err := runA("", "backup", backup)
	backupOut := out
	close(stop)
	wg.Wait()
	if err != nil || !strings.Contains(out, "PostgreSQL") || !strings.Contains(out, "verified") {
		t.Fatalf("backup: %q, %v", out, err)
	}
	if out, err := runA("", "verify", backup); err != nil || !strings.Contains(out, "ok") {
		t.Fatalf("verify of the backup: %q, %v", out, err)
	}
	// The store's DKIM keys are in the backup, as an embedded store keeps them.
	if keys, _ := filepath.Glob(filepath.Join(backup, "dkim", "example.org", "*.pem")); len(keys) != 2 || !strings.Contains(backupOut, "2 DKIM keys") {
		t.Fatalf("DKIM keys in the backup: %v; backup said %q", keys, backupOut)
	}

	b := openBackupCopy(t, backup)
	got, err := b.Mailbox(ctx, acct.ID, store.Inbox)
	if err != nil || got.UIDValidity != inbox.UIDValidity {
		t.Fatalf("INBOX in the backup: %+v, %v", got, err)
	}
	msgs, err := b.Messages(ctx, got.ID, store.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, m := range msgs {
		p, err := b.Parsed(ctx, m.BlobID)
		if err != nil {
			t.Fatal(err)
		}
		if seen[p.MessageID] {
			t.Fatalf("%s twice in the backup", p.MessageID)
		}
		seen[p.MessageID] = true
	}
	for i := range before {
		if id := fmt.Sprintf("%d@test", i); !seen[id] && i != 2 { // message 2 (UID 3) was expunged
			t.Fatalf("%s, delivered before the backup began, is not in it (%d messages)", id, len(msgs))
		}
	}
	if len(msgs) < 2 || strings.Join(msgs[0].Flags, " ") != store.FlagSeen {
		t.Fatalf("messages in the backup: %+v", msgs[:min(2, len(msgs))])
	}
	b.Close()

	// Restore into another database and a new data directory.
	dsn2 := mailtest.PostgresDSN(t)
	runB, _ := pgConfig(t, dsn2)
	if out, err := runB("", "restore", backup); err != nil || !strings.Contains(out, "restored") {
		t.Fatalf("restore: %q, %v", out, err)
	}
	if out, err := runB("", "verify"); err != nil || !strings.Contains(out, "the PostgreSQL store: ok") {
		t.Fatalf("verify of the restored database: %q, %v", out, err)
	}
	if out, err := runB("", "restore", backup); err == nil {
		t.Fatalf("restore into a used database: %q", out)
	}
	// The restored database signs with the same keys (sealed there with B's key file).
	if recordsB := dkimLines(t, runB); recordsB != recordsA {
		t.Fatalf("DKIM records after the restore:\n%s\nwant:\n%s", recordsB, recordsA)
	}
	pg2, err := postgres.Open(ctx, dsn2, postgres.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer pg2.Close()
	b = openBackupCopy(t, backup)
	defer b.Close()
	if err := store.CompareStores(ctx, b, pg2); err != nil {
		t.Fatal(err)
	}
	if uids, err := pg2.Vanished(ctx, inbox.ID, store.Filter{}); err != nil || len(uids) != 1 || uids[0] != 3 {
		t.Fatalf("tombstones after the restore: %v, %v", uids, err)
	}
}

// openBackupCopy opens a copy of a backup's store: opening the backup's own file would
// change it (WAL mode), and its manifest would no longer match.
func openBackupCopy(t *testing.T, backup string) *sqlite.Store {
	t.Helper()
	dir := t.TempDir()
	data, err := os.ReadFile(app.StorePath(backup))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(app.StorePath(dir), data, 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := sqlite.Open(app.StorePath(dir), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// dkimLines returns the DKIM records `petrel dns example.org` prints.
func dkimLines(t *testing.T, run func(stdin string, args ...string) (string, error)) string {
	t.Helper()
	out, err := run("", "dns", "example.org")
	if err != nil {
		t.Fatalf("dns: %q, %v", out, err)
	}
	var recs []string
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, "._domainkey.") {
			recs = append(recs, l)
		}
	}
	if len(recs) != 2 {
		t.Fatalf("dns printed %d DKIM records:\n%s", len(recs), out)
	}
	return strings.Join(recs, "\n")
}
