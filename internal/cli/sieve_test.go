package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestSieveCommands(t *testing.T) {
	data := t.TempDir()
	file := filepath.Join(t.TempDir(), "vacation.sieve")
	if err := os.WriteFile(file, []byte("require \"vacation\";\nvacation \"Away\";\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		stdin string
		args  []string
		want  string // substring of the output; "" when the command must fail
	}{
		{"secret-password\n", []string{"account", "add", "ann@example.test"}, "added account"},
		{"", []string{"sieve", "list", "ann@example.test"}, "\x00"}, // empty, succeeds
		{"keep;\n", []string{"sieve", "put", "ann@example.test", "main"}, "stored script main"},
		{"", []string{"sieve", "put", "ann@example.test", "away", file}, "stored script away"},
		{"require \"fileinto\";\n\nfileinto;\n", []string{"sieve", "put", "ann@example.test", "bad"}, ""},
		{"", []string{"sieve", "put", "nobody@example.test", "x", file}, ""},
		{"", []string{"sieve", "activate", "ann@example.test", "away"}, "script away of ann@example.test is active now"},
		{"", []string{"sieve", "activate", "ann@example.test", "missing"}, ""},
		{"", []string{"sieve", "list", "ann@example.test"}, "away\t37 bytes\tactive\nmain\t6 bytes\n"},
		{"", []string{"sieve", "get", "ann@example.test", "away"}, "require \"vacation\";\nvacation \"Away\";\n"},
		{"", []string{"sieve", "get", "ann@example.test", "nope"}, ""},
		{"", []string{"sieve", "delete", "ann@example.test", "away"}, ""}, // active
		{"", []string{"sieve", "delete", "ann@example.test", "main"}, "deleted script main"},
		{"", []string{"sieve", "activate", "ann@example.test"}, "no script of ann@example.test is active"},
		{"", []string{"sieve", "delete", "ann@example.test", "away"}, "deleted script away"},
		{"", []string{"sieve", "get"}, ""},
	}
	for _, st := range steps {
		out, err := run(t, data, st.stdin, st.args...)
		switch {
		case st.want == "":
			if err == nil {
				t.Errorf("%v: succeeded, want failure; output %q", st.args, out)
			}
		case st.want == "\x00":
			if err != nil || out != "" {
				t.Errorf("%v: output %q, err %v; want nothing", st.args, out, err)
			}
		case err != nil || !strings.Contains(out, st.want):
			t.Errorf("%v: output %q, err %v; want %q", st.args, out, err, st.want)
		}
	}
	// The refusal names the line and the reason.
	_, err := run(t, data, "require \"fileinto\";\n\nfileinto;\n", "sieve", "put", "ann@example.test", "bad")
	if err == nil || !strings.Contains(err.Error(), "line 3: fileinto needs 1 argument after its tags, found 0") {
		t.Errorf("refusal: %v", err)
	}
}
