package e2e

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// runPetrel runs the binary with args and an environment, expecting it to exit by itself
// within stopTimeout.
func runPetrel(t *testing.T, env []string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), stopTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, petrelBin, args...)
	cmd.Env = append(os.Environ(), env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("petrel %v did not exit within %v\nstderr:\n%s", args, stopTimeout, errb.String())
	}
	return cmd.ProcessState.ExitCode(), out.String(), errb.String()
}

// TestOneServerPerDataDir: a second `petrel serve` on the data directory of a running one
// is refused with a message naming the first, while the management commands keep working;
// once the first has stopped, the second starts.
func TestOneServerPerDataDir(t *testing.T) {
	t.Parallel()
	first := startInstance(t, nil)
	// Other ports, other certificate, same data.
	second := newInstance(t, options{"": {fmt.Sprintf("data = %q", first.data)}})

	code, stdout, stderr := runPetrel(t, nil, "-c", second.config, "serve")
	want := fmt.Sprintf("another petrel serve (pid %d) is already running with the data directory %s", first.cmd.Process.Pid, first.data)
	if code != 1 || !strings.Contains(stderr, want) || strings.Contains(stdout, "listening") {
		t.Errorf("second serve: exit %d, stdout %q, stderr %q; want 1 and %q", code, stdout, stderr, want)
	}
	if out := first.mustPetrel("", "domain", "list"); !strings.Contains(out, "example.test") {
		t.Errorf("domain list while the server runs: %q", out)
	}
	first.addAccount("lock@example.test", "lock-secret-1")

	first.signal(syscall.SIGTERM)
	if code := first.wait(stopTimeout); code != 0 {
		t.Fatalf("exit status %d after SIGTERM", code)
	}
	t.Cleanup(second.cleanup)
	second.start()
	if _, err := fetchAll(second.POP3S, "lock@example.test", "lock-secret-1", false); err != nil {
		t.Errorf("the second server does not serve the first one's data: %v", err)
	}
}

// TestFailedStart: a start that cannot bind a port says which and what to do, and changes
// nothing on disk; with the port free, the same command starts.
func TestFailedStart(t *testing.T) {
	t.Parallel()
	in := newInstance(t, nil)
	taken, err := net.Listen("tcp", in.POP3S)
	if err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr := runPetrel(t, nil, "-c", in.config, "serve")
	taken.Close()
	want := "cannot listen on " + in.POP3S + " for pop3s: the port is in use"
	if code != 1 || !strings.Contains(stderr, want) || !strings.Contains(stderr, "pop3.listen_tls") {
		t.Errorf("exit %d, stderr %q; want 1, %q and the config key", code, stderr, want)
	}
	if _, err := os.Stat(in.data); !os.IsNotExist(err) || strings.Contains(stdout, "listening") {
		t.Errorf("failed start created %s (%v) or listened:\n%s", in.data, err, stdout)
	}
	t.Cleanup(in.cleanup)
	in.start()
}

// TestDevStartFails: the development instance with a port taken prints no password and
// leaves no data directory, so the next, successful start is the first one (and prints the
// password the user needs). Not parallel: fixed ports.
func TestDevStartFails(t *testing.T) {
	taken, err := net.Listen("tcp", devPOP3S)
	if err != nil {
		missing(t, "port %s of the development instance is in use: %v", devPOP3S, err)
	}
	data := filepath.Join(t.TempDir(), "data")
	code, stdout, stderr := runPetrel(t, nil, "--data", data, "serve")
	taken.Close()
	if code != 1 || !strings.Contains(stderr, "cannot listen on "+devPOP3S+" for pop3s") || !strings.Contains(stderr, "development instance always uses") {
		t.Errorf("exit %d, stderr %q", code, stderr)
	}
	if devPasswordRe.MatchString(stdout) || strings.Contains(stdout, "created account") {
		t.Errorf("failed start printed the password:\n%s", stdout)
	}
	if _, err := os.Stat(data); !os.IsNotExist(err) {
		t.Errorf("failed start created %s (%v)", data, err)
	}
}

// TestHelp: every way of asking for help is answered on stdout with status 0, without a
// data directory or a client config; mistakes exit 2 with the usage on stderr.
func TestHelp(t *testing.T) {
	t.Parallel()
	home := t.TempDir()
	env := []string{"HOME=" + home, "XDG_CONFIG_HOME="}
	for _, args := range [][]string{
		{"--help"}, {"-h"}, {"help"}, {},
		{"account", "--help"}, {"domain"}, {"help", "alias"}, {"alias", "add", "--help"},
		{"send", "--help"}, {"help", "send"}, {"fetch", "-h"}, {"serve", "--help"}, {"help", "account", "pop3-delete"},
	} {
		code, stdout, stderr := runPetrel(t, env, append([]string{"--data", filepath.Join(home, "data")}, args...)...)
		if code != 0 || !strings.HasPrefix(stdout, "usage: petrel") || stderr != "" {
			t.Errorf("petrel %v: exit %d, stdout %q, stderr %q", args, code, stdout, stderr)
		}
	}
	for _, args := range [][]string{{"--bogus"}, {"frobnicate"}, {"account", "frob"}, {"help", "frobnicate"}} {
		code, stdout, stderr := runPetrel(t, env, args...)
		if code != 2 || stdout != "" || !strings.Contains(stderr, "usage: petrel") {
			t.Errorf("petrel %v: exit %d, stdout %q, stderr %q; want 2 and the usage on stderr", args, code, stdout, stderr)
		}
	}
	if _, err := os.Stat(filepath.Join(home, "data")); !os.IsNotExist(err) {
		t.Errorf("help created the data directory (%v)", err)
	}
}
