package app

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"petrel/internal/config"
	"petrel/internal/mail/msgauth"
)

// TestMain lets the test binary stand in for petrel as the key helper (startKeyHelper runs
// os.Executable under the helper's name).
func TestMain(m *testing.M) {
	if filepath.Base(os.Args[0]) == KeyHelperName {
		os.Exit(RunKeyHelper(os.Args[1:]))
	}
	os.Exit(m.Run())
}

// devConfig is a development instance on free loopback ports with its data in dir.
func devConfig(dir string) *config.Config {
	c := config.Dev()
	c.Data = filepath.Join(dir, "data")
	for _, l := range []*[]string{&c.SMTP.Listen, &c.SMTP.Submission, &c.SMTP.Submissions, &c.POP3.Listen, &c.POP3.ListenTLS, &c.IMAP.Listen, &c.IMAP.ListenTLS, &c.HTTP.Listen, &c.HTTP.ListenTLS, &c.ManageSieve.Listen} {
		*l = []string{"127.0.0.1:0"}
	}
	return c
}

// run serves a until its Run returns, with a context that is already over: a start and a
// graceful stop.
func startStop(t *testing.T, a *App) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	a.Grace = 0
	if err := a.Run(ctx, nil); err != nil {
		t.Fatal(err)
	}
}

// TestFailedStartChangesNothing: a start that cannot bind its ports leaves no data directory,
// no development account and no printed password; the next start does it all.
func TestFailedStartChangesNothing(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	cfg := devConfig(t.TempDir())
	cfg.POP3.ListenTLS = []string{taken.Addr().String()}
	log := slog.New(slog.DiscardHandler)
	var out bytes.Buffer
	_, err = New(context.Background(), cfg, log, &out)
	if err == nil || !strings.Contains(err.Error(), "cannot listen on "+taken.Addr().String()+" for pop3s: the port is in use") {
		t.Fatalf("New with a taken port: %v", err)
	}
	if _, serr := os.Stat(cfg.Data); !os.IsNotExist(serr) || out.Len() > 0 {
		t.Fatalf("failed start left %s (%v) and printed %q", cfg.Data, serr, out.String())
	}
	// The ports it had bound before the failure are free again: the same config starts.
	cfg.POP3.ListenTLS = []string{"127.0.0.1:0"}
	a, err := New(context.Background(), cfg, log, &out)
	if err != nil {
		t.Fatal(err)
	}
	startStop(t, a)
	if !strings.Contains(out.String(), "created account dev@example.test with password") {
		t.Errorf("first successful start printed:\n%s", out.String())
	}
	// example.test got its DKIM keys with the other writes of the first start, and a
	// second start keeps them rather than making new records necessary.
	keys, err := DKIMKeys(cfg.Data).SigningKeys(context.Background(), config.DevDomain)
	if err != nil || len(keys) != 2 || keys[0].Algorithm() != "ed25519" || keys[1].Algorithm() != "rsa" {
		t.Fatalf("DKIM keys of %s after the first start: %v, %v", config.DevDomain, keys, err)
	}
	if !strings.Contains(out.String(), "created DKIM rsa key "+keys[1].Selector+" for example.test") {
		t.Errorf("first start did not report the DKIM keys:\n%s", out.String())
	}
	out.Reset()
	if a, err = New(context.Background(), cfg, log, &out); err != nil {
		t.Fatal(err)
	}
	startStop(t, a)
	if again, _ := DKIMKeys(cfg.Data).SigningKeys(context.Background(), config.DevDomain); len(again) != 2 || strings.Contains(out.String(), "DKIM") {
		t.Errorf("second start: %d keys, printed %q; want the same 2 keys, nothing printed", len(again), out.String())
	}

	// A certificate that does not load fails before anything is written, too.
	bad := devConfig(t.TempDir())
	bad.Dev, bad.TLS.Cert, bad.TLS.Key = false, "/nonexistent/cert.pem", "/nonexistent/key.pem"
	if _, err := New(context.Background(), bad, log, &out); err == nil {
		t.Fatal("started without a certificate")
	}
	if _, serr := os.Stat(bad.Data); !os.IsNotExist(serr) {
		t.Errorf("start without a certificate created %s", bad.Data)
	}
}

// TestDataDirLock: one server per data directory; the lock goes with the server.
func TestDataDirLock(t *testing.T) {
	dir := t.TempDir()
	log := slog.New(slog.DiscardHandler)
	first, err := New(context.Background(), devConfig(dir), log, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	// Refused before it binds anything, whatever its ports.
	_, err = New(context.Background(), devConfig(dir), log, &bytes.Buffer{})
	if err == nil || !strings.Contains(err.Error(), "another petrel serve (pid ") || !strings.Contains(err.Error(), "is already running with the data directory "+filepath.Join(dir, "data")) {
		t.Fatalf("second server on the same data: %v", err)
	}
	// The management commands' way in is not locked.
	st, err := OpenStore(filepath.Join(dir, "data"), config.Quota{}, log)
	if err != nil {
		t.Fatalf("OpenStore while the server holds the lock: %v", err)
	}
	st.Close()
	startStop(t, first)
	again, err := New(context.Background(), devConfig(dir), log, &bytes.Buffer{})
	if err != nil {
		t.Fatalf("start after the first server stopped: %v", err)
	}
	startStop(t, again)
}

// TestDataDirMessages: a data directory this user cannot use is reported in the operator's
// terms, not SQLite's.
func TestDataDirMessages(t *testing.T) {
	me, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "data")
	err = dataDirError(dir, &fs.PathError{Op: "open", Path: filepath.Join(dir, "petrel.db"), Err: syscall.EACCES})
	if want := "cannot open the data directory " + dir + ": permission denied; run as the user that owns it (" + me.Username + ") or pass --data"; err.Error() != want {
		t.Errorf("message\n%s\nwant\n%s", err, want)
	}
	if os.Geteuid() == 0 {
		return // root may use any directory; the e2e privilege test covers another user
	}
	if err := os.Mkdir(dir, 0o500); err != nil {
		t.Fatal(err)
	}
	_, err = OpenStore(dir, config.Quota{}, slog.New(slog.DiscardHandler))
	if err == nil || !strings.Contains(err.Error(), "cannot open the data directory "+dir+": permission denied; run as the user that owns it") {
		t.Errorf("read-only data directory: %v", err)
	}
}

// TestKeyHelper runs the helper process (this test binary under the helper's name) and
// reloads through it: renewed files are picked up, a missing file is an error that leaves
// the helper usable, and closing ends it.
func TestKeyHelper(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := writeSelfSigned(t, dir, "localhost")
	h, err := startKeyHelper(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	c := &certs{certFile: certFile, keyFile: keyFile, load: h.load}
	if err := c.Reload(); err != nil {
		t.Fatal(err)
	}
	first := c.cur.Load()

	// A renewal replaces both files (new inodes, as certbot and the e2e tests do).
	other := filepath.Join(t.TempDir(), "n")
	nc, nk := writeSelfSigned(t, other, "localhost")
	for _, f := range [][2]string{{nc, certFile}, {nk, keyFile}} {
		if err := os.Rename(f[0], f[1]); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Reload(); err != nil || c.cur.Load() == first || bytes.Equal(c.cur.Load().Certificate[0], first.Certificate[0]) {
		t.Fatalf("reload through the helper did not pick up the new pair: %v", err)
	}
	renewed := c.cur.Load()

	os.Rename(keyFile, keyFile+".away")
	if err := c.Reload(); err == nil || !strings.Contains(err.Error(), keyFile) || c.cur.Load() != renewed {
		t.Fatalf("missing key: %v (the current certificate must stay)", err)
	}
	os.Rename(keyFile+".away", keyFile)
	if err := c.Reload(); err != nil {
		t.Fatalf("the helper did not survive a missing file: %v", err)
	}
	if err := h.Close(); err != nil {
		t.Errorf("helper exit: %v", err)
	}
}

// TestConfigDomainsGetDKIMKeys: every domain of the config file gets an Ed25519 and an
// RSA-2048 key at the first start, logged, and `petrel dns` (RecordsFor) publishes them; a
// second start makes nothing, and a domain that already had a key keeps exactly its keys.
func TestConfigDomainsGetDKIMKeys(t *testing.T) {
	dir := t.TempDir()
	cfg := devConfig(dir)
	cfg.Dev = false
	cfg.Hostname = "mail.one.test"
	cfg.Domains = []string{"one.test", "Two.test", "three.test"}
	cfg.TLS.Cert, cfg.TLS.Key = writeSelfSigned(t, dir, "mail.one.test")
	ctx := context.Background()
	// three.test comes with a key of its own (an operator's, say): it must survive.
	own, err := msgauth.GenerateKey("three.test", "mine", msgauth.Ed25519, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if err := DKIMKeys(cfg.Data).Add(own); err != nil {
		t.Fatal(err)
	}
	var logs, out bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	a, err := New(ctx, cfg, log, &out)
	if err != nil {
		t.Fatal(err)
	}
	startStop(t, a)
	files := map[string][]byte{}
	for _, d := range []string{"one.test", "two.test"} {
		keys, err := DKIMKeys(cfg.Data).SigningKeys(ctx, d)
		if err != nil || len(keys) != 2 || keys[0].Algorithm() != msgauth.Ed25519 || keys[1].Algorithm() != msgauth.RSA {
			t.Fatalf("DKIM keys of %s after the first start: %v, %v", d, keys, err)
		}
		if bits := keys[1].Signer.Public().(*rsa.PublicKey).N.BitLen(); bits != 2048 {
			t.Errorf("%s: RSA key of %d bits", d, bits)
		}
		for _, k := range keys {
			if !strings.Contains(logs.String(), "selector="+k.Selector) || !strings.Contains(out.String(), "created DKIM "+string(k.Algorithm())+" key "+k.Selector+" for "+d) {
				t.Errorf("key %s of %s made without a word:\nlog:\n%s\nout:\n%s", k.Selector, d, logs.String(), out.String())
			}
			f := filepath.Join(DKIMDir(cfg.Data), d, k.Selector+".pem")
			b, err := os.ReadFile(f)
			if fi, serr := os.Stat(f); err != nil || serr != nil || fi.Mode().Perm() != 0o600 {
				t.Fatalf("%s: %v %v", f, err, serr)
			}
			files[f] = b
		}
		recs, err := RecordsFor(cfg, d, keys)
		if err != nil {
			t.Fatal(err)
		}
		published := 0
		for _, r := range recs.Auth {
			for _, k := range keys {
				if r.Name == k.RecordName() {
					published++
				}
			}
		}
		if published != 2 {
			t.Errorf("petrel dns %s: %d of its 2 key records", d, published)
		}
	}
	if keys, _ := DKIMKeys(cfg.Data).SigningKeys(ctx, "three.test"); len(keys) != 1 || keys[0].Selector != "mine" {
		t.Errorf("three.test had its own key; now it has %v", keys)
	}

	// A second start leaves every key file as it was and says nothing about keys.
	logs.Reset()
	out.Reset()
	if a, err = New(ctx, cfg, log, &out); err != nil {
		t.Fatal(err)
	}
	startStop(t, a)
	for f, b := range files {
		if again, err := os.ReadFile(f); err != nil || !bytes.Equal(again, b) {
			t.Errorf("%s changed at the second start (%v)", f, err)
		}
	}
	for _, d := range []string{"one.test", "two.test"} {
		if keys, _ := DKIMKeys(cfg.Data).SigningKeys(ctx, d); len(keys) != 2 {
			t.Errorf("%s has %d keys after the second start, want 2", d, len(keys))
		}
	}
	if strings.Contains(logs.String(), "DKIM key") || strings.Contains(out.String(), "DKIM") {
		t.Errorf("second start spoke of DKIM keys:\nlog:\n%s\nout:\n%s", logs.String(), out.String())
	}
}
