package e2e

import (
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestSignals checks SIGHUP (reload the certificate for new connections, keep the old one if
// the new files are broken) and SIGTERM (idle sessions are told, the process exits 0, nothing
// is lost or half-applied).
func TestSignals(t *testing.T) {
	t.Parallel()
	in := startInstance(t, nil)
	const user, pass = "sig@example.test", "signal-secret-1"
	in.addAccount(user, pass)

	// Fingerprints of the certificate each TLS listener presents to a new connection.
	seen := func() map[string]string {
		t.Helper()
		return map[string]string{
			"pop3s":       implicitTLSFingerprint(t, in.POP3S),
			"submissions": implicitTLSFingerprint(t, in.Submissions),
			"submission":  starttlsFingerprint(t, in.Submission),
		}
	}
	expectCert := func(what string, want [32]byte) {
		t.Helper()
		for l, fp := range seen() {
			if fp != hex.EncodeToString(want[:]) {
				t.Errorf("%s: %s presents certificate %s, want %x", what, l, fp[:16], want[:8])
			}
		}
	}
	expectCert("at start", in.certFP)

	// Broken files: the reload fails and the current certificate stays in use.
	writeAtomic(t, in.certFile, []byte("not a certificate\n"), 0o644)
	before := strings.Count(in.stderr.String(), "reload")
	in.signal(syscall.SIGHUP)
	if !waitFor(time.Minute, func() bool { return strings.Count(in.stderr.String(), "reload") > before }) {
		t.Errorf("no log line about the failed reload")
	}
	if !in.running() {
		t.Fatalf("petrel exited after SIGHUP with a broken certificate")
	}
	expectCert("after a failed reload", in.certFP)

	// A session that exists across the reload keeps working.
	old, _, err := dialPOP3S(in.POP3S)
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()

	newFP := ca.leaf(t, in.certFile, in.keyFile)
	in.signal(syscall.SIGHUP)
	want := hex.EncodeToString(newFP[:])
	if !waitFor(time.Minute, func() bool { return implicitTLSFingerprint(t, in.POP3S) == want }) {
		t.Errorf("pop3s still presents the old certificate a minute after SIGHUP")
	}
	expectCert("after SIGHUP", newFP)
	if err := old.login(user, pass); err != nil {
		t.Errorf("session opened before the reload: %v", err)
	}
	old.ok("QUIT")

	// SIGTERM with an idle SMTP session and a POP3 session that has marked a message deleted.
	msg := testMessage("sigterm", "sender@remote.example", user)
	mustDeliver(t, in, []string{user}, msg)
	s, _, err := dialSMTP(in.SMTP)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.expect(250, "EHLO client.example"); err != nil {
		t.Fatal(err)
	}
	p, _, err := dialPOP3S(in.POP3S)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if err := p.login(user, pass); err != nil {
		t.Fatal(err)
	}
	if _, err := p.ok("DELE 1"); err != nil {
		t.Fatal(err)
	}

	start := time.Now()
	in.signal(syscall.SIGTERM)
	if rp, err := s.reply(); err != nil || rp.Code != 421 {
		t.Errorf("idle SMTP session at SIGTERM: %v %v, want 421", rp, err)
	}
	if l, err := p.line(); err != nil || !strings.HasPrefix(l, "-ERR") {
		t.Errorf("POP3 session at SIGTERM: %q %v, want -ERR", l, err)
	}
	if code := in.wait(stopTimeout); code != 0 {
		t.Errorf("exit status %d after SIGTERM, want 0", code)
	}
	// With only idle sessions there is nothing to wait for: a stop that takes the whole
	// grace (app.App.Grace, 30 s) waited for a session it should have closed. A bound any
	// shorter than the grace would time the machine, not the server.
	if d := time.Since(start); d >= 30*time.Second {
		t.Errorf("graceful stop took %v with only idle sessions: it waited out the grace", d)
	}

	// Nothing was lost, and the DELE of the interrupted POP3 session was not applied
	// (RFC 1939 §6: only QUIT enters the UPDATE state).
	in.start()
	got := mustFetchAll(t, in, user, pass, false)
	if len(got) != 1 {
		t.Fatalf("after restart: %d messages, want 1", len(got))
	}
	checkStored(t, "after restart", got[0], msg)
}

func implicitTLSFingerprint(t *testing.T, addr string) string {
	t.Helper()
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: ioTimeout}, "tcp", addr, ca.tlsConfig())
	if err != nil {
		t.Fatalf("TLS to %s: %v", addr, err)
	}
	defer c.Close()
	return leafFingerprint(c)
}

func starttlsFingerprint(t *testing.T, addr string) string {
	t.Helper()
	s, _, err := dialSMTP(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.expect(250, "EHLO client.example"); err != nil {
		t.Fatal(err)
	}
	if err := s.starttls(); err != nil {
		t.Fatalf("STARTTLS on %s: %v", addr, err)
	}
	return leafFingerprint(s.NetConn().(*tls.Conn))
}

func leafFingerprint(c *tls.Conn) string {
	sum := sha256.Sum256(c.ConnectionState().PeerCertificates[0].Raw)
	return hex.EncodeToString(sum[:])
}
