package pull

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"petrel/internal/mailtest"
	"petrel/internal/store"
)

// dovecotSource starts a Dovecot and an env whose source is the Dovecot user's mailbox, over
// POP3 with STLS or IMAP with implicit TLS ("localhost" matches its certificate).
func dovecotSource(t *testing.T, protocol string, keep bool) (*env, *mailtest.Dovecot) {
	t.Helper()
	if protocol == "imap" {
		mailtest.RequireBinary(t, mailtest.IMAPBinary)
	}
	d := mailtest.StartDovecot(t)
	e := newEnv(t)
	addr, tls := d.POP3Addr, "starttls"
	if protocol == "imap" {
		addr, tls = d.IMAPSAddr, "tls"
	}
	_, port, _ := net.SplitHostPort(addr)
	e.addSource(t, store.PullSource{Protocol: protocol, Addr: "localhost:" + port, TLS: tls, CAFile: d.CertFile,
		User: d.User, Keep: keep}, d.Pass)
	return e, d
}

// putDovecot puts messages from to to-1 into the Dovecot user's INBOX.
func putDovecot(t *testing.T, d *mailtest.Dovecot, from, to int) {
	t.Helper()
	for i := from; i < to; i++ {
		d.Deliver(t, i, msg(i))
	}
}

// dovecotGoesAway pulls from Dovecot, stops it, delivers more there, polls (which fails and
// says why), starts it again and polls: every message once.
func dovecotGoesAway(t *testing.T, e *env, d *mailtest.Dovecot) {
	putDovecot(t, d, 0, 5)
	if src := e.pollNow(t); src.Failures != 0 || src.LastError != "" {
		t.Fatalf("first poll %+v", src)
	}
	e.wantPulled(t, 5)
	d.Stop(t)
	putDovecot(t, d, 5, 8)
	src := e.pollNow(t)
	if src.Failures != 1 || !strings.Contains(src.LastError, "connect") || !src.NextPoll.After(time.Now()) {
		t.Fatalf("with Dovecot stopped %+v", src)
	}
	d.Start(t)
	if src := e.pollNow(t); src.Failures != 0 || src.LastError != "" {
		t.Fatalf("after the restart %+v", src)
	}
	e.wantPulled(t, 8)
}

func TestDovecotPOP3(t *testing.T) {
	e, d := dovecotSource(t, "pop3", false)
	dovecotGoesAway(t, e, d)
	if n := d.Count(t); n != 0 {
		t.Fatalf("%d messages left in Dovecot in delete mode", n)
	}
}

func TestDovecotIMAP(t *testing.T) {
	e, d := dovecotSource(t, "imap", true)
	dovecotGoesAway(t, e, d)
	if n := d.Count(t); n != 8 {
		t.Fatalf("%d messages in Dovecot in keep mode, want 8", n)
	}
	// Delete mode on the same state: nothing pulled again, all removed from Dovecot.
	e.poller.st = keepOff{e.local}
	e.pollNow(t)
	e.wantPulled(t, 8)
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
	e, d := dovecotSource(t, "imap", true)
	putDovecot(t, d, 0, 5)
	if src := e.pollNow(t); src.Failures != 0 || src.Notice != "" {
		t.Fatalf("first poll %+v", src)
	}
	before, _ := e.local.PulledUIDs(context.Background(), e.sourceID)
	if len(before) != 5 {
		t.Fatalf("state %v", before)
	}
	d.Doveadm(t, "mailbox", "update", "-u", d.User, "--uid-validity", "4242", "INBOX")
	putDovecot(t, d, 5, 7)
	src := e.pollNow(t)
	if src.Failures != 0 || src.LastError != "" {
		t.Fatalf("poll after the change %+v", src)
	}
	e.wantPulled(t, 7)
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
	e.wantPulled(t, 8)
	if !strings.Contains(src.Notice, "from a previous folder to 4242: 7 messages recognized as pulled before, 1 pulled as new") {
		t.Errorf("notice %q", src.Notice)
	}
}
