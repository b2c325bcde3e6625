// Package e2e tests the built petrel binary end to end, with real mail clients (python's
// smtplib and poplib, swaks, curl, msmtp, mpop, fetchmail) and with small Go clients where a
// test needs exact control over the bytes on the wire.
//
// TestMain builds cmd/petrel once. Every test starts its own instance from a generated config
// file: free loopback ports, a certificate signed by a test CA that the clients trust, a data
// directory in t.TempDir(). Only TestDevInstance uses the fixed ports of the development
// instance.
//
// Environment:
//   - CI set: a missing client tool fails the test instead of skipping it.
//   - PETREL_E2E_RACE=1: build the binary with -race (slower, finds data races under real
//     clients; a race report in the server's stderr fails the test).
//   - PETREL_E2E_BIN=path: test that binary instead of building one (an installed release, or
//     a deliberately broken build to check that the tests catch the breakage).
package e2e

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"petrel/internal/mailtest"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"petrel/internal/mailtest/dialog"
)

// Set by TestMain.
var (
	petrelBin string // the built binary
	ca        *testCA
)

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	root, err := moduleRoot()
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	// tmp/ of the module root is git-ignored; a directory per run keeps concurrent runs apart.
	if err := os.MkdirAll(filepath.Join(root, "tmp"), 0o755); err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	binDir, err := os.MkdirTemp(filepath.Join(root, "tmp"), "e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	defer os.RemoveAll(binDir)
	if petrelBin = os.Getenv("PETREL_E2E_BIN"); petrelBin == "" {
		petrelBin = filepath.Join(binDir, "petrel")
		args := []string{"build", "-o", petrelBin}
		if os.Getenv("PETREL_E2E_RACE") == "1" {
			args = append(args, "-race")
		}
		build := exec.Command("go", append(args, "./cmd/petrel")...)
		build.Dir = root
		if out, err := build.CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "e2e: go build ./cmd/petrel: %v\n%s", err, out)
			return 1
		}
	}
	if ca, err = newTestCA(binDir); err != nil {
		fmt.Fprintln(os.Stderr, "e2e: test CA:", err)
		return 1
	}
	return mailtest.PostgresMain(m) // m.Run, then stop the PostgreSQL cluster if a test started one
}

func moduleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		return "", errors.New("not inside the petrel module")
	}
	return filepath.Dir(mod), nil
}

// ---------------------------------------------------------------------------------------------
// Certificates

// testCA signs the server certificates; clients trust its certificate file.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	File string // PEM of the CA certificate, for --cacert, tls_trust_file, cafile=...
}

func newTestCA(dir string) (*testCA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "Petrel e2e test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	c := &testCA{cert: cert, key: key, File: filepath.Join(dir, "ca.pem")}
	return c, os.WriteFile(c.File, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
}

var serial struct {
	sync.Mutex
	n int64
}

// leaf writes a new server certificate and key for 127.0.0.1 and localhost to the given
// paths (atomically, so a reload never sees half a file) and returns the certificate's
// SHA-256 fingerprint.
func (c *testCA) leaf(t *testing.T, certFile, keyFile string) [32]byte {
	t.Helper()
	serial.Lock()
	serial.n++
	sn := big.NewInt(serial.n + 1)
	serial.Unlock()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: sn,
		Subject:      pkix.Name{CommonName: "localhost"},
		DNSNames:     []string{"localhost", "mail.example.test"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, c.cert, &key.PublicKey, c.key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	writeAtomic(t, keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), 0o600)
	writeAtomic(t, certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
	return sha256.Sum256(der)
}

// tlsConfig trusts the test CA only.
func (c *testCA) tlsConfig() *tls.Config {
	pool := x509.NewCertPool()
	pool.AddCert(c.cert)
	return &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}
}

func writeAtomic(t *testing.T, path string, data []byte, perm os.FileMode) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, perm); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// ---------------------------------------------------------------------------------------------
// Instances

// instance is one petrel process with its own directory, config and ports.
type instance struct {
	t        *testing.T
	dir      string // the instance's directory: config, certificate, data
	data     string // data directory
	config   string // config file ("" for the development instance)
	certFile string
	keyFile  string
	certFP   [32]byte // fingerprint of the certificate the instance started with

	// Listener addresses (host:port).
	SMTP, Submission, Submissions, POP3, POP3S, IMAP, IMAPS, HTTP, HTTPS, ManageSieve string

	// The running process; replaced by each start.
	mu      sync.Mutex
	cmd     *exec.Cmd
	stdout  *dialog.Log
	stderr  *dialog.Log
	done    chan struct{} // closed when the process has exited
	exitErr error         // valid once done is closed
	stopped bool          // we stopped it on purpose (kill, stop); no complaint at cleanup

}

// options adjust the generated config: lines per TOML table ("" is the top level). A line
// whose key the base config already sets replaces it.
type options map[string][]string

// startInstance writes a config with free ports and a fresh certificate and starts petrel.
func startInstance(t *testing.T, opts options) *instance {
	t.Helper()
	in := newInstance(t, opts)
	t.Cleanup(in.cleanup)
	in.start()
	return in
}

// newInstance writes the config file, certificate and key of an instance without starting it.
func newInstance(t *testing.T, opts options) *instance {
	t.Helper()
	dir := t.TempDir()
	in := &instance{
		t:        t,
		dir:      dir,
		data:     filepath.Join(dir, "data"),
		config:   filepath.Join(dir, "petrel.toml"),
		certFile: filepath.Join(dir, "cert.pem"),
		keyFile:  filepath.Join(dir, "key.pem"),
	}
	in.certFP = ca.leaf(t, in.certFile, in.keyFile)
	// mailtest.FreePorts never hands out a port twice in this process, so parallel
	// instances (and the Dovecots and Postfixes of other tests) do not collide.
	addrs := make([]*string, 0, listeners)
	addrs = append(addrs, &in.SMTP, &in.Submission, &in.Submissions, &in.POP3, &in.POP3S)
	addrs = append(addrs, &in.IMAP, &in.IMAPS, &in.HTTP, &in.HTTPS, &in.ManageSieve)
	for i, p := range mailtest.FreePorts(t, len(addrs)) {
		*addrs[i] = fmt.Sprintf("127.0.0.1:%d", p)
	}
	noDNS := mailtest.StartDNS(t, mailtest.Zone{})

	base := options{
		"": {
			`hostname = "mail.example.test"`,
			fmt.Sprintf("data = %q", in.data),
			`domains = ["example.test"]`,
		},
		"log": {`level = "debug"`},
		"tls": {fmt.Sprintf("cert = %q", in.certFile), fmt.Sprintf("key = %q", in.keyFile)},
		"smtp": {
			fmt.Sprintf("listen = [%q]", in.SMTP),
			fmt.Sprintf("submission = [%q]", in.Submission),
			fmt.Sprintf("submissions = [%q]", in.Submissions),
		},
		"pop3": {
			fmt.Sprintf("listen = [%q]", in.POP3),
			fmt.Sprintf("listen_tls = [%q]", in.POP3S),
		},
		"imap": {
			fmt.Sprintf("listen = [%q]", in.IMAP),
			fmt.Sprintf("listen_tls = [%q]", in.IMAPS),
		},
		"http": {
			fmt.Sprintf("listen = [%q]", in.HTTP),
			fmt.Sprintf("listen_tls = [%q]", in.HTTPS),
		},
		"managesieve": {fmt.Sprintf("listen = [%q]", in.ManageSieve)},
		// Tests log in wrongly on purpose; the default 1 s delay would only make them slow.
		"limits": {`auth_failure_delay = "10ms"`, `auth_failure_max_delay = "50ms"`},
		// The senders of these tests have no DNS records. An empty DNS server on loopback
		// answers every look-up at once with "no such name", wherever the tests run: the
		// machine's own resolver may drop queries it cannot forward (a CI host with no
		// internet), and each message would then wait out the DNS timeout.
		// A test with records of its own sets [dns] (or a section's resolver) to its server.
		"mail_auth": {`defer_temperror = false`},
		"dns":       {fmt.Sprintf("resolver = %q", noDNS.Addr)},
	}
	writeFile(t, in.config, renderConfig(base, opts), 0o600)
	return in
}

func renderConfig(base, extra options) string {
	var b strings.Builder
	for _, table := range []string{"", "log", "tls", "smtp", "pop3", "imap", "http", "managesieve", "limits", "mail_auth", "dns", "outbound", "store", "pull"} {
		lines := append([]string(nil), base[table]...)
		for _, l := range extra[table] {
			k := configKey(l)
			replaced := false
			for i, bl := range lines {
				if configKey(bl) == k {
					lines[i], replaced = l, true
				}
			}
			if !replaced {
				lines = append(lines, l)
			}
		}
		if len(lines) == 0 {
			continue
		}
		if table != "" {
			fmt.Fprintf(&b, "\n[%s]\n", table)
		}
		for _, l := range lines {
			b.WriteString(l + "\n")
		}
	}
	return b.String()
}

func configKey(line string) string {
	k, _, _ := strings.Cut(line, "=")
	return strings.TrimSpace(k)
}

// args are the global flags selecting this instance's config.
func (in *instance) args() []string {
	if in.config == "" {
		return []string{"--data", in.data}
	}
	return []string{"-c", in.config}
}

// listeners is how many "listening on" lines a started instance prints.
const listeners = 10

// start runs `petrel serve` and waits until every listener is bound.
func (in *instance) start() {
	in.t.Helper()
	in.launch()
	in.waitListening()
}

// launch starts the server process without waiting for it to listen (waitListening does),
// so that a test can start several at the same moment.
func (in *instance) launch() {
	t := in.t
	t.Helper()
	cmd := exec.Command(petrelBin, append(in.args(), "serve")...)
	stdout, stderr := &dialog.Log{}, &dialog.Log{}
	cmd.Stdout, cmd.Stderr = stdout, stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start petrel: %v", err)
	}
	done := make(chan struct{})
	in.mu.Lock()
	in.cmd, in.stdout, in.stderr, in.done, in.stopped = cmd, stdout, stderr, done, false
	in.mu.Unlock()
	go func() {
		err := cmd.Wait()
		in.mu.Lock()
		in.exitErr = err
		in.mu.Unlock()
		close(done)
	}()
}

// waitListening waits until the process launch started listens on every port.
func (in *instance) waitListening() {
	t := in.t
	t.Helper()
	in.mu.Lock()
	stdout, stderr, done := in.stdout, in.stderr, in.done
	in.mu.Unlock()
	// App.Run prints one line per listener after binding all of them, so once the last line
	// is out every port accepts.
	deadline := time.Now().Add(startTimeout)
	for strings.Count(stdout.String(), " listening on ") < listeners {
		select {
		case <-done:
			t.Fatalf("petrel exited during start: %v\nstdout:\n%s\nstderr:\n%s", in.exitErr, stdout, tail(stderr.String(), 40))
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("petrel did not start listening within %v\nstdout:\n%s\nstderr:\n%s", startTimeout, stdout, tail(stderr.String(), 40))
		}
	}
}

// signal sends sig to the process this instance started.
func (in *instance) signal(sig syscall.Signal) {
	in.t.Helper()
	in.mu.Lock()
	p := in.cmd.Process
	if sig == syscall.SIGKILL || sig == syscall.SIGTERM {
		in.stopped = true
	}
	in.mu.Unlock()
	if err := p.Signal(sig); err != nil {
		in.t.Fatalf("signal %v to petrel (pid %d): %v", sig, p.Pid, err)
	}
}

// wait waits up to d for the process to exit and returns its exit code (-1 if killed by a
// signal), or fails the test.
func (in *instance) wait(d time.Duration) int {
	in.t.Helper()
	select {
	case <-in.done:
	case <-time.After(d):
		in.t.Fatalf("petrel (pid %d) did not exit within %v\nstderr:\n%s", in.cmd.Process.Pid, d, tail(in.stderr.String(), 30))
	}
	return in.cmd.ProcessState.ExitCode()
}

// kill stops the process with SIGKILL, as a crash would, and waits for it.
func (in *instance) kill() {
	in.t.Helper()
	in.signal(syscall.SIGKILL)
	in.wait(stopTimeout)
}

// running reports whether the process is still alive.
func (in *instance) running() bool {
	select {
	case <-in.done:
		return false
	default:
		return true
	}
}

// cleanup kills the process if still running (by its PID only), complains if it died on its
// own, and prints the tail of its log when the test failed.
func (in *instance) cleanup() {
	t := in.t
	in.mu.Lock()
	stopped := in.stopped
	in.mu.Unlock()
	if in.cmd != nil && in.running() {
		in.cmd.Process.Kill()
		<-in.done
	} else if in.cmd != nil && !stopped {
		t.Errorf("petrel exited on its own during the test: %v", in.exitErr)
	}
	if in.stderr == nil {
		return
	}
	log := in.stderr.String()
	for _, bad := range []string{"panic:", "WARNING: DATA RACE", "goroutine "} {
		if strings.Contains(log, bad) {
			t.Errorf("server log contains %q", bad)
		}
	}
	if t.Failed() {
		t.Logf("petrel stdout:\n%s", tail(in.stdout.String(), 20))
		t.Logf("petrel stderr (last 60 lines):\n%s", tail(log, 60))
	}
}

// petrel runs a management command against this instance's data (while it serves).
func (in *instance) petrel(stdin string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, petrelBin, append(in.args(), args...)...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if err != nil {
		return out.String(), fmt.Errorf("petrel %s: %v\nstdout: %s\nstderr: %s", strings.Join(args, " "), err, out.String(), errb.String())
	}
	return out.String(), nil
}

// mustPetrel is petrel that fails the test on error.
func (in *instance) mustPetrel(stdin string, args ...string) string {
	in.t.Helper()
	out, err := in.petrel(stdin, args...)
	if err != nil {
		in.t.Fatal(err)
	}
	return out
}

// addAccount creates an account through the CLI, the password on stdin as a script would.
func (in *instance) addAccount(address, password string) {
	in.t.Helper()
	out := in.mustPetrel(password+"\n", "account", "add", address)
	if !strings.Contains(out, address) {
		in.t.Fatalf("account add %s printed %q", address, out)
	}
}

// tail returns the last n lines of s.
func tail(s string, n int) string {
	lines := strings.SplitAfter(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "")
}

func writeFile(t *testing.T, path, content string, perm os.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), perm); err != nil {
		t.Fatal(err)
	}
}

// ---------------------------------------------------------------------------------------------
// External tools

// requireTools skips the test when a client tool is missing, or fails it when CI is set:
// on CI a missing tool is a broken image, not a reason to pass.
func requireTools(t *testing.T, names ...string) {
	t.Helper()
	for _, name := range names {
		if _, err := exec.LookPath(name); err != nil {
			missing(t, "%s not found in PATH (Debian: apt-get install %s)", name, name)
		}
		if name == "swaks" {
			// swaks needs these Perl modules for --tls/--tlsc.
			if err := exec.Command("perl", "-MNet::SSLeay", "-MIO::Socket::SSL", "-e1").Run(); err != nil {
				missing(t, "swaks TLS needs libnet-ssleay-perl and libio-socket-ssl-perl")
			}
		}
	}
}

func missing(t *testing.T, format string, args ...any) {
	t.Helper()
	if os.Getenv("CI") != "" {
		t.Fatalf("CI: "+format, args...)
	}
	t.Skipf("skipping: "+format, args...)
}

// run runs an external client with a timeout and returns its stdout; it fails the test with
// the client's output if it exits non-zero.
func run(t *testing.T, stdin []byte, env []string, name string, args ...string) string {
	t.Helper()
	out, err := runErr(stdin, env, name, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func runErr(stdin []byte, env []string, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	if env != nil {
		cmd.Env = append(os.Environ(), env...)
	}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("%s %s: %v\nstdout:\n%s\nstderr:\n%s", name, strings.Join(args, " "), err, tail(out.String(), 40), tail(errb.String(), 40))
	}
	return out.String(), nil
}

// ---------------------------------------------------------------------------------------------
// Messages

// testMessage is a message with a unique token in its Message-ID, Subject and body, and body
// lines that need dot-stuffing on the wire.
func testMessage(token, from, to string) []byte {
	return []byte("From: " + from + "\r\n" +
		"To: " + to + "\r\n" +
		"Subject: e2e " + token + "\r\n" +
		"Date: Mon, 01 Jan 2024 12:00:00 +0000\r\n" +
		"Message-ID: <" + token + "@e2e.example>\r\n" +
		"MIME-Version: 1.0\r\n" +
		"Content-Type: text/plain; charset=utf-8\r\n" +
		"\r\n" +
		"Body of " + token + ".\r\n" +
		".a line starting with a dot\r\n" +
		"..and one with two\r\n" +
		"\r\n" +
		"Trailing spaces stay   \r\n" +
		"Grüße, the end.\r\n")
}

var messageIDRe = regexp.MustCompile(`(?m)^Message-ID: <([^@>]+)@e2e\.example>\r?$`)

// tokenOf returns the token of a message built by testMessage, "" if none.
func tokenOf(msg []byte) string {
	m := messageIDRe.FindSubmatch(msg)
	if m == nil {
		return ""
	}
	return string(m[1])
}

// byToken indexes messages by their token; a token seen twice fails the test.
func byToken(t *testing.T, msgs [][]byte) map[string][]byte {
	t.Helper()
	m := map[string][]byte{}
	for _, msg := range msgs {
		tok := tokenOf(msg)
		if tok == "" {
			t.Errorf("retrieved a message without a test token:\n%s", msg)
			continue
		}
		if _, dup := m[tok]; dup {
			t.Errorf("message %s retrieved twice", tok)
		}
		m[tok] = msg
	}
	return m
}

// checkStored checks that a retrieved message is the sent bytes with only the trace header
// fields Petrel adds in front: Return-Path first, then Received, no blank line among them.
func checkStored(t *testing.T, what string, got, sent []byte) {
	t.Helper()
	if !bytes.HasSuffix(got, sent) {
		t.Errorf("%s: retrieved message does not end with the bytes sent\nsent:\n%q\ngot:\n%q", what, sent, got)
		return
	}
	trace := string(got[:len(got)-len(sent)])
	if !strings.HasPrefix(trace, "Return-Path:") {
		t.Errorf("%s: retrieved message does not start with Return-Path:\n%q", what, trace)
	}
	if !strings.Contains(trace, "\r\nReceived: ") || !strings.HasSuffix(trace, "\r\n") ||
		strings.Contains(trace, "\r\n\r\n") || strings.Contains(strings.ReplaceAll(trace, "\r\n", ""), "\n") {
		t.Errorf("%s: prepended trace fields are not Return-Path + Received header lines:\n%q", what, trace)
	}
}

// waitFor polls cond every 20 ms until it is true or d has passed.
// Bounds for waits on the process itself. They only catch a hang: a start or stop takes well
// under a second on a quiet machine, but CI runs the packages side by side at a load average
// of 30, with a -race binary, where the scheduler can leave a process off the CPU for seconds.
const (
	startTimeout = 2 * time.Minute
	stopTimeout  = time.Minute
)

func waitFor(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
}
