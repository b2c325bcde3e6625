package e2e

import (
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// TestDropPrivileges: started as root with `user = "nobody"`, the server binds its ports,
// hands the data directory to nobody, runs as nobody, and still stores and serves mail.
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
}
