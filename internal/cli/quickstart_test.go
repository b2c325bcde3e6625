package cli

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/pem"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"petrel/internal/config"
	"petrel/internal/mailtest"
	"petrel/internal/server/acme"
)

func runWith(t *testing.T, conf, data, stdin string, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	err := Main(&Env{Ctx: context.Background(), ConfigFile: conf, DataDir: data, Stdin: strings.NewReader(stdin), Stdout: &out, Stderr: &out}, args)
	return out.String(), err
}

// TestQuickstart: one command sets up config, domain, account, DKIM keys, unit and prints the
// DNS records; a second run changes nothing and says so; existing things are not overwritten.
func TestQuickstart(t *testing.T) {
	root := t.TempDir()
	conf := filepath.Join(root, "etc", "petrel.toml")
	data := filepath.Join(root, "data")
	unit := filepath.Join(root, "petrel.service")
	out, err := runWith(t, conf, data, "", "quickstart", "--unit", unit, "You@Example.ORG")
	if err != nil {
		t.Fatalf("quickstart: %v\n%s", err, out)
	}
	for _, want := range []string{"created account you@example.org with password ", "example.org.", "MX 10 mail.example.org.",
		"._domainkey.example.org.", "_dmarc.example.org.", "wrote " + unit} {
		if !strings.Contains(out, want) {
			t.Errorf("quickstart output lacks %q:\n%s", want, out)
		}
	}
	c, err := config.Load(conf)
	if err != nil || c.Hostname != "mail.example.org" || c.Data != data || len(c.Domains) != 1 || c.Domains[0] != "example.org" {
		t.Fatalf("config written: %+v, %v", c, err)
	}
	// By default the certificates come from Let's Encrypt, checked on port 443, and the CA
	// writes to the address set up.
	if !c.ACME.Enabled || c.ACME.Directory != acme.LetsEncrypt || c.ACME.Contact != "you@example.org" ||
		c.ACME.Challenge != "tls-alpn-01" || c.TLS.Cert != "" || len(c.HTTP.ListenTLS) != 1 || c.HTTP.ListenTLS[0] != "0.0.0.0:443" {
		t.Errorf("[acme] written: %+v, tls %+v, https %v", c.ACME, c.TLS, c.HTTP.ListenTLS)
	}
	if _, err := os.Stat(filepath.Join(root, "etc", "tls")); err == nil {
		t.Error("quickstart with ACME wrote a self-signed certificate")
	}
	if !strings.Contains(out, "port 443") || !strings.Contains(out, "autoconfig.example.org") {
		t.Errorf("quickstart does not say what the CA checks:\n%s", out)
	}
	if b, err := os.ReadFile(unit); err != nil || !strings.Contains(string(b), "ExecStart=/usr/bin/petrel -c "+conf+" serve") ||
		!strings.Contains(string(b), "ReadWritePaths="+data) {
		t.Errorf("unit: %v\n%s", err, b)
	}
	if out, err := runWith(t, conf, "", "", "account", "list"); err != nil || !strings.Contains(out, "you@example.org") {
		t.Errorf("account list on the new instance: %v\n%s", err, out)
	}
	before, _ := os.ReadFile(conf)
	out, err = runWith(t, conf, data, "", "quickstart", "--unit", unit, "you@example.org")
	if err != nil || !strings.Contains(out, "nothing changed") || strings.Contains(out, "password") {
		t.Errorf("second quickstart: %v\n%s", err, out)
	}
	if after, _ := os.ReadFile(conf); !bytes.Equal(before, after) {
		t.Error("second quickstart changed the config")
	}
	// Another address on the same config, or a new config on a used data directory, is
	// refused.
	if out, err := runWith(t, conf, data, "", "quickstart", "--unit", "-", "other@example.net"); err == nil {
		t.Errorf("quickstart over another's config: %s", out)
	}
	if out, err := runWith(t, filepath.Join(root, "new.toml"), data, "", "quickstart", "--unit", "-", "other@example.net"); err == nil || !strings.Contains(out+err.Error(), "not empty") {
		t.Errorf("quickstart into a used data directory: %v %s", err, out)
	}
	if _, err := os.Stat(filepath.Join(root, "new.toml")); err == nil {
		t.Error("a refused quickstart wrote its config")
	}
	// With the password from stdin, it is not printed.
	out, err = runWith(t, filepath.Join(root, "b.toml"), filepath.Join(root, "b"), "a-good-password\n", "quickstart", "--unit", "-", "--password-stdin", "b@example.com")
	if err != nil || strings.Contains(out, "a-good-password") || !strings.Contains(out, "created account b@example.com\n") {
		t.Errorf("quickstart --password-stdin: %v\n%s", err, out)
	}
}

// TestQuickstartCertificates: the choices of quickstart's [acme] section. --no-acme writes a
// self-signed certificate and [tls] (with [acme] ready in comments); --acme-* name another
// CA, its roots and the contact; a bad choice is refused before anything is written.
func TestQuickstartCertificates(t *testing.T) {
	root := t.TempDir()
	quick := func(name string, args ...string) (*config.Config, string, error) {
		t.Helper()
		conf := filepath.Join(root, name, "petrel.toml")
		args = append([]string{"quickstart", "--unit", "-"}, args...)
		out, err := runWith(t, conf, filepath.Join(root, name, "data"), "", args...)
		if err != nil {
			if _, serr := os.Stat(filepath.Join(root, name)); serr == nil {
				t.Errorf("%s: a refused quickstart wrote into %s", name, filepath.Join(root, name))
			}
			return nil, out, err
		}
		c, err := config.Load(conf)
		if err != nil {
			t.Fatalf("%s: the config does not load: %v", name, err)
		}
		return c, out, nil
	}

	c, out, err := quick("self", "--no-acme", "a@example.org")
	if err != nil {
		t.Fatalf("--no-acme: %v\n%s", err, out)
	}
	if c.ACME.Enabled || c.TLS.Cert != filepath.Join(root, "self", "tls", "cert.pem") || !strings.Contains(out, "self-signed") {
		t.Errorf("--no-acme: acme %+v, tls %+v\n%s", c.ACME, c.TLS, out)
	}
	if _, err := tls.LoadX509KeyPair(c.TLS.Cert, c.TLS.Key); err != nil {
		t.Errorf("--no-acme: certificate: %v", err)
	}
	// The commented [acme] section becomes a working one by removing [tls] and the comment
	// marks, as its comment says.
	text, _ := os.ReadFile(filepath.Join(root, "self", "petrel.toml"))
	s := string(text)
	s = regexp.MustCompile(`(?m)^cert = .*\n|^key = .*\n`).ReplaceAllString(s, "")
	s = regexp.MustCompile(`(?m)^# (\[acme\]|enabled|contact|directory)`).ReplaceAllString(s, "$1")
	switched := filepath.Join(root, "switched.toml")
	if err := os.WriteFile(switched, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
	if c, err := config.Load(switched); err != nil || !c.ACME.Enabled || c.ACME.Contact != "a@example.org" || c.ACME.Directory != acme.LetsEncrypt {
		t.Errorf("[acme] uncommented: %v %+v\n%s", err, c, s)
	}

	ca := mailtest.NewCA(t)
	caFile := filepath.Join(root, "ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.Cert.Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	c, out, err = quick("private", "--acme-directory", "https://ca.internal.example:14000/dir", "--acme-ca-file", caFile,
		"--acme-contact", "Ops@Example.ORG", "b@example.org")
	if err != nil {
		t.Fatalf("a private CA: %v\n%s", err, out)
	}
	if !c.ACME.Enabled || c.ACME.Directory != "https://ca.internal.example:14000/dir" || c.ACME.CAFile != caFile ||
		c.ACME.Contact != "ops@example.org" || !strings.Contains(out, "https://ca.internal.example:14000/dir") {
		t.Errorf("a private CA: %+v\n%s", c.ACME, out)
	}

	for name, args := range map[string][]string{
		"http":      {"--acme-directory", "http://ca.example/dir"},
		"not a URL": {"--acme-directory", "ca.example"},
		"contact":   {"--acme-contact", "nobody"},
		"no roots":  {"--acme-ca-file", filepath.Join(root, "missing.pem")},
		"not PEM":   {"--acme-ca-file", switched},
		"both":      {"--no-acme", "--acme-contact", "ops@example.org"},
		"both dir":  {"--no-acme", "--acme-directory", "https://ca.example/dir"},
	} {
		if _, out, err := quick("bad-"+strings.ReplaceAll(name, " ", "-"), append(args, "c@example.org")...); err == nil {
			t.Errorf("%s: %v accepted\n%s", name, args, out)
		}
	}
}
