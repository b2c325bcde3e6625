package smtpd_test

// rspamd from the Debian package as the external filter, through its milter (proxy worker)
// and its HTTP protocol: GTUBE is refused and a clean message passes; with rspamd stopped or
// frozen the policy (fail-open or fail-closed) decides, and the session answers either way.

import (
	"strings"
	"testing"
	"time"

	"petrel/internal/mail/milter"
	"petrel/internal/mail/rspamd"
	"petrel/internal/mailtest"
	"petrel/internal/server/smtpd"
	"petrel/internal/store"
)

// gtube is rspamd's (and SpamAssassin's) test pattern for "reject".
const gtube = "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"

func TestRspamd(t *testing.T) {
	dns := mailtest.StartDNS(t, mailtest.Zone{})
	rs := mailtest.StartRspamd(t, dns.Addr)
	hooks := map[string]func(timeout time.Duration, failOpen bool) smtpd.FilterHook{
		"milter": func(timeout time.Duration, failOpen bool) smtpd.FilterHook {
			return smtpd.FilterHook{Filter: milter.New("rspamd", "tcp", rs.Milter), Timeout: timeout, FailOpen: failOpen}
		},
		"http": func(timeout time.Duration, failOpen bool) smtpd.FilterHook {
			return smtpd.FilterHook{Filter: rspamd.New("http://"+rs.HTTP, "", nil), Timeout: timeout, FailOpen: failOpen}
		},
	}
	spam := message("sender@example.org") + gtube + "\r\n"
	clean := message("sender@example.org")
	server := func(h smtpd.FilterHook) *testServer {
		return startServer(t, smtpd.Config{Door: &smtpd.Door{Filters: []smtpd.FilterHook{h}}}, nil)
	}
	for _, kind := range []string{"milter", "http"} {
		// rspamd answers in well under a second; the timeout is generous for a loaded machine.
		ts := server(hooks[kind](time.Minute, false))
		if _, _, data := sessionMsg(t, ts, "client.example.org", spam); !strings.HasPrefix(data, "550 5.7.1") || !strings.Contains(data, "Gtube") {
			t.Errorf("%s: GTUBE answered %q, want 550 5.7.1 with rspamd's reason", kind, data)
		}
		if _, _, data := sessionMsg(t, ts, "client.example.org", clean); !strings.HasPrefix(data, "250") {
			t.Errorf("%s: a clean message answered %q", kind, data)
		}
		msgs := ts.fd.delivered()
		if len(msgs) != 1 || msgs[0].env.Targets[0].Mailbox != store.Inbox {
			t.Errorf("%s: stored %+v, want the clean message in INBOX", kind, msgs)
		}
		if logs := ts.logs.String(); !strings.Contains(logs, "door=reject") {
			t.Errorf("%s: the log does not show the refusal:\n%s", kind, logs)
		}
	}

	// rspamd's milter takes the DATA and UNKNOWN events (SMFIC_DATA is sent in every
	// transaction above): an unknown command within the transaction reaches it, the client
	// gets 500, and the conversation goes on to refuse GTUBE.
	ts := server(hooks["milter"](time.Minute, false))
	c := dial(t, ts.addr)
	c.Run(`
		S: 220
		C: EHLO client.example.org
		S: 250
		C: MAIL FROM:<sender@example.org>
		S: 250
		C: XYZW plugh
		S: 500
		C: RCPT TO:<alice@example.test>
		S: 250
		C: DATA
		S: 354
	`)
	c.Raw(strings.ReplaceAll(spam, "\r\n.", "\r\n..") + ".\r\n")
	if lines, err := c.ReadReply(); err != nil || !strings.HasPrefix(lines[len(lines)-1], "550 5.7.1") {
		t.Errorf("milter with an unknown command: GTUBE answered %q, %v; want 550 5.7.1", lines, err)
	}
	if logs := ts.logs.String(); strings.Contains(logs, "filter failed") {
		t.Errorf("rspamd's milter failed on the unknown command:\n%s", logs)
	}

	// Frozen: rspamd's sockets accept, nothing answers. The stage's deadline ends the wait.
	rs.Pause()
	for _, kind := range []string{"milter", "http"} {
		for _, failOpen := range []bool{true, false} {
			ts := server(hooks[kind](500*time.Millisecond, failOpen))
			checkPolicy(t, kind+" frozen", failOpen, last(sessionMsg(t, ts, "client.example.org", spam)))
		}
	}
	rs.Resume()

	// Stopped: nothing listens.
	rs.Stop()
	for _, kind := range []string{"milter", "http"} {
		for _, failOpen := range []bool{true, false} {
			ts := server(hooks[kind](5*time.Second, failOpen))
			checkPolicy(t, kind+" stopped", failOpen, last(sessionMsg(t, ts, "client.example.org", spam)))
			if failOpen && !strings.Contains(ts.logs.String(), "filter failed") {
				t.Errorf("%s stopped: the failure is not logged", kind)
			}
		}
	}
}

// last is the reply that ended the transaction: the milter is asked from MAIL on, so a
// milter that cannot be reached is found there; rspamd's HTTP protocol only after DATA.
func last(mail, rcpt, data string) string {
	for _, r := range []string{mail, rcpt} {
		if !strings.HasPrefix(r, "250") {
			return r
		}
	}
	return data
}

// checkPolicy: fail-open accepts (the filter is skipped, GTUBE and all), fail-closed defers.
func checkPolicy(t *testing.T, what string, failOpen bool, data string) {
	t.Helper()
	want := "451 4.3.0"
	if failOpen {
		want = "250"
	}
	if !strings.HasPrefix(data, want) {
		t.Errorf("%s, fail-open %v: the transaction ended with %q, want %s", what, failOpen, data, want)
	}
}
