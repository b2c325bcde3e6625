package cli

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"petrel/internal/client/clientconf"
	"petrel/internal/client/discover"
)

// TestConfigure: --configure writes a valid account block from the domain's autoconfig and
// never changes an existing account.
func TestConfigure(t *testing.T) {
	web := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, `<clientConfig version="1.1"><emailProvider id="x">
<incomingServer type="imap"><hostname>127.0.0.1</hostname><port>1</port><socketType>SSL</socketType><username>%EMAILADDRESS%</username></incomingServer>
<outgoingServer type="smtp"><hostname>127.0.0.1</hostname><port>1</port><socketType>SSL</socketType><username>%EMAILADDRESS%</username></outgoingServer>
</emailProvider></clientConfig>`)
	}))
	defer web.Close()
	f := &discover.Finder{AutoconfigURLs: func(domain, address string) []string { return []string{web.URL + "/mail/config-v1.1.xml"} }}
	conf := filepath.Join(t.TempDir(), "petrel", "client.toml")
	var out bytes.Buffer
	e := &Env{Ctx: context.Background(), Stdin: strings.NewReader(""), Stdout: &out, Stderr: &out}
	if err := configure(e, configureRequest{confPath: conf, address: "dana@example.test", finder: f}); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	c, err := clientconf.Load(conf)
	if err != nil {
		t.Fatal(err)
	}
	a := c.Accounts["example"]
	if a == nil || a.IMAP == nil || a.SMTP == nil || a.User != "dana@example.test" {
		t.Fatalf("accounts %v", c.Accounts)
	}
	// The port answers nothing: the check's failure is a warning, not a stop.
	if !strings.Contains(out.String(), "warning: imap 127.0.0.1:1") {
		t.Fatalf("output %q", out.String())
	}
	if fi, _ := os.Stat(conf); fi.Mode().Perm() != 0o600 {
		t.Fatalf("config mode %v", fi.Mode().Perm())
	}
	before, _ := os.ReadFile(conf)
	// Nobody to ask (not a terminal) and no --replace: nothing changes.
	err = configure(e, configureRequest{confPath: conf, address: "dana@example.test", finder: f})
	var ee *ExitError
	if !errors.As(err, &ee) || ee.Code != ExitUsage || !strings.Contains(err.Error(), "already has an account") {
		t.Fatalf("second configure: %v", err)
	}
	if after, _ := os.ReadFile(conf); !bytes.Equal(before, after) {
		t.Fatal("an existing account was changed")
	}
	if err := configure(e, configureRequest{confPath: conf, address: "dana@example.test", name: "second", finder: f}); err != nil {
		t.Fatal(err)
	}
	if c, err := clientconf.Load(conf); err != nil || len(c.Accounts) != 2 {
		t.Fatalf("after a second account: %v %v", c, err)
	}

	// The user edits the first account by hand; then asks again and is asked.
	edited, _ := os.ReadFile(conf)
	edited = bytes.Replace(edited, []byte(`user = "dana@example.test"`), []byte(`user = "old-login"`), 1)
	if err := os.WriteFile(conf, edited, 0o600); err != nil {
		t.Fatal(err)
	}
	var questions []string
	answer := func(yes bool) func(string) (bool, bool, error) {
		return func(q string) (bool, bool, error) { questions = append(questions, q); return yes, true, nil }
	}
	if err := configure(e, configureRequest{confPath: conf, address: "dana@example.test", finder: f, confirm: answer(false)}); err != nil {
		t.Fatalf("answered no: %v", err)
	}
	if after, _ := os.ReadFile(conf); !bytes.Equal(edited, after) || len(questions) != 1 || !strings.Contains(questions[0], `Replace account "example"`) {
		t.Fatalf("answered no: questions %q, file changed %v", questions, !bytes.Equal(edited, after))
	}
	if err := configure(e, configureRequest{confPath: conf, address: "dana@example.test", finder: f, confirm: answer(true)}); err != nil {
		t.Fatalf("answered yes: %v", err)
	}
	c, err = clientconf.Load(conf)
	if err != nil || len(c.Accounts) != 2 || c.Accounts["example"].User != "dana@example.test" || c.Accounts["second"] == nil {
		t.Fatalf("after replacing: %v %v", c, err)
	}
	if bak, _ := os.ReadFile(conf + ".bak"); !bytes.Equal(bak, edited) {
		t.Fatalf("the old file was not kept as .bak:\n%s", bak)
	}
	if fi, _ := os.Stat(conf); fi.Mode().Perm() != 0o600 {
		t.Fatalf("config mode after replacing %v", fi.Mode().Perm())
	}

	// --replace: no question.
	if err := os.WriteFile(conf, edited, 0o600); err != nil {
		t.Fatal(err)
	}
	questions = nil
	if err := configure(e, configureRequest{confPath: conf, address: "dana@example.test", finder: f, replace: true, confirm: answer(false)}); err != nil {
		t.Fatalf("--replace: %v", err)
	}
	if c, err := clientconf.Load(conf); err != nil || c.Accounts["example"].User != "dana@example.test" || len(questions) != 0 {
		t.Fatalf("--replace: %v %v, questions %q", c, err, questions)
	}
}
