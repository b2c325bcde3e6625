package smtpd

// Sending limits on submission, with the counters in a real SQLite store that is closed
// and opened again between servers.

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"petrel/internal/mailtest/dialog"
	"petrel/internal/store"
	"petrel/internal/store/sqlite"
)

// openLimitStore opens the SQLite store in dir; the first time it creates alice (account
// 1, the one fakeAuth logs in) and bob.
func openLimitStore(t *testing.T, dir string) *sqlite.Store {
	t.Helper()
	st, err := sqlite.Open(filepath.Join(dir, "petrel.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := st.AddDomain(ctx, "example.test"); err == nil {
		for _, a := range []string{"alice@example.test", "bob@example.test"} {
			if _, err := st.AddAccount(ctx, a, store.Credentials{}); err != nil {
				t.Fatal(err)
			}
		}
		if acct, err := st.AccountByAddress(ctx, "alice@example.test"); err != nil || acct.ID != 1 {
			t.Fatalf("alice is %+v, %v; the test needs account 1", acct, err)
		}
	}
	return st
}

// chargingDeliverer is a fakeDeliverer that charges the sending limits in st, as the store
// does in the delivery commit.
func chargingDeliverer(st store.Store) *fakeDeliverer {
	fd := newFakeDeliverer()
	fd.sending = st
	return fd
}

// submitLimited logs in as alice and submits one message to rcpts; it returns the replies
// to MAIL, the RCPTs and the end of data (stopping at the first refusal).
func submitLimited(t *testing.T, addr string, rcpts ...string) []string {
	t.Helper()
	c := dial(t, addr)
	c.Run(`
		S: 220
		C: EHLO laptop
		S: 250
		C: AUTH PLAIN AGFsaWNlQGV4YW1wbGUudGVzdABzZWNyZXQ=
		S: 235
	`)
	var replies []string
	step := func(line string) bool {
		c.Send(line)
		lines, err := c.ReadReply()
		if err != nil {
			t.Fatalf("%s: %v", line, err)
		}
		last := lines[len(lines)-1]
		replies = append(replies, last)
		return last[0] == '2' || last[0] == '3'
	}
	if step("MAIL FROM:<alice@example.test>") {
		ok := true
		for _, r := range rcpts {
			ok = ok && step("RCPT TO:<"+r+">")
		}
		if ok && step("DATA") {
			c.Raw("Subject: hi\r\n\r\nhello\r\n.\r\n")
			lines, err := c.ReadReply()
			if err != nil {
				t.Fatal(err)
			}
			replies = append(replies, lines[len(lines)-1])
		}
	}
	c.Run(`
		C: QUIT
		S: 221
	`)
	return replies
}

func TestSendingLimitSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	now := time.Date(2026, 12, 7, 11, 5, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	serve := func(st store.Store) *testServer {
		return startServer(t, Config{Role: RoleSubmission, AllowInsecureAuth: true,
			Sending: &SendingLimits{Store: st, Default: store.SendingLimits{HourMessages: 10}, Now: clock}}, chargingDeliverer(st))
	}

	st := openLimitStore(t, dir)
	ts := serve(st)
	for i := range 6 {
		if r := submitLimited(t, ts.addr, "bob@example.test"); !strings.HasPrefix(r[len(r)-1], "250 ") {
			t.Fatalf("message %d: %q", i+1, r)
		}
	}
	// The server stops and the store is closed: the counters are on disk.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := ts.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}

	st = openLimitStore(t, dir)
	defer st.Close()
	ts = serve(st)
	for i := 6; i < 10; i++ {
		if r := submitLimited(t, ts.addr, "bob@example.test"); !strings.HasPrefix(r[len(r)-1], "250 ") {
			t.Fatalf("message %d after the restart: %q", i+1, r)
		}
	}
	r := submitLimited(t, ts.addr, "bob@example.test")
	want := "451 4.7.1 sending limit of 10 messages per hour reached; it resets at 2026-12-07 12:00 UTC"
	if len(r) != 1 || r[0] != want {
		t.Errorf("the 11th message of the hour: %q, want MAIL refused with %q", r, want)
	}
	if n := len(ts.fd.delivered()); n != 4 {
		t.Errorf("%d deliveries after the restart, want 4", n)
	}
	// The next hour the account may send again.
	now = now.Add(time.Hour)
	if r := submitLimited(t, ts.addr, "bob@example.test"); !strings.HasPrefix(r[len(r)-1], "250 ") {
		t.Errorf("first message of the next hour: %q", r)
	}
}

func TestSendingRecipientLimitAndOverride(t *testing.T) {
	st := openLimitStore(t, t.TempDir())
	defer st.Close()
	ctx := context.Background()
	now := time.Date(2026, 12, 7, 23, 30, 0, 0, time.UTC)
	ts := startServer(t, Config{Role: RoleSubmission, AllowInsecureAuth: true,
		Sending: &SendingLimits{Store: st, Default: store.SendingLimits{DayRecipients: 3}, Now: func() time.Time { return now }}}, chargingDeliverer(st))

	r := submitLimited(t, ts.addr, "bob@example.test", "alice@example.test", "bob+x@example.test", "bob+y@example.test")
	want := []string{"250", "250", "250", "250", "451 4.7.1 sending limit of 3 recipients per day reached; it resets at 2026-12-08 00:00 UTC"}
	if len(r) != len(want) {
		t.Fatalf("replies %q", r)
	}
	for i := range want {
		if !strings.HasPrefix(r[i], want[i]) {
			t.Errorf("reply %d = %q, want %q", i, r[i], want[i])
		}
	}

	// An override for alice lifts her limit; the default still holds for the others.
	o := store.NoOverride
	o.DayRecipients = 0
	if err := st.SetSendingOverride(ctx, 1, o); err != nil {
		t.Fatal(err)
	}
	rcpts := make([]string, 5)
	for i := range rcpts {
		rcpts[i] = fmt.Sprintf("bob+%d@example.test", i)
	}
	if r := submitLimited(t, ts.addr, rcpts...); !strings.HasPrefix(r[len(r)-1], "250 ") {
		t.Errorf("with the override: %q", r)
	}
	u, err := st.SendingUsage(ctx, 1, now)
	if err != nil || u.DayMessages != 1 || u.DayRecipients != 5 {
		t.Errorf("usage %+v, %v: only the accepted message counts", u, err)
	}
}

// TestSendingChargeGivenBack: a message whose delivery fails is not counted.
func TestSendingChargeGivenBack(t *testing.T) {
	st := openLimitStore(t, t.TempDir())
	defer st.Close()
	fd := chargingDeliverer(st)
	fd.fail = fmt.Errorf("disk on fire")
	now := time.Now()
	ts := startServer(t, Config{Role: RoleSubmission, AllowInsecureAuth: true,
		Sending: &SendingLimits{Store: st, Default: store.SendingLimits{HourMessages: 1}, Now: func() time.Time { return now }}}, fd)
	if r := submitLimited(t, ts.addr, "bob@example.test"); !strings.HasPrefix(r[len(r)-1], "451 4.3.0") {
		t.Fatalf("failed delivery: %q", r)
	}
	if u, err := st.SendingUsage(context.Background(), 1, now); err != nil || u.HourMessages != 0 || u.HourRecipients != 0 {
		t.Errorf("usage after a failed delivery = %+v, %v", u, err)
	}
}

// TestSendingHardDaily: with HardDaily, a daily limit is a permanent refusal at DATA (the
// early check at MAIL too), an hourly one stays temporary.
func TestSendingHardDaily(t *testing.T) {
	st := openLimitStore(t, t.TempDir())
	defer st.Close()
	now := time.Date(2026, 12, 7, 11, 5, 0, 0, time.UTC)
	ts := startServer(t, Config{Role: RoleSubmission, AllowInsecureAuth: true,
		Sending: &SendingLimits{Store: st, Default: store.SendingLimits{DayMessages: 2, HourRecipients: 3}, HardDaily: true,
			Now: func() time.Time { return now }}}, chargingDeliverer(st))
	if r := submitLimited(t, ts.addr, "bob@example.test", "bob@example.test"); !strings.HasPrefix(r[len(r)-1], "250 ") {
		t.Fatalf("first message: %q", r)
	}
	// Two more recipients pass the hourly recipient limit: temporary.
	r := submitLimited(t, ts.addr, "bob@example.test", "bob@example.test")
	if got := r[len(r)-1]; !strings.HasPrefix(got, "451 4.7.1 sending limit of 3 recipients per hour") {
		t.Errorf("over the hourly limit: %q", r)
	}
	if r := submitLimited(t, ts.addr, "bob@example.test"); !strings.HasPrefix(r[len(r)-1], "250 ") {
		t.Fatalf("second message: %q", r)
	}
	now = now.Add(time.Hour)
	r = submitLimited(t, ts.addr, "bob@example.test")
	if got := r[len(r)-1]; !strings.HasPrefix(got, "550 5.7.1 sending limit of 2 messages per day reached; it resets at 2026-12-08 00:00 UTC") {
		t.Errorf("over the daily limit: %q", r)
	}
}

// TestSendingChargeAtCommit: two sessions that both passed the check at MAIL cannot
// together pass the limit: the charge in the delivery commit refuses the second.
func TestSendingChargeAtCommit(t *testing.T) {
	st := openLimitStore(t, t.TempDir())
	defer st.Close()
	now := time.Date(2026, 12, 7, 11, 5, 0, 0, time.UTC)
	ts := startServer(t, Config{Role: RoleSubmission, AllowInsecureAuth: true,
		Sending: &SendingLimits{Store: st, Default: store.SendingLimits{HourMessages: 1}, Now: func() time.Time { return now }}},
		chargingDeliverer(st))
	open := func() *dialog.Dialog {
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
		`)
		return c
	}
	first, second := open(), open()
	first.Raw("Subject: one\r\n\r\nhello\r\n.\r\n")
	first.Run(`S: 250`)
	second.Raw("Subject: two\r\n\r\nhello\r\n.\r\n")
	second.Run(`S: 451 4.7.1 sending limit of 1 messages per hour reached; it resets at 2026-12-07 12:00 UTC`)
	if n := len(ts.fd.delivered()); n != 1 {
		t.Errorf("%d deliveries, want 1", n)
	}
}

// TestSendingReusedInSession: a session reuses the limits and usage it read for its next
// messages (sendingReuse), adding its own accepted messages. Another session's message is
// then unseen by the early check at MAIL, and the charge in the commit refuses; after that
// refusal the next MAIL reads the counters again.
func TestSendingReusedInSession(t *testing.T) {
	st := openLimitStore(t, t.TempDir())
	defer st.Close()
	now := time.Date(2026, 12, 7, 11, 5, 0, 0, time.UTC)
	ts := startServer(t, Config{Role: RoleSubmission, AllowInsecureAuth: true,
		Sending: &SendingLimits{Store: st, Default: store.SendingLimits{HourMessages: 3}, Now: func() time.Time { return now }}},
		chargingDeliverer(st))
	c := dial(t, ts.addr)
	c.Run(`
		S: 220
		C: EHLO laptop
		S: 250
		C: AUTH PLAIN AGFsaWNlQGV4YW1wbGUudGVzdABzZWNyZXQ=
		S: 235
	`)
	send := func(last string) {
		t.Helper()
		c.Run(`
			C: MAIL FROM:<alice@example.test>
			S: 250
			C: RCPT TO:<bob@example.test>
			S: 250
			C: DATA
			S: 354
		`)
		c.Raw("Subject: hi\r\n\r\nhello\r\n.\r\n")
		c.Run(`S: ` + last)
	}
	send("250")
	send("250")
	// Another session sends the third message of the hour, which this one does not see:
	// its MAIL passes, and the commit refuses.
	if r := submitLimited(t, ts.addr, "bob@example.test"); !strings.HasPrefix(r[len(r)-1], "250 ") {
		t.Fatalf("the other session's message: %q", r)
	}
	send("451 4.7.1 sending limit of 3 messages per hour reached; it resets at 2026-12-07 12:00 UTC")
	// Now the session has read the counters again: MAIL is refused.
	c.Run(`
		C: MAIL FROM:<alice@example.test>
		S: 451 4.7.1 sending limit of 3 messages per hour reached; it resets at 2026-12-07 12:00 UTC
		C: QUIT
		S: 221
	`)
	if n := len(ts.fd.delivered()); n != 3 {
		t.Errorf("%d deliveries, want 3", n)
	}
}
