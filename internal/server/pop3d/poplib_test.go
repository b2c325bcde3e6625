package pop3d

import (
	"encoding/json"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// poplibScript drives the server with Python's poplib, a real and strict client (it checks
// every reply and undoes the byte-stuffing itself), and prints what it saw as JSON. The
// second argument "stls" makes it upgrade with STLS first.
const poplibScript = `
import json, poplib, ssl, sys
p = poplib.POP3("127.0.0.1", int(sys.argv[1]), timeout=10)
out = {"welcome": p.getwelcome().decode()}
if sys.argv[2] == "stls":
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    p.stls(ctx)
out["capa"] = sorted(p.capa().keys())
p.user("alice@example.org")
p.pass_("secret")
out["stat"] = list(p.stat())
out["list"] = [l.decode() for l in p.list()[1]]
out["uidl"] = [l.decode() for l in p.uidl()[1]]
out["retr"] = [(b"\r\n".join(p.retr(i)[1]) + b"\r\n").decode() for i in (1, 2, 3)]
out["top"] = (b"\r\n".join(p.top(2, 1)[1]) + b"\r\n").decode()
out["dele"] = p.dele(2).decode()
out["quit"] = p.quit().decode()
print(json.dumps(out))
`

func TestPoplib(t *testing.T) {
	python, err := exec.LookPath("python3")
	if err != nil {
		t.Fatalf("python3 is needed for this test: %v", err)
	}
	for _, mode := range []string{"plain", "stls"} {
		t.Run(mode, func(t *testing.T) {
			cfg := Config{AllowPlaintextAuth: true}
			if mode == "stls" {
				cfg = Config{TLS: testTLSConfig(t)}
			}
			e := newEnv(t, cfg)
			_, port, _ := strings.Cut(e.addr, ":")
			cmd := exec.Command(python, "-c", poplibScript, port, mode)
			output, err := cmd.Output()
			if err != nil {
				stderr := ""
				if ee, ok := err.(*exec.ExitError); ok {
					stderr = string(ee.Stderr)
				}
				t.Fatalf("poplib: %v\n%s", err, stderr)
			}
			var got struct {
				Welcome, Top, Dele, Quit string
				Capa, List, Uidl, Retr   []string
				Stat                     []int
			}
			if err := json.Unmarshal(output, &got); err != nil {
				t.Fatalf("%v: %s", err, output)
			}
			want := []string{"AUTH-RESP-CODE", "IMPLEMENTATION", "PIPELINING", "RESP-CODES", "SASL", "TOP", "UIDL", "USER"}
			check := func(what string, got, want any) {
				t.Helper()
				if g, w := jsonString(got), jsonString(want); g != w {
					t.Errorf("%s:\n got %s\nwant %s", what, g, w)
				}
			}
			check("welcome", got.Welcome, "+OK test.example Petrel POP3 server ready")
			check("capa", got.Capa, want)
			check("stat", got.Stat, []int{3, 134})
			check("list", got.List, []string{"1 42", "2 58", "3 34"})
			check("uidl", got.Uidl, []string{"1 3ea.1", "2 3ea.2", "3 3ea.3"})
			check("retr", got.Retr, []string{msg1, msg2, msg3 + "\r\n"})
			check("top", got.Top, "Subject: two\r\nFrom: b@example.org\r\n\r\nline1\r\n")
			check("dele", got.Dele, "+OK message 2 deleted")
			check("quit", got.Quit, "+OK bye")

			e.waitUnlocked(t, e.alice.ID)
			if bodies, _ := e.st.contents(e.alice.ID, "INBOX"); !slices.Equal(bodies, []string{msg1, msg3}) {
				t.Errorf("INBOX after QUIT = %q", bodies)
			}
			e.waitLog(t, "tls="+strconv.FormatBool(mode == "stls"))
		})
	}
}

func jsonString(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}
