package cli

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"petrel/internal/mailtest"
)

// writeCert writes a self-signed certificate for host valid until notAfter, and its key.
func writeCert(t *testing.T, dir, name, host string, notAfter time.Time) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: host}, DNSNames: []string{host},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: notAfter}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, name+".pem"), filepath.Join(dir, name+".key")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600)
	return certFile, keyFile
}

// runConfig runs a command with a config file.
func runConfig(t *testing.T, conf string, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	err := Main(&Env{Ctx: context.Background(), ConfigFile: conf, Stdin: strings.NewReader(""), Stdout: &out, Stderr: &out}, args)
	return out.String(), err
}

// writeCheckConfig writes the config of a check test into dir: every listener on
// loopback, the SMTP one at smtp, extra as top-level lines (sections may follow).
func writeCheckConfig(t *testing.T, dir, name, cert, key, smtp, extra string) string {
	t.Helper()
	path := filepath.Join(dir, name+".toml")
	body := fmt.Sprintf(`hostname = "mail.example.org"
data = %q
domains = ["example.org"]
%s
[tls]
cert = %q
key = %q
[smtp]
listen = [%q]
submission = ["127.0.0.1:0"]
submissions = ["127.0.0.1:0"]
[pop3]
listen = ["127.0.0.1:0"]
listen_tls = ["127.0.0.1:0"]
[imap]
listen = ["127.0.0.1:0"]
listen_tls = ["127.0.0.1:0"]
[managesieve]
listen = ["127.0.0.1:0"]
`, filepath.Join(dir, name+"-data"), extra, cert, key, smtp)
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestCheck(t *testing.T) {
	dir := t.TempDir()
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	goodCert, goodKey := writeCert(t, dir, "good", "mail.example.org", time.Now().Add(90*24*time.Hour))
	_, otherKey := writeCert(t, dir, "other", "mail.example.org", time.Now().Add(90*24*time.Hour))
	oldCert, oldKey := writeCert(t, dir, "old", "other.example.org", time.Now().Add(-time.Minute))

	config := func(name, cert, key, smtp, extra string) string {
		return writeCheckConfig(t, dir, name, cert, key, smtp, extra)
	}

	good := config("good", goodCert, goodKey, "127.0.0.1:0", "")
	if out, err := runConfig(t, good, "check"); err != nil || !strings.Contains(out, "ok: nothing in the way") {
		t.Errorf("check of a good config: %v\n%s", err, out)
	}
	// With a store: DKIM keys are checked; a damaged key file is named.
	if out, err := runConfig(t, good, "domain", "add", "example.net"); err != nil {
		t.Fatal(out, err)
	}
	keys, _ := filepath.Glob(filepath.Join(dir, "good-data", "dkim", "example.net", "*.pem"))
	if len(keys) == 0 {
		t.Fatal("no DKIM keys made")
	}
	os.WriteFile(keys[0], []byte("not a key"), 0o600)
	out, err := runConfig(t, good, "check")
	if err == nil || !strings.Contains(out, "problem: dkim: example.net") || !strings.Contains(out, "warning: dkim: example.org has no signing key") {
		t.Errorf("check with a damaged DKIM key: %v\n%s", err, out)
	}

	for _, tc := range []struct {
		name, conf string
		want       []string
	}{
		{"mismatch", config("mismatch", goodCert, otherKey, "127.0.0.1:0", ""), []string{"problem: tls: ", "private key does not match public key"}},
		{"expired", config("expired", oldCert, oldKey, "127.0.0.1:0", ""), []string{"problem: tls: " + oldCert + " expired", "does not name the host name mail.example.org"}},
		{"port", config("port", goodCert, goodKey, taken.Addr().String(), ""), []string{"problem: cannot listen on " + taken.Addr().String() + " for smtp: the port is in use"}},
		{"user", config("user", goodCert, goodKey, "127.0.0.1:0", `user = "no-such-petrel-user"`), []string{`problem: user = "no-such-petrel-user"`}},
	} {
		out, err := runConfig(t, tc.conf, "check")
		if err == nil {
			t.Errorf("%s: check passed:\n%s", tc.name, out)
		}
		for _, w := range tc.want {
			if !strings.Contains(out, w) {
				t.Errorf("%s: output lacks %q:\n%s", tc.name, w, out)
			}
		}
	}
	// --dns compares the published records with what petrel dns prints.
	dnsConf := config("dns", goodCert, goodKey, "127.0.0.1:0", "")
	if out, err := runConfig(t, dnsConf, "domain", "add", "example.net"); err != nil {
		t.Fatal(out, err)
	}
	d := mailtest.StartDNS(t, mailtest.Zone{
		MX:  map[string][]mailtest.MX{"example.org": {{Pref: 10, Host: "mail.example.org"}}},
		A:   map[string][]string{"mail.example.org": {"192.0.2.1"}},
		TXT: map[string][]string{"example.org": {"v=spf1 mx -all"}, "_dmarc.example.org": {"v=DMARC1; p=none"}},
	})
	out, err = runConfig(t, dnsConf, "check", "--dns", "--resolver", d.Addr)
	if err == nil {
		t.Errorf("check --dns with records missing passed:\n%s", out)
	}
	for _, want := range []string{
		`problem: dns: TXT _dmarc.example.org is ["v=DMARC1; p=none"], petrel dns says "v=DMARC1; p=quarantine"`,
		"problem: dns: MX of example.net is [] (no such name), want mail.example.org",
		"problem: dns: TXT example.net is missing",
		"._domainkey.example.net is missing",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("check --dns lacks %q:\n%s", want, out)
		}
	}
	for _, unwanted := range []string{"MX of example.org", "TXT example.org ", "A or AAAA"} {
		if strings.Contains(out, unwanted) {
			t.Errorf("check --dns reports a record that is right (%q):\n%s", unwanted, out)
		}
	}

	// A certificate that expires soon but is otherwise fine is a warning, not a failure.
	soonCert2, soonKey2 := writeCert(t, dir, "soon2", "mail.example.org", time.Now().Add(5*24*time.Hour))
	if out, err := runConfig(t, config("soon", soonCert2, soonKey2, "127.0.0.1:0", ""), "check"); err != nil || !strings.Contains(out, "warning: tls: "+soonCert2+" expires in 4 days") {
		t.Errorf("check with a certificate about to expire: %v\n%s", err, out)
	}
}

// TestCheckDNSRecords: check --dns compares every kind of record petrel dns prints (MX,
// A/AAAA, PTR, SRV, autoconfig, SPF, DKIM, DMARC, MTA-STS, TLSA) with an in-test DNS
// server whose zone has some of them right, some missing and some wrong. The zone is made
// from petrel dns's own output, so the test follows what it prints.
func TestCheckDNSRecords(t *testing.T) {
	dir := t.TempDir()
	cert, key := writeCert(t, dir, "dns", "mail.example.org", time.Now().Add(90*24*time.Hour))
	conf := writeCheckConfig(t, dir, "dns", cert, key, "127.0.0.1:0", `[http]
listen = ["127.0.0.1:0"]
listen_tls = ["127.0.0.1:0"]
mta_sts_mode = "enforce"
`)
	if out, err := runConfig(t, conf, "dkim", "keygen", "example.org"); err != nil {
		t.Fatal(out, err)
	}
	zoneText, err := runConfig(t, conf, "dns", "example.org")
	if err != nil {
		t.Fatal(zoneText, err)
	}
	// The records as printed, by type and name.
	printed := map[string][]string{}
	line := regexp.MustCompile(`^(\S+)\. IN (MX|SRV|CNAME|TLSA) ([^;]*?)\s*(;.*)?$`)
	for _, l := range strings.Split(zoneText, "\n") {
		if m := line.FindStringSubmatch(l); m != nil {
			printed[m[2]+" "+m[1]] = append(printed[m[2]+" "+m[1]], m[3])
		}
	}
	txt := zoneTXT(zoneText)
	var dkim, mtaSTS string
	for name := range txt {
		if strings.HasSuffix(name, "._domainkey.example.org") {
			dkim = name
		}
	}
	mtaSTS = txt["_mta-sts.example.org"]
	if dkim == "" || mtaSTS == "" || len(printed["TLSA _25._tcp.mail.example.org"]) != 1 || len(printed["SRV _imaps._tcp.example.org"]) != 1 ||
		len(printed["SRV _submissions._tcp.example.org"]) != 1 || len(printed["SRV _pop3s._tcp.example.org"]) != 1 {
		t.Fatalf("petrel dns lacks a record the test needs:\n%s", zoneText)
	}
	srv := func(name string, portDelta int) mailtest.SRV {
		var s mailtest.SRV
		var target string
		if _, err := fmt.Sscanf(printed["SRV "+name][0], "%d %d %d %s", &s.Priority, &s.Weight, &s.Port, &target); err != nil {
			t.Fatalf("SRV %s: %v", name, err)
		}
		s.Port += uint16(portDelta)
		s.Target = strings.TrimSuffix(target, ".")
		return s
	}
	var tlsa mailtest.TLSA
	var tlsaHex string
	fmt.Sscanf(printed["TLSA _25._tcp.mail.example.org"][0], "%d %d %d %s", &tlsa.Usage, &tlsa.Selector, &tlsa.MatchingType, &tlsaHex)
	tlsa.Data = []byte("not the certificate's key digest")
	wrongSubmissions := srv("_submissions._tcp.example.org", 1)

	d := mailtest.StartDNS(t, mailtest.Zone{
		MX:   map[string][]mailtest.MX{"example.org": {{Pref: 10, Host: "mail.example.org"}}},
		A:    map[string][]string{"mail.example.org": {"192.0.2.1"}, "mta-sts.example.org": {"198.51.100.7"}},
		AAAA: map[string][]string{"mail.example.org": {"2001:db8::1"}},
		PTR:  map[string][]string{"192.0.2.1": {"mail.example.org"}, "2001:db8::1": {"wrong.example.net"}},
		SRV: map[string][]mailtest.SRV{
			"_imaps._tcp.example.org":       {srv("_imaps._tcp.example.org", 0)},
			"_submissions._tcp.example.org": {wrongSubmissions},
		},
		CNAME: map[string]string{"autoconfig.example.org": "mail.example.org"},
		TXT: map[string][]string{
			"example.org":          {txt["example.org"]},
			"_dmarc.example.org":   {"v=DMARC1; p=none"},
			"_mta-sts.example.org": {"v=STSv1; id=20200101000000"},
		},
		TLSA: map[string][]mailtest.TLSA{"_25._tcp.mail.example.org": {tlsa}},
	})
	out, err := runConfig(t, conf, "check", "--dns", "--resolver", d.Addr)
	if err == nil {
		t.Errorf("check --dns with wrong and missing records passed:\n%s", out)
	}
	for _, want := range []string{
		"problem: dns: PTR of 2001:db8::1 is [wrong.example.net], want mail.example.org",
		fmt.Sprintf(`problem: dns: SRV _submissions._tcp.example.org is ["%d %d %d mail.example.org"], petrel dns says`, wrongSubmissions.Priority, wrongSubmissions.Weight, wrongSubmissions.Port),
		"problem: dns: SRV _pop3s._tcp.example.org is missing (no such name)",
		"problem: dns: mta-sts.example.org has addresses [198.51.100.7], not the host's",
		`problem: dns: TXT _dmarc.example.org is ["v=DMARC1; p=none"], petrel dns says "v=DMARC1; p=quarantine"`,
		"problem: dns: TXT " + dkim + " is missing",
		`problem: dns: TXT _mta-sts.example.org is ["v=STSv1; id=20200101000000"], petrel dns says "` + mtaSTS + `"`,
		"problem: dns: TLSA _25._tcp.mail.example.org is [\"3 1 1 " + hex.EncodeToString(tlsa.Data) + "\"], petrel dns says \"3 1 1 " + tlsaHex + "\"",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("check --dns lacks %q:\n%s", want, out)
		}
	}
	for _, right := range []string{"MX of example.org", "A or AAAA", "PTR of 192.0.2.1", "SRV _imaps._tcp", "autoconfig.example.org",
		"TXT example.org "} {
		if strings.Contains(out, right) {
			t.Errorf("check --dns reports a record that is right (%q):\n%s", right, out)
		}
	}

	// Published as petrel dns prints them, nothing is reported.
	full := mailtest.Zone{
		MX:    map[string][]mailtest.MX{"example.org": {{Pref: 10, Host: "mail.example.org"}}},
		A:     map[string][]string{"mail.example.org": {"192.0.2.1"}},
		PTR:   map[string][]string{"192.0.2.1": {"mail.example.org"}},
		SRV:   map[string][]mailtest.SRV{},
		CNAME: map[string]string{},
		TXT:   map[string][]string{},
		TLSA:  map[string][]mailtest.TLSA{},
	}
	for k := range printed {
		typ, name, _ := strings.Cut(k, " ")
		switch typ {
		case "SRV":
			full.SRV[name] = append(full.SRV[name], srv(name, 0))
		case "CNAME":
			full.CNAME[name] = strings.TrimSuffix(printed[k][0], ".")
		case "TLSA":
			tl := tlsa
			tl.Data, _ = hex.DecodeString(tlsaHex)
			full.TLSA[name] = []mailtest.TLSA{tl}
		}
	}
	for name, text := range txt {
		full.TXT[name] = []string{text}
	}
	d2 := mailtest.StartDNS(t, full)
	if out, err := runConfig(t, conf, "check", "--dns", "--resolver", d2.Addr); strings.Contains(out, "problem: dns:") {
		t.Errorf("check --dns with every record published: %v\n%s", err, out)
	}
}

// TestCheckPullKey: with pull sources, check looks at [pull] key_file: missing, too open,
// not a key, another key than the one that sealed the passwords, and (as root) owned by
// another user, readable by another group, or unreadable by the server's user.
func TestCheckPullKey(t *testing.T) {
	dir := t.TempDir()
	cert, key := writeCert(t, dir, "pull", "mail.example.org", time.Now().Add(90*24*time.Hour))
	keyFile := filepath.Join(dir, "keys", "pull.key")
	conf := writeCheckConfig(t, dir, "pull", cert, key, "127.0.0.1:0", "")
	if err := os.WriteFile(conf, append(mustRead(t, conf), fmt.Sprintf("[pull]\nkey_file = %q\n", keyFile)...), 0o644); err != nil {
		t.Fatal(err)
	}
	runIn := func(stdin string, args ...string) (string, error) {
		var out bytes.Buffer
		err := Main(&Env{Ctx: context.Background(), ConfigFile: conf, Stdin: strings.NewReader(stdin), Stdout: &out, Stderr: &out}, args)
		return out.String(), err
	}
	if out, err := runIn("secret-password\n", "account", "add", "me@example.org"); err != nil {
		t.Fatal(out, err)
	}
	// No source and no key: nothing to say.
	if out, err := runIn("", "check"); err != nil || strings.Contains(out, "pull") {
		t.Fatalf("check without pull sources: %v\n%s", err, out)
	}
	if out, err := runIn("outside\n", "account", "pull", "add", "me@example.org", "--pop3", "pop.example:995", "--user", "u"); err != nil {
		t.Fatal(out, err)
	}
	if out, err := runIn("", "check"); err != nil || strings.Contains(out, "pull") {
		t.Fatalf("check with a good pull key: %v\n%s", err, out)
	}
	good := mustRead(t, keyFile)
	checkFinds := func(name string, want ...string) {
		t.Helper()
		out, err := runIn("", "check")
		if err == nil {
			t.Errorf("%s: check passed:\n%s", name, out)
		}
		for _, w := range want {
			if !strings.Contains(out, w) {
				t.Errorf("%s: output lacks %q:\n%s", name, w, out)
			}
		}
	}
	os.Chmod(keyFile, 0o644)
	checkFinds("mode", "problem: pull: key file "+keyFile+" is mode 0644: every user of the host can read")
	os.Chmod(keyFile, 0o620)
	checkFinds("group write", "is mode 0620: want 0600, or 0640")
	os.Chmod(keyFile, 0o600)
	os.WriteFile(keyFile, []byte("0123abcd\n"), 0o600)
	checkFinds("length", "problem: pull key "+keyFile+": want 32 bytes in hex on one line")
	os.WriteFile(keyFile, []byte(strings.Repeat("ab", 32)+"\n"), 0o600)
	checkFinds("another key", "problem: pull: the key in "+keyFile+" does not open the stored password of 1 of 1 pull sources (me@example.org 1)")
	os.Remove(keyFile)
	checkFinds("missing", "problem: pull: key file "+keyFile+" does not exist: the passwords of 1 pull sources cannot be opened")
	os.WriteFile(keyFile, good, 0o600)
	if out, err := runIn("", "check"); err != nil || strings.Contains(out, "pull") {
		t.Fatalf("check with the key back: %v\n%s", err, out)
	}

	if os.Geteuid() != 0 {
		t.Log("not root: ownership checks skipped")
		return
	}
	os.Chown(keyFile, 54321, 0)
	checkFinds("owner", "problem: pull: key file "+keyFile+" belongs to uid 54321, neither root nor the server's user (root)")
	os.Chown(keyFile, 0, 54321)
	os.Chmod(keyFile, 0o640)
	checkFinds("group", "is readable by group gid 54321, not the server's (root)")
	// The server switches to nobody, who cannot read a root-only key.
	os.Chown(keyFile, 0, 0)
	os.Chmod(keyFile, 0o600)
	nobody := writeCheckConfig(t, dir, "pull", cert, key, "127.0.0.1:0", `user = "nobody"`)
	os.WriteFile(nobody, append(mustRead(t, nobody), fmt.Sprintf("[pull]\nkey_file = %q\n", keyFile)...), 0o644)
	out, err := runConfig(t, nobody, "check")
	if err == nil || !strings.Contains(out, "problem: pull: key file "+keyFile+" cannot be read by the server's user (nobody)") {
		t.Errorf("a key nobody cannot read: %v\n%s", err, out)
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
