package clientconf

import (
	"strings"
	"testing"
)

func TestReplaceAccount(t *testing.T) {
	src := `# my client config
default_account = "home"

# work mail, set up by hand
[accounts.work]
user = "me@work.example"
password_command = "pass work"

[accounts.work.pop3]
host = "pop.work.example"
# a comment inside the account
archive = "~/Mail/work"

# home mail: keep this comment
[accounts.home]
user = "me@home.example"
password_command = "pass home"

[accounts.home.imap]
host = "imap.home.example"
archive = "~/Mail/home"
`
	block := "\n# written by configure\n[accounts.work]\nuser = \"new@work.example\"\npassword_command = \"pass new\"\n\n[accounts.work.imap]\nhost = \"imap.work.example\"\narchive = \"~/Mail/work\"\n"
	got, err := ReplaceAccount([]byte(src), "work", block)
	if err != nil {
		t.Fatal(err)
	}
	want := `# my client config
default_account = "home"

# written by configure
[accounts.work]
user = "new@work.example"
password_command = "pass new"

[accounts.work.imap]
host = "imap.work.example"
archive = "~/Mail/work"

# home mail: keep this comment
[accounts.home]
user = "me@home.example"
password_command = "pass home"

[accounts.home.imap]
host = "imap.home.example"
archive = "~/Mail/home"
`
	if string(got) != want {
		t.Fatalf("got:\n%s\nwant:\n%s", got, want)
	}
	c, err := Parse("client.toml", got)
	if err != nil {
		t.Fatal(err)
	}
	if w := c.Accounts["work"]; w == nil || w.User != "new@work.example" || w.POP3 != nil || w.IMAP == nil {
		t.Fatalf("work account after replace: %+v", w)
	}
	if h := c.Accounts["home"]; h == nil || h.User != "me@home.example" {
		t.Fatalf("home account after replace: %+v", h)
	}

	// The last account of a file, quoted table names, and an account that is not there.
	got, err = ReplaceAccount([]byte(src), "home", "[accounts.home]\nuser = \"x@home.example\"\npassword_command = \"p\"\n[accounts.home.pop3]\nhost = \"h\"\narchive = \"~/a\"")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(got), src[:strings.Index(src, "# home mail")]) || strings.Contains(string(got), "keep this comment") || !strings.HasSuffix(string(got), "archive = \"~/a\"\n") {
		t.Fatalf("replacing the last account:\n%s", got)
	}
	if _, err := ReplaceAccount([]byte(`[accounts."work".pop3]`+"\nhost = \"h\"\n"), "work", "[accounts.work]\n"); err != nil {
		t.Fatalf("quoted table name: %v", err)
	}
	if _, err := ReplaceAccount([]byte(src), "other", block); err == nil {
		t.Fatal("replacing a missing account succeeded")
	}
}
