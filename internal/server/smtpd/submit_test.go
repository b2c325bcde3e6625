package smtpd

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	"petrel/internal/store"
)

// TestSubmit: a message handed to Submit meets the rules of the submission port (sender
// policy, recipients, sending limits) and reaches the deliverer with the same trace headers.
func TestSubmit(t *testing.T) {
	st := openLimitStore(t, t.TempDir())
	defer st.Close()
	now := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
	fd := chargingDeliverer(st) // charges the limits in the "commit", as the store does
	ts := startServer(t, Config{Role: RoleSubmission, AllowInsecureAuth: true,
		Sending: &SendingLimits{Store: st, Default: store.SendingLimits{HourMessages: 1}, Now: func() time.Time { return now }}}, fd)
	alice := store.Account{ID: 1, Address: "alice@example.test"}
	ip := netip.MustParseAddr("127.0.0.1")
	body := "From: alice@example.test\r\nTo: bob@example.test\r\nSubject: hi\r\n\r\nhello\r\n"

	var se *SubmitError
	if _, err := ts.Submit(alice, ip, "webmail", true, "bob@example.test", []string{"bob@example.test"}, strings.NewReader(body)); !errors.As(err, &se) || se.Code != 553 {
		t.Errorf("sending as someone else: %v, want 553", err)
	}
	if _, err := ts.Submit(alice, ip, "webmail", true, "alice@example.test", []string{"nobody@example.test"}, strings.NewReader(body)); !errors.As(err, &se) || se.Code != 550 || se.Recipient != "nobody@example.test" {
		t.Errorf("unknown recipient: %v, want 550 for it", err)
	}
	if _, err := ts.Submit(alice, ip, "webmail", true, "alice@example.test", []string{"bob@example.test"}, strings.NewReader("bare\nLF\r\n")); !errors.As(err, &se) || se.Code != 554 {
		t.Errorf("bare LF: %v, want 554", err)
	}
	id, err := ts.Submit(alice, ip, "webmail", true, "alice@example.test", []string{"bob@example.test"}, strings.NewReader(body))
	if err != nil || id == "" {
		t.Fatalf("Submit: %q, %v", id, err)
	}
	d := fd.delivered()
	if len(d) != 1 || len(d[0].env.Targets) != 1 || d[0].env.Targets[0].AccountID != 2 {
		t.Fatalf("delivered %+v", d)
	}
	if !strings.Contains(d[0].body, "Received: from webmail ([127.0.0.1])") || !strings.Contains(d[0].body, "with ESMTPSA") ||
		!strings.Contains(d[0].body, "id "+id) || !strings.HasSuffix(d[0].body, body) {
		t.Errorf("stored body:\n%s", d[0].body)
	}
	// The limit of one message an hour is shared with the SMTP port.
	if _, err := ts.Submit(alice, ip, "webmail", true, "alice@example.test", []string{"bob@example.test"}, strings.NewReader(body)); !errors.As(err, &se) || !se.Temporary() || !strings.Contains(se.Message, "sending limit") {
		t.Errorf("over the limit: %v", err)
	}
}
