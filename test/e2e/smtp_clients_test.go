package e2e

import (
	"path/filepath"
	"strings"
	"testing"
)

// TestRealSMTPClients sends one message with each real SMTP client in each role it supports
// and checks that every message arrives byte for byte.
func TestRealSMTPClients(t *testing.T) {
	t.Parallel()
	requireTools(t, "python3", "swaks", "curl", "msmtp")
	in := startInstance(t, nil)
	const alice, pass = "alice@example.test", "alice-secret-1"
	in.addAccount(alice, pass)
	remote := "sender@remote.example"

	sent := map[string][]byte{}
	msg := func(token, from string) []byte {
		m := testMessage(token, from, alice)
		sent[token] = m
		return m
	}

	t.Run("python", func(t *testing.T) {
		pySend(t, in.SMTP, "plain", "", "", remote, []string{alice}, msg("py-mx", remote))
		pySend(t, in.Submission, "starttls", alice, pass, alice, []string{alice}, msg("py-submission", alice))
		pySend(t, in.Submissions, "ssl", alice, pass, alice, []string{alice}, msg("py-submissions", alice))
	})
	t.Run("swaks", func(t *testing.T) {
		swaks(t, msg("swaks-mx", remote), "--server", in.SMTP, "--from", remote, "--to", alice)
		swaks(t, msg("swaks-mx-starttls", remote), "--server", in.SMTP, "--tls", "--from", remote, "--to", alice)
		auth := []string{"--from", alice, "--to", alice, "--auth-user", alice, "--auth-password", pass}
		swaks(t, msg("swaks-plain", alice), append([]string{"--server", in.Submission, "--tls", "--auth", "PLAIN"}, auth...)...)
		swaks(t, msg("swaks-login", alice), append([]string{"--server", in.Submission, "--tls", "--auth", "LOGIN"}, auth...)...)
		swaks(t, msg("swaks-tlsc", alice), append([]string{"--server", in.Submissions, "--tlsc", "--auth", "PLAIN"}, auth...)...)

		// A wrong password is refused with 535 (RFC 4954 §6) and nothing is sent.
		path := filepath.Join(t.TempDir(), "bad.eml")
		writeFile(t, path, string(testMessage("swaks-badpass", alice, alice)), 0o600)
		out, err := runErr(nil, nil, "swaks", "--data", "@"+path, "--server", in.Submission, "--tls",
			"--auth", "PLAIN", "--from", alice, "--to", alice, "--auth-user", alice, "--auth-password", "wrong-password", "--timeout", "20")
		if err == nil || !strings.Contains(out, "535") {
			t.Errorf("swaks with a wrong password: err=%v, want a 535 reply:\n%s", err, out)
		}
	})
	t.Run("curl", func(t *testing.T) {
		for _, c := range []struct{ token, url string }{
			{"curl-starttls", "smtp://" + in.Submission + "/client.example"},
			{"curl-implicit", "smtps://" + in.Submissions + "/client.example"},
		} {
			path := filepath.Join(t.TempDir(), c.token+".eml")
			writeFile(t, path, string(msg(c.token, alice)), 0o600)
			run(t, nil, nil, "curl", "-sS", "--ssl-reqd", "--cacert", ca.File, "--max-time", "20",
				"--url", c.url, "--mail-from", alice, "--mail-rcpt", alice,
				"--user", alice+":"+pass, "--upload-file", path)
		}
	})
	t.Run("msmtp", func(t *testing.T) {
		for _, c := range []struct{ token, addr, starttls, auth string }{
			{"msmtp-scram", in.Submission, "on", "scram-sha-256"},
			{"msmtp-plain-implicit", in.Submissions, "off", "plain"},
			{"msmtp-login", in.Submission, "on", "login"},
		} {
			host, port := splitAddr(t, c.addr)
			conf := filepath.Join(t.TempDir(), "msmtprc")
			writeFile(t, conf, strings.Join([]string{
				"defaults",
				"timeout 20",
				"account default",
				"host " + host,
				"port " + port,
				"domain client.example",
				"tls on",
				"tls_starttls " + c.starttls,
				"tls_trust_file " + ca.File,
				"auth " + c.auth,
				"user " + alice,
				"password " + pass,
				"from " + alice,
				"",
			}, "\n"), 0o600)
			run(t, msg(c.token, alice), nil, "msmtp", "-C", conf, "-a", "default", alice)
		}
	})

	md := pyFetch(t, in.POP3S, "ssl", ca.File, alice, pass, false)
	got := byToken(t, md.Messages)
	for tok, m := range sent {
		if got[tok] == nil {
			t.Errorf("%s: not delivered", tok)
			continue
		}
		checkStored(t, tok, got[tok], m)
	}
	if len(got) != len(sent) {
		t.Errorf("maildrop has %d messages, sent %d", len(got), len(sent))
	}
}
