package pull

import (
	"context"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"petrel/internal/mailtest"
	"petrel/internal/store"
)

// addDovecot adds a source for the test Dovecot's user at addr ("localhost" matches its
// certificate).
func (e *env) addDovecot(t *testing.T, d *mailtest.Dovecot, protocol, addr, tls string, keep bool) {
	t.Helper()
	s, err := LoadKey(e.keyFile, true)
	if err != nil {
		t.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(addr)
	addr = "localhost:" + port
	e.sourceID, err = e.local.AddPullSource(context.Background(), store.PullSource{AccountID: e.acct.ID, Protocol: protocol, Addr: addr,
		TLS: tls, CAFile: d.CertFile, User: d.User, Secret: s.Seal(d.Pass, e.acct.ID, protocol, addr, d.User),
		Keep: keep, Every: time.Hour, NextPoll: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
}

// dovecotGoesAway pulls from Dovecot, stops it, delivers more there, polls (which fails and
// says why), starts it again and polls: every message once.
func dovecotGoesAway(t *testing.T, e *env, d *mailtest.Dovecot) {
	for i := range 5 {
		d.Deliver(t, i, msg(i))
	}
	if src := e.pollNow(t); src.Failures != 0 || src.LastError != "" {
		t.Fatalf("first poll %+v", src)
	}
	if got := e.subjects(t); !slices.Equal(got, want(0, 5)) {
		t.Fatalf("pulled %v", got)
	}
	d.Stop(t)
	for i := 5; i < 8; i++ {
		d.Deliver(t, i, msg(i))
	}
	src := e.pollNow(t)
	if src.Failures != 1 || !strings.Contains(src.LastError, "connect") || !src.NextPoll.After(time.Now()) {
		t.Fatalf("with Dovecot stopped %+v", src)
	}
	d.Start(t)
	if src := e.pollNow(t); src.Failures != 0 || src.LastError != "" {
		t.Fatalf("after the restart %+v", src)
	}
	if got := e.subjects(t); !slices.Equal(got, want(0, 8)) {
		t.Fatalf("pulled %v", got)
	}
}

func TestDovecotPOP3(t *testing.T) {
	d := mailtest.StartDovecot(t)
	e := newEnv(t)
	e.addDovecot(t, d, "pop3", d.POP3Addr, "starttls", false)
	dovecotGoesAway(t, e, d)
	if n := d.Count(t); n != 0 {
		t.Fatalf("%d messages left in Dovecot in delete mode", n)
	}
}

func TestDovecotIMAP(t *testing.T) {
	mailtest.RequireBinary(t, mailtest.IMAPBinary)
	d := mailtest.StartDovecot(t)
	e := newEnv(t)
	e.addDovecot(t, d, "imap", d.IMAPSAddr, "tls", true)
	dovecotGoesAway(t, e, d)
	if n := d.Count(t); n != 8 {
		t.Fatalf("%d messages in Dovecot in keep mode, want 8", n)
	}
	// Delete mode on the same state: nothing pulled again, all removed from Dovecot.
	e.poller.st = keepOff{e.local}
	e.pollNow(t)
	if got := e.subjects(t); !slices.Equal(got, want(0, 8)) {
		t.Fatalf("pulled %v", got)
	}
	if n := d.Count(t); n != 0 {
		t.Fatalf("%d messages left in Dovecot in delete mode", n)
	}
}

// keepOff claims sources as if they were in delete mode.
type keepOff struct{ store.Pulls }

func (k keepOff) ClaimPull(ctx context.Context, now time.Time, lease time.Duration) (store.PullSource, error) {
	s, err := k.Pulls.ClaimPull(ctx, now, lease)
	s.Keep = false
	return s, err
}
