package dsn

import (
	"bytes"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// TestPythonReadsDSN has Python's email package, a second MIME implementation, take the
// DSN apart the way a bounce processor does. python3 is one of the real clients the tests
// need (README); without it the test skips locally and fails in CI.
func TestPythonReadsDSN(t *testing.T) {
	py, err := exec.LookPath("/usr/bin/python3")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("python3 is missing")
		}
		t.Skip("python3 is missing")
	}
	r := &Report{
		ReportingMTA: "mail.example.org", To: "alice@example.org", Date: now,
		Recipients: []Recipient{
			{Address: "bob@example.net", Action: Failed, Status: "5.1.1", RemoteMTA: "mx.example.net", Diagnostic: "550 5.1.1 no such user"},
			{Address: "carol@example.net", Action: Failed, Status: "5.2.2", Diagnostic: "552 5.2.2 mailbox full"},
		},
	}
	var dsn bytes.Buffer
	if err := Write(&dsn, r, strings.NewReader(original)); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(py, "testdata/pydsn.py")
	cmd.Stdin = &dsn
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	want := `content-type: multipart/report
report-type: delivery-status
part: text/plain
part: message/delivery-status
reporting-mta: dns; mail.example.org
recipient: rfc822; bob@example.net | failed | 5.1.1
recipient: rfc822; carol@example.net | failed | 5.2.2
part: message/rfc822
original-subject: Lunch
`
	if string(out) != want {
		t.Errorf("Python reads:\n%s\nwant:\n%s", out, want)
	}
}
