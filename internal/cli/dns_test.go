package cli

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"petrel/internal/app"
	"petrel/internal/config"
)

// zoneTXT collects the TXT records of zone-file output, by owner name, with their
// character-strings joined as a resolver joins them (RFC 7208 §3.3).
func zoneTXT(out string) map[string]string {
	recs := map[string]string{}
	line := regexp.MustCompile(`^(\S+)\. IN TXT \((.*)\)$`)
	str := regexp.MustCompile(`"((?:[^"\\]|\\.)*)"`)
	for _, l := range strings.Split(out, "\n") {
		m := line.FindStringSubmatch(l)
		if m == nil {
			continue
		}
		var b strings.Builder
		for _, s := range str.FindAllStringSubmatch(m[2], -1) {
			b.WriteString(strings.NewReplacer(`\\`, `\`, `\"`, `"`).Replace(s[1]))
		}
		recs[m[1]] = b.String()
	}
	return recs
}

// TestDomainAddMakesKeysAndDNSPrintsThem: a new domain gets an Ed25519 and an RSA key in the
// data directory (files of mode 0600), and `petrel dns` prints a record for each that
// matches the key on disk, beside MX, SRV, autoconfig, SPF and DMARC.
func TestDomainAddMakesKeysAndDNSPrintsThem(t *testing.T) {
	data := t.TempDir()
	if out, err := run(t, data, "", "domain", "add", "example.org"); err != nil || !strings.Contains(out, "created DKIM ed25519 key") || !strings.Contains(out, "created DKIM rsa key") {
		t.Fatalf("domain add: %v\n%s", err, out)
	}
	keys, err := app.DKIMKeys(data).SigningKeys(context.Background(), "example.org")
	if err != nil || len(keys) != 2 {
		t.Fatalf("keys on disk: %d, %v; want 2", len(keys), err)
	}
	entries, _ := os.ReadDir(filepath.Join(data, "dkim", "example.org"))
	for _, e := range entries {
		if info, err := e.Info(); err != nil || info.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %v, %v; want 0600", e.Name(), info.Mode(), err)
		}
	}

	out, err := run(t, data, "", "dns", "example.org")
	if err != nil {
		t.Fatalf("dns: %v\n%s", err, out)
	}
	for _, want := range []string{
		"example.org. IN MX 10 localhost.",
		"_submissions._tcp.example.org. IN SRV 0 1 2465 localhost.",
		"_submission._tcp.example.org. IN SRV 10 1 2587 localhost.",
		"_imaps._tcp.example.org. IN SRV 0 1 2993 localhost.",
		"_imap._tcp.example.org. IN SRV 10 1 2143 localhost.",
		"_pop3s._tcp.example.org. IN SRV 20 1 2995 localhost.",
		"_pop3._tcp.example.org. IN SRV 30 1 2110 localhost.",
		"autoconfig.example.org. IN CNAME localhost.",
		"_autodiscover._tcp.example.org. IN SRV 0 1 8443 localhost.",
		"mta-sts.example.org. IN CNAME localhost.",
		"loopback",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("dns output lacks %q:\n%s", want, out)
		}
	}
	txt := zoneTXT(out)
	// The id is the one of the policy the HTTPS listener serves.
	if _, id, _ := app.MTASTSPolicy(config.Dev()); txt["_mta-sts.example.org"] != "v=STSv1; id="+id || len(id) != 32 {
		t.Errorf("_mta-sts TXT %q, policy id %q", txt["_mta-sts.example.org"], id)
	}
	if txt["example.org"] != "v=spf1 mx -all" || txt["_dmarc.example.org"] != "v=DMARC1; p=quarantine" {
		t.Errorf("SPF %q, DMARC %q", txt["example.org"], txt["_dmarc.example.org"])
	}
	for _, k := range keys {
		want, _ := k.Record()
		if got := txt[k.RecordName()]; got != want {
			t.Errorf("%s: printed %q, key on disk publishes %q", k.RecordName(), got, want)
		}
	}

	// Adding the domain again after deleting it keeps its keys: no new records to publish.
	if out, err := run(t, data, "", "domain", "del", "example.org"); err != nil || !strings.Contains(out, "DKIM keys stay") {
		t.Errorf("domain del: %v\n%s", err, out)
	}
	if out, err := run(t, data, "", "domain", "add", "example.org"); err != nil || strings.Contains(out, "created DKIM") {
		t.Errorf("domain add again: %v\n%s", err, out)
	}
	if again, _ := app.DKIMKeys(data).SigningKeys(context.Background(), "example.org"); len(again) != 2 {
		t.Errorf("after delete and add: %d keys, want the same 2", len(again))
	}
}

// TestDKIMKeygen: a rotation adds a new pair under new selectors (the old ones keep signing
// until removed), prints the new records, and `dkim list` shows all four.
func TestDKIMKeygen(t *testing.T) {
	data := t.TempDir()
	if _, err := run(t, data, "", "domain", "add", "example.org"); err != nil {
		t.Fatal(err)
	}
	before, _ := app.DKIMKeys(data).SigningKeys(context.Background(), "example.org")
	out, err := run(t, data, "", "dkim", "keygen", "example.org")
	if err != nil {
		t.Fatalf("keygen: %v\n%s", err, out)
	}
	after, _ := app.DKIMKeys(data).SigningKeys(context.Background(), "example.org")
	if len(before) != 2 || len(after) != 4 {
		t.Fatalf("keys: %d before keygen, %d after; want 2 and 4", len(before), len(after))
	}
	old := map[string]bool{}
	for _, k := range before {
		old[k.Selector] = true
	}
	printed := zoneTXT(out)
	for _, k := range after {
		if old[k.Selector] {
			continue
		}
		want, _ := k.Record()
		if printed[k.RecordName()] != want {
			t.Errorf("keygen did not print the record of new key %s:\n%s", k.Selector, out)
		}
	}
	list, err := run(t, data, "", "dkim", "list", "example.org")
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range after {
		if !strings.Contains(list, k.Selector+"\t"+string(k.Algorithm())+"\t") {
			t.Errorf("dkim list lacks %s:\n%s", k.Selector, list)
		}
	}
	if dns, _ := run(t, data, "", "dns", "example.org"); len(zoneTXT(dns)) != 7 {
		t.Errorf("dns after rotation: want SPF, DMARC, MTA-STS and 4 DKIM records:\n%s", dns)
	}

	// The end of the rotation: the old keys go, the new ones stay and sign.
	for _, k := range before {
		if out, err := run(t, data, "", "dkim", "remove", "example.org", k.Selector); err != nil || !strings.Contains(out, "removed DKIM key "+k.Selector) {
			t.Fatalf("dkim remove %s: %q, %v", k.Selector, out, err)
		}
	}
	if out, err := run(t, data, "", "dkim", "remove", "example.org", before[0].Selector); err == nil || !strings.Contains(err.Error(), "no DKIM key") {
		t.Errorf("removing a removed key: %q, %v", out, err)
	}
	left, _ := app.DKIMKeys(data).SigningKeys(context.Background(), "example.org")
	if len(left) != 2 || old[left[0].Selector] || old[left[1].Selector] {
		t.Fatalf("after remove: %v, want the 2 new keys", left)
	}
	if dns, _ := run(t, data, "", "dns", "example.org"); len(zoneTXT(dns)) != 5 {
		t.Errorf("dns after the rotation's end: want SPF, DMARC, MTA-STS and 2 DKIM records:\n%s", dns)
	}
}

// TestDNSUnknownDomain: a domain that is not hosted is refused with what to do, and no key
// directory is made for it.
func TestDNSUnknownDomain(t *testing.T) {
	data := t.TempDir()
	for _, args := range [][]string{{"dns", "nowhere.test"}, {"dkim", "keygen", "nowhere.test"}, {"dkim", "list", "nowhere.test"}} {
		out, err := run(t, data, "", args...)
		if err == nil || !strings.Contains(err.Error(), "not hosted here") || !strings.Contains(err.Error(), "petrel domain add nowhere.test") {
			t.Errorf("%v: err %v, output %q; want a refusal naming the remedy", args, err, out)
		}
	}
	if _, err := os.Stat(filepath.Join(data, "dkim", "nowhere.test")); !os.IsNotExist(err) {
		t.Errorf("key directory for an unknown domain: %v", err)
	}
	if _, err := run(t, data, "", "dns"); err == nil {
		t.Error("dns without a domain succeeded")
	}
}

// TestDNSConfiguredListeners: with a config file, the records name its hostname and the
// ports of the listeners it configures, and none for a service it leaves without listener.
func TestDNSConfiguredListeners(t *testing.T) {
	dir := t.TempDir()
	conf := filepath.Join(dir, "petrel.toml")
	if err := os.WriteFile(conf, []byte(`
hostname = "mail.example.org"
domains = ["example.org"]
[tls]
cert = "cert.pem"
key = "key.pem"
[smtp]
submission = []
submissions = ["0.0.0.0:465", "[::]:465"]
[pop3]
listen = []
listen_tls = ["0.0.0.0:995"]
`), 0o600); err != nil {
		t.Fatal(err)
	}
	var out, errOut bytes.Buffer
	e := &Env{Ctx: context.Background(), ConfigFile: conf, DataDir: filepath.Join(dir, "data"),
		Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errOut}
	if err := Main(e, []string{"dns", "example.org"}); err != nil {
		t.Fatalf("dns: %v\n%s%s", err, out.String(), errOut.String())
	}
	got := out.String()
	for _, want := range []string{
		"example.org. IN MX 10 mail.example.org.",
		"_submissions._tcp.example.org. IN SRV 0 1 465 mail.example.org.",
		"_imaps._tcp.example.org. IN SRV 0 1 993 mail.example.org.",
		"_imap._tcp.example.org. IN SRV 10 1 143 mail.example.org.",
		"_pop3s._tcp.example.org. IN SRV 20 1 995 mail.example.org.",
		"autoconfig.example.org. IN CNAME mail.example.org.",
		"_autodiscover._tcp.example.org. IN SRV 0 1 443 mail.example.org.",
		"mta-sts.example.org. IN CNAME mail.example.org.",
		"no DKIM key yet", // a configured domain is created by the server, keys by keygen
	} {
		if !strings.Contains(got, want) {
			t.Errorf("lacks %q:\n%s", want, got)
		}
	}
	for _, unwanted := range []string{"_submission._tcp", "_pop3._tcp", "loopback"} {
		if strings.Contains(got, unwanted) {
			t.Errorf("has %q:\n%s", unwanted, got)
		}
	}
	if strings.Count(got, "_submissions._tcp.example.org.") != 1 {
		t.Errorf("one SRV record per port, not per address:\n%s", got)
	}
}
