package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"petrel/internal/mailtest"
)

// TestForwarding: an alias on A (a.test, 127.0.0.2) forwards to a user on B (b.test and
// d.test, 127.0.0.3). Carol on B writes to the alias; A forwards the message back to B from
// an SRS address of a.test, so that B's SPF check (of a.test, which lists loopback) passes
// where d.test's own record would not; a refusal by B comes back to carol as a DSN, and so
// does a bounce B sends to the SRS address; a forged SRS address is refused.
func TestForwarding(t *testing.T) {
	t.Parallel()
	port := sharedPort(t, "127.0.0.2", "127.0.0.3")
	dns := mailtest.StartDNS(t, mailtest.Zone{
		MX: map[string][]mailtest.MX{
			"a.test": {{Pref: 10, Host: "mx.a.test"}},
			"b.test": {{Pref: 10, Host: "mx.b.test"}},
			"d.test": {{Pref: 10, Host: "mx.b.test"}},
		},
		A: map[string][]string{"mx.a.test": {"127.0.0.2"}, "mx.b.test": {"127.0.0.3"}},
		TXT: map[string][]string{
			"a.test": {"v=spf1 ip4:127.0.0.0/8 -all"},
			// d.test sends from elsewhere: a forwarder keeping carol's address would fail.
			"d.test": {"v=spf1 ip4:192.0.2.1 ~all"},
		},
	})
	instance := func(host, addr string, domains string) *instance {
		return startInstance(t, options{
			"":     {fmt.Sprintf("hostname = %q", host), "domains = " + domains},
			"smtp": {fmt.Sprintf("listen = [\"%s:%d\"]", addr, port)},
			// One resolver for both, in [dns] (the harness's own per-section ones unset).
			"dns":       {fmt.Sprintf("resolver = %q", dns.Addr)},
			"mail_auth": {`resolver = ""`},
			"outbound":  {`resolver = ""`, fmt.Sprintf("port = %d", port), `retry_first = "200ms"`, `retry_max = "1s"`},
		})
	}
	a := instance("mx.a.test", "127.0.0.2", `["a.test"]`)
	b := instance("mx.b.test", "127.0.0.3", `["b.test", "d.test"]`)
	const pass = "forward-secret-1"
	b.addAccount("bob@b.test", pass)
	b.addAccount("carol@d.test", pass)
	a.mustPetrel("", "alias", "add", "fwd@a.test", "bob@b.test")
	a.mustPetrel("", "alias", "add", "fwdbad@a.test", "nobody@b.test")
	// A seals its forwards with a.test's RSA key (ARC), made at its first start (a.test is
	// in its config file) and published where B looks.
	keys := map[string]string{}
	for name, txt := range printedTXT(a.mustPetrel("", "dns", "a.test")) {
		if strings.Contains(name, "._domainkey.") {
			keys[name] = txt[0]
		}
	}
	if len(keys) != 2 {
		t.Fatalf("petrel dns a.test printed %d key records, want 2", len(keys))
	}
	dns.Update(func(z *mailtest.Zone) {
		for name, rec := range keys {
			z.TXT[name] = []string{rec}
		}
	})

	fetch := func(user string) map[string]string {
		msgs, err := fetchAll(b.POP3S, user, pass, false)
		if err != nil {
			t.Fatalf("POP3 for %s: %v", user, err)
		}
		out := map[string]string{}
		for i, m := range msgs {
			key := tokenOf(m)
			if key == "" {
				key = fmt.Sprint("#", i)
			}
			out[key] = string(m)
		}
		return out
	}
	queues := func() string {
		return "queue of A:\n" + a.mustPetrel("", "queue", "list") + "queue of B:\n" + b.mustPetrel("", "queue", "list")
	}
	submit := func(token, to string) {
		t.Helper()
		if err := sendMail(b.Submissions, true, "carol@d.test", pass, "carol@d.test", []string{to},
			testMessage(token, "carol@d.test", to)); err != nil {
			t.Fatalf("submitting %s: %v", token, err)
		}
	}
	// dsnFor waits for a DSN in carol's mailbox that contains all of want.
	dsnFor := func(want ...string) string {
		t.Helper()
		var found string
		waitFor(60*time.Second, func() bool {
			for _, m := range fetch("carol@d.test") {
				ok := strings.Contains(m, "multipart/report")
				for _, w := range want {
					ok = ok && strings.Contains(m, w)
				}
				if ok {
					found = m
					return true
				}
			}
			return false
		})
		if found == "" {
			t.Fatalf("no DSN with %q in carol's mailbox\n%s", want, queues())
		}
		return found
	}

	var srsAddr string
	t.Run("forwarded with SRS, SPF passes", func(t *testing.T) {
		submit("via-alias", "fwd@a.test")
		var got string
		waitFor(60*time.Second, func() bool { got = fetch("bob@b.test")["via-alias"]; return got != "" })
		if got == "" {
			t.Fatalf("bob did not get the forwarded message\n%s", queues())
		}
		m := regexp.MustCompile(`(?m)^Return-Path: <(SRS0=[^>]+@a\.test)>`).FindStringSubmatch(got)
		if m == nil || !strings.Contains(m[1], "=d.test=carol@") {
			t.Fatalf("envelope sender is not an SRS address of a.test for carol@d.test:\n%s", got)
		}
		srsAddr = m[1]
		ar := regexp.MustCompile(`(?s)Authentication-Results: mx\.b\.test;.*?\r\n[^ \t]`).FindString(got)
		if !strings.Contains(ar, "spf=pass") || !strings.Contains(ar, `smtp.mailfrom="`+srsAddr+`"`) {
			t.Errorf("B's SPF result of the forwarded copy is not a pass for %s:\n%s", srsAddr, got)
		}
		if !strings.Contains(got, "by mx.a.test") || !strings.Contains(got, "From: carol@d.test") {
			t.Errorf("forwarded copy lost its trace or header:\n%s", got)
		}
		// A's ARC set (RFC 8617) repeats what A saw (d.test's SPF softfails from B's
		// address) and B verifies the chain; so does dkimpy, the reference implementation.
		if !strings.Contains(got, "ARC-Seal: i=1; a=rsa-sha256; cv=none;\r\n\td=a.test;") ||
			!regexp.MustCompile(`ARC-Authentication-Results: i=1; mx\.a\.test;\s+spf=softfail`).MatchString(got) {
			t.Errorf("no ARC set of a.test with A's results:\n%s", got)
		}
		if !strings.Contains(ar, "arc=pass") {
			t.Errorf("B did not verify A's ARC chain:\n%s", got)
		}
		arcpyVerify(t, got, keys)
	})

	t.Run("refusal at B bounces to the original sender", func(t *testing.T) {
		submit("via-bad-alias", "fwdbad@a.test")
		d := dsnFor("Final-Recipient: rfc822; nobody@b.test")
		for _, want := range []string{"Action: failed", "Status: 5.1.1", "Original-Recipient: rfc822; fwdbad@a.test", "via-bad-alias"} {
			if !strings.Contains(d, want) {
				t.Errorf("DSN lacks %q:\n%s", want, d)
			}
		}
	})

	t.Run("a bounce to the SRS address reaches the original sender", func(t *testing.T) {
		if srsAddr == "" {
			t.Skip("no SRS address: the forwarding subtest failed")
		}
		bounce := "From: MAILER-DAEMON@mx.b.test\r\nTo: " + srsAddr + "\r\nSubject: bounce-srs\r\n" +
			"MIME-Version: 1.0\r\nContent-Type: multipart/report; report-type=delivery-status; boundary=x\r\n\r\n" +
			"--x\r\nContent-Type: text/plain\r\n\r\nThe forwarded copy could not be delivered.\r\n" +
			"--x\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.b.test\r\n\r\n" +
			"Final-Recipient: rfc822; bob@b.test\r\nAction: failed\r\nStatus: 5.2.2\r\n\r\n--x--\r\n"
		if err := sendMail(fmt.Sprintf("127.0.0.2:%d", port), false, "", "", "", []string{srsAddr}, []byte(bounce)); err != nil {
			t.Fatalf("bounce to %s refused: %v", srsAddr, err)
		}
		dsnFor("Subject: bounce-srs", "Status: 5.2.2")
	})

	t.Run("forged SRS address refused", func(t *testing.T) {
		s, _, err := dialSMTP(fmt.Sprintf("127.0.0.2:%d", port))
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		if _, err := s.expect(250, "EHLO mx.b.test"); err != nil {
			t.Fatal(err)
		}
		if _, err := s.expect(250, "MAIL FROM:<>"); err != nil {
			t.Fatal(err)
		}
		for _, forged := range []string{"SRS0=abcd=AB=d.test=carol@a.test", strings.Replace(srsAddr, "carol@", "dave@", 1)} {
			rp, err := s.cmd("RCPT TO:<%s>", forged)
			if err != nil || rp.Code != 550 || !strings.HasPrefix(rp.Text, "5.7.1") {
				t.Errorf("RCPT TO:<%s>: %v %v, want 550 5.7.1", forged, rp, err)
			}
		}
	})
}

// arcpyVerify checks the ARC chain of msg with dkimpy's arc_verify (Debian's python3-dkim,
// through internal/mail/arc's driver script), the key records given by name: pass or the
// test fails. Without dkimpy it returns locally and fails in CI.
func arcpyVerify(t *testing.T, msg string, keys map[string]string) {
	t.Helper()
	const py = "/usr/bin/python3"
	if err := exec.Command(py, "-c", "import dkim, authres").Run(); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("python3-dkim or python3-authres is not installed (see .ci/run)")
		}
		t.Log("dkimpy missing (apt-get install python3-dkim python3-authres): ARC chain not checked with it")
		return
	}
	records, _ := json.Marshal(keys)
	file := filepath.Join(t.TempDir(), "records.json")
	writeFile(t, file, string(records), 0o600)
	cmd := exec.Command(py, "../../internal/mail/arc/testdata/arcpy.py", "verify", file)
	cmd.Stdin = strings.NewReader(msg)
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.HasPrefix(string(out), "pass") {
		t.Errorf("dkimpy's arc_verify: %s %v\n%s", out, err, msg)
	}
}
