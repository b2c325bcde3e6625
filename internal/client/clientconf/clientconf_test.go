package clientconf

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"petrel/internal/config"
)

const full = `
default_account = "home"
outbox = "queue"

[accounts.home]
user = "alice@example.org"
password_env = "PETREL_TEST_PW"
timeout = "30s"

[accounts.home.pop3]
host = "mail.example.org"
archive = "Mail/home"
mode = "keep-days"
keep_days = 7

[accounts.home.smtp]
host = "mail.example.org"
tls = "tls"

[accounts.work]
user = "bob"
password_command = "echo s3cret; echo ignored"

[accounts.work.pop3]
host = "pop.work.example"
tls = "starttls"
format = "mbox"
archive = "/var/mail/bob"
fingerprint = "AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89"
`

func TestParseFull(t *testing.T) {
	c, err := Parse("/etc/x/client.toml", []byte(full))
	if err != nil {
		t.Fatal(err)
	}
	h := c.Accounts["home"]
	if h.Name != "home" || h.POP3.Port != 995 || h.POP3.TLS != "tls" || h.POP3.Format != "maildir" ||
		h.POP3.Archive != "/etc/x/Mail/home" || h.POP3.State != "/etc/x/Mail/.home.petrel-fetch.home" ||
		h.Timeout.Duration.String() != "30s" {
		t.Fatalf("home: %+v %+v", h, h.POP3)
	}
	if h.SMTP.Port != 465 || h.SMTP.From != "alice@example.org" {
		t.Fatalf("home smtp: %+v", h.SMTP)
	}
	w := c.Accounts["work"]
	if w.POP3.Port != 110 || w.POP3.Mode != ModeDelete || w.SMTP != nil || w.Timeout.Duration != DefaultTimeout {
		t.Fatalf("work: %+v", w.POP3)
	}
	if c.Outbox != "/etc/x/queue" {
		t.Fatal(c.Outbox)
	}
	if a, err := c.SendAccount(""); err != nil || a != h {
		t.Fatalf("SendAccount = %v %v", a, err)
	}
	if _, err := c.SendAccount("work"); err == nil {
		t.Fatal("work has no smtp")
	}
	pw, err := w.Password(context.Background())
	if err != nil || pw != "s3cret" {
		t.Fatalf("Password = %q %v", pw, err)
	}
	t.Setenv("PETREL_TEST_PW", "from-env")
	if pw, err := h.Password(context.Background()); err != nil || pw != "from-env" {
		t.Fatalf("Password = %q %v", pw, err)
	}
	tc, err := w.POP3.TLSConfig()
	if err != nil || !tc.InsecureSkipVerify || tc.VerifyConnection == nil {
		t.Fatal("fingerprint not pinned")
	}
	if got := c.Names(); strings.Join(got, ",") != "home,work" {
		t.Fatal(got)
	}
}

// TestCAFilePath: ca_file follows the path rule of every other file name in the config
// (relative to the config file, "~/" expanded), for POP3, IMAP and SMTP alike.
func TestCAFilePath(t *testing.T) {
	home, dir := t.TempDir(), t.TempDir()
	t.Setenv("HOME", home)
	certPEM := selfSignedPEM(t)
	if err := os.WriteFile(filepath.Join(dir, "ca.pem"), []byte(certPEM), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(home, "home-ca.pem"), []byte(certPEM), 0o644); err != nil {
		t.Fatal(err)
	}
	src := "[accounts.a]\nuser = \"u\"\npassword_env = \"X\"\n" +
		"[accounts.a.pop3]\nhost = \"h\"\narchive = \"m\"\nca_file = \"ca.pem\"\n" +
		"[accounts.a.smtp]\nhost = \"h\"\nca_file = \"~/home-ca.pem\"\n"
	// The working directory is elsewhere: the relative name must still find dir/ca.pem.
	t.Chdir(t.TempDir())
	c, err := Parse(filepath.Join(dir, "client.toml"), []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	a := c.Accounts["a"]
	if a.POP3.CAFile != filepath.Join(dir, "ca.pem") || a.SMTP.CAFile != filepath.Join(home, "home-ca.pem") {
		t.Errorf("ca_file: pop3 %q, smtp %q", a.POP3.CAFile, a.SMTP.CAFile)
	}
	if tc, err := a.POP3.TLSConfig(); err != nil || tc.RootCAs == nil {
		t.Errorf("TLSConfig: %v", err)
	}
}

// selfSignedPEM returns a freshly made CA certificate in PEM.
func selfSignedPEM(t *testing.T) string {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
}

func TestParseErrors(t *testing.T) {
	base := "[accounts.a]\nuser = \"u\"\npassword_env = \"X\"\n[accounts.a.pop3]\nhost = \"h\"\narchive = \"/m\"\n"
	for _, tt := range []struct{ src, key string }{
		{base + "mode = \"sometimes\"\n", "accounts.a.pop3.mode"},
		{base + "mode = \"keep-days\"\n", "accounts.a.pop3.keep_days"},
		{base + "tls = \"plain\"\n", "accounts.a.pop3.tls"},
		{base + "format = \"mh\"\n", "accounts.a.pop3.format"},
		{base + "auth = \"cram-md5\"\n", "accounts.a.pop3.auth"},
		{base + "fingerprint = \"abc\"\n", "accounts.a.pop3.fingerprint"},
		{base + "ca_file = \"/nonexistent\"\n", "accounts.a.pop3.ca_file"},
		{base + "port = 70000\n", "accounts.a.pop3.port"},
		{base + "hots = \"x\"\n", "accounts.a.pop3.hots"},
		{strings.Replace(base, "password_env = \"X\"\n", "", 1), "accounts.a.password_command"},
		{"default_account = \"zz\"\n" + base, "default_account"},
		{"[accounts.a]\nuser = \"u\"\npassword_env = \"X\"\n", "accounts.a"},
	} {
		_, err := Parse("c.toml", []byte(tt.src))
		var ce *config.Error
		if !errors.As(err, &ce) || ce.Key != tt.key {
			t.Errorf("%q: got %v, want key %s", tt.src, err, tt.key)
			continue
		}
		if tt.key != "accounts.a" && ce.Line == 0 && !strings.HasSuffix(tt.key, "password_command") && tt.key != "accounts.a.pop3.keep_days" {
			t.Errorf("%s: no line in %v", tt.key, err)
		}
	}
	// plain with the explicit allowance is fine, and gets port 110.
	c, err := Parse("c.toml", []byte(base+"tls = \"plain\"\nallow_plaintext = true\n"))
	if err != nil || c.Accounts["a"].POP3.Port != 110 {
		t.Fatalf("plain allowed: %v", err)
	}
}

func TestPasswordErrors(t *testing.T) {
	a := &Account{Name: "x", PasswordCommand: "exit 3", Timeout: config.Duration{Duration: DefaultTimeout}}
	if _, err := a.Password(context.Background()); err == nil {
		t.Fatal("failing command accepted")
	}
	a.PasswordCommand = "true"
	if _, err := a.Password(context.Background()); err == nil {
		t.Fatal("empty password accepted")
	}
	a = &Account{Name: "x", PasswordEnv: "PETREL_SURELY_UNSET"}
	if _, err := a.Password(context.Background()); err == nil {
		t.Fatal("unset env accepted")
	}
}

func TestLoadDefaultPath(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("XDG_CONFIG_HOME", dir)
	p, err := DefaultPath()
	if err != nil || p != filepath.Join(dir, "petrel", "client.toml") {
		t.Fatal(p, err)
	}
	if _, err := Load(p); !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
}

func TestParseIMAP(t *testing.T) {
	src := `
[accounts.w]
user = "alice"
password_env = "X"
[accounts.w.imap]
host = "imap.example.org"
archive = "/m/work"
mode = "keep"

[accounts.s]
user = "bob"
password_env = "Y"
[accounts.s.imap]
host = "imap.example.org"
tls = "starttls"
auth = "LOGIN"
folder = "Archive/2024"
archive = "/m/s.mbox"
format = "mbox"
mode = "keep-days"
keep_days = 3

[accounts.i]
user = "carol"
password_env = "Z"
[accounts.i.imap]
host = "imap.example.org"
tls = "implicit"
archive = "/m/i"
`
	c, err := Parse("/etc/x/client.toml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	w := c.Accounts["w"].IMAP
	if w.Port != 993 || w.TLS != "tls" || w.Folder != "INBOX" || w.Format != "maildir" || w.Mode != ModeKeep ||
		w.State != "/m/.work.petrel-fetch-imap.w" || !c.Accounts["w"].Fetches() {
		t.Fatalf("w: %+v", w)
	}
	s := c.Accounts["s"].IMAP
	if s.Port != 143 || s.Auth != "login" || s.Folder != "Archive/2024" || s.KeepDays != 3 || s.Format != "mbox" {
		t.Fatalf("s: %+v", s)
	}
	if i := c.Accounts["i"].IMAP; i.TLS != "tls" || i.Port != 993 {
		t.Fatalf("i: %+v", i)
	}

	base := "[accounts.a]\nuser = \"u\"\npassword_env = \"X\"\n[accounts.a.imap]\nhost = \"h\"\narchive = \"/m\"\n"
	for _, tt := range []struct{ src, key string }{
		{base + "auth = \"apop\"\n", "accounts.a.imap.auth"},
		{base + "tls = \"plain\"\n", "accounts.a.imap.tls"},
		{base + "mode = \"keep-days\"\n", "accounts.a.imap.keep_days"},
		{base + "fold = \"x\"\n", "accounts.a.imap.fold"},
		{base + "[accounts.a.pop3]\nhost = \"h\"\narchive = \"/m\"\n", "accounts.a.imap"},
	} {
		_, err := Parse("c.toml", []byte(tt.src))
		var ce *config.Error
		if !errors.As(err, &ce) || ce.Key != tt.key {
			t.Errorf("%q: got %v, want key %s", tt.src, err, tt.key)
		}
	}
	c, err = Parse("c.toml", []byte(base+"tls = \"plain\"\nallow_plaintext = true\n"))
	if err != nil || c.Accounts["a"].IMAP.Port != 143 {
		t.Fatalf("plain allowed: %v", err)
	}
}

// TestParseOAuth: provider presets fill the endpoints and scopes, keys override them, and the
// token keys are checked.
func TestParseOAuth(t *testing.T) {
	head := "outbox = \"/ob\"\n[accounts.a]\nuser = \"u@gmail.com\"\n"
	imapT := "[accounts.a.imap]\nhost = \"imap.gmail.com\"\narchive = \"/m\"\n"
	c, err := Parse("/c/c.toml", []byte(head+"[accounts.a.oauth]\nprovider = \"google\"\nclient_id = \"id\"\n"+imapT))
	if err != nil {
		t.Fatal(err)
	}
	o := c.Accounts["a"].OAuth
	if o.TokenURL != providers["google"].TokenURL || o.Scopes[0] != "https://mail.google.com/" || o.Flow != "browser" || o.TokenFile != "/tokens/a.json" {
		t.Fatalf("google preset: %+v", o)
	}
	if !c.Accounts["a"].UsesToken() {
		t.Fatal("UsesToken false with [oauth]")
	}
	c, err = Parse("/c/c.toml", []byte(head+"[accounts.a.oauth]\nprovider = \"microsoft\"\nclient_id = \"id\"\nscopes = [\"x\"]\ntoken_file = \"t.json\"\n"+imapT))
	if err != nil {
		t.Fatal(err)
	}
	if o := c.Accounts["a"].OAuth; o.Flow != "device" || len(o.Scopes) != 1 || o.TokenFile != "/c/t.json" {
		t.Fatalf("microsoft with overrides: %+v", o)
	}
	for _, tt := range []struct{ src, key string }{
		{head + "password_env = \"X\"\ntoken_command = \"t\"\n" + imapT, "accounts.a.password_command"},
		{head + "token_command = \"t\"\n" + imapT + "auth = \"plain\"\n", "accounts.a.imap.auth"},
		{head + "password_env = \"X\"\n" + imapT + "auth = \"xoauth2\"\n", "accounts.a.imap.auth"},
		{head + "[accounts.a.oauth]\nprovider = \"yahoo\"\nclient_id = \"id\"\n" + imapT, "accounts.a.oauth.provider"},
		{head + "[accounts.a.oauth]\nprovider = \"google\"\n" + imapT, "accounts.a.oauth.client_id"},
		{head + "[accounts.a.oauth]\nprovider = \"generic\"\nclient_id = \"id\"\n" + imapT, "accounts.a.oauth.token_url"},
		{head + "[accounts.a.oauth]\nprovider = \"generic\"\nclient_id = \"id\"\ntoken_url = \"http://idp.example/t\"\n" + imapT, "accounts.a.oauth.token_url"},
		{head + "[accounts.a.oauth]\nprovider = \"google\"\nclient_id = \"id\"\nflow = \"device\"\n" + imapT, "accounts.a.oauth.device_url"},
		{head + "[accounts.a.oauth]\nprovider = \"generic\"\nclient_id = \"id\"\ntoken_url = \"https://idp.example/t\"\n" + imapT, "accounts.a.oauth.auth_url"},
	} {
		_, err := Parse("c.toml", []byte(tt.src))
		var ce *config.Error
		if !errors.As(err, &ce) || ce.Key != tt.key {
			t.Errorf("%q: got %v, want key %s", tt.src, err, tt.key)
		}
	}
	// http on loopback is allowed (a local identity provider, and the tests).
	if _, err := Parse("c.toml", []byte(head+"[accounts.a.oauth]\nprovider = \"generic\"\nclient_id = \"id\"\ntoken_url = \"http://127.0.0.1:9/t\"\nauth_url = \"http://[::1]:9/a\"\n"+imapT)); err != nil {
		t.Fatal(err)
	}
}
