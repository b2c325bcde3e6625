package cli

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"petrel/internal/app"
	"petrel/internal/config"
	"petrel/internal/mailtest"
	"petrel/internal/store"
	"petrel/internal/store/postgres"
	"petrel/internal/store/sqlite"
)

// TestStoreCopy moves an embedded store into PostgreSQL and from there into a new data
// directory: accounts, UIDVALIDITY, UIDs, MODSEQs, flags and Sieve scripts come along, the
// last copy holds the same rows as the first store, and the full-text index is rebuilt.
func TestStoreCopy(t *testing.T) {
	ctx := context.Background()
	dataA, dataB := t.TempDir(), t.TempDir()
	dsn := mailtest.PostgresDSN(t)
	if out, err := run(t, dataA, "password-alice\n", "account", "add", "alice@example.test"); err != nil {
		t.Fatalf("account add: %q, %v", out, err)
	}
	if out, err := run(t, dataA, "keep;\r\n", "sieve", "put", "alice@example.test", "rules"); err != nil {
		t.Fatalf("sieve put: %q, %v", out, err)
	}
	// The DKIM keys go along: files here, sealed rows in PostgreSQL, files again.
	if out, err := run(t, dataA, "", "dkim", "keygen", "example.test"); err != nil {
		t.Fatalf("dkim keygen: %q, %v", out, err)
	}
	keysA := keyFiles(t, dataA)
	if len(keysA) != 2 {
		t.Fatalf("key files after keygen: %v", keysA)
	}
	st, err := app.OpenStore(dataA, config.Quota{}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	acct, err := st.AccountByAddress(ctx, "alice@example.test")
	if err != nil {
		t.Fatal(err)
	}
	for _, subject := range []string{"first", "petrel copies", "third"} {
		body := "Subject: " + subject + "\r\n\r\nbody\r\n"
		if _, err := st.Append(ctx, acct.ID, store.Inbox, &store.AppendMessage{Body: strings.NewReader(body), Size: int64(len(body)),
			Parsed: store.ParsedMessage{Subject: subject, Text: &store.SearchText{Subject: subject}}, Flags: []string{store.FlagSeen}}); err != nil {
			t.Fatal(err)
		}
	}
	inbox, err := st.Mailbox(ctx, acct.ID, store.Inbox)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Expunge(ctx, inbox.ID, []uint32{1}); err != nil {
		t.Fatal(err)
	}
	if inbox, err = st.Mailbox(ctx, acct.ID, store.Inbox); err != nil {
		t.Fatal(err)
	}
	st.Close()

	// A copy that stops after its third batch (as a crash would) resumes when run again.
	var stopped bytes.Buffer
	batches := 0
	err = Main(&Env{Ctx: ctx, DataDir: dataA, Stdin: strings.NewReader(""), Stdout: &stopped, Stderr: &stopped,
		copyAfterBatch: func(p store.CopyProgress) error {
			if batches++; batches == 3 {
				return errors.New("stopped by the test")
			}
			return nil
		}}, []string{"store", "copy", "--to", dsn})
	if err == nil || !strings.Contains(err.Error(), "run the same copy again") || !strings.Contains(stopped.String(), "copying: domains done") {
		t.Fatalf("store copy --to, stopped: %q, %v", stopped.String(), err)
	}
	out, err := run(t, dataA, "", "store", "copy", "--to", dsn)
	if err != nil || !strings.Contains(out, "resuming an interrupted copy") || !strings.Contains(out, "same rows as the source") ||
		!strings.Contains(out, "messages 2") {
		t.Fatalf("store copy --to, resumed: %q, %v", out, err)
	}
	if !strings.Contains(out, "2 DKIM keys copied") {
		t.Fatalf("store copy --to did not copy the DKIM keys: %q", out)
	}
	if out, err := run(t, dataA, "", "store", "copy", "--to", dsn); err == nil || !strings.Contains(err.Error(), "empty") {
		t.Fatalf("store copy into a used database: %q, %v", out, err)
	}

	pg, err := postgres.Open(ctx, dsn, postgres.Options{})
	if err != nil {
		t.Fatal(err)
	}
	got, err := pg.Mailbox(ctx, acct.ID, store.Inbox)
	if err != nil || (got.UIDValidity != inbox.UIDValidity || got.UIDNext != inbox.UIDNext || got.HighestModSeq != inbox.HighestModSeq) {
		t.Fatalf("INBOX in PostgreSQL: %+v, %v; want %+v", got, err, inbox)
	}
	msgs, err := pg.Messages(ctx, got.ID, store.Filter{})
	if err != nil || len(msgs) != 2 || msgs[0].UID != 2 || msgs[1].UID != 3 || strings.Join(msgs[0].Flags, " ") != store.FlagSeen {
		t.Fatalf("messages in PostgreSQL: %+v, %v", msgs, err)
	}
	if uids, err := pg.Vanished(ctx, got.ID, store.Filter{}); err != nil || len(uids) != 1 || uids[0] != 1 {
		t.Fatalf("tombstones in PostgreSQL: %v, %v", uids, err)
	}
	if uids, err := pg.Search(ctx, got.ID, store.FieldSubject, "copies"); err != nil || len(uids) != 1 || uids[0] != 2 {
		t.Fatalf("search in PostgreSQL: %v, %v (the index is rebuilt by the copy)", uids, err)
	}
	if sc, err := pg.SieveScript(ctx, acct.ID, "rules"); err != nil || sc.Content != "keep;\r\n" {
		t.Fatalf("Sieve script in PostgreSQL: %+v, %v", sc, err)
	}
	sealed, err := pg.DKIMKeys(ctx, "example.test")
	if err != nil || len(sealed) != 2 {
		t.Fatalf("DKIM keys in PostgreSQL: %v, %v", sealed, err)
	}
	for _, k := range sealed {
		if bytes.Contains(k.Private, []byte("PRIVATE KEY")) || bytes.Equal(k.Private, keysA[k.Selector]) {
			t.Fatalf("DKIM key %s is stored in the clear in PostgreSQL", k.Selector)
		}
	}
	pg.Close()

	// The key that seals them is the config's [pull] key_file; without a config file it
	// lies beside the data directory, so the copy back needs the same one there.
	key, err := os.ReadFile(filepath.Clean(dataA) + ".pull-key")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Clean(dataB)+".pull-key", key, 0o600); err != nil {
		t.Fatal(err)
	}

	// And back, into a new data directory, with the config naming the embedded store.
	if out, err := run(t, dataB, "", "store", "copy", "--from", dsn); err != nil || !strings.Contains(out, "same rows") {
		t.Fatalf("store copy --from: %q, %v", out, err)
	}
	a, err := sqlite.Open(app.StorePath(dataA), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := sqlite.Open(app.StorePath(dataB), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if err := store.CompareStores(ctx, a, b); err != nil {
		t.Fatal(err)
	}
	if keysB := keyFiles(t, dataB); !maps.EqualFunc(keysA, keysB, bytes.Equal) {
		t.Fatalf("DKIM key files after the round trip: %d, want the %d of the source, byte for byte", len(keysB), len(keysA))
	}
	if uids, err := b.Search(ctx, inbox.ID, store.FieldSubject, "copies"); err != nil || len(uids) != 1 || uids[0] != 2 {
		t.Fatalf("search after the copy back: %v, %v", uids, err)
	}
	if out, err := run(t, dataB, "", "store", "copy"); err == nil {
		t.Fatalf("store copy without a location: %q", out)
	}
}

// keyFiles reads the DKIM key files of example.test in a data directory, by selector.
func keyFiles(t *testing.T, data string) map[string][]byte {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(data, "dkim", "example.test", "*.pem"))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]byte{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		out[strings.TrimSuffix(filepath.Base(f), ".pem")] = b
	}
	return out
}
