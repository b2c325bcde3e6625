package e2e

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"petrel/internal/mailtest/dialog"
)

// TestFetchIdleRestartAndKill runs the built `petrel fetch --idle` (delete mode) against the
// built server and checks the two promises of push that a unit test cannot: the server is
// restarted under it and the tool reconnects and misses nothing; the tool is killed with
// SIGKILL in the middle of a download and a rerun archives the rest with no duplicate, and
// no message is ever gone from both the server and the archive.
func TestFetchIdleRestartAndKill(t *testing.T) {
	t.Parallel()
	in := startInstance(t, nil)
	const user, pass = "idle@example.test", "idle-secret-1"
	in.addAccount(user, pass)

	dir := t.TempDir()
	archive := filepath.Join(dir, "Mail")
	conf := filepath.Join(dir, "client.toml")
	_, imapsPort, _ := net.SplitHostPort(in.IMAPS)
	writeFile(t, conf, fmt.Sprintf(`[accounts.box]
user = %q
password_env = "PETREL_E2E_IDLE_PASSWORD"

[accounts.box.imap]
host = "127.0.0.1"
port = %s
tls = "tls"
ca_file = %q
archive = %q
mode = "delete"
`, user, imapsPort, ca.File, archive), 0o600)
	// The outbox and token directories of the tool stay inside the test's directory.
	env := append(os.Environ(), "PETREL_E2E_IDLE_PASSWORD="+pass, "XDG_DATA_HOME="+dir, "XDG_CONFIG_HOME="+dir)

	startFetch := func(args ...string) (*exec.Cmd, *dialog.Log) {
		cmd := exec.Command(petrelBin, append([]string{"fetch", "--config", conf}, args...)...)
		cmd.Env = env
		out := &dialog.Log{}
		cmd.Stdout, cmd.Stderr = out, out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		return cmd, out
	}
	msg := func(i int) []byte {
		// About 32 KB each, so that a download of a few hundred takes long enough to be cut.
		pad := strings.Repeat(fmt.Sprintf("line %04d of the padding that makes this message big enough.\r\n", i), 500)
		return append(testMessage(fmt.Sprintf("idle-%04d", i), "sender@remote.example", user), pad...)
	}

	idle, idleOut := startFetch("--idle", "--quiet")
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			idle.Process.Kill() // by the PID this test started
			idle.Wait()
		}
		if t.Failed() {
			t.Logf("petrel fetch --idle output:\n%s", idleOut)
		}
	})
	waitArchived := func(what string, n int) {
		t.Helper()
		if !waitFor(90*time.Second, func() bool { return len(archivedTokens(t, archive)) >= n }) {
			t.Fatalf("%s: %d messages archived, want %d", what, len(archivedTokens(t, archive)), n)
		}
	}

	// Push: each message is archived without another run.
	for i := range 2 {
		mustDeliver(t, in, []string{user}, msg(i))
		waitArchived("push", i+1)
	}

	// The server stops (gracefully) and starts again on the same ports: the tool reconnects
	// after its backoff, and a message delivered after the restart arrives.
	in.signal(syscall.SIGTERM)
	in.wait(30 * time.Second)
	in.start()
	mustDeliver(t, in, []string{user}, msg(2))
	waitArchived("after the server restart", 3)

	// The tool is killed while it idles; many messages arrive while it is down; started
	// again, it is killed in the middle of downloading them.
	kill := func() {
		idle.Process.Signal(syscall.SIGKILL)
		idle.Wait()
	}
	kill()
	const total = 300
	for i := 3; i < total; i++ {
		mustDeliver(t, in, []string{user}, msg(i))
	}
	idle, idleOut = startFetch("--idle", "--quiet")
	if !waitFor(90*time.Second, func() bool { return len(archivedTokens(t, archive)) >= 20 }) {
		t.Fatal("the download of the batch did not start")
	}
	kill()
	stopped = true
	atKill := archivedTokens(t, archive)
	if len(atKill) >= total {
		t.Fatalf("all %d messages were archived before the kill: the test proved nothing", total)
	}
	checkArchive := func(complete bool) {
		t.Helper()
		got := archivedTokens(t, archive)
		seen := map[string]bool{}
		for _, tok := range got {
			if seen[tok] {
				t.Errorf("%s archived twice", tok)
			}
			seen[tok] = true
		}
		onServer := map[string]bool{}
		for _, m := range mustFetchAll(t, in, user, pass, false) {
			onServer[tokenOf(m)] = true
		}
		for i := range total {
			tok := fmt.Sprintf("idle-%04d", i)
			if !seen[tok] && !onServer[tok] {
				t.Errorf("%s deleted on the server but not archived", tok)
			}
			if complete && (!seen[tok] || onServer[tok]) {
				t.Errorf("%s: archived %v, still on the server %v", tok, seen[tok], onServer[tok])
			}
		}
	}
	checkArchive(false)
	t.Logf("killed after %d of %d messages archived", len(atKill), total)

	// A normal run finishes the job.
	rerun, out := startFetch()
	if err := rerun.Wait(); err != nil {
		t.Fatalf("petrel fetch after the kill: %v\n%s", err, out)
	}
	checkArchive(true)
}

// archivedTokens lists the test tokens of the messages in a Maildir archive.
func archivedTokens(t *testing.T, maildir string) []string {
	t.Helper()
	var toks []string
	for _, sub := range []string{"new", "cur"} {
		entries, err := os.ReadDir(filepath.Join(maildir, sub))
		if err != nil {
			continue // not created yet
		}
		for _, e := range entries {
			b, err := os.ReadFile(filepath.Join(maildir, sub, e.Name()))
			if err != nil {
				continue // moved from new to cur meanwhile
			}
			if tok := tokenOf(bytes.ReplaceAll(b, []byte("\r\n"), []byte("\n"))); tok != "" {
				toks = append(toks, tok)
			} else {
				t.Errorf("archived file %s has no test token", e.Name())
			}
		}
	}
	return toks
}
