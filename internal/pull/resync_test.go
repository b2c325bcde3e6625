package pull

import (
	"context"
	"io"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"petrel/internal/mail/deliver"
	"petrel/internal/mail/junk"
	"petrel/internal/mailtest"
	"petrel/internal/store"
	"petrel/internal/store/sqlite"
)

// A stored copy gives the fingerprint of the message as the outside server sent it: the
// junk verdict the delivery inserted (after Return-Path, or at the top) is not part of it;
// the outside server's own X-Spam fields are.
func TestStoredDigest(t *testing.T) {
	const rest = "Subject: s\r\nMessage-ID: <1@far>\r\n\r\nbody\r\n"
	sum := func(f func(io.Reader) (string, error), m string) string {
		t.Helper()
		d, err := f(strings.NewReader(m))
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	digest := func(m string) string { return sum(headerDigest, m) }
	stored := func(m string) string { return sum(storedDigest, m) }
	rp := "Return-Path: <a@far>\r\n"
	theirs := "X-Spam-Status: No, score=0.1 required=5.0 tests=NONE autolearn=no\r\nX-Spam-Score: 0.1\r\n"
	for _, v := range []junk.Verdict{{Score: 0.2, Threshold: 0.9, Tokens: 7}, {Junk: true, Score: 0.97, Threshold: 0.9, Tokens: 12}} {
		ours := v.Header()
		for _, c := range []struct{ remote, local string }{
			{rp + rest, rp + ours + rest},
			{rest, ours + rest},
			{rp + theirs + rest, rp + ours + theirs + rest},
			{strings.ReplaceAll(rp+rest, "\r\n", "\n"), rp + ours + rest},
		} {
			if got, want := stored(c.local), digest(c.remote); got != want {
				t.Errorf("stored %q: %s, the remote %q: %s", c.local, got, c.remote, want)
			}
		}
		// Elsewhere than where the delivery puts it, the block is the message's own.
		if moved := rp + "Subject: s\r\n" + ours + "Message-ID: <1@far>\r\n\r\nbody\r\n"; stored(moved) != digest(moved) {
			t.Errorf("a verdict inside the header was removed: %q", moved)
		}
	}
	// Another filter's X-Spam fields stay.
	if stored(rp+theirs+rest) != digest(rp+theirs+rest) || stored(rp+theirs+rest) == digest(rp+rest) {
		t.Error("the outside server's X-Spam fields were removed")
	}
	// A message of fewer lines than a verdict has.
	if stored("A: 1\r\n") != digest("A: 1\r\n") || stored("") != digest("") {
		t.Error("short messages")
	}
}

// noFingerprints is the store as a version before fingerprints were kept wrote it: pulled
// messages recorded without them.
type noFingerprints struct{ *sqlite.Store }

func (s noFingerprints) Deliver(ctx context.Context, d *store.Delivery) (store.Delivered, error) {
	if d.Pulled != nil {
		p := *d.Pulled
		p.Fingerprint = ""
		d.Pulled = &p
	}
	return s.Store.Deliver(ctx, d)
}

func (s noFingerprints) MarkPulledWith(ctx context.Context, msgs []store.PulledMessage, now time.Time) error {
	uids := make([]string, len(msgs))
	for i, m := range msgs {
		uids[i] = m.UID
	}
	if len(msgs) == 0 {
		return nil
	}
	return s.Store.MarkPulled(ctx, msgs[0].SourceID, uids, now)
}

// oldVersion makes e's poller the one of a version before fingerprints were kept, with the
// junk classifier on (so that the copies carry its verdict); current turns it back.
func (e *env) oldVersion(t *testing.T) (current func()) {
	t.Helper()
	old := noFingerprints{e.local}
	dl := deliver.New(old, slog.New(slog.DiscardHandler))
	dl.SetJunk(&junk.Filter{Store: e.local})
	saved := e.poller
	e.poller = New(old, dl, saved.o)
	return func() {
		dl := deliver.New(e.local, slog.New(slog.DiscardHandler))
		dl.SetJunk(&junk.Filter{Store: e.local})
		e.poller = New(e.local, dl, saved.o)
	}
}

// fingerprints returns the fingerprints recorded for e's source.
func (e *env) fingerprints(t *testing.T) map[string]string {
	t.Helper()
	fps, err := e.local.PulledFingerprints(context.Background(), e.sourceID)
	if err != nil {
		t.Fatal(err)
	}
	return fps
}

// allSubjects lists the subjects of every message of the local account, sorted.
func (e *env) allSubjects(t *testing.T) []string {
	t.Helper()
	ctx := context.Background()
	mbs, err := e.local.Mailboxes(ctx, e.acct.ID)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, mb := range mbs {
		msgs, err := e.local.Messages(ctx, mb.ID, store.Filter{})
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range msgs {
			_, rest, _ := strings.Cut(e.blob(t, m.BlobID), "Subject: ")
			subj, _, _ := strings.Cut(rest, "\r\n")
			out = append(out, subj)
		}
	}
	slices.Sort(out)
	return out
}

// wantNotice fails unless the source's notice says each of parts.
func wantNotice(t *testing.T, src store.PullSource, parts ...string) {
	t.Helper()
	for _, p := range parts {
		if !strings.Contains(src.Notice, p) {
			t.Errorf("notice %q lacks %q", src.Notice, p)
		}
	}
}

// pulledByOldVersion starts Dovecot and an env with a source keeping mail there over
// protocol ("imap" over implicit TLS, "pop3" with STLS), and pulls n messages as a version
// before fingerprints were kept did.
func pulledByOldVersion(t *testing.T, protocol string, n int) (*env, *mailtest.Dovecot) {
	t.Helper()
	e, d := dovecotSource(t, protocol, true)
	current := e.oldVersion(t)
	putDovecot(t, d, 0, n)
	if src := e.pollNow(t); src.Failures != 0 || src.Notice != "" {
		t.Fatalf("poll of the old version %+v", src)
	}
	current()
	return e, d
}

// Records written before fingerprints were kept, then a UIDVALIDITY change on a real
// Dovecot: the fingerprints come from the account's own copies (one moved to another
// folder by the user, all with the junk verdict in their header), so nothing is pulled
// twice; only a message whose copy the user expunged comes again, and the notice says so.
func TestDovecotIMAPUIDValidityOldRecords(t *testing.T) {
	e, d := pulledByOldVersion(t, "imap", 5)
	fps := e.fingerprints(t)
	if len(fps) != 5 {
		t.Fatalf("state %v", fps)
	}
	for uid, fp := range fps {
		if fp != "" {
			t.Fatalf("the old version recorded %s with fingerprint %s", uid, fp)
		}
	}
	ctx := context.Background()
	in := mustInbox(t, e)
	ms, err := e.local.Messages(ctx, in.ID, store.Filter{})
	if err != nil || len(ms) != 5 {
		t.Fatalf("INBOX %v, %v", ms, err)
	}
	if b := e.blob(t, ms[0].BlobID); !strings.Contains(b, "engine=petrel-bayes") {
		t.Fatalf("no junk verdict in the copy %q", b)
	}
	kept, err := e.local.CreateMailbox(ctx, e.acct.ID, "Kept")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.local.Move(ctx, in.ID, []uint32{ms[1].UID}, kept.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := e.local.Expunge(ctx, in.ID, []uint32{ms[2].UID}); err != nil {
		t.Fatal(err)
	}

	d.Doveadm(t, "mailbox", "update", "-u", d.User, "--uid-validity", "4343", "INBOX")
	for i := 5; i < 7; i++ {
		d.Deliver(t, i, msg(i))
	}
	src := e.pollNow(t)
	if src.Failures != 0 {
		t.Fatalf("poll after the change %+v", src)
	}
	// pulled 1 is in Kept, pulled 2 (expunged here) came again, as did the new ones.
	if got := e.subjects(t); !slices.Equal(got, []string{"pulled 0", "pulled 3", "pulled 4", "pulled 2", "pulled 5", "pulled 6"}) {
		t.Fatalf("INBOX after the change %v", got)
	}
	if got := e.allSubjects(t); !slices.Equal(got, want(0, 7)) {
		t.Fatalf("the account after the change %v", got)
	}
	wantNotice(t, src, " to 4343: 4 messages recognized as pulled before, 3 pulled as new",
		"(1 pulled before fingerprints were kept, with no copy left here to recognize them by)")
	fps = e.fingerprints(t)
	if len(fps) != 7 {
		t.Errorf("state after the change %v", fps)
	}
	for uid, fp := range fps {
		if !strings.HasPrefix(uid, "4343/") || len(fp) != 64 {
			t.Errorf("after the change %s has fingerprint %q", uid, fp)
		}
	}
}

// Records written before fingerprints were kept get them from the server at the next poll
// (BODY.PEEK[HEADER]), while their UIDs still name the messages: a UIDVALIDITY change after
// that brings back nothing, not even a message whose copy the user expunged here.
func TestDovecotIMAPOldRecordsBackfilled(t *testing.T) {
	e, d := pulledByOldVersion(t, "imap", 4)
	in := mustInbox(t, e)
	ms, err := e.local.Messages(context.Background(), in.ID, store.Filter{})
	if err != nil || len(ms) != 4 {
		t.Fatalf("INBOX %v, %v", ms, err)
	}
	if _, err := e.local.Expunge(context.Background(), in.ID, []uint32{ms[0].UID}); err != nil {
		t.Fatal(err)
	}
	e.pollNow(t)
	fps := e.fingerprints(t)
	for uid, fp := range fps {
		if len(fp) != 64 {
			t.Errorf("after the poll %s has fingerprint %q", uid, fp)
		}
	}
	if len(fps) != 4 {
		t.Fatalf("state %v", fps)
	}
	d.Doveadm(t, "mailbox", "update", "-u", d.User, "--uid-validity", "4545", "INBOX")
	d.Deliver(t, 4, msg(4))
	src := e.pollNow(t)
	if got := e.subjects(t); !slices.Equal(got, want(1, 5)) {
		t.Fatalf("INBOX after the change %v", got)
	}
	wantNotice(t, src, " to 4545: 4 messages recognized as pulled before, 1 pulled as new")
	if strings.Contains(src.Notice, "no copy") {
		t.Errorf("notice %q", src.Notice)
	}
}

// Dovecot's POP3 UIDLs (pop3_uidl_format %08Xu%08Xv) hold the UIDVALIDITY, so a new one
// renames every message, as a migration to another server would. Keeping mail, with part
// of the state from before fingerprints were kept (read from the server at the next poll):
// nothing is pulled twice, the new messages are, and the notice says what happened. A
// second poll changes nothing.
func TestDovecotPOP3UIDLsChange(t *testing.T) {
	e, d := pulledByOldVersion(t, "pop3", 3)
	for i := 3; i < 5; i++ {
		d.Deliver(t, i, msg(i))
	}
	if src := e.pollNow(t); src.Failures != 0 || src.Notice != "" {
		t.Fatalf("second poll %+v", src)
	}
	// The second poll read the fingerprints the old version did not keep (TOP n 0).
	fps := e.fingerprints(t)
	if n := len(slices.DeleteFunc(slices.Collect(maps.Values(fps)), func(fp string) bool { return len(fp) == 64 })); len(fps) != 5 || n != 0 {
		t.Fatalf("state before the change %v", fps)
	}
	before := slices.Sorted(maps.Keys(fps))

	d.Doveadm(t, "mailbox", "update", "-u", d.User, "--uid-validity", "4444", "INBOX")
	for i := 5; i < 7; i++ {
		d.Deliver(t, i, msg(i))
	}
	src := e.pollNow(t)
	if src.Failures != 0 {
		t.Fatalf("poll after the change %+v", src)
	}
	if got := e.subjects(t); !slices.Equal(got, want(0, 7)) {
		t.Fatalf("pulled %v", got)
	}
	wantNotice(t, src, "the server's UIDLs changed (0 of 5 recorded still listed, 7 listed not recorded): 5 messages recognized as pulled before, 2 pulled as new")
	fps = e.fingerprints(t)
	for uid, fp := range fps {
		if slices.Contains(before, uid) || len(fp) != 64 {
			t.Errorf("after the change %s has fingerprint %q", uid, fp)
		}
	}
	if len(fps) != 7 {
		t.Errorf("state after the change %v", fps)
	}
	if src := e.pollNow(t); src.Notice == "" || len(e.subjects(t)) != 7 {
		t.Fatalf("next poll %+v, %v", src, e.subjects(t))
	}
	if n := d.Count(t); n != 7 {
		t.Fatalf("%d messages in Dovecot in keep mode, want 7", n)
	}
}

// A server with UIDL but without TOP whose UIDLs change: the messages are recognized from
// their whole text. A mailbox from which most mail was deleted and little came is not
// taken for a renamed one; one whose mail was all replaced is looked at, and makes no
// notice.
func TestPOP3UIDLsChangeWithoutTOP(t *testing.T) {
	e := newEnv(t)
	srv := startPOP3NoUIDL(t, false)
	srv.setUIDL("old-")
	srv.put(msg(0), msg(1), msg(2))
	e.addPlain(t, srv.addr, true)
	current := e.oldVersion(t)
	e.pollNow(t)
	current()
	srv.setUIDL("new-")
	srv.put(msg(3))
	src := e.pollNow(t)
	if got := e.subjects(t); !slices.Equal(got, want(0, 4)) {
		t.Fatalf("pulled %v", got)
	}
	wantNotice(t, src, "the server's UIDLs changed (0 of 3 recorded still listed, 4 listed not recorded): 3 messages recognized as pulled before, 1 pulled as new")

	// Three of four deleted on the server, one new: deletion, not renaming.
	for range 3 {
		srv.remove(0)
	}
	srv.put(msg(4))
	notice := src.Notice
	if src := e.pollNow(t); src.Notice != notice || src.Failures != 0 {
		t.Fatalf("after deletions %+v", src)
	}
	if got := e.subjects(t); !slices.Equal(got, want(0, 5)) {
		t.Fatalf("pulled %v", got)
	}
	// Everything deleted, as much new: taken for a renaming and looked at, but nothing was
	// renamed, so no notice.
	srv.remove(0)
	srv.remove(0)
	srv.put(msg(5), msg(6))
	if src := e.pollNow(t); src.Notice != notice || src.Failures != 0 {
		t.Fatalf("after all was replaced %+v", src)
	}
	if got := e.subjects(t); !slices.Equal(got, want(0, 7)) {
		t.Fatalf("pulled %v", got)
	}
}

// FuzzStoredDigest: a message with a junk verdict inserted where the delivery inserts it
// (deliver/junk.go: after a first Return-Path line ending within 512 bytes, else at the top)
// has the fingerprint of the message without it.
func FuzzStoredDigest(f *testing.F) {
	f.Add("Return-Path: <a@b>\nSubject: x", "body", 0.5, false)
	f.Add("X-Spam-Status: No, score=0.10 required=0.90 tokens=1 engine=petrel-bayes\nX-Spam-Score: 0.100", "", 0.1, true)
	f.Add("Return-Path: "+strings.Repeat("r", 600), "b", 0.9, true)
	f.Add("", "", 0.0, false)
	f.Fuzz(func(t *testing.T, head, body string, score float64, isJunk bool) {
		if strings.Contains(head, "\r") {
			return
		}
		m := strings.ReplaceAll(head, "\n", "\r\n") + "\r\n\r\n" + body
		at := 0
		if first := m[:min(len(m), 512)]; strings.HasPrefix(first, "Return-Path:") {
			if i := strings.Index(first, "\r\n"); i >= 0 {
				at = i + 2
			}
		}
		local := m[:at] + junk.Verdict{Junk: isJunk, Score: score, Threshold: 0.9, Tokens: len(body)}.Header() + m[at:]
		want, err1 := headerDigest(strings.NewReader(m))
		got, err2 := storedDigest(strings.NewReader(local))
		if err1 != nil || err2 != nil {
			t.Fatal(err1, err2)
		}
		if got != want {
			t.Errorf("%q stored as %q: %s, want %s", m, local, got, want)
		}
	})
}
