package cli

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"petrel/internal/mailtest"
)

func TestMain(m *testing.M) { os.Exit(mailtest.PostgresMain(m)) }

func TestMigrateEmbedded(t *testing.T) {
	data := t.TempDir()
	out, err := run(t, data, "", "migrate")
	if err != nil || !strings.HasPrefix(out, "schema version 0 -> ") {
		t.Fatalf("migrate of a new data directory: %q, %v", out, err)
	}
	out, err = run(t, data, "", "migrate")
	if err != nil || !strings.Contains(out, "up to date") {
		t.Fatalf("migrate again: %q, %v", out, err)
	}
}

// The management commands work on the store [store] names: here PostgreSQL, with the
// password (none is needed by the test cluster) in a password file.
func TestCommandsOnPostgres(t *testing.T) {
	dir := t.TempDir()
	conf := filepath.Join(dir, "petrel.toml")
	if err := os.WriteFile(filepath.Join(dir, "pgpass"), []byte("unused\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	src := "domains = [\"example.org\"]\n[tls]\ncert = \"c.pem\"\nkey = \"k.pem\"\n" +
		"[store]\nbackend = \"postgres\"\ndsn = \"" + mailtest.PostgresDSN(t) + "\"\npassword_file = \"pgpass\"\nmigrate = false\n"
	if err := os.WriteFile(conf, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	runConf := func(stdin string, args ...string) (string, error) {
		var out bytes.Buffer
		err := Main(&Env{Ctx: context.Background(), ConfigFile: conf, Stdin: strings.NewReader(stdin),
			Stdout: &out, Stderr: &out}, args)
		return out.String(), err
	}
	// migrate = false: nothing runs on a database whose schema is not current.
	if out, err := runConf("", "domain", "list"); err == nil || !strings.Contains(err.Error(), "petrel migrate") {
		t.Fatalf("domain list before migrate: %q, %v", out, err)
	}
	if out, err := runConf("", "migrate"); err != nil || !strings.HasPrefix(out, "schema version 0 -> ") {
		t.Fatalf("migrate: %q, %v", out, err)
	}
	if out, err := runConf("secret-password\n", "account", "add", "alice@example.org"); err != nil || !strings.Contains(out, "added account alice@example.org") {
		t.Fatalf("account add: %q, %v", out, err)
	}
	if out, err := runConf("", "account", "list"); err != nil || !strings.Contains(out, "alice@example.org") {
		t.Fatalf("account list: %q, %v", out, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "petrel-data", "petrel.db")); err == nil {
		t.Error("the embedded store was created although [store] names PostgreSQL")
	}
}
