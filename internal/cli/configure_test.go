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
	if err := configure(e, conf, "dana@example.test", "", f); err != nil {
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
	err = configure(e, conf, "dana@example.test", "", f)
	var ee *ExitError
	if !errors.As(err, &ee) || ee.Code != ExitUsage || !strings.Contains(err.Error(), "already has an account") {
		t.Fatalf("second configure: %v", err)
	}
	if after, _ := os.ReadFile(conf); !bytes.Equal(before, after) {
		t.Fatal("an existing account was changed")
	}
	if err := configure(e, conf, "dana@example.test", "second", f); err != nil {
		t.Fatal(err)
	}
	if c, err := clientconf.Load(conf); err != nil || len(c.Accounts) != 2 {
		t.Fatalf("after a second account: %v %v", c, err)
	}
}
