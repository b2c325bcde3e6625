package mailtest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// PostfixMX is a Postfix instance in the MX role: an smtpd on SMTP (127.0.0.1, a free
// port) without authentication, STARTTLS offered with a self-signed certificate, relaying
// for Domain to the listed Recipients only (others get 550 5.1.1), and delivering each
// accepted message, per recipient, into Delivered (with a Delivered-To header).
type PostfixMX struct {
	Postfix
	SMTP   string // host:port of the smtpd
	Domain string
}

// PostfixMXOptions are the choices a test makes.
type PostfixMXOptions struct {
	Domain     string   // default "example.test"
	Recipients []string // the accepted addresses
	SizeLimit  int      // message_size_limit (default Postfix's, 10 MB)
}

// StartPostfixMX runs the master daemon in the foreground with a private config; t.Cleanup
// stops it. It needs root, like StartPostfix.
func StartPostfixMX(t testing.TB, o PostfixMXOptions) *PostfixMX {
	t.Helper()
	RequireBinary(t, "/usr/sbin/postfix")
	if os.Getuid() != 0 {
		t.Skip("postfix needs root")
	}
	if o.Domain == "" {
		o.Domain = "example.test"
	}
	dir, err := os.MkdirTemp("", "petrel-postfix-mx")
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(dir, 0o755)
	t.Cleanup(func() { os.RemoveAll(dir) })
	p := &PostfixMX{Postfix: Postfix{Dir: dir, Delivered: filepath.Join(dir, "delivered")}, Domain: o.Domain}
	if err := os.MkdirAll(p.Delivered, 0o777); err != nil {
		t.Fatal(err)
	}
	os.Chmod(p.Delivered, 0o777)
	certFile, keyFile, _ := WriteKeyPair(t, dir, "localhost")
	p.CertFile = certFile
	p.SMTP = fmt.Sprintf("127.0.0.1:%d", FreePort(t))
	sink := filepath.Join(dir, "sink.sh")
	// Written under a temporary name and renamed, so that Messages never reads a message
	// still being written; named by the time (and the PID, for two at once), so that the
	// names sort in delivery order.
	script := fmt.Sprintf("#!/bin/sh\nn=$(date +%%s%%N)-$$\ncat > %[1]s/$n.incoming && mv %[1]s/$n.incoming %[1]s/$n.eml\n", p.Delivered)
	if err := os.WriteFile(sink, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	var table []string
	for _, r := range o.Recipients {
		table = append(table, r+"=ok")
	}
	size := ""
	if o.SizeLimit > 0 {
		size = fmt.Sprintf("message_size_limit = %d\n", o.SizeLimit)
	}
	// mynetworks excludes loopback, so the client is an outsider that may only reach
	// relay_domains, as on the Internet.
	main := fmt.Sprintf(`
compatibility_level = 3.6
queue_directory = %[1]s/queue
data_directory = %[1]s/data
mail_owner = postfix
setgid_group = postdrop
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
myhostname = mx.%[5]s
mydestination =
mynetworks = 192.0.2.0/24
relay_domains = %[5]s
relay_recipient_maps = inline:{%[6]s}
relay_transport = sink
default_transport = sink
local_transport = sink
sink_destination_recipient_limit = 1
sink_destination_concurrency_limit = 1
smtpd_tls_security_level = may
smtpd_tls_cert_file = %[2]s
smtpd_tls_key_file = %[3]s
smtpd_relay_restrictions = permit_auth_destination, reject
maillog_file = %[1]s/maillog
maillog_file_prefixes = %[1]s
alias_maps =
alias_database =
%[4]s`, dir, certFile, keyFile, size, o.Domain, strings.Join(table, ", "))
	master := fmt.Sprintf(`
%[1]s inet n - n - - smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
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
sink      unix  -       n       n       -       1       pipe
  flags=D user=nobody argv=%[2]s
`, p.SMTP, sink)
	conf := filepath.Join(dir, "conf")
	os.MkdirAll(conf, 0o755)
	if err := os.WriteFile(filepath.Join(conf, "main.cf"), []byte(main), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(conf, "master.cf"), []byte(master), 0o644); err != nil {
		t.Fatal(err)
	}
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
		cmd.Process.Signal(syscall.SIGTERM)
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
	WaitPort(t, p.SMTP)
	return p
}
