package mailtest

import (
	"fmt"
	"strings"
	"testing"
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
	if o.Domain == "" {
		o.Domain = "example.test"
	}
	base, keyFile, sink := newPostfix(t, "petrel-postfix-mx")
	p := &PostfixMX{Postfix: *base, Domain: o.Domain}
	dir, certFile := p.Dir, p.CertFile
	p.SMTP = fmt.Sprintf("127.0.0.1:%d", FreePort(t))
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
%[3]ssink      unix  -       n       n       -       1       pipe
  flags=D user=nobody argv=%[2]s
`, p.SMTP, sink, postfixServices)
	runPostfix(t, dir, main, master, p.SMTP)
	return p
}
