package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
)

// countingBackend accepts every message except those for "reject@...".
type countingBackend struct{ n atomic.Int64 }

func (b *countingBackend) NewSession(*smtp.Conn) (smtp.Session, error) { return session{b}, nil }

type session struct{ b *countingBackend }

func (session) Mail(string, *smtp.MailOptions) error { return nil }
func (session) Reset()                               {}
func (session) Logout() error                        { return nil }

func (session) Rcpt(to string, _ *smtp.RcptOptions) error {
	if strings.HasPrefix(to, "reject@") {
		return &smtp.SMTPError{Code: 550, Message: "no"}
	}
	return nil
}

func (s session) Data(r io.Reader) error {
	if _, err := io.Copy(io.Discard, r); err != nil {
		return err
	}
	s.b.n.Add(1)
	return nil
}

func startSMTP(t *testing.T) (string, *countingBackend) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	be := &countingBackend{}
	s := smtp.NewServer(be)
	s.Domain = "fake.test"
	s.ErrorLog = log.New(io.Discard, "", 0)
	go s.Serve(ln)
	t.Cleanup(func() { s.Close() })
	return ln.Addr().String(), be
}

func runArgs(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var out, errOut bytes.Buffer
	code := run(ctx, args, &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestSMTPJSON(t *testing.T) {
	addr, be := startSMTP(t)
	for _, args := range [][]string{
		{"smtp", "-addr", addr, "-n", "6", "-c", "2", "-k", "2", "-size", "500", "-json"},
		{"-scenario", "smtp", "-addr", addr, "-n", "6", "-json"},
		{"-scenario=smtp", "-addr", addr, "-n", "6", "-json"},
	} {
		before := be.n.Load()
		code, out, errOut := runArgs(t, args...)
		if code != exitOK {
			t.Fatalf("%v: exit %d\n%s%s", args, code, out, errOut)
		}
		var res struct {
			Scenario string `json:"scenario"`
			Ops      int64  `json:"ops"`
			Errors   int64  `json:"errors"`
			Latency  struct {
				Count int     `json:"count"`
				P99MS float64 `json:"p99_ms"`
			} `json:"latency"`
		}
		if err := json.Unmarshal([]byte(out), &res); err != nil {
			t.Fatalf("%v: %v\n%s", args, err, out)
		}
		if res.Scenario != "smtp" || res.Ops != 6 || res.Errors != 0 || res.Latency.Count != 6 || res.Latency.P99MS <= 0 {
			t.Errorf("%v: %+v", args, res)
		}
		if got := be.n.Load() - before; got != 6 {
			t.Errorf("%v: server accepted %d messages, want 6", args, got)
		}
	}
}

func TestExitCodes(t *testing.T) {
	addr, _ := startSMTP(t)
	code, out, _ := runArgs(t, "smtp", "-addr", addr, "-n", "3", "-to", "reject@example.test")
	if code != exitErrors || !strings.Contains(out, "550") {
		t.Errorf("refused recipients: exit %d, want %d\n%s", code, exitErrors, out)
	}
	if code, _, _ := runArgs(t, "smtp", "-addr", addr, "-n", "3", "-to", "reject@example.test", "-allow-errors"); code != exitOK {
		t.Errorf("-allow-errors: exit %d", code)
	}
	for _, args := range [][]string{
		nil,
		{"nosuch"},
		{"smtp", "-nosuchflag"},
		{"smtp", "-addr", addr, "-tls", "-starttls"},
		{"smtp", "-addr", addr, "-auth", "nocolon"},
		{"smtp", "-addr", addr, "-n", "0"},
		{"smtp", "-addr", addr, "stray"},
		{"idle", "-addr", addr, "-pid", "x"},
		{"imap-fetch", "-addr", addr, "-auth", "cram-md5"},
		{"imap-fetch", "-addr", addr, "-stls"}, // IMAP's flag is -starttls
		{"imap-fetch", "-addr", addr, "-batch", "-1"},
		{"imap-idle", "-addr", addr, "-pid", "0"},
		{"imap-mixed", "-addr", addr, "-n", "0", "-duration", "0"},
	} {
		if code, _, _ := runArgs(t, args...); code != exitUsage {
			t.Errorf("%q: exit %d, want %d", args, code, exitUsage)
		}
	}
	if code, _, _ := runArgs(t, "pop3", "-h"); code != exitOK {
		t.Errorf("-h: exit %d", code)
	}
}

// The IMAP scenarios are wired to their flags: against a server that speaks
// SMTP, each fails with a counted error (exit 1), not a usage error, and
// names the IMAP step that failed.
func TestIMAPScenarios(t *testing.T) {
	addr, _ := startSMTP(t)
	for _, args := range [][]string{
		{"imap-fetch", "-addr", addr, "-user", "u{n}@x", "-mailboxes", "2", "-c", "1", "-auth", "plain"},
		{"imap-idle", "-addr", addr, "-user", "u@x", "-n", "1", "-hold", "1ms"},
		{"imap-mixed", "-addr", addr, "-user", "u@x", "-c", "1", "-n", "1", "-duration", "0"},
	} {
		code, out, errOut := runArgs(t, append(args, "-json")...)
		if code != exitErrors {
			t.Errorf("%v: exit %d, want %d\n%s%s", args, code, exitErrors, out, errOut)
			continue
		}
		var res struct {
			Scenario    string   `json:"scenario"`
			FirstErrors []string `json:"first_errors"`
		}
		if err := json.Unmarshal([]byte(out), &res); err != nil {
			t.Fatalf("%v: %v\n%s", args, err, out)
		}
		if res.Scenario != args[0] || len(res.FirstErrors) == 0 || !strings.Contains(res.FirstErrors[0], "greeting") {
			t.Errorf("%v: scenario %q, errors %q", args, res.Scenario, res.FirstErrors)
		}
	}
}
