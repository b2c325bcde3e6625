package cli

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"petrel/internal/config"
)

func runWith(t *testing.T, conf, data, stdin string, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	err := Main(&Env{Ctx: context.Background(), ConfigFile: conf, DataDir: data, Stdin: strings.NewReader(stdin), Stdout: &out, Stderr: &out}, args)
	return out.String(), err
}

// TestQuickstart: one command sets up config, domain, account, DKIM keys, unit and prints the
// DNS records; a second run changes nothing and says so; existing things are not overwritten.
func TestQuickstart(t *testing.T) {
	root := t.TempDir()
	conf := filepath.Join(root, "etc", "petrel.toml")
	data := filepath.Join(root, "data")
	unit := filepath.Join(root, "petrel.service")
	out, err := runWith(t, conf, data, "", "quickstart", "--unit", unit, "You@Example.ORG")
	if err != nil {
		t.Fatalf("quickstart: %v\n%s", err, out)
	}
	for _, want := range []string{"created account you@example.org with password ", "example.org.", "MX 10 mail.example.org.",
		"._domainkey.example.org.", "_dmarc.example.org.", "wrote " + unit} {
		if !strings.Contains(out, want) {
			t.Errorf("quickstart output lacks %q:\n%s", want, out)
		}
	}
	c, err := config.Load(conf)
	if err != nil || c.Hostname != "mail.example.org" || c.Data != data || len(c.Domains) != 1 || c.Domains[0] != "example.org" {
		t.Fatalf("config written: %+v, %v", c, err)
	}
	if b, err := os.ReadFile(unit); err != nil || !strings.Contains(string(b), "ExecStart=/usr/bin/petrel -c "+conf+" serve") ||
		!strings.Contains(string(b), "ReadWritePaths="+data) {
		t.Errorf("unit: %v\n%s", err, b)
	}
	if out, err := runWith(t, conf, "", "", "account", "list"); err != nil || !strings.Contains(out, "you@example.org") {
		t.Errorf("account list on the new instance: %v\n%s", err, out)
	}
	before, _ := os.ReadFile(conf)
	out, err = runWith(t, conf, data, "", "quickstart", "--unit", unit, "you@example.org")
	if err != nil || !strings.Contains(out, "nothing changed") || strings.Contains(out, "password") {
		t.Errorf("second quickstart: %v\n%s", err, out)
	}
	if after, _ := os.ReadFile(conf); !bytes.Equal(before, after) {
		t.Error("second quickstart changed the config")
	}
	// Another address on the same config, or a new config on a used data directory, is
	// refused.
	if out, err := runWith(t, conf, data, "", "quickstart", "--unit", "-", "other@example.net"); err == nil {
		t.Errorf("quickstart over another's config: %s", out)
	}
	if out, err := runWith(t, filepath.Join(root, "new.toml"), data, "", "quickstart", "--unit", "-", "other@example.net"); err == nil || !strings.Contains(out+err.Error(), "not empty") {
		t.Errorf("quickstart into a used data directory: %v %s", err, out)
	}
	if _, err := os.Stat(filepath.Join(root, "new.toml")); err == nil {
		t.Error("a refused quickstart wrote its config")
	}
	// With the password from stdin, it is not printed.
	out, err = runWith(t, filepath.Join(root, "b.toml"), filepath.Join(root, "b"), "a-good-password\n", "quickstart", "--unit", "-", "--password-stdin", "b@example.com")
	if err != nil || strings.Contains(out, "a-good-password") || !strings.Contains(out, "created account b@example.com\n") {
		t.Errorf("quickstart --password-stdin: %v\n%s", err, out)
	}
}
