package e2e

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"petrel/internal/mailtest/dialog"
	"strings"
	"testing"
)

// readmeBlock is a fenced code block of README.md marked for this test.
type readmeBlock struct {
	start bool   // marked "readme-test: start": the build and serve commands
	lang  string // "sh" or "python"
	text  string
}

// readmeBlocks returns the blocks of the README marked with <!-- readme-test --> (or
// <!-- readme-test: start -->) on the line before their fence, in order.
func readmeBlocks(t *testing.T) []readmeBlock {
	t.Helper()
	root, err := moduleRoot()
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var blocks []readmeBlock
	var cur *readmeBlock
	marked, start := false, false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case cur != nil && line == "```":
			blocks = append(blocks, *cur)
			cur = nil
		case cur != nil:
			cur.text += line + "\n"
		case line == "<!-- readme-test -->" || line == "<!-- readme-test: start -->":
			marked, start = true, strings.HasSuffix(line, "start -->")
		case marked && strings.HasPrefix(line, "```"):
			cur = &readmeBlock{start: start, lang: strings.TrimPrefix(line, "```")}
			marked = false
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return blocks
}

// TestReadme runs the README's examples as written, in order, the way a new user on a fresh
// clone would: build, `./petrel serve` in one terminal, every marked block in another.
// Not parallel: the development instance has fixed ports.
func TestReadme(t *testing.T) {
	requireTools(t, "python3", "swaks", "curl", "bash")
	blocks := readmeBlocks(t)
	if len(blocks) < 4 || !blocks[0].start {
		t.Fatalf("README has %d marked blocks; want the build-and-serve block first and the examples after it", len(blocks))
	}
	// The build is done (TestMain built the binary); the test checks the README still says
	// to build it where the examples expect it, and starts it the way it says.
	for _, want := range []string{"go build -o petrel ./cmd/petrel", "\n./petrel serve"} {
		if !strings.Contains("\n"+blocks[0].text, want) {
			t.Fatalf("README's first block does not contain %q:\n%s", want, blocks[0].text)
		}
	}
	dir := t.TempDir()
	b, err := os.ReadFile(petrelBin)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "petrel"), string(b), 0o755)
	// The outbox and any default config live under HOME: keep them in the test's directory.
	env := []string{"HOME=" + dir, "XDG_CONFIG_HOME=", "XDG_DATA_HOME="}

	srv := exec.Command("./petrel", "serve")
	srv.Dir = dir
	srv.Env = append(os.Environ(), env...)
	stdout, stderr := &dialog.Log{}, &dialog.Log{}
	srv.Stdout, srv.Stderr = stdout, stderr
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { srv.Wait(); close(exited) }()
	t.Cleanup(func() {
		srv.Process.Kill() // by its PID
		<-exited
		if t.Failed() {
			t.Logf("./petrel serve stdout:\n%s\nstderr:\n%s", stdout, tail(stderr.String(), 30))
		}
	})
	if !waitFor(startTimeout, func() bool { return strings.Count(stdout.String(), " listening on ") == listeners }) {
		t.Fatalf("./petrel serve did not start listening:\n%s\n%s", stdout, tail(stderr.String(), 20))
	}

	// One script, as if typed in one terminal: an export in one block holds for the next.
	var script strings.Builder
	script.WriteString("set -euo pipefail\n")
	for _, b := range blocks[1:] {
		switch b.lang {
		case "sh":
			script.WriteString(b.text)
		case "python":
			script.WriteString("python3 - <<'README_PYTHON'\n" + b.text + "README_PYTHON\n")
		default:
			t.Fatalf("marked block in %q: the test runs sh and python only", b.lang)
		}
	}
	cmd := exec.Command("bash", "-c", script.String())
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("README examples failed: %v\n%s\nscript:\n%s", err, tail(string(out), 60), script.String())
	}
	// What the examples claim to do, done: mail read over POP3 (curl, python), fetched into
	// the archive, and sent from the outbox.
	for _, want := range []string{"Return-Path: <someone@example.net>", "dev: 4 on server", "0 still queued"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("README examples' output lacks %q:\n%s", want, tail(string(out), 60))
		}
	}
	if msgs, _ := filepath.Glob(filepath.Join(dir, "Mail", "*", "*")); len(msgs) < 4 {
		t.Errorf("the fetch example archived %d messages in %s, want the 4 sent before it", len(msgs), filepath.Join(dir, "Mail"))
	}
}
