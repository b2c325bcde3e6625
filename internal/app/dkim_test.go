package app

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"

	"petrel/internal/config"
	"petrel/internal/mail/msgauth"
	"petrel/internal/mailtest"
	"petrel/internal/store/postgres"
)

// TestPostgresNodesDKIMKeys: on a PostgreSQL store the keys live in the database, sealed
// with the key file. A node whose data directory holds keys copied by hand (the way before)
// takes them into the store at start instead of making new ones, a second node signs with
// them without any file, and a node with another key file refuses to start, naming the file.
func TestPostgresNodesDKIMKeys(t *testing.T) {
	ctx := context.Background()
	dsn := mailtest.PostgresDSN(t)
	keyFile := filepath.Join(t.TempDir(), "pull.key")
	node := func(keyFile string) *config.Config {
		dir := t.TempDir()
		cfg := devConfig(dir)
		cfg.Dev = false
		cfg.Hostname = "mail.one.test"
		cfg.Domains = []string{"one.test"}
		cfg.TLS.Cert, cfg.TLS.Key = writeSelfSigned(t, dir, "mail.one.test")
		cfg.Store.Backend, cfg.Store.DSN = "postgres", dsn
		cfg.Pull.KeyFile = keyFile
		return cfg
	}
	start := func(cfg *config.Config) (string, error) {
		var out bytes.Buffer
		a, err := New(ctx, cfg, slog.New(slog.DiscardHandler), &out)
		if err != nil {
			return out.String(), err
		}
		startStop(t, a)
		return out.String(), nil
	}

	a := node(keyFile)
	copied, err := msgauth.GenerateKey("one.test", "copied", msgauth.Ed25519, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if err := DKIMKeys(a.Data).Add(copied); err != nil {
		t.Fatal(err)
	}
	if out, err := start(a); err != nil || strings.Contains(out, "created DKIM") {
		t.Fatalf("start of node A: %v\n%s", err, out)
	}

	b := node(keyFile)
	if out, err := start(b); err != nil || strings.Contains(out, "created DKIM") {
		t.Fatalf("start of node B: %v\n%s", err, out)
	}
	pg, err := postgres.Open(ctx, dsn, postgres.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer pg.Close()
	keys, err := OpenDKIMStore(b, pg, false)
	if err != nil {
		t.Fatal(err)
	}
	got, err := keys.SigningKeys(ctx, "one.test")
	if err != nil || len(got) != 1 || got[0].Selector != "copied" {
		t.Fatalf("keys of one.test in the store: %v, %v; want the copied file's", got, err)
	}
	if !got[0].Signer.Public().(ed25519.PublicKey).Equal(copied.Signer.Public()) {
		t.Fatal("the store's key is not the copied file's")
	}
	stored, err := pg.DKIMKeys(ctx, "one.test")
	if err != nil || len(stored) != 1 || bytes.Contains(stored[0].Private, []byte("PRIVATE KEY")) {
		t.Fatalf("the stored key is not sealed: %q, %v", stored, err)
	}

	c := node(filepath.Join(t.TempDir(), "other.key"))
	if out, err := start(c); err == nil || !strings.Contains(err.Error(), c.Pull.KeyFile+": every node needs the same [pull] key_file") {
		t.Fatalf("start of a node with another key file: %v\n%s", err, out)
	}
}
