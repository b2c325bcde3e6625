// The CI smoke test of the comparison harness: compare.sh in --quick mode against Petrel
// alone (no Postfix or Dovecot, no root), so that the scenario files, the Petrel target, the
// load tool's every scenario, the profile flags of `petrel serve` and the table cannot rot.
package bench_test

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestCompareSmokePetrel(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the petrel binary")
	}
	for _, tool := range []string{"bash", "openssl", "go"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s not found: compare.sh needs it", tool)
		}
	}
	out := t.TempDir()
	// A bound against a hang, not a performance check: on a loaded 2-core machine the build
	// alone takes two minutes and the quick rounds as long again (it takes about one minute
	// when the machine is quiet); at a load average of 60 the run with its profiles took
	// more than 12 minutes.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "compare.sh", "--quick", "--profile", "--targets", "petrel",
		"--users", "5", "--out", out)
	// SIGTERM, not SIGKILL, on timeout: compare.sh's trap then stops the server it started.
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 20 * time.Second
	output, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("compare.sh: %v\n%s\n%s", err, output, readLogs(out))
	}

	var table struct {
		Rows []struct {
			Scenario string `json:"scenario"`
			Metric   string `json:"metric"`
			Targets  map[string]struct {
				Runs   []float64 `json:"runs"`
				Errors int64     `json:"errors"`
				NA     string    `json:"na"`
			} `json:"targets"`
		} `json:"rows"`
		Problems []string `json:"problems"`
	}
	b, err := os.ReadFile(filepath.Join(out, "results.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &table); err != nil {
		t.Fatal(err)
	}
	if len(table.Problems) > 0 {
		t.Errorf("problems: %q\n%s", table.Problems, readLogs(out))
	}
	// Every scenario Petrel can run has a figure without errors; the placeholders say n/a.
	seen := map[string]bool{}
	for _, r := range table.Rows {
		c := r.Targets["petrel"]
		seen[r.Scenario] = true
		// imap-search waits for the full-text index (issue 10).
		placeholder := r.Scenario == "imap-search"
		switch {
		case placeholder && c.NA == "":
			t.Errorf("%s %s: %+v, want n/a", r.Scenario, r.Metric, c)
		case !placeholder && (len(c.Runs) != 1 || c.Errors != 0 || c.Runs[0] <= 0):
			t.Errorf("%s %s: %+v, want one positive figure and no errors", r.Scenario, r.Metric, c)
		}
	}
	for _, sc := range []string{"smtp-in-c1", "smtp-in-c8", "smtp-in-c32", "submission", "smtp-100k",
		"pop3-retr", "pop3-dele", "idle-pop3", "imap-fetch", "outbound"} {
		if !seen[sc] {
			t.Errorf("scenario %s missing from the table", sc)
		}
	}

	// --profile: `petrel serve --cpuprofile --memprofile` wrote profiles that pprof read.
	for _, id := range []string{"smtp-in-c32", "pop3-retr"} {
		for _, ext := range []string{".cpu", ".mem"} {
			if fi, err := os.Stat(filepath.Join(out, "profiles", id+ext)); err != nil || fi.Size() == 0 {
				t.Errorf("profile %s%s: %v", id, ext, err)
			}
		}
	}
	md, err := os.ReadFile(filepath.Join(out, "results.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"| Inbound SMTP 2 KB, C=1 |", "#### pop3-retr", "flat%"} {
		if !strings.Contains(string(md), want) {
			t.Errorf("results.md lacks %q:\n%s", want, md)
		}
	}
}

// readLogs returns what compare.sh logged, for a failure message.
func readLogs(out string) string {
	var b strings.Builder
	files, _ := filepath.Glob(filepath.Join(out, "logs", "*.log"))
	for _, f := range files {
		data, _ := os.ReadFile(f)
		if len(data) > 4000 {
			data = data[len(data)-4000:]
		}
		b.WriteString("== " + f + "\n" + string(data) + "\n")
	}
	return b.String()
}
