package cli

import (
	"bytes"
	"context"
	"errors"
	"os"
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
		{"", []string{"account", "quota", "alice@example.org"}, "storage 0 B of none (default)\tmessages 0 of none (default)"},
		{"", []string{"account", "quota", "alice@example.org", "2MiB", "100"}, "storage 0 B of 2.0 MiB\tmessages 0 of 100"},
		{"", []string{"account", "quota", "alice@example.org", "none"}, "storage 0 B of none\tmessages 0 of 100"},
		{"", []string{"account", "quota", "alice@example.org", "default", "default"}, "of none (default)\tmessages 0 of none (default)"},
		{"", []string{"account", "quota", "alice@example.org", "lots"}, ""},
		{"", []string{"account", "quota", "nobody@example.org"}, ""},
		{"new-secret-password\n", []string{"account", "passwd", "alice@example.org"}, "changed password"},
		{"", []string{"account", "limits", "alice@example.org"}, "hour-messages    0      default  0"},
		{"", []string{"account", "limits", "alice@example.org", "--hour-messages", "10", "--day-recipients", "0"}, "hour-messages    10     account  0"},
		{"", []string{"account", "limits", "--hour-recipients", "5", "alice@example.org"}, "hour-recipients  5      account  0"},
		{"", []string{"account", "limits", "alice@example.org"}, "day-recipients   0      account  0"},
		{"", []string{"account", "limits", "alice@example.org", "--hour-messages", "default"}, "hour-messages    0      default"},
		{"", []string{"account", "limits", "alice@example.org", "--hour-messages", "-3"}, ""},
		{"", []string{"account", "limits", "nobody@example.org"}, ""},
		{"", []string{"account", "admin", "alice@example.org"}, "admin off for alice@example.org"},
		{"", []string{"account", "admin", "alice@example.org", "on"}, "admin on for alice@example.org"},
		{"", []string{"account", "admin", "alice@example.org"}, "admin on for alice@example.org"},
		{"", []string{"account", "admin", "alice@example.org", "off"}, "admin off for alice@example.org"},
		{"", []string{"account", "admin", "alice@example.org", "maybe"}, ""},
		{"", []string{"account", "admin", "nobody@example.org", "on"}, ""},
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

// TestHelp: every command answers --help, -h and `petrel help NOUN [VERB]` with its usage on
// stdout and no error, without touching a data directory or a client config; a bare noun
// lists its subcommands.
func TestHelp(t *testing.T) {
	t.Setenv("HOME", t.TempDir()) // no client config: send and fetch must not need one for help
	t.Setenv("XDG_CONFIG_HOME", "")
	data := t.TempDir() + "/never-created"
	help := func(args ...string) string {
		t.Helper()
		var out, errOut bytes.Buffer
		err := Main(&Env{Ctx: context.Background(), DataDir: data, Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errOut}, args)
		if err != nil || errOut.Len() > 0 {
			t.Errorf("%v: err %v, stderr %q", args, err, errOut.String())
		}
		return out.String()
	}
	for _, c := range commands() {
		words := strings.Fields(c.name())
		for _, args := range [][]string{append(words, "--help"), append(words, "-h"), append([]string{"help"}, words...)} {
			out := help(args...)
			if want := "usage: petrel [--data DIR] [-c FILE] " + c.name(); !strings.HasPrefix(out, want) || !strings.Contains(out, c.help[1:]) {
				t.Errorf("%v: output does not start with %q and explain the command:\n%s", args, want, out)
			}
			if c.flags != nil && !strings.Contains(out, "Flags:") {
				t.Errorf("%v: no flags listed:\n%s", args, out)
			}
		}
	}
	for _, tc := range []struct {
		noun string
		args []string
	}{
		{"account", []string{"account"}}, {"account", []string{"account", "--help"}},
		{"domain", []string{"help", "domain"}}, {"alias", []string{"alias", "-h"}},
	} {
		out := help(tc.args...)
		if !strings.HasPrefix(out, "usage: petrel [--data DIR] [-c FILE] "+tc.noun+" <command>") ||
			!strings.Contains(out, "  "+tc.noun+" add ") || !strings.Contains(out, "  "+tc.noun+" list") {
			t.Errorf("%v: subcommands not listed:\n%s", tc.args, out)
		}
	}
	if out := help("domain"); !strings.Contains(out, "domain add DOMAIN") || !strings.Contains(out, "domain catchall") || strings.Contains(out, "account add") {
		t.Errorf("domain: not the subcommands of domain:\n%s", out)
	}
	for _, args := range [][]string{{}, {"help"}, {"--help"}} {
		if out := help(args...); !strings.Contains(out, "Global flags") || !strings.Contains(out, "alias add") {
			t.Errorf("%v: not the full usage:\n%s", args, out)
		}
	}
	// Mistakes stay mistakes.
	for _, args := range [][]string{{"help", "frobnicate"}, {"account", "frob"}, {"account", "frob", "--help"}} {
		if out, err := run(t, data, "", args...); !errors.Is(err, ErrUsage) || !strings.Contains(out, "unknown command") {
			t.Errorf("%v: err %v, output %q; want an unknown-command usage error", args, err, out)
		}
	}
	if _, err := os.Stat(data); !os.IsNotExist(err) {
		t.Errorf("help created the data directory (%v)", err)
	}
}

// TestMessages: what the operator reads says what is wrong and what to do, in their terms,
// never the store's internal wording.
func TestMessages(t *testing.T) {
	data, home := t.TempDir(), t.TempDir()
	t.Setenv("HOME", home)
	t.Setenv("XDG_CONFIG_HOME", "")
	steps := []struct {
		stdin string
		args  []string
		want  string // substring of the output (or of the error)
	}{
		{"", []string{"domain", "add", "example.org"}, "added domain"},
		{"", []string{"domain", "add", "example.org"}, "domain example.org already exists"},
		{"secret-password\n", []string{"account", "add", "alice@example.org"}, "added account"},
		{"secret-password\n", []string{"account", "add", "alice@example.org"}, "account alice@example.org already exists"},
		// Refused before the password is asked for (none is given here).
		{"", []string{"account", "add", "carol@nowhere.test"}, "domain nowhere.test is not hosted here; add it first with `petrel domain add nowhere.test`"},
		{"", []string{"account", "add", "alice@example.org"}, "account alice@example.org already exists"},
		{"", []string{"account", "pop3-delete", "alice@example.org", "shred"}, "the policy is delete, keep or archive, not \"shred\""},
		{"", []string{"send", "-t"}, "no client config at " + home + "/.config/petrel/client.toml: write one"},
		{"", []string{"fetch"}, "no client config at"},
		{"", []string{"alias", "add", "team@nowhere.test", "alice@example.org"}, "domain nowhere.test is not hosted here"},
		{"", []string{"alias", "add", "team@example.org", "alice@example.org"}, "added alias"},
		{"", []string{"alias", "add", "team@example.org", "alice@example.org"}, "alias team@example.org already exists"},
		{"secret-password\n", []string{"account", "add", "team@example.org"}, "team@example.org is an alias"},
		{"", []string{"alias", "add", "alice@example.org", "team@example.org"}, "alice@example.org is an account"},
		{"", []string{"account", "del", "bob@example.org"}, "there is no account bob@example.org"},
		{"", []string{"account", "passwd", "bob@example.org"}, "there is no account bob@example.org"},
		{"", []string{"alias", "del", "sales@example.org"}, "there is no alias sales@example.org"},
		{"", []string{"domain", "del", "example.org"}, "domain example.org still has accounts: alice@example.org; delete them first"},
		{"", []string{"domain", "del", "nowhere.test"}, "domain nowhere.test is not hosted here"},
		{"", []string{"domain", "catchall", "example.org", "team@example.org"}, "the catch-all must be an account, and team@example.org is none"},
		{"", []string{"domain", "catchall", "nowhere.test", "alice@example.org"}, "domain nowhere.test is not hosted here"},
	}
	for _, st := range steps {
		out, err := run(t, data, st.stdin, st.args...)
		if err != nil {
			out += err.Error()
		}
		if !strings.Contains(out, st.want) || strings.Contains(out, "store:") || strings.Contains(out, "usage: open") {
			t.Errorf("%v: %q; want %q and no store wording", st.args, out, st.want)
		}
	}
}

// TestAliasTargets: an alias whose target takes no mail is refused with the reason and the
// way out (--force), since mail to it would otherwise vanish silently.
func TestAliasTargets(t *testing.T) {
	data := t.TempDir()
	for _, args := range [][]string{{"domain", "add", "example.org"}, {"domain", "add", "catch.org"}, {"alias", "add", "--force", "list@example.org", "alice@example.org"}} {
		if out, err := run(t, data, "", args...); err != nil {
			t.Fatalf("%v: %v %s", args, err, out)
		}
	}
	if out, err := run(t, data, "secret-password\n", "account", "add", "bob@example.org"); err != nil {
		t.Fatalf("account add: %v %s", err, out)
	}
	if out, err := run(t, data, "", "domain", "catchall", "catch.org", "bob@example.org"); err != nil {
		t.Fatalf("catchall: %v %s", err, out)
	}
	for _, tc := range []struct {
		args []string
		want string // "" for success
	}{
		{[]string{"alias", "add", "a@example.org", "ghost@example.org"}, "ghost@example.org does not exist"},
		{[]string{"alias", "add", "a@example.org", "bob@example.org", "ghost@example.org"}, "--force"},
		{[]string{"alias", "add", "a@example.org", "bob+lists@example.org"}, ""},        // +tag of an account
		{[]string{"alias", "add", "f@example.org", "friend@remote.example"}, ""},        // forwarded elsewhere
		{[]string{"alias", "add", "g@example.org", "f@example.org"}, ""},                // an alias that forwards
		{[]string{"alias", "add", "b@example.org", "a@example.org"}, ""},                // another alias
		{[]string{"alias", "add", "c@example.org", "anyone@catch.org"}, ""},             // a catch-all takes it
		{[]string{"alias", "add", "d@example.org", "ghost@example.org", "--force"}, ""}, // forced, flag last
		{[]string{"alias", "add", "--forse", "e@example.org", "bob@example.org"}, "unknown flag --forse"},
	} {
		out, err := run(t, data, "", tc.args...)
		if tc.want == "" {
			if err != nil {
				t.Errorf("%v: %v %s", tc.args, err, out)
			}
			continue
		}
		if err == nil || !strings.Contains(out+err.Error(), tc.want) {
			t.Errorf("%v: err %v, output %q; want a refusal mentioning %q", tc.args, err, out, tc.want)
		}
	}
	out, err := run(t, data, "", "alias", "list")
	if err != nil || strings.Contains(out, "a@example.org\tghost") || !strings.Contains(out, "d@example.org\tghost@example.org") {
		t.Errorf("alias list after the refusals: %v\n%s", err, out)
	}
}
