package mailtest

import (
	"fmt"
	"net"
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

// Dovecot is a Dovecot instance of the test: POP3 (STLS and POP3S) and IMAP (STARTTLS and
// IMAPS) on 127.0.0.1, a passwd-file with one user, Maildir under the test's temporary
// directory, and an auth socket Postfix can use for SASL.
type Dovecot struct {
	Dir        string
	Conf       string // the dovecot.conf, for doveadm -c
	POP3Addr   string // STLS
	POP3SAddr  string // implicit TLS
	IMAPAddr   string // STARTTLS; "" if dovecot-imapd is not installed (see IMAPBinary)
	IMAPSAddr  string // implicit TLS
	CertFile   string
	AuthSocket string // path of the SASL socket for Postfix ("private/auth" style, absolute)
	User, Pass string
	Maildir    string
	uid, gid   int
	cmd        *exec.Cmd     // the running dovecot; nil when stopped
	done       chan struct{} // closed when cmd has exited
	out        SyncBuffer    // its output, over every start
}

// IMAPBinary is Dovecot's IMAP server (Debian package dovecot-imapd): StartDovecot serves IMAP
// only if it is installed; tests of IMAP call RequireBinary(t, IMAPBinary) first.
const IMAPBinary = "/usr/lib/dovecot/imap"

// RequireBinary skips the test when a system binary is missing, or fails it under CI
// (where .ci/run installs Dovecot and Postfix), so that CI never silently skips interop.
func RequireBinary(t testing.TB, path string) {
	t.Helper()
	if _, err := os.Stat(path); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s is required in CI: %v", path, err)
		}
		t.Skipf("%s not installed", path)
	}
}

// StartDovecot runs `dovecot -F -c CONF` in a temporary directory; t.Cleanup stops it.
func StartDovecot(t testing.TB) *Dovecot { t.Helper(); return startDovecot(t, "") }

// StartDovecotOAuth is StartDovecot with an oauth2 passdb as well: OAUTHBEARER and XOAUTH2
// logins are checked by token introspection (RFC 7662, POST) at introspectionURL, which must
// answer {"active": true, "username": USER} for a valid token.
func StartDovecotOAuth(t testing.TB, introspectionURL string) *Dovecot {
	t.Helper()
	return startDovecot(t, introspectionURL)
}

func startDovecot(t testing.TB, introspectionURL string) *Dovecot {
	t.Helper()
	RequireBinary(t, "/usr/sbin/dovecot")
	dir, err := os.MkdirTemp("", "petrel-dovecot")
	if err != nil {
		t.Fatal(err)
	}
	// Dovecot's unprivileged processes must reach the files: the test dir is world-readable.
	os.Chmod(dir, 0o755)
	t.Cleanup(func() { os.RemoveAll(dir) })
	d := &Dovecot{Dir: dir, User: "carol", Pass: "dovecot-secret", uid: os.Getuid(), gid: os.Getgid()}
	if d.uid == 0 {
		// Dovecot refuses mail access as root; use nobody and hand it the mail directory.
		if u, err := user.Lookup("nobody"); err == nil {
			d.uid, _ = strconv.Atoi(u.Uid)
			d.gid, _ = strconv.Atoi(u.Gid)
		}
	}
	certFile, keyFile, _ := WriteKeyPair(t, dir, "localhost")
	d.CertFile = certFile
	mailRoot := filepath.Join(dir, "mail")
	d.Maildir = filepath.Join(mailRoot, d.User)
	for _, sub := range []string{"tmp", "new", "cur"} {
		if err := os.MkdirAll(filepath.Join(d.Maildir, sub), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	d.chown(t, mailRoot)
	ports := FreePorts(t, 4)
	pop3, pop3s := ports[0], ports[1]
	d.POP3Addr, d.POP3SAddr = fmt.Sprintf("127.0.0.1:%d", pop3), fmt.Sprintf("127.0.0.1:%d", pop3s)
	protocols, imapService := "pop3", ""
	if _, err := os.Stat(IMAPBinary); err == nil {
		imap, imaps := ports[2], ports[3]
		d.IMAPAddr, d.IMAPSAddr = fmt.Sprintf("127.0.0.1:%d", imap), fmt.Sprintf("127.0.0.1:%d", imaps)
		protocols = "pop3 imap"
		imapService = fmt.Sprintf(`
service imap-login {
  inet_listener imap {
    address = 127.0.0.1
    port = %d
  }
  inet_listener imaps {
    address = 127.0.0.1
    port = %d
    ssl = yes
  }
}`, imap, imaps)
	}
	d.AuthSocket = filepath.Join(dir, "auth-client")
	passwd := fmt.Sprintf("%s:{PLAIN}%s:%d:%d::%s\n", d.User, d.Pass, d.uid, d.gid, d.Maildir)
	if err := os.WriteFile(filepath.Join(dir, "passwd"), []byte(passwd), 0o644); err != nil {
		t.Fatal(err)
	}
	oauthConf := ""
	if introspectionURL != "" {
		ext := filepath.Join(dir, "dovecot-oauth2.conf.ext")
		extConf := "introspection_mode = post\nintrospection_url = " + introspectionURL +
			"\nusername_attribute = username\nactive_attribute = active\nactive_value = true\nforce_introspection = yes\n"
		if err := os.WriteFile(ext, []byte(extConf), 0o644); err != nil {
			t.Fatal(err)
		}
		oauthConf = "auth_mechanisms = plain login scram-sha-256 apop oauthbearer xoauth2\npassdb {\n  driver = oauth2\n  mechanisms = xoauth2 oauthbearer\n  args = " + ext + "\n}\n"
	}
	me, _ := user.Current()
	conf := fmt.Sprintf(`
base_dir = %[1]s/run
state_dir = %[1]s/state
instance_name = petrel-test-%[2]d
protocols = %[10]s
listen = 127.0.0.1
default_internal_user = %[3]s
default_login_user = %[3]s
first_valid_uid = %[4]d
first_valid_gid = %[5]d
mail_location = maildir:%[1]s/mail/%%u
ssl = yes
ssl_cert = <%[6]s
ssl_key = <%[7]s
auth_mechanisms = plain login scram-sha-256 apop
disable_plaintext_auth = yes
# A refused login answers at once (default 2s): tests of wrong passwords stay fast.
auth_failure_delay = 0
log_path = %[1]s/dovecot.log
pop3_uidl_format = %%08Xu%%08Xv
passdb {
  driver = passwd-file
  args = scheme=PLAIN %[1]s/passwd
}
userdb {
  driver = passwd-file
  args = %[1]s/passwd
}
service pop3-login {
  inet_listener pop3 {
    address = 127.0.0.1
    port = %[8]d
  }
  inet_listener pop3s {
    address = 127.0.0.1
    port = %[9]d
    ssl = yes
  }
}
%[11]s
service auth {
  unix_listener %[1]s/auth-client {
    mode = 0666
  }
}
service anvil {
  chroot =
}
service stats {
  unix_listener stats-reader {
    mode = 0666
  }
  unix_listener stats-writer {
    mode = 0666
  }
}
`, dir, os.Getpid(), me.Username, min(d.uid, 100), min(d.gid, 100), certFile, keyFile, pop3, pop3s, protocols, imapService)
	conf += oauthConf
	// As root, Dovecot's internal and login processes should not run as root.
	if os.Getuid() == 0 {
		conf = strings.Replace(conf, "default_internal_user = root", "default_internal_user = dovecot", 1)
		conf = strings.Replace(conf, "default_login_user = root", "default_login_user = dovenull", 1)
	}
	confFile := filepath.Join(dir, "dovecot.conf")
	d.Conf = confFile
	if err := os.WriteFile(confFile, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		d.stop()
		if t.Failed() {
			log, _ := os.ReadFile(filepath.Join(dir, "dovecot.log"))
			t.Logf("dovecot output:\n%s\nlog:\n%s", d.out.String(), log)
		}
	})
	d.Start(t)
	return d
}

// Start starts Dovecot (again, after Stop: same ports, same mail) and waits until it accepts
// connections. StartDovecot calls it; t.Cleanup stops it.
func (d *Dovecot) Start(t testing.TB) {
	t.Helper()
	cmd := exec.Command("/usr/sbin/dovecot", "-F", "-c", d.Conf)
	cmd.Stdout, cmd.Stderr = &d.out, &d.out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	d.cmd, d.done = cmd, done
	for deadline := time.Now().Add(30 * time.Second); ; {
		err := dialAll(d.POP3SAddr, d.IMAPSAddr)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(filepath.Join(d.Dir, "dovecot.log"))
			t.Fatalf("dovecot did not start: %v\n%s\n%s", err, d.out.String(), log)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Stop stops Dovecot (as a server going away would) until Start; its ports refuse
// connections once Stop returns.
func (d *Dovecot) Stop(t testing.TB) {
	t.Helper()
	d.stop()
	for deadline := time.Now().Add(30 * time.Second); dialAll(d.POP3SAddr) == nil; {
		if time.Now().After(deadline) {
			t.Fatal("dovecot still accepts connections after its stop")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// stop ends the dovecot process group: SIGTERM, then SIGKILL after a while.
func (d *Dovecot) stop() {
	if d.cmd == nil {
		return
	}
	d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.done:
	case <-time.After(30 * time.Second):
		syscall.Kill(-d.cmd.Process.Pid, syscall.SIGKILL)
		<-d.done
	}
	d.cmd, d.done = nil, nil
}

// dialAll checks that the addresses (but "") accept connections.
func dialAll(addrs ...string) error {
	for _, addr := range addrs {
		if addr == "" {
			continue
		}
		c, err := net.Dial("tcp", addr)
		if err != nil {
			return err
		}
		c.Close()
	}
	return nil
}

// Doveadm runs `doveadm -c CONF ARGS...` (as root it acts as the mail user by itself) and
// returns its output; the test fails if it fails.
func (d *Dovecot) Doveadm(t testing.TB, args ...string) string {
	t.Helper()
	cmd := exec.Command("/usr/bin/doveadm", append([]string{"-c", d.Conf}, args...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("doveadm %v: %v\n%s", args, err, out)
	}
	return string(out)
}

func (d *Dovecot) chown(t testing.TB, root string) {
	if os.Getuid() != 0 {
		return
	}
	filepath.Walk(root, func(p string, _ os.FileInfo, err error) error {
		if err == nil {
			os.Lchown(p, d.uid, d.gid)
		}
		return nil
	})
}

// Deliver writes a message (CRLF or LF) into the user's Maildir the way an MDA does.
func (d *Dovecot) Deliver(t testing.TB, n int, body string) {
	t.Helper()
	name := fmt.Sprintf("%d.M%dP%d.test", time.Now().Unix(), n, os.Getpid())
	tmp := filepath.Join(d.Maildir, "tmp", name)
	if err := os.WriteFile(tmp, []byte(strings.ReplaceAll(body, "\r\n", "\n")), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(d.Maildir, "new", name)); err != nil {
		t.Fatal(err)
	}
	d.chown(t, d.Maildir)
}

// DeliverAll is Deliver for many messages (numbered from 0) with one ownership pass at the
// end: Deliver walks the whole Maildir each time when running as root.
func (d *Dovecot) DeliverAll(t testing.TB, bodies []string) {
	t.Helper()
	now := time.Now().Unix()
	for n, body := range bodies {
		name := fmt.Sprintf("%d.M%dP%d.all", now, n, os.Getpid())
		tmp := filepath.Join(d.Maildir, "tmp", name)
		if err := os.WriteFile(tmp, []byte(strings.ReplaceAll(body, "\r\n", "\n")), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, filepath.Join(d.Maildir, "new", name)); err != nil {
			t.Fatal(err)
		}
	}
	d.chown(t, d.Maildir)
}

// Count returns the number of messages in the user's Maildir (new and cur).
func (d *Dovecot) Count(t testing.TB) int {
	n := 0
	for _, sub := range []string{"new", "cur"} {
		entries, err := os.ReadDir(filepath.Join(d.Maildir, sub))
		if err != nil {
			t.Fatal(err)
		}
		n += len(entries)
	}
	return n
}
