package mailtest

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Postfix is a Postfix instance of the test with only a submission service on 127.0.0.1:
// STARTTLS required, SASL through the Dovecot instance's auth socket, and every accepted
// message delivered, one at a time, by a pipe transport into a directory (Dir/delivered/).
type Postfix struct {
	Dir       string
	Submit    string // host:port of the submission service
	CertFile  string
	Delivered string // directory the sink writes each delivered message to
}

// StartPostfix runs Postfix's master daemon in the foreground with a config in a temporary
// directory; t.Cleanup stops it (SIGTERM to its PID). It needs root (the master drops
// privileges to mail_owner).
func StartPostfix(t testing.TB, d *Dovecot) *Postfix {
	t.Helper()
	p, keyFile, sink := newPostfix(t, "petrel-postfix")
	dir, certFile := p.Dir, p.CertFile
	p.Submit = fmt.Sprintf("127.0.0.1:%d", FreePort(t))
	main := fmt.Sprintf(`
compatibility_level = 3.6
queue_directory = %[1]s/queue
data_directory = %[1]s/data
mail_owner = postfix
setgid_group = postdrop
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
myhostname = localhost.localdomain
mydestination =
mynetworks = 127.0.0.0/8
relay_domains =
default_transport = sink
local_transport = sink
sink_destination_concurrency_limit = 1
sink_destination_recipient_limit = 1
maillog_file = %[1]s/maillog
maillog_file_prefixes = %[1]s
smtpd_tls_cert_file = %[2]s
smtpd_tls_key_file = %[3]s
smtpd_sasl_type = dovecot
smtpd_sasl_path = %[4]s
smtpd_recipient_restrictions = permit_sasl_authenticated, reject
smtpd_relay_restrictions = permit_sasl_authenticated, reject
alias_maps =
alias_database =
`, dir, certFile, keyFile, d.AuthSocket)
	master := fmt.Sprintf(`
%[1]s inet n - n - - smtpd
  -o syslog_name=postfix/submission
  -o smtpd_tls_security_level=encrypt
  -o smtpd_sasl_auth_enable=yes
  -o smtpd_tls_auth_only=yes
  -o smtpd_recipient_restrictions=reject_non_fqdn_recipient,permit_sasl_authenticated,reject
%[3]ssink      unix  -       n       n       -       1       pipe
  user=nobody argv=%[2]s
`, p.Submit, sink, postfixServices)
	runPostfix(t, dir, main, master, p.Submit)
	return p
}

// newPostfix makes the directory of a private Postfix instance (removed by t.Cleanup): a
// self-signed certificate for localhost (p.CertFile and the key's file) and a sink script
// that writes each message a pipe transport hands it into p.Delivered, keeping the arrival
// order in the file names (a counter of the .eml files: the transport runs one delivery at
// a time). The sink writes a hidden file and renames it, so that a reader never sees a
// message half written. It skips t unless Postfix is installed and the test runs as root
// (the master drops privileges to mail_owner).
func newPostfix(t testing.TB, prefix string) (p *Postfix, keyFile, sink string) {
	t.Helper()
	RequireBinary(t, "/usr/sbin/postfix")
	if os.Getuid() != 0 {
		t.Skip("postfix needs root")
	}
	dir, err := os.MkdirTemp("", prefix)
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(dir, 0o755)
	t.Cleanup(func() { os.RemoveAll(dir) })
	p = &Postfix{Dir: dir, Delivered: filepath.Join(dir, "delivered")}
	if err := os.MkdirAll(p.Delivered, 0o777); err != nil {
		t.Fatal(err)
	}
	os.Chmod(p.Delivered, 0o777)
	p.CertFile, keyFile, _ = WriteKeyPair(t, dir, "localhost")
	sink = filepath.Join(dir, "sink.sh")
	script := fmt.Sprintf("#!/bin/sh\nset -e\nn=$(ls %[1]s | grep -c '\\.eml$' || true)\ncat > %[1]s/.incoming\nmv %[1]s/.incoming %[1]s/$(printf %%06d $n).eml\n", p.Delivered)
	if err := os.WriteFile(sink, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return p, keyFile, sink
}

// postfixServices are the master.cf lines every private instance has besides its listener
// and its sink transport.
const postfixServices = `pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
smtp      unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
`

// runPostfix writes main.cf and master.cf into dir/conf, runs Postfix's master daemon in
// the foreground until t's cleanup (SIGTERM to its PID; the master stops its children) and
// waits until addr accepts connections.
func runPostfix(t testing.TB, dir, main, master, addr string) {
	t.Helper()
	conf := filepath.Join(dir, "conf")
	os.MkdirAll(conf, 0o755)
	if err := os.WriteFile(filepath.Join(conf, "main.cf"), []byte(main), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(conf, "master.cf"), []byte(master), 0o644); err != nil {
		t.Fatal(err)
	}
	// `postfix -c DIR start` refuses a config directory that the system's main.cf does not
	// list in alternate_config_directories, so run the master daemon in the foreground
	// ourselves, after creating the queue directories `postfix start` would create.
	if err := makeQueue(dir); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("/usr/lib/postfix/sbin/master", "-c", conf, "-d")
	cmd.Env = append(os.Environ(), "MAIL_CONFIG="+conf)
	cmd.Dir = dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM) // master stops its children
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-exited
		}
		if t.Failed() {
			log, _ := os.ReadFile(filepath.Join(dir, "maillog"))
			t.Logf("postfix log:\n%s", log)
		}
	})
	WaitPort(t, addr)
}

// WaitPort waits until something accepts connections on addr.
func WaitPort(t testing.TB, addr string) {
	t.Helper()
	for deadline := time.Now().Add(15 * time.Second); ; {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("nothing listens on %s: %v", addr, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Messages waits until n messages were delivered and returns them in delivery order.
func (p *Postfix) Messages(t testing.TB, n int) []string {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		entries, _ := os.ReadDir(p.Delivered)
		var names []string
		for _, e := range entries {
			if strings.HasSuffix(e.Name(), ".eml") { // not the sink's .incoming
				names = append(names, e.Name())
			}
		}
		if len(names) >= n {
			sort.Strings(names)
			var out []string
			for _, name := range names {
				b, err := os.ReadFile(filepath.Join(p.Delivered, name))
				if err != nil {
					t.Fatal(err)
				}
				out = append(out, string(b))
			}
			return out
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(filepath.Join(p.Dir, "maillog"))
			t.Fatalf("%d of %d messages delivered\n%s", len(names), n, log)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// makeQueue creates the queue and data directories with the owners Postfix checks.
func makeQueue(dir string) error {
	pf, err := user.Lookup("postfix")
	if err != nil {
		return err
	}
	uid, _ := strconv.Atoi(pf.Uid)
	drop, err := user.LookupGroup("postdrop")
	if err != nil {
		return err
	}
	gid, _ := strconv.Atoi(drop.Gid)
	q := filepath.Join(dir, "queue")
	mk := func(path string, mode os.FileMode, u, g int) error {
		if err := os.MkdirAll(path, mode); err != nil {
			return err
		}
		if err := os.Chown(path, u, g); err != nil {
			return err
		}
		return os.Chmod(path, mode)
	}
	if err := mk(q, 0o755, 0, 0); err != nil {
		return err
	}
	if err := mk(filepath.Join(q, "pid"), 0o755, 0, 0); err != nil {
		return err
	}
	for _, sub := range []string{"active", "bounce", "corrupt", "defer", "deferred", "flush", "hold", "incoming", "private", "saved", "trace"} {
		if err := mk(filepath.Join(q, sub), 0o700, uid, -1); err != nil {
			return err
		}
	}
	if err := mk(filepath.Join(q, "maildrop"), 0o730, uid, gid); err != nil {
		return err
	}
	if err := mk(filepath.Join(q, "public"), 0o710, uid, gid); err != nil {
		return err
	}
	return mk(filepath.Join(dir, "data"), 0o700, uid, -1)
}
