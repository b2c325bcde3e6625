package e2e

import (
	"bytes"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
)

// Ports of the development instance, as documented (config.Dev).
const (
	devSMTP        = "127.0.0.1:2525"
	devSubmission  = "127.0.0.1:2587"
	devSubmissions = "127.0.0.1:2465"
	devPOP3        = "127.0.0.1:2110"
	devPOP3S       = "127.0.0.1:2995"
	devIMAP        = "127.0.0.1:2143"
	devIMAPS       = "127.0.0.1:2993"
	devHTTP        = "127.0.0.1:8080"
	devHTTPS       = "127.0.0.1:8443"
	devManageSieve = "127.0.0.1:24190"
)

var (
	devPasswordRe = regexp.MustCompile(`(?m)^petrel: created account dev@example\.test with password (\S+) \(shown once`)
	devCertRe     = regexp.MustCompile(`(?m)^petrel: TLS certificate (\S+) \(self-signed`)
)

// TestDevInstance runs `petrel --data DIR serve` without a config, as a new user would, and
// uses what it prints: the password of dev@example.test and the certificate to trust.
// Not parallel: it uses the fixed ports of the development instance.
func TestDevInstance(t *testing.T) {
	requireTools(t, "python3", "swaks")
	for _, a := range []string{devSMTP, devSubmission, devSubmissions, devPOP3, devPOP3S, devIMAP, devIMAPS, devHTTP, devHTTPS, devManageSieve} {
		l, err := net.Listen("tcp", a)
		if err != nil {
			missing(t, "port %s of the development instance is in use: %v", a, err)
		}
		l.Close()
	}
	dir := t.TempDir()
	in := &instance{
		t: t, dir: dir, data: filepath.Join(dir, "data"),
		SMTP: devSMTP, Submission: devSubmission, Submissions: devSubmissions, POP3: devPOP3, POP3S: devPOP3S,
		IMAP: devIMAP, IMAPS: devIMAPS, HTTP: devHTTP, HTTPS: devHTTPS, ManageSieve: devManageSieve,
	}
	t.Cleanup(in.cleanup)
	in.start()

	out := in.stdout.String()
	m := devPasswordRe.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no password printed for dev@example.test:\n%s", out)
	}
	pass := m[1]
	m = devCertRe.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no certificate path printed:\n%s", out)
	}
	cert := m[1]
	if want := filepath.Join(in.data, "tls", "cert.pem"); cert != want {
		t.Errorf("certificate at %s, want %s", cert, want)
	}

	// Inbound, as from another MX, with swaks.
	mx := testMessage("dev-swaks", "someone@remote.example", "dev@example.test")
	swaks(t, mx, "--server", devSMTP, "--from", "someone@remote.example", "--to", "dev@example.test")
	// Submission with STARTTLS and AUTH, with python, trusting the printed certificate.
	sub := testMessage("dev-python", "dev@example.test", "dev@example.test")
	host, port := splitAddr(t, devSubmission)
	path := filepath.Join(t.TempDir(), "msg.eml")
	writeFile(t, path, string(sub), 0o600)
	run(t, nil, nil, "python3", "-c", pySMTP, host, port, "starttls", cert, "dev@example.test", pass, "dev@example.test", "dev@example.test", path)

	sent := map[string][]byte{"dev-swaks": mx, "dev-python": sub}
	check := func(what string, md pyMaildrop) {
		t.Helper()
		if md.Count != len(sent) {
			t.Fatalf("%s: %d messages in the maildrop, want %d", what, md.Count, len(sent))
		}
		got := byToken(t, md.Messages)
		for tok, msg := range sent {
			checkStored(t, what+" "+tok, got[tok], msg)
		}
	}
	viaSSL := pyFetch(t, devPOP3S, "ssl", cert, "dev@example.test", pass, false)
	check("POP3S", viaSSL)
	viaSTLS := pyFetch(t, devPOP3, "stls", cert, "dev@example.test", pass, false)
	check("POP3+STLS", viaSTLS)
	// Same maildrop, same stable UIDLs (RFC 1939 §7), same bytes over both listeners.
	if strings.Join(viaSSL.UIDL, " ") != strings.Join(viaSTLS.UIDL, " ") {
		t.Errorf("UIDLs differ between sessions: %v vs %v", viaSSL.UIDL, viaSTLS.UIDL)
	}
	for i := range viaSSL.Messages {
		if !bytes.Equal(viaSSL.Messages[i], viaSTLS.Messages[i]) {
			t.Errorf("message %d differs between POP3S and POP3+STLS", i+1)
		}
	}

	// A second start finds the account and the certificate: no new password, same login.
	certBefore, err := os.ReadFile(cert)
	if err != nil {
		t.Fatal(err)
	}
	in.signal(syscall.SIGTERM)
	if code := in.wait(stopTimeout); code != 0 {
		t.Fatalf("exit status %d after SIGTERM", code)
	}
	in.start()
	if out := in.stdout.String(); strings.Contains(out, "created account") {
		t.Errorf("second start created the dev account again:\n%s", out)
	}
	if certAfter, _ := os.ReadFile(cert); !bytes.Equal(certBefore, certAfter) {
		t.Errorf("second start replaced the certificate")
	}
	if md := pyFetch(t, devPOP3S, "ssl", cert, "dev@example.test", pass, false); md.Count != len(sent) {
		t.Errorf("after restart: %d messages, want %d", md.Count, len(sent))
	}
}

// swaks sends msg with swaks and extra options (server, addresses, TLS, AUTH).
func swaks(t *testing.T, msg []byte, args ...string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "msg.eml")
	// swaks always sends CRLF before the final dot, so it gets the message without its last
	// line ending.
	writeFile(t, path, strings.TrimSuffix(string(msg), "\r\n"), 0o600)
	args = append([]string{"--data", "@" + path, "--ehlo", "client.example", "--timeout", "20"}, args...)
	out := run(t, nil, nil, "swaks", args...)
	if !strings.Contains(out, "<-  250") && !strings.Contains(out, "<~  250") {
		t.Fatalf("swaks %v: no 250 seen:\n%s", args, out)
	}
	return out
}
