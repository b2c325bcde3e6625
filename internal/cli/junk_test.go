package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestJunkCommands(t *testing.T) {
	data := t.TempDir()
	msgs := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(msgs, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	spam1 := write("spam/cur/1", "From: <x@win.example>\nSubject: You won\n\nClaim your lottery prize now!!!\n")
	write("spam/new/2", "From: <y@win.example>\nSubject: Winner\n\nYour prize of $1,000,000 is waiting\n")
	ham := write("ham.eml", "From: Anna <anna@example.org>\r\nSubject: dinner\r\n\r\nSee you on Friday.\r\n")
	steps := []struct {
		args []string
		want string // substring of the output; "" when the command must fail
	}{
		{[]string{"account", "add", "dev2@example.test"}, "added account"},
		{[]string{"junk", "stats", "dev2@example.test"}, "trained:     0 junk, 0 not junk\nthreshold:   0.90 (the default of [junk])"},
		{[]string{"junk", "train", "dev2@example.test", "--spam", filepath.Join(msgs, "spam")}, "2 messages taught as junk (0 of them known already)"},
		{[]string{"junk", "train", "dev2@example.test", "--spam", spam1}, "1 messages taught as junk (1 of them known already)"},
		{[]string{"junk", "train", "dev2@example.test", "--ham", ham, spam1}, "2 messages taught as not junk (0 of them known already)"},
		{[]string{"junk", "stats", "dev2@example.test"}, "trained:     1 junk, 2 not junk"},
		{[]string{"junk", "threshold", "dev2@example.test", "0.8"}, "\x00"},
		{[]string{"junk", "stats", "dev2@example.test"}, "threshold:   0.80 (the account's own)"},
		{[]string{"junk", "threshold", "dev2@example.test", "default"}, "\x00"},
		{[]string{"junk", "stats", "dev2@example.test"}, "0.90 (the default of [junk])"},
		{[]string{"junk", "threshold", "dev2@example.test", "1.5"}, ""},
		{[]string{"junk", "threshold", "dev2@example.test", "0"}, ""},
		{[]string{"junk", "train", "dev2@example.test", "--maybe", ham}, ""},
		{[]string{"junk", "train", "dev2@example.test", "--spam", filepath.Join(msgs, "missing")}, ""},
		{[]string{"junk", "stats", "nobody@example.test"}, ""},
	}
	for _, st := range steps {
		out, err := run(t, data, "secret-password\n", st.args...)
		switch {
		case st.want == "":
			if err == nil {
				t.Errorf("%v: succeeded, want failure; output %q", st.args, out)
			}
		case st.want == "\x00": // succeeds silently
			if err != nil || out != "" {
				t.Errorf("%v: output %q, err %v", st.args, out, err)
			}
		case err != nil || !strings.Contains(out, st.want):
			t.Errorf("%v: output %q, err %v; want %q", st.args, out, err, st.want)
		}
	}
}
