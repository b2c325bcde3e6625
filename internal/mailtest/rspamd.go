package mailtest

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// RspamdBinary is rspamd's daemon (Debian package rspamd).
const RspamdBinary = "/usr/bin/rspamd"

// Rspamd is a private rspamd instance on loopback: a normal worker (HTTP protocol,
// /checkv2) and a proxy worker in milter mode that scans by itself. Its configuration is
// the least that recognises GTUBE (rspamd's core does, no module needed): no Lua modules,
// a three-line TLD list (compiling the full one takes minutes on a busy machine), DNS at
// the test's server.
type Rspamd struct {
	HTTP   string // host:port of the normal worker
	Milter string // host:port of the milter (proxy) worker

	cmd  *exec.Cmd
	done chan struct{}
	dir  string
	log  string
}

// StartRspamd starts rspamd with its DNS at dnsAddr; t.Cleanup stops it. As root it runs
// as the package's _rspamd user. Without rspamd the test skips, or fails under CI.
func StartRspamd(t testing.TB, dnsAddr string) *Rspamd {
	t.Helper()
	RequireBinary(t, RspamdBinary)
	// Not t.TempDir: its parents are private to root, and rspamd's workers run as _rspamd.
	dir, err := os.MkdirTemp("", "petrel-rspamd-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	ports := FreePorts(t, 2)
	r := &Rspamd{
		HTTP:   fmt.Sprintf("127.0.0.1:%d", ports[0]),
		Milter: fmt.Sprintf("127.0.0.1:%d", ports[1]),
		dir:    dir,
		log:    filepath.Join(dir, "rspamd.log"),
		done:   make(chan struct{}),
	}
	conf := fmt.Sprintf(`options {
    pidfile = "%[1]s/rspamd.pid";
    url_tld = "%[1]s/tld.dat";
    filters = "";
    dns { nameserver = ["%[2]s"]; timeout = 1s; retransmits = 1; }
}
logging { type = "file"; filename = "%[1]s/rspamd.log"; level = "info"; }
actions { reject = 15; add_header = 6; greylist = 4; }
worker "normal" { bind_socket = "%[3]s"; mime = true; count = 1; }
worker "rspamd_proxy" {
    bind_socket = "%[4]s";
    milter = yes;
    timeout = 120s;
    upstream "local" { default = yes; self_scan = yes; }
    count = 1;
}
`, dir, dnsAddr, r.HTTP, r.Milter)
	for name, content := range map[string]string{"rspamd.conf": conf, "tld.dat": "test\norg\ncom\nexample\n"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	args := []string{"-f", "-c", filepath.Join(dir, "rspamd.conf"),
		"--var=LOCAL_CONFDIR=" + dir, "--var=RUNDIR=" + dir, "--var=DBDIR=" + dir, "--var=LOGDIR=" + dir}
	if os.Getuid() == 0 {
		// rspamd refuses to run its workers as root.
		u, err := user.Lookup("_rspamd")
		if err != nil {
			t.Fatalf("rspamd as root needs the _rspamd user of the Debian package: %v", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		for _, p := range []string{dir, filepath.Join(dir, "rspamd.conf"), filepath.Join(dir, "tld.dat")} {
			if err := os.Chown(p, uid, gid); err != nil {
				t.Fatal(err)
			}
		}
		args = append(args, "-u", "_rspamd", "-g", "_rspamd")
	}
	r.cmd = exec.Command(RspamdBinary, args...)
	// Its own process group, so that the workers are stopped with the main process.
	r.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	out, err := os.Create(filepath.Join(dir, "stdout"))
	if err != nil {
		t.Fatal(err)
	}
	r.cmd.Stdout, r.cmd.Stderr = out, out
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { r.cmd.Wait(); out.Close(); close(r.done) }()
	t.Cleanup(r.Stop)
	// rspamd takes seconds to start, more on a loaded machine: wait for both workers.
	deadline := time.Now().Add(3 * time.Minute)
	for _, addr := range []string{r.HTTP, r.Milter} {
		for {
			c, err := net.DialTimeout("tcp", addr, time.Second)
			if err == nil {
				c.Close()
				break
			}
			select {
			case <-r.done:
				b, _ := os.ReadFile(r.log)
				t.Fatalf("rspamd exited at start: %s", tail(b))
			default:
			}
			if time.Now().After(deadline) {
				b, _ := os.ReadFile(r.log)
				t.Fatalf("rspamd does not listen on %s: %s", addr, tail(b))
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	return r
}

// Stop ends rspamd (SIGTERM to its process group, SIGKILL if it lingers) and waits for
// the main process.
func (r *Rspamd) Stop() {
	select {
	case <-r.done:
		return
	default:
	}
	pgid := r.cmd.Process.Pid
	syscall.Kill(-pgid, syscall.SIGCONT) // in case Pause stopped it
	syscall.Kill(-pgid, syscall.SIGTERM)
	select {
	case <-r.done:
	case <-time.After(20 * time.Second):
		syscall.Kill(-pgid, syscall.SIGKILL)
		<-r.done
	}
}

// Pause stops every rspamd process (SIGSTOP): connections are still accepted by the
// kernel, nothing answers. Resume undoes it.
func (r *Rspamd) Pause()  { syscall.Kill(-r.cmd.Process.Pid, syscall.SIGSTOP) }
func (r *Rspamd) Resume() { syscall.Kill(-r.cmd.Process.Pid, syscall.SIGCONT) }

func tail(b []byte) string {
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return string(b)
}
