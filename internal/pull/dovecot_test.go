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
type keepOff struct{ Store }

func (k keepOff) ClaimPull(ctx context.Context, now time.Time, lease time.Duration) (store.PullSource, error) {
	s, err := k.Store.ClaimPull(ctx, now, lease)
	s.Keep = false
	return s, err
}

// A folder whose UIDVALIDITY changes (doveadm sets a new one; the UIDs stay, as after an
// index rebuild) names the same messages by new unique-ids: they are recognized by their
// header and not pulled again, the new ones are, and `pull list`'s notice says what happened.
// A changed folder (its state retired) is resynchronized the same way.
func TestDovecotIMAPUIDValidityChange(t *testing.T) {
	mailtest.RequireBinary(t, mailtest.IMAPBinary)
	d := mailtest.StartDovecot(t)
	e := newEnv(t)
	e.addDovecot(t, d, "imap", d.IMAPSAddr, "tls", true)
	for i := range 5 {
		d.Deliver(t, i, msg(i))
	}
	if src := e.pollNow(t); src.Failures != 0 || src.Notice != "" {
		t.Fatalf("first poll %+v", src)
	}
	before, _ := e.local.PulledUIDs(context.Background(), e.sourceID)
	if len(before) != 5 {
		t.Fatalf("state %v", before)
	}
	d.Doveadm(t, "mailbox", "update", "-u", d.User, "--uid-validity", "4242", "INBOX")
	for i := 5; i < 7; i++ {
		d.Deliver(t, i, msg(i))
	}
	src := e.pollNow(t)
	if src.Failures != 0 || src.LastError != "" {
		t.Fatalf("poll after the change %+v", src)
	}
	if got := e.subjects(t); !slices.Equal(got, want(0, 7)) {
		t.Fatalf("pulled %v", got)
	}
	for _, w := range []string{"UIDVALIDITY of INBOX changed from ", " to 4242", "5 messages recognized as pulled before, 2 pulled as new"} {
		if !strings.Contains(src.Notice, w) {
			t.Errorf("notice %q lacks %q", src.Notice, w)
		}
	}
	after, _ := e.local.PulledUIDs(context.Background(), e.sourceID)
	if len(after) != 7 {
		t.Errorf("state after the change %v", after)
	}
	for uid := range after {
		if !strings.HasPrefix(uid, "4242/") {
			t.Errorf("unique-id %s of the old UIDVALIDITY kept", uid)
		}
	}
	// Nothing more at the next poll; the notice stays for `pull list`.
	if src := e.pollNow(t); src.Notice == "" || len(e.subjects(t)) != 7 {
		t.Fatalf("next poll %+v, %v", src, e.subjects(t))
	}

	// The state retired (the folder was changed by `pull edit`): recognized again.
	if err := e.local.RetirePulled(context.Background(), e.sourceID); err != nil {
		t.Fatal(err)
	}
	d.Deliver(t, 7, msg(7))
	src = e.pollNow(t)
	if got := e.subjects(t); !slices.Equal(got, want(0, 8)) {
		t.Fatalf("pulled after the retirement %v", got)
	}
	if !strings.Contains(src.Notice, "from a previous folder to 4242: 7 messages recognized as pulled before, 1 pulled as new") {
		t.Errorf("notice %q", src.Notice)
	}
}
