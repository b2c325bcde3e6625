package imapd

import (
	"encoding/json"
	"os"
	"os/exec"
	"reflect"
	"strings"
	"testing"
)

// imaplibSortScript drives SORT and THREAD with Python's imaplib, whose sort() and thread()
// build the commands and parse the untagged replies themselves, and prints what it got as
// JSON.
const imaplibSortScript = `
import imaplib, json, ssl, sys
m = imaplib.IMAP4("127.0.0.1", int(sys.argv[1]), timeout=30)
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
m.starttls(ctx)
m.login("alice@example.org", "secret")
out = {"caps": [c for c in m.capabilities if c.startswith(("SORT", "THREAD", "ESORT"))]}
m.select("INBOX")
def data(r):
    typ, dat = r
    assert typ == "OK", r
    return [d.decode() for d in dat if d is not None]
out["sort_date"] = data(m.sort("(DATE)", "UTF-8", "ALL"))
out["sort_subject_from"] = data(m.sort("(SUBJECT REVERSE FROM)", "UTF-8", "ALL"))
out["uid_sort"] = data(m.uid("SORT", "(REVERSE DATE)", "UTF-8", "SUBJECT", "project"))
out["thread_refs"] = data(m.thread("REFERENCES", "UTF-8", "ALL"))
out["uid_thread_subject"] = data(m.uid("THREAD", "ORDEREDSUBJECT", "UTF-8", "ALL"))
typ, dat = m.sort("(DATE)", "KOI8-R", "ALL")
out["badcharset"] = [typ, dat[0].decode()]
m.logout()
print(json.dumps(out))
`

func TestImaplibSortThread(t *testing.T) {
	python, err := exec.LookPath("python3")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("python3 is needed for this test: %v", err)
		}
		t.Skipf("python3 not installed: %v", err)
	}
	e, d := sortEnv(t, nil)
	d.Close()
	_, port, _ := strings.Cut(e.addr, ":")
	output, err := exec.Command(python, "-c", imaplibSortScript, port).Output()
	if err != nil {
		stderr := ""
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = string(ee.Stderr)
		}
		t.Fatalf("imaplib: %v\n%s", err, stderr)
	}
	var got map[string]any
	if err := json.Unmarshal(output, &got); err != nil {
		t.Fatalf("%v: %s", err, output)
	}
	want := map[string]any{
		"caps":               []any{"SORT", "SORT=DISPLAY", "ESORT", "THREAD=ORDEREDSUBJECT", "THREAD=REFERENCES"},
		"sort_date":          []any{"1 3 2 4 5 6 7"},
		"sort_subject_from":  []any{"3 6 7 1 4 5 2"},
		"uid_sort":           []any{"6 5 3 2"},
		"thread_refs":        []any{"(1 (2 4)(5))(3 6)(7)"},
		"uid_thread_subject": []any{"(2 (3)(5)(6))(4 7)(8)"},
		"badcharset":         []any{"NO", "[BADCHARSET (UTF-8 US-ASCII)] Unsupported charset"},
	}
	if !reflect.DeepEqual(got, want) {
		g, _ := json.MarshalIndent(got, "", "  ")
		w, _ := json.MarshalIndent(want, "", "  ")
		t.Errorf("imaplib saw\n%s\nwant\n%s", g, w)
	}
}
