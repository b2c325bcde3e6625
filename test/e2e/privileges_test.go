package e2e

import (
	"encoding/hex"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestDropPrivileges: started as root with `user = "nobody"`, the server binds its ports,
// hands the data directory to nobody, runs as nobody, and still stores and serves mail. A
// renewed certificate whose key only root may read is picked up by SIGHUP all the same (the
// key helper), and a management command run by a user who cannot use the data directory is
// told so in words.
func TestDropPrivileges(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("switching users needs root; this test runs as root in CI")
	}
	nobody, err := user.Lookup("nobody")
	if err != nil {
		t.Fatalf("no user nobody: %v", err)
	}
	in := newInstance(t, options{"": {`user = "nobody"`}})
	// nobody must be able to reach the data directory through the test's temporary dirs.
	for d := in.dir; d != "/" && d != os.TempDir(); d = filepath.Dir(d) {
		os.Chmod(d, 0o755)
	}
	t.Cleanup(in.cleanup)
	in.start()
	in.addAccount("alice@example.test", "secret-password")

	status, err := os.ReadFile("/proc/" + strconv.Itoa(in.cmd.Process.Pid) + "/status")
	if err != nil {
		t.Fatal(err)
	}
	var uidLine string
	for _, l := range strings.Split(string(status), "\n") {
		if strings.HasPrefix(l, "Uid:") {
			uidLine = l
		}
	}
	if f := strings.Fields(uidLine); len(f) < 4 || f[1] != nobody.Uid || f[2] != nobody.Uid || f[3] != nobody.Uid {
		t.Fatalf("server runs as %q, want uid %s everywhere", uidLine, nobody.Uid)
	}
	var st syscall.Stat_t
	if err := syscall.Stat(filepath.Join(in.data, "petrel.db"), &st); err != nil || strconv.Itoa(int(st.Uid)) != nobody.Uid {
		t.Fatalf("petrel.db owned by %d (%v), want nobody", st.Uid, err)
	}
	// example.test (in the config file) got its DKIM keys at start, as root, and nobody
	// owns them with the rest of the data directory: the server reads them to sign.
	keyFiles, _ := filepath.Glob(filepath.Join(in.data, "dkim", "example.test", "*.pem"))
	if len(keyFiles) != 2 {
		t.Fatalf("DKIM key files of example.test after the start: %v, want 2", keyFiles)
	}
	for _, f := range keyFiles {
		if err := syscall.Stat(f, &st); err != nil || strconv.Itoa(int(st.Uid)) != nobody.Uid || st.Mode&0o777 != 0o600 {
			t.Fatalf("%s: owner %d, mode %o (%v); want nobody, 0600", f, st.Uid, st.Mode&0o777, err)
		}
	}

	// Mail goes in and comes out: the store opens new connections as nobody.
	for i := 0; i < 3; i++ {
		s, _, err := dialSMTP(in.SMTP)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range []struct {
			code int
			cmd  string
		}{{250, "EHLO client.example"}, {250, "MAIL FROM:<bob@example.net>"}, {250, "RCPT TO:<alice@example.test>"}} {
			if _, err := s.expect(c.code, "%s", c.cmd); err != nil {
				t.Fatal(err)
			}
		}
		if rp, err := s.data(testMessage("drop"+strconv.Itoa(i), "bob@example.net", "alice@example.test")); err != nil || rp.Code != 250 {
			t.Fatalf("DATA: %v %v", rp, err)
		}
		s.Close()
	}
	p, _, err := dialPOP3S(in.POP3S)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if err := p.login("alice@example.test", "secret-password"); err != nil {
		t.Fatal(err)
	}
	// Each 250 came after the commit, so all three are there at once.
	if n, err := p.stat(); err != nil || n != 3 {
		t.Fatalf("STAT: %d messages, %v; want 3", n, err)
	}

	// Renew the certificate with a key readable by root only, as certbot leaves it, and
	// reload: the server (nobody) cannot read that file, the key helper can.
	newFP := ca.leaf(t, in.certFile, in.keyFile)
	if fi, err := os.Stat(in.keyFile); err != nil || fi.Mode().Perm() != 0o600 || fi.Sys().(*syscall.Stat_t).Uid != 0 {
		t.Fatalf("key file is not root-only: %v %v", fi.Mode(), err)
	}
	in.signal(syscall.SIGHUP)
	want := hex.EncodeToString(newFP[:])
	if !waitFor(time.Minute, func() bool { return implicitTLSFingerprint(t, in.POP3S) == want }) {
		t.Fatalf("pop3s still presents the old certificate a minute after SIGHUP\n%s", tail(in.stderr.String(), 10))
	}
	if fp := starttlsFingerprint(t, in.Submission); fp != want {
		t.Errorf("submission presents %s after the reload, want %s", fp[:16], want[:16])
	}
	if strings.Contains(in.stderr.String(), "reload failed") {
		t.Errorf("a reload failed:\n%s", tail(in.stderr.String(), 10))
	}

	// Another unprivileged user cannot use nobody's data directory: the message says whose
	// it is and what to do, not SQLite's "unable to open database file".
	// The test binary's directory is root's; that user runs a copy it can reach.
	bin := filepath.Join(in.dir, "petrel")
	b, err := os.ReadFile(petrelBin)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, bin, string(b), 0o755)
	cmd := exec.Command(bin, "--data", in.data, "account", "list")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 1, Gid: 1}} // daemon
	out, err := cmd.CombinedOutput()
	if want := "cannot open the data directory " + in.data + ": permission denied; run as the user that owns it (nobody) or pass --data"; err == nil || !strings.Contains(string(out), want) {
		t.Errorf("account list as another user: %v\n%s\nwant %q", err, out, want)
	}
}
