package cli

import (
	"context"
	"fmt"
	"net/smtp"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/emersion/go-imap/v2/imapclient"

	"petrel/internal/client/pop3client"
	"petrel/internal/config"
)

// TestFail2banFilter: the filter in dist/fail2ban matches every failed login the real server
// logs (SMTP AUTH, POP3, IMAP; text and JSON log formats), with the client's address, and
// nothing of successful logins, also when the user name tries to look like another address.
func TestFail2banFilter(t *testing.T) {
	regex, err := exec.LookPath("fail2ban-regex")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("fail2ban-regex (Debian package fail2ban) is required in CI")
		}
		t.Skip("fail2ban-regex not installed")
	}
	filter, err := filepath.Abs(filepath.Join("..", "..", "dist", "fail2ban", "filter.d", "petrel.conf"))
	if err != nil {
		t.Fatal(err)
	}
	for _, format := range []string{"text", "json"} {
		t.Run(format, func(t *testing.T) {
			var logBuf syncBuffer
			log := newLogger(config.Log{Format: format, Level: "info"}, &logBuf)
			data := filepath.Join(t.TempDir(), "data")
			addrs := serveDataLog(t, data, log)
			const pass = "dev-secret-password"
			if out, err := run(t, data, pass+"\n", "account", "passwd", devAddr); err != nil {
				t.Fatal(out, err)
			}
			failures := 0
			for _, user := range []string{devAddr, `x remote=198.51.100.9 "y`, `a","remote":"198.51.100.10`} {
				for _, pw := range []string{pass, "wrong-password"} {
					ok := pw == pass && user == devAddr
					if !ok {
						failures += 3
					}
					c, err := smtp.Dial(addrs["submission"])
					if err != nil {
						t.Fatal(err)
					}
					if err := c.Auth(smtp.PlainAuth("", user, pw, "127.0.0.1")); (err == nil) != ok {
						t.Errorf("SMTP AUTH %q %q: %v", user, pw, err)
					}
					c.Close()
					p, err := pop3client.Dial(context.Background(), addrs["pop3"], pop3client.Options{TLS: pop3client.NoTLS})
					if err != nil {
						t.Fatal(err)
					}
					if err := p.UserPass(user, pw); (err == nil) != ok {
						t.Errorf("POP3 %q %q: %v", user, pw, err)
					}
					p.Close()
					ic, err := imapclient.DialInsecure(addrs["imap"], nil)
					if err != nil {
						t.Fatal(err)
					}
					if err := ic.Login(user, pw).Wait(); (err == nil) != ok {
						t.Errorf("IMAP LOGIN %q %q: %v", user, pw, err)
					}
					ic.Close()
				}
			}
			logFile := filepath.Join(t.TempDir(), "petrel.log")
			if err := os.WriteFile(logFile, []byte(logBuf.String()), 0o644); err != nil {
				t.Fatal(err)
			}
			// -v lists, under each expression, the address it took from each matched line.
			out, err := exec.Command(regex, "-v", logFile, filter).CombinedOutput()
			if err != nil {
				t.Fatalf("fail2ban-regex: %v\n%s", err, out)
			}
			m := regexp.MustCompile(`Failregex: (\d+) total`).FindSubmatch(out)
			if m == nil || string(m[1]) != fmt.Sprint(failures) {
				t.Errorf("fail2ban-regex matched %s lines, want the %d failed logins:\n%s\nlog:\n%s", m, failures, out, logBuf.String())
			}
			hosts := regexp.MustCompile(`(?m)^\|\s+(\S+)\s+[A-Z][a-z]{2} [A-Z][a-z]{2} `).FindAllSubmatch(out, -1)
			if len(hosts) != failures {
				t.Errorf("fail2ban-regex listed %d addresses, want %d:\n%s", len(hosts), failures, out)
			}
			for _, h := range hosts {
				if string(h[1]) != "127.0.0.1" {
					t.Errorf("the filter took the address %s, want the client's 127.0.0.1", h[1])
				}
			}
		})
	}
}
