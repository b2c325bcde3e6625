package config

import (
	"errors"
	"strings"
	"testing"
	"time"
)

const good = `
hostname = "mail.example.org"
domains = ["example.org"]

[tls]
cert = "/etc/petrel/cert.pem"
key = "/etc/petrel/key.pem"

[smtp]
max_recipients = 10
read_timeout = "2m"

[pop3]
expire = "NEVER"
login_delay = 60
`

func TestParseGood(t *testing.T) {
	c, err := Parse("petrel.toml", []byte(good))
	if err != nil {
		t.Fatal(err)
	}
	if c.SMTP.MaxRecipients != 10 || c.SMTP.ReadTimeout.Duration != 2*time.Minute {
		t.Errorf("smtp = %+v", c.SMTP)
	}
	// Unset keys keep their defaults.
	if c.SMTP.Listen[0] != "0.0.0.0:25" || c.POP3.IdleTimeout.Duration != 10*time.Minute {
		t.Errorf("defaults lost: %+v %+v", c.SMTP.Listen, c.POP3.IdleTimeout)
	}
	if c.IMAP.Listen[0] != "0.0.0.0:143" || c.IMAP.ListenTLS[0] != "0.0.0.0:993" || c.IMAP.IdleTimeout.Duration != 30*time.Minute ||
		c.IMAP.MaxNotifyPending != 1000 {
		t.Errorf("imap defaults: %+v", c.IMAP)
	}
	if h := c.HTTP; h.Listen[0] != "0.0.0.0:80" || h.ListenTLS[0] != "0.0.0.0:443" || !h.RedirectHTTPS ||
		h.HSTSMaxAge != 31536000 || h.ReadHeaderTimeout.Duration != 10*time.Second || h.MTASTSMode != "testing" {
		t.Errorf("http defaults: %+v", h)
	}
	if c.POP3.Expire != "NEVER" || c.POP3.LoginDelay != 60 {
		t.Errorf("pop3 = %+v", c.POP3)
	}
	if c.Limits.LoginTimeout.Duration != 3*time.Minute || c.Limits.LoginIdleTimeout.Duration != time.Minute ||
		c.SMTP.DataMinRate != 500 || c.SMTP.DataTimeout.Duration != 5*time.Minute {
		t.Errorf("slow-client defaults: %+v %+v", c.Limits, c.SMTP)
	}
	if o := c.Outbound; !o.Enabled || o.Port != 25 || !o.DANE || !o.MTASTS || !o.DKIMSign || o.RetryFirst.Duration != 5*time.Minute ||
		o.Expire.Duration != 120*time.Hour || o.DelayWarning.Duration != 0 || o.Workers != 32 || o.PerDomain != 4 {
		t.Errorf("outbound defaults: %+v", o)
	}
	c, err = Parse("petrel.toml", []byte(good+"\n[outbound]\nresolver = \"127.0.0.1:5353\"\nport = 2525\nsmart_host = \"relay.example:587\"\ndelay_warning = \"4h\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	if o := c.Outbound; o.Resolver != "127.0.0.1:5353" || o.Port != 2525 || o.SmartHost != "relay.example:587" || o.DelayWarning.Duration != 4*time.Hour {
		t.Errorf("outbound = %+v", o)
	}
	c, err = Parse("petrel.toml", []byte(good+"\n[imap]\nmax_notify_pending = 50\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.IMAP.MaxNotifyPending != 50 {
		t.Errorf("imap.max_notify_pending = %d, want 50", c.IMAP.MaxNotifyPending)
	}
	c, err = Parse("petrel.toml", []byte(good+"\n[limits]\nlogin_timeout = \"30s\"\nlogin_idle_timeout = \"10s\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Limits.LoginTimeout.Duration != 30*time.Second || c.Limits.LoginIdleTimeout.Duration != 10*time.Second {
		t.Errorf("limits = %+v", c.Limits)
	}
}

func TestDoor(t *testing.T) {
	c := Dev()
	if d := c.Door; !d.Enabled || !d.HELO || !d.RDNS || d.Greylist.Enabled || len(d.DNSBL) != 0 || len(d.Milter) != 0 || d.Rspamd.URL != "" {
		t.Errorf("door defaults: %+v", d)
	}
	c, err := Parse("petrel.toml", []byte(good+`
[door]
rdns = false
junk_score = 4
[[door.dnsbl]]
zone = "zen.spamhaus.org"
weight = 10
codes = ["127.0.0.2"]
[[door.dnsbl]]
zone = "list.dnswl.org"
weight = -5
action = "pass"
[door.greylist]
enabled = true
pass_networks = ["192.0.2.0/24", "2001:db8::1"]
[[door.milter]]
address = "inet:127.0.0.1:11332"
fail = "closed"
[[door.milter]]
address = "unix:/run/clamav/milter.sock"
[door.rspamd]
url = "http://127.0.0.1:11333"
`))
	if err != nil {
		t.Fatal(err)
	}
	if f := c.SubmissionFilter; f.Spam != "reject" || len(f.Milter) != 0 || f.Rspamd.URL != "" {
		t.Errorf("default [submission_filter] %+v, want no filters and spam = reject", f)
	}
	d := c.Door
	if d.RDNS || !d.HELO || d.JunkScore != 4 || d.RejectScore != 10 || len(d.DNSBL) != 2 || *d.DNSBL[0].Weight != 10 ||
		d.DNSBL[1].Action != "pass" || !d.Greylist.Enabled || d.Greylist.MinDelay.Duration != 5*time.Minute ||
		len(d.Milter) != 2 || d.Milter[0].Fail != "closed" || d.Rspamd.URL != "http://127.0.0.1:11333" {
		t.Errorf("parsed %+v", d)
	}
	for _, tc := range [][3]string{{"inet:127.0.0.1:11332", "tcp", "127.0.0.1:11332"}, {"inet6:[::1]:11332", "tcp", "[::1]:11332"},
		{"unix:/run/m.sock", "unix", "/run/m.sock"}, {"local:/run/m.sock", "unix", "/run/m.sock"}} {
		if n, a, err := MilterAddress(tc[0]); err != nil || n != tc[1] || a != tc[2] {
			t.Errorf("MilterAddress(%s) = %s %s %v", tc[0], n, a, err)
		}
	}
}

// TestDNSSection: [dns] resolver is what [mail_auth] and [outbound] use unless they name their
// own (as configs written before [dns] do).
func TestDNSSection(t *testing.T) {
	for _, tc := range []struct {
		extra              string
		mailAuth, outbound string
		timeout            time.Duration
	}{
		{"", "", "", 0},
		{"\n[dns]\nresolver = \"127.0.0.1:5353\"\ntimeout = \"2s\"\n", "127.0.0.1:5353", "127.0.0.1:5353", 2 * time.Second},
		{"\n[dns]\nresolver = \"127.0.0.1:5353\"\n[mail_auth]\nresolver = \"127.0.0.2:53\"\n", "127.0.0.2:53", "127.0.0.1:5353", 0},
		{"\n[dns]\nresolver = \"127.0.0.1:5353\"\n[outbound]\nresolver = \"127.0.0.3:53\"\n", "127.0.0.1:5353", "127.0.0.3:53", 0},
		{"\n[mail_auth]\nresolver = \"127.0.0.2:53\"\n[outbound]\nresolver = \"127.0.0.3:53\"\n", "127.0.0.2:53", "127.0.0.3:53", 0},
	} {
		c, err := Parse("petrel.toml", []byte(good+tc.extra))
		if err != nil {
			t.Errorf("%q: %v", tc.extra, err)
			continue
		}
		if c.MailAuthResolver() != tc.mailAuth || c.OutboundResolver() != tc.outbound || c.DNS.Timeout.Duration != tc.timeout {
			t.Errorf("%q: mail_auth %q, outbound %q, timeout %v; want %q, %q, %v", tc.extra,
				c.MailAuthResolver(), c.OutboundResolver(), c.DNS.Timeout.Duration, tc.mailAuth, tc.outbound, tc.timeout)
		}
	}
	for extra, want := range map[string]string{
		"\n[dns]\nresolver = \"nowhere\"\n": "dns.resolver: \"nowhere\" is not host:port",
		"\n[dns]\ntimeout = \"-1s\"\n":      "dns.timeout: must not be negative",
	} {
		if _, err := Parse("petrel.toml", []byte(good+extra)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want %q", extra, err, want)
		}
	}
}

func TestMailAuthAndSending(t *testing.T) {
	c, err := Parse("petrel.toml", []byte(good))
	if err != nil {
		t.Fatal(err)
	}
	if !c.MailAuth.Verify || !c.MailAuth.DeferTempError || c.MailAuth.Resolver != "" || c.MailAuth.DNSTimeout.Duration != 20*time.Second {
		t.Errorf("mail_auth defaults: %+v", c.MailAuth)
	}
	if c.Sending != (Sending{Policy: "soft"}) || c.Limits.MaxConnectionRatePerIP != 0 {
		t.Errorf("sending defaults: %+v, rate %d", c.Sending, c.Limits.MaxConnectionRatePerIP)
	}
	c, err = Parse("petrel.toml", []byte(good+"\n[mail_auth]\nverify = false\nresolver = \"127.0.0.1:53\"\n[sending]\nhour_messages = 10\nday_recipients = 500\npolicy = \"hard\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.MailAuth.Verify || c.MailAuth.Resolver != "127.0.0.1:53" || c.Sending.HourMessages != 10 || c.Sending.DayRecipients != 500 ||
		c.Sending.Policy != "hard" {
		t.Errorf("parsed %+v %+v", c.MailAuth, c.Sending)
	}
	if Dev().MailAuth.DeferTempError {
		t.Error("the development instance defers mail when DNS fails")
	}
	if j := Default().Junk; !j.Enabled || j.Threshold != 0.9 {
		t.Errorf("junk defaults: %+v", j)
	}
	c, err = Parse("petrel.toml", []byte(good+"\n[junk]\nenabled = false\nthreshold = 0.75\n"))
	if err != nil || c.Junk.Enabled || c.Junk.Threshold != 0.75 {
		t.Errorf("[junk] parsed as %+v, %v", c.Junk, err)
	}
}

func TestParseErrorsNameFileLineKey(t *testing.T) {
	for _, tc := range []struct {
		name, src string
		line      int
		want      string
	}{
		{"syntax", "hostname = \"x\"\n[smtp\n", 3, "petrel.toml:3"},
		{"unknown key", good + "\n[pop3x]\nfoo = 1\n", 17, "pop3x"},
		{"misspelt key", strings.Replace(good, "max_recipients", "max_recipient", 1), 10, "smtp.max_recipient: unknown key"},
		{"bad value", strings.Replace(good, "max_recipients = 10", "max_recipients = 0", 1), 10, "smtp.max_recipients: must be at least 1"},
		{"bad duration", strings.Replace(good, `"2m"`, `"soon"`, 1), 11, "smtp.read_timeout: not a duration"},
		{"wrong type", strings.Replace(good, "max_recipients = 10", `max_recipients = "many"`, 1), 10, "smtp.max_recipients: incompatible types"},
		{"idle below RFC", good + "idle_timeout = \"1m\"\n", 16, "pop3.idle_timeout"},
		{"bad expire", strings.Replace(good, `"NEVER"`, `"sometimes"`, 1), 14, "pop3.expire"},
		{"bad sending policy", good + "\n[sending]\npolicy = \"strict\"\n", 18, "sending.policy: must be \"soft\" or \"hard\""},
		{"no data rate", strings.Replace(good, `read_timeout = "2m"`, "read_timeout = \"2m\"\ndata_min_rate = 0", 1), 12, "smtp.data_min_rate: must be at least 1"},
		{"zero login timeout", good + "\n[limits]\nlogin_timeout = \"0s\"\n", 18, "limits.login_timeout: must be positive"},
		{"bad login idle", good + "\n[limits]\nlogin_idle_timeout = \"-1s\"\n", 18, "limits.login_idle_timeout: must be positive"},
		{"imap idle below RFC", good + "\n[imap]\nidle_timeout = \"29m\"\n", 18, "imap.idle_timeout: must be at least 30m"},
		{"imap notify bound", good + "\n[imap]\nmax_notify_pending = 0\n", 18, "imap.max_notify_pending: must be at least 1"},
		{"imap command too short", good + "\n[imap]\nmax_command_bytes = 1000\n", 18, "imap.max_command_bytes"},
		{"http bad network", good + "\n[http]\nmetrics_allow = [\"10.0.0.0/8\", \"nowhere\"]\n", 18, "http.metrics_allow: \"nowhere\""},
		{"http bad sts mode", good + "\n[http]\nmta_sts_mode = \"strict\"\n", 18, "http.mta_sts_mode"},
		{"http sts max_age", good + "\n[http]\nmta_sts_max_age = 40000000\n", 18, "RFC 8461"},
		{"http small header", good + "\n[http]\nmax_header_bytes = 100\n", 18, "http.max_header_bytes"},
		{"http timeout", good + "\n[http]\nidle_timeout = \"0s\"\n", 18, "http.idle_timeout: must be positive"},
		{"no tls", "hostname = \"x\"\n", 0, "tls.cert"},
		{"tls and acme", good + "\n[acme]\nenabled = true\n", 6, "not both"},
		{"acme challenge", "hostname = \"x\"\n[acme]\nenabled = true\nchallenge = \"dns-01\"\n", 4, "acme.challenge"},
		{"acme contact", "hostname = \"x\"\n[acme]\nenabled = true\ncontact = \"me\"\n", 4, "acme.contact"},
		{"junk threshold", good + "\n[junk]\nthreshold = 1.5\n", 18, "junk.threshold"},
		{"bad resolver", good + "\n[mail_auth]\nresolver = \"127.0.0.1\"\n", 18, "mail_auth.resolver"},
		{"negative limit", good + "\n[sending]\nhour_messages = -1\n", 18, "sending.hour_messages: must not be negative"},
		{"bad outbound resolver", good + "\n[outbound]\nresolver = \"127.0.0.1\"\n", 18, "outbound.resolver"},
		{"bad outbound port", good + "\n[outbound]\nport = 0\n", 18, "outbound.port"},
		{"zero expire", good + "\n[outbound]\nexpire = \"0s\"\n", 18, "outbound.expire: must be positive"},
		{"user without smart host", good + "\n[outbound]\nsmart_host_user = \"me\"\n", 18, "outbound.smart_host_user"},
		{"door scores", good + "\n[door]\njunk_score = 0\n", 18, "door.junk_score"},
		{"dnsbl action", good + "\n[[door.dnsbl]]\nzone = \"bl.example\"\naction = \"drop\"\n", 0, "door.dnsbl[0].action"},
		{"dnsbl code", good + "\n[[door.dnsbl]]\nzone = \"bl.example\"\ncodes = [\"::1\"]\n", 0, "door.dnsbl[0].codes"},
		{"greylist window", good + "\n[door.greylist]\nmin_delay = \"2h\"\nretry_window = \"1h\"\n", 19, "door.greylist.retry_window"},
		{"greylist pass", good + "\n[door.greylist]\npass_networks = [\"nowhere\"]\n", 18, "door.greylist.pass_networks"},
		{"milter address", good + "\n[[door.milter]]\naddress = \"127.0.0.1:11332\"\n", 0, "door.milter[0].address"},
		{"milter fail", good + "\n[[door.milter]]\naddress = \"unix:/run/m.sock\"\nfail = \"maybe\"\n", 0, "door.milter[0].fail"},
		{"rspamd url", good + "\n[door.rspamd]\nurl = \"127.0.0.1:11333\"\n", 18, "door.rspamd.url"},
		{"submission spam", good + "\n[submission_filter]\nspam = \"junk\"\n", 18, "submission_filter.spam"},
		{"submission milter", good + "\n[[submission_filter.milter]]\naddress = \"127.0.0.1:11332\"\n", 0, "submission_filter.milter[0].address"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("petrel.toml", []byte(tc.src))
			if err == nil {
				t.Fatal("accepted")
			}
			var ce *Error
			if !errors.As(err, &ce) {
				t.Fatalf("error %T %v is not *Error", err, err)
			}
			if ce.File != "petrel.toml" || ce.Line != tc.line || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %q (line %d), want line %d containing %q", err, ce.Line, tc.line, tc.want)
			}
		})
	}
}

func TestDevIsValidAndLoopback(t *testing.T) {
	c := Dev()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	for _, a := range [][]string{c.SMTP.Listen, c.SMTP.Submission, c.SMTP.Submissions, c.POP3.Listen, c.POP3.ListenTLS, c.IMAP.Listen, c.IMAP.ListenTLS, c.HTTP.Listen, c.HTTP.ListenTLS, c.ManageSieve.Listen} {
		if !strings.HasPrefix(a[0], "127.0.0.1:") {
			t.Errorf("dev listener %s is not loopback", a[0])
		}
	}
	if c.HTTP.Listen[0] != "127.0.0.1:8080" || c.HTTP.ListenTLS[0] != "127.0.0.1:8443" || c.HTTP.RedirectHTTPS || c.HTTP.HSTSMaxAge != 0 {
		t.Errorf("dev http: %+v", c.HTTP)
	}
	if c.ManageSieve.Listen[0] != "127.0.0.1:24190" {
		t.Errorf("dev managesieve: %v", c.ManageSieve.Listen)
	}
}

// TestPathsRelativeToFile: paths in the file mean the same files whatever the working
// directory (the rule the client tools' file follows too).
func TestPathsRelativeToFile(t *testing.T) {
	t.Setenv("HOME", "/home/op")
	src := "data = \"spool/petrel\"\n[tls]\ncert = \"~/tls/cert.pem\"\nkey = \"/etc/ssl/../ssl/key.pem\"\n"
	c, err := Parse("/etc/petrel/petrel.toml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	if c.Data != "/etc/petrel/spool/petrel" || c.TLS.Cert != "/home/op/tls/cert.pem" || c.TLS.Key != "/etc/ssl/key.pem" {
		t.Errorf("data %q, cert %q, key %q", c.Data, c.TLS.Cert, c.TLS.Key)
	}
	// The default data directory is next to the file too, so that the management commands
	// find the server's data from any directory.
	c, err = Parse("/etc/petrel/petrel.toml", []byte("[tls]\ncert = \"c\"\nkey = \"k\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Data != "/etc/petrel/petrel-data" || c.TLS.Cert != "/etc/petrel/c" {
		t.Errorf("data %q, cert %q", c.Data, c.TLS.Cert)
	}
}

func TestStoreConfig(t *testing.T) {
	c, err := Parse("/etc/petrel/petrel.toml", []byte(good))
	if err != nil || c.Store.Backend != "sqlite" || !c.Store.Migrate || c.Store.BackupRate != DefaultBackupRate {
		t.Fatalf("default store = %+v, %v; want sqlite, migrating, backups at %d MB/s", c.Store, err, DefaultBackupRate)
	}
	c, err = Parse("/etc/petrel/petrel.toml", []byte(good+"\n[store]\nbackend = \"postgres\"\ndsn = \"host=db1 dbname=petrel user=petrel\"\npassword_file = \"pgpass\"\npool_size = 16\nmigrate = false\nbackup_rate = 0\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := Store{Backend: "postgres", DSN: "host=db1 dbname=petrel user=petrel", PasswordFile: "/etc/petrel/pgpass", PoolSize: 16}
	if c.Store != want {
		t.Errorf("store = %+v, want %+v", c.Store, want)
	}
	for _, bad := range []struct{ src, key string }{
		{"backend = \"mysql\"", "store.backend"},
		{"backend = \"postgres\"", "store.dsn"},
		{"backend = \"postgres\"\ndsn = \"host=db1 password=secret\"", "store.dsn"},
		{"backend = \"postgres\"\ndsn = \"postgres://petrel:secret@db1/petrel\"", "store.dsn"},
		{"backend = \"postgres\"\ndsn = \"postgres://db1/petrel?password=secret\"", "store.dsn"},
		{"backend = \"postgres\"\ndsn = \"host=db1\"\npool_size = -1", "store.pool_size"},
		{"dsn = \"host=db1\"", "store.dsn"},
		{"backup_rate = -5", "store.backup_rate"},
	} {
		_, err := Parse("petrel.toml", []byte(good+"\n[store]\n"+bad.src+"\n"))
		var ce *Error
		if !errors.As(err, &ce) || ce.Key != bad.key {
			t.Errorf("[store] %q: error %v, want one about %s", bad.src, err, bad.key)
		}
	}
}
