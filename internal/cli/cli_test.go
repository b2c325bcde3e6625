package cli

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
)

// run runs one command line against a data directory, with stdin, and returns its output.
func run(t *testing.T, data, stdin string, args ...string) (string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	err := Main(&Env{
		Ctx: context.Background(), DataDir: data,
		Stdin: strings.NewReader(stdin), Stdout: &out, Stderr: &errOut,
	}, args)
	return out.String() + errOut.String(), err
}

func TestManagementCommands(t *testing.T) {
	data := t.TempDir()
	steps := []struct {
		stdin string
		args  []string
		want  string // substring of the output; "" when the command must fail
	}{
		// The development instance's domain exists for management commands before any serve.
		{"", []string{"domain", "list"}, "example.test"},
		{"", []string{"domain", "add", "Example.ORG."}, "added domain example.org"},
		{"secret-password\n", []string{"account", "add", "Alice@Example.org"}, "added account alice@example.org"},
		{"secret-password\n", []string{"account", "add", "alice@example.org"}, ""},  // exists
		{"short\n", []string{"account", "add", "bob@example.org"}, ""},              // too short
		{"", []string{"account", "add", "bob@example.org"}, ""},                     // no password
		{"secret-password\n", []string{"account", "add", "carol@nowhere.test"}, ""}, // no such domain
		{"", []string{"alias", "add", "postmaster@example.org", "alice@example.org"}, "added alias"},
		{"", []string{"alias", "add", "alice@example.org", "postmaster@example.org"}, ""}, // an account's address
		{"", []string{"alias", "list"}, "postmaster@example.org\talice@example.org"},
		{"", []string{"domain", "catchall", "example.org", "alice@example.org"}, "catch-all of example.org is alice@example.org"},
		{"", []string{"domain", "list"}, "example.org\tcatch-all alice@example.org"},
		{"", []string{"account", "pop3-delete", "alice@example.org", "archive"}, "now archive"},
		{"", []string{"account", "pop3-delete", "alice@example.org", "shred"}, ""},
		{"", []string{"account", "list", "example.org"}, "alice@example.org\tpop3-delete=archive"},
		{"new-secret-password\n", []string{"account", "passwd", "alice@example.org"}, "changed password"},
		{"", []string{"domain", "del", "example.org"}, ""}, // accounts remain
		{"", []string{"account", "del", "alice@example.org"}, "deleted account"},
		{"", []string{"domain", "del", "example.org"}, "deleted domain"},
		{"", []string{"account", "add"}, ""},
		{"", []string{"frobnicate"}, ""},
	}
	for _, st := range steps {
		out, err := run(t, data, st.stdin, st.args...)
		if st.want == "" {
			if err == nil {
				t.Errorf("%v: succeeded, want failure; output %q", st.args, out)
			}
			continue
		}
		if err != nil || !strings.Contains(out, st.want) {
			t.Errorf("%v: output %q, err %v; want %q", st.args, out, err, st.want)
		}
	}
}

func TestUsageErrors(t *testing.T) {
	data := t.TempDir()
	for _, args := range [][]string{{"frobnicate"}, {"account", "add"}, {"domain", "add", "a", "b"}, {"serve", "extra"}} {
		if _, err := run(t, data, "", args...); !errors.Is(err, ErrUsage) {
			t.Errorf("%v: err %v, want a usage error", args, err)
		}
	}
	out, err := run(t, data, "", "help")
	if err != nil || !strings.Contains(out, "account add ADDRESS") || !strings.Contains(out, "fetch") {
		t.Errorf("help: %v\n%s", err, out)
	}
}
