package load

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"petrel/internal/mailtest"
)

// The IMAP scenarios against a real Dovecot (the anchor of bench/compare.sh),
// whose responses differ from go-imap's in order and form: capabilities in
// the greeting and after login, LITERAL+, flags updates during commands.
func TestIMAPAgainstDovecot(t *testing.T) {
	mailtest.RequireBinary(t, mailtest.IMAPBinary)
	d := mailtest.StartDovecot(t)
	var bodies []string
	var total int64
	for i := range 40 {
		b := fmt.Sprintf("From: <a@example.test>\r\nSubject: message %d\r\n\r\n%s\r\n", i, strings.Repeat("line of text\r\n", i))
		bodies = append(bodies, b)
		total += int64(len(b))
	}
	d.DeliverAll(t, bodies)
	acc := []Account{{d.User, d.Pass}}

	for _, tc := range []struct {
		addr string
		mode TLSMode
		auth IMAPAuth
	}{{d.IMAPSAddr, ImplicitTLS, IMAPLogin}, {d.IMAPAddr, StartTLS, IMAPPlain}} {
		res, err := RunIMAPFetch(testCtx(t), IMAPFetchConfig{
			Target:   Target{Addr: tc.addr, TLS: tc.mode, Insecure: true, Timeout: 10 * time.Second},
			Accounts: acc, Auth: tc.auth, Clients: 2, Sessions: 4,
		})
		if err != nil {
			t.Fatal(err)
		}
		if res.Errors != 0 || res.Ops != 4*40 || res.Bytes != 4*total || res.Sessions != 4 {
			t.Errorf("fetch %s %s: ops %d bytes %d (want %d) sessions %d errors %d %v",
				tc.mode, tc.auth, res.Ops, res.Bytes, 4*total, res.Sessions, res.Errors, res.FirstErrors)
		}
	}

	// Dovecot allows 10 sessions per user and address by default.
	res, err := RunIdle(testCtx(t), IdleConfig{
		Target: Target{Addr: d.IMAPSAddr, TLS: ImplicitTLS, Insecure: true, Timeout: 10 * time.Second},
		IMAP:   true, Conns: 5, Hold: 100 * time.Millisecond, Accounts: acc,
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Errors != 0 || res.Idle.Opened != 5 || res.Idle.OpenAfterHold != 5 {
		t.Errorf("idle: errors %d %v, %+v", res.Errors, res.FirstErrors, res.Idle)
	}

	res, err = RunIMAPMixed(testCtx(t), IMAPMixedConfig{
		Target:   Target{Addr: d.IMAPSAddr, TLS: ImplicitTLS, Insecure: true, Timeout: 10 * time.Second},
		Accounts: acc, Clients: 3, Commands: 150, Window: 10,
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Errors != 0 || res.Ops < 150 || res.Sessions != 3 {
		t.Errorf("mixed: ops %d sessions %d errors %d %v", res.Ops, res.Sessions, res.Errors, res.FirstErrors)
	}
	if n := d.Count(t); n < 40-6 || n > 40+10 {
		t.Errorf("%d messages after the mixed run, want about 40", n)
	}
}
