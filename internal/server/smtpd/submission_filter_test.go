package smtpd

import (
	"context"
	"io"
	"strings"
	"sync"
	"testing"

	"petrel/internal/mail/door"
)

// verdictFilter answers every message with one verdict and records what it learned.
type verdictFilter struct {
	v    door.Verdict
	mu   sync.Mutex
	user string
	data int
}

func (f *verdictFilter) Name() string { return "outbound" }

func (f *verdictFilter) Begin(_ context.Context, c door.ConnInfo) (door.FilterSession, error) {
	f.mu.Lock()
	f.user = c.User
	f.mu.Unlock()
	return f, nil
}

func (f *verdictFilter) Mail(context.Context, string) (door.Verdict, error) {
	return door.Verdict{}, nil
}
func (f *verdictFilter) Rcpt(context.Context, string) (door.Verdict, error) {
	return door.Verdict{}, nil
}
func (f *verdictFilter) Close() error { return nil }

func (f *verdictFilter) Data(_ context.Context, _ []byte, body io.Reader) (door.Verdict, error) {
	io.Copy(io.Discard, body)
	f.mu.Lock()
	f.data++
	f.mu.Unlock()
	return f.v, nil
}

// TestSubmissionFilters: the submission listener consults its own filters with the
// logged-in user; outgoing spam (a quarantine verdict) is refused, or sent when the policy
// says so; a filter's rejection is obeyed; the MX port's checks (none here) do not run.
func TestSubmissionFilters(t *testing.T) {
	for _, tc := range []struct {
		name       string
		v          door.Verdict
		spamAccept bool
		want       string
	}{
		{"clean", door.Verdict{Action: door.FilterAccept}, false, "250"},
		{"spam refused", door.Verdict{Action: door.FilterQuarantine}, false, "550 5.7.1 message refused as spam"},
		{"spam sent", door.Verdict{Action: door.FilterQuarantine}, true, "250"},
		{"filter rejects", door.Verdict{Action: door.FilterReject, Code: 550, Text: "5.7.1 virus found"}, true, "550 5.7.1 virus found"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := &verdictFilter{v: tc.v}
			ts := startServer(t, Config{Role: RoleSubmission, AllowInsecureAuth: true,
				Door: &Door{Filters: []FilterHook{{Filter: f}}, Scores: door.Scores{Junk: 5, Reject: 10}, SpamAccept: tc.spamAccept}}, nil)
			c := dial(t, ts.addr)
			c.Run(`
				S: 220
				C: EHLO laptop
				S: 250
				C: AUTH PLAIN AGFsaWNlQGV4YW1wbGUudGVzdABzZWNyZXQ=
				S: 235
				C: MAIL FROM:<alice@example.test>
				S: 250
				C: RCPT TO:<bob@example.test>
				S: 250
				C: DATA
				S: 354
				C: Subject: offer
				C:
				C: Buy now.
				C: .
			`)
			lines, err := c.ReadReply()
			if err != nil {
				t.Fatal(err)
			}
			if got := lines[len(lines)-1]; !strings.HasPrefix(got, tc.want) {
				t.Errorf("reply %q, want %q", got, tc.want)
			}
			stored := len(ts.fd.delivered())
			if want := map[bool]int{true: 1, false: 0}[strings.HasPrefix(tc.want, "250")]; stored != want {
				t.Errorf("%d messages delivered, want %d", stored, want)
			}
			f.mu.Lock()
			defer f.mu.Unlock()
			if f.user != "alice@example.test" || f.data != 1 {
				t.Errorf("the filter saw user %q and %d messages, want alice@example.test and 1", f.user, f.data)
			}
		})
	}
}
