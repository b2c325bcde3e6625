package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestBadConfig starts `petrel -c FILE serve` with broken config files: each must be refused
// before anything listens, with exit status 1 and an error naming the file, the line and the
// key, so the operator can go straight to the mistake.
func TestBadConfig(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name  string
		table string // where the bad line goes
		line  string // the bad line; "" for none
		drop  string // prefix of lines to remove from the config
		key   string // key the error must name ("" for a syntax error)
		noLn  bool   // the error cannot point at a line (the key is missing)
	}{
		{name: "syntax", table: "smtp", line: "max_recipients 5"},
		{name: "unterminated string", table: "", line: `hostname = "mail.example.test`},
		{name: "unknown key", table: "smtp", line: "max_recipents = 5", key: "smtp.max_recipents"},
		{name: "unknown table key", table: "pop3", line: `listen_ssl = ["127.0.0.1:1"]`, key: "pop3.listen_ssl"},
		{name: "idle timeout under 10m", table: "pop3", line: `idle_timeout = "1m"`, key: "pop3.idle_timeout"},
		{name: "bad enum", table: "smtp", line: `sender_policy = "everyone"`, key: "smtp.sender_policy"},
		{name: "bad duration", table: "smtp", line: `read_timeout = "5 minutes"`, key: "smtp.read_timeout"},
		{name: "wrong type", table: "smtp", line: `max_recipients = "many"`, key: "smtp.max_recipients"},
		{name: "zero recipients", table: "smtp", line: `max_recipients = 0`, key: "smtp.max_recipients"},
		{name: "listen without port", table: "pop3", line: `listen = ["127.0.0.1"]`, key: "pop3.listen"},
		{name: "no certificate", drop: "cert =", key: "tls.cert", noLn: true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			var opts options
			if c.line != "" {
				opts = options{c.table: {c.line}}
			}
			in := newInstance(t, opts)
			if c.drop != "" {
				src, err := os.ReadFile(in.config)
				if err != nil {
					t.Fatal(err)
				}
				var kept []string
				for _, l := range strings.Split(string(src), "\n") {
					if !strings.HasPrefix(l, c.drop) {
						kept = append(kept, l)
					}
				}
				writeFile(t, in.config, strings.Join(kept, "\n"), 0o600)
			}
			src, err := os.ReadFile(in.config)
			if err != nil {
				t.Fatal(err)
			}
			want := in.config
			if !c.noLn {
				want += fmt.Sprintf(":%d", lineNumber(t, string(src), c.line))
			}
			if c.key != "" {
				want += ": " + c.key + ":"
			}

			code, stdout, stderr := runServe(t, in.config)
			if code != 1 {
				t.Errorf("exit status %d, want 1", code)
			}
			if !strings.Contains(stderr, want) {
				t.Errorf("stderr does not contain %q:\n%s\nconfig:\n%s", want, stderr, src)
			}
			if strings.Contains(stdout, "listening") {
				t.Errorf("started listening with a bad config:\n%s", stdout)
			}
		})
	}

	t.Run("missing file", func(t *testing.T) {
		t.Parallel()
		path := filepath.Join(t.TempDir(), "nope.toml")
		code, _, stderr := runServe(t, path)
		if code != 1 || !strings.Contains(stderr, path) {
			t.Errorf("exit status %d, stderr %q; want 1 and the path", code, stderr)
		}
	})
}

// runServe runs `petrel -c config serve`, which is expected to fail quickly.
func runServe(t *testing.T, config string) (code int, stdout, stderr string) {
	t.Helper()
	return runPetrel(t, nil, "-c", config, "serve")
}

// lineNumber returns the 1-based line of src that equals line.
func lineNumber(t *testing.T, src, line string) int {
	t.Helper()
	for i, l := range strings.Split(src, "\n") {
		if l == line {
			return i + 1
		}
	}
	t.Fatalf("line %q not in config", line)
	return 0
}
