package fetch

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"petrel/internal/client/clientconf"
	"petrel/internal/mailtest"
)

// The IMAP source is tested against Dovecot's imapd (mailtest.StartDovecot): the tests skip
// when Dovecot or its imapd is not installed, and fail under CI.
func startIMAPDovecot(t *testing.T) *mailtest.Dovecot {
	t.Helper()
	mailtest.RequireBinary(t, mailtest.IMAPBinary)
	return mailtest.StartDovecot(t)
}

// imapConfig is a client config with one account "test" reading d's INBOX over IMAP.
func imapConfig(d *mailtest.Dovecot, addr, archive, extra string) string {
	_, port, _ := net.SplitHostPort(addr)
	return fmt.Sprintf(`
[accounts.test]
user = %q
password_command = "echo %s"
timeout = "10s"
[accounts.test.imap]
host = "localhost"
port = %s
ca_file = %q
archive = %q
%s
`, d.User, d.Pass, port, d.CertFile, archive, extra)
}

func imapAccount(t *testing.T, d *mailtest.Dovecot, addr, archive, extra string) *clientconf.Account {
	t.Helper()
	c, err := clientconf.Parse(filepath.Join(t.TempDir(), "client.toml"), []byte(imapConfig(d, addr, archive, extra)))
	if err != nil {
		t.Fatal(err)
	}
	return c.Accounts["test"]
}

// peer is a second IMAP client, standing for the user's other mail programs: it looks at and
// changes the folder behind the back of the fetch.
type peer struct {
	t *testing.T
	c *imapclient.Client
}

func dialPeer(t *testing.T, d *mailtest.Dovecot) *peer {
	t.Helper()
	pem, err := os.ReadFile(d.CertFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	c, err := imapclient.DialTLS(d.IMAPSAddr, &imapclient.Options{TLSConfig: &tls.Config{ServerName: "localhost", RootCAs: pool}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.Login(d.User, d.Pass).Wait(); err != nil {
		t.Fatal(err)
	}
	return &peer{t: t, c: c}
}

// view is the folder as another client sees it: UIDVALIDITY and, in UID order,
// "UID subject flags" (without the session flag \Recent).
func (p *peer) view() (uint32, []string) {
	p.t.Helper()
	sel, err := p.c.Select("INBOX", &imap.SelectOptions{ReadOnly: true}).Wait()
	if err != nil {
		p.t.Fatal(err)
	}
	var out []string
	if sel.NumMessages > 0 {
		msgs, err := p.c.Fetch(imap.SeqSet{{Start: 1, Stop: 0}}, &imap.FetchOptions{UID: true, Flags: true, Envelope: true}).Collect()
		if err != nil {
			p.t.Fatal(err)
		}
		for _, m := range msgs {
			var flags []string
			for _, f := range m.Flags {
				if f != "\\Recent" {
					flags = append(flags, string(f))
				}
			}
			slices.Sort(flags)
			out = append(out, fmt.Sprintf("%d %s %v", m.UID, m.Envelope.Subject, flags))
		}
	}
	return sel.UIDValidity, out
}

// flag adds (or removes) flag on the message with this subject.
func (p *peer) flag(subject string, flag imap.Flag, add bool) {
	p.t.Helper()
	if _, err := p.c.Select("INBOX", nil).Wait(); err != nil {
		p.t.Fatal(err)
	}
	data, err := p.c.UIDSearch(&imap.SearchCriteria{Header: []imap.SearchCriteriaHeaderField{{Key: "Subject", Value: subject}}}, nil).Wait()
	if err != nil || len(data.AllUIDs()) != 1 {
		p.t.Fatalf("search %q: %v %v", subject, data, err)
	}
	op := imap.StoreFlagsAdd
	if !add {
		op = imap.StoreFlagsDel
	}
	if err := p.c.Store(imap.UIDSetNum(data.AllUIDs()...), &imap.StoreFlags{Op: op, Silent: true, Flags: []imap.Flag{flag}}, nil).Close(); err != nil {
		p.t.Fatal(err)
	}
	if err := p.c.Unselect().Wait(); err != nil {
		p.t.Fatal(err)
	}
}

// serverSubjects lists the "msg N" subjects in Dovecot's Maildir, read from the files.
func serverSubjects(t testing.TB, d *mailtest.Dovecot) []string {
	var out []string
	for _, sub := range []string{"new", "cur"} {
		files, _ := filepath.Glob(filepath.Join(d.Maildir, sub, "*"))
		for _, f := range files {
			b, err := os.ReadFile(f)
			if err != nil {
				continue // expunged meanwhile
			}
			subj, _, _ := strings.Cut(strings.TrimPrefix(string(b), "Subject: "), "\n")
			out = append(out, strings.ReplaceAll(subj, " ", "_"))
		}
	}
	slices.Sort(out)
	return out
}

// maildirContents counts the files of a Maildir archive by content.
func maildirContents(t testing.TB, archive string) map[string]int {
	got := map[string]int{}
	for _, sub := range []string{"new", "cur"} {
		files, _ := filepath.Glob(filepath.Join(archive, sub, "*"))
		for _, f := range files {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			got[string(b)]++
		}
	}
	return got
}

// lf is a message as delivered into Dovecot's Maildir and as it must be in our archive.
func lf(i int) string { return strings.ReplaceAll(body(i), "\r\n", "\n") }

// checkArchiveExact: the Maildir archive holds exactly the messages from..to-1, byte for byte.
func checkArchiveExact(t testing.TB, archive string, from, to int) {
	t.Helper()
	got := maildirContents(t, archive)
	for i := from; i < to; i++ {
		if got[lf(i)] != 1 {
			t.Fatalf("message %d is in the archive %d times", i, got[lf(i)])
		}
		delete(got, lf(i))
	}
	if len(got) != 0 {
		t.Fatalf("unexpected messages in the archive: %v", got)
	}
}

// TestIMAPDovecot: keep mode leaves the folder untouched (flags included), a second run
// downloads nothing, every login method works, a dry run changes nothing, and delete mode
// removes exactly what was archived: a message delivered during the run survives.
func TestIMAPDovecot(t *testing.T) {
	d := startIMAPDovecot(t)
	for i := 0; i < 5; i++ {
		d.Deliver(t, i, body(i))
	}
	p := dialPeer(t, d)
	p.flag("msg 1", imap.FlagFlagged, true)
	p.flag("msg 2", imap.FlagSeen, true)
	validity, before := p.view()
	archive := filepath.Join(t.TempDir(), "Mail")

	a := imapAccount(t, d, d.IMAPSAddr, archive, "mode = \"keep\"\nauth = \"scram-sha-256\"")
	var progress []Progress
	res := fetch(t, a, Options{Progress: func(p Progress) { progress = append(progress, p) }})
	if res.OnServer != 5 || res.New != 5 || res.Downloaded != 5 || res.Kept != 5 || res.Deleted != 0 {
		t.Fatalf("keep: %+v", res)
	}
	if len(progress) != 5 || progress[4].Done != 5 || progress[4].DoneBytes != progress[4].TotalSize || res.Bytes != progress[4].TotalSize {
		t.Fatalf("progress %+v, %d bytes", progress, res.Bytes)
	}
	checkArchiveExact(t, archive, 0, 5)
	if got := subjects(t, archive, "maildir"); fmt.Sprint(got) != fmt.Sprint(want(0, 5)) {
		t.Fatalf("archive %v", got)
	}
	if v, after := p.view(); v != validity || fmt.Sprint(after) != fmt.Sprint(before) {
		t.Fatalf("keep changed the folder:\n%v\n%v", before, after)
	}
	if res := fetch(t, a, Options{}); res.Downloaded != 0 || res.New != 0 || res.Kept != 5 {
		t.Fatalf("keep, second run: %+v", res)
	}
	for _, mech := range []string{"plain", "login", ""} {
		a := imapAccount(t, d, d.IMAPAddr, archive, "tls = \"starttls\"\nmode = \"keep\"\nauth = \""+mech+"\"")
		if res := fetch(t, a, Options{}); res.Downloaded != 0 || res.OnServer != 5 {
			t.Fatalf("starttls, %q: %+v", mech, res)
		}
	}
	if _, after := p.view(); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Fatalf("the folder changed:\n%v\n%v", before, after)
	}

	d.Deliver(t, 5, body(5))
	a = imapAccount(t, d, d.IMAPAddr, archive, "tls = \"starttls\"")
	res = fetch(t, a, Options{DryRun: true})
	if res.New != 1 || res.Downloaded != 0 || len(res.Notes) != 1 || !strings.Contains(res.Notes[0], "would download 1 messages") || !strings.Contains(res.Notes[0], "delete 6") {
		t.Fatalf("dry run: %+v", res)
	}
	if _, after := p.view(); len(after) != 6 || fmt.Sprint(after[:5]) != fmt.Sprint(before) {
		t.Fatalf("dry run changed the folder: %v", after)
	}

	// Delete; message 6 arrives while message 5 is being downloaded.
	delivered := false
	res = fetch(t, a, Options{Progress: func(Progress) {
		if !delivered {
			delivered = true
			d.Deliver(t, 6, body(6))
		}
	}})
	if res.Downloaded != 1 || res.Deleted != 6 || res.Kept != 0 {
		t.Fatalf("delete: %+v", res)
	}
	if got := serverSubjects(t, d); fmt.Sprint(got) != "[msg_6]" {
		t.Fatalf("on the server: %v", got)
	}
	checkArchiveExact(t, archive, 0, 6)
	res = fetch(t, a, Options{})
	if res.OnServer != 1 || res.Downloaded != 1 || res.Deleted != 1 {
		t.Fatalf("last run: %+v", res)
	}
	checkArchiveExact(t, archive, 0, 7)
	if n := d.Count(t); n != 0 {
		t.Fatalf("%d left on the server", n)
	}
}

// TestIMAPKeepDays: messages leave the server keep_days after their first download (mbox).
func TestIMAPKeepDays(t *testing.T) {
	d := startIMAPDovecot(t)
	for i := 0; i < 3; i++ {
		d.Deliver(t, i, body(i))
	}
	archive := filepath.Join(t.TempDir(), "mail.mbox")
	a := imapAccount(t, d, d.IMAPSAddr, archive, "format = \"mbox\"\nmode = \"keep-days\"\nkeep_days = 3")
	t0 := time.Date(2025, 1, 10, 12, 0, 0, 0, time.UTC)
	clock := func(d time.Duration) Options { return Options{Now: func() time.Time { return t0.Add(d) }} }
	if res := fetch(t, a, clock(0)); res.Downloaded != 3 || res.Deleted != 0 || res.Kept != 3 {
		t.Fatalf("%+v", res)
	}
	d.Deliver(t, 3, body(3)) // first seen a day later
	if res := fetch(t, a, clock(24*time.Hour)); res.Downloaded != 1 || res.Deleted != 0 || res.Kept != 4 {
		t.Fatalf("day 1 %+v", res)
	}
	if res := fetch(t, a, clock(72*time.Hour-time.Second)); res.Deleted != 0 || res.Kept != 4 {
		t.Fatalf("deleted too early %+v", res)
	}
	if res := fetch(t, a, clock(72*time.Hour)); res.Deleted != 3 || res.Kept != 1 {
		t.Fatalf("day 3 %+v", res)
	}
	if got := serverSubjects(t, d); fmt.Sprint(got) != "[msg_3]" {
		t.Fatalf("on the server: %v", got)
	}
	if res := fetch(t, a, clock(96*time.Hour)); res.Deleted != 1 || res.Kept != 0 {
		t.Fatalf("day 4 %+v", res)
	}
	if got := subjects(t, archive, "mbox"); fmt.Sprint(got) != fmt.Sprint(want(0, 4)) {
		t.Fatalf("archive %v", got)
	}
	if n := d.Count(t); n != 0 {
		t.Fatalf("%d on the server", n)
	}
}

// TestIMAPUIDValidityChange: after the server changed UIDVALIDITY, archived messages are
// recognized by their header digest (duplicates counted), only new ones are downloaded.
func TestIMAPUIDValidityChange(t *testing.T) {
	d := startIMAPDovecot(t)
	for i := 0; i < 4; i++ {
		d.Deliver(t, i, body(i))
	}
	d.Deliver(t, 100, body(1)) // a duplicate delivery of message 1
	archive := filepath.Join(t.TempDir(), "Mail")
	a := imapAccount(t, d, d.IMAPSAddr, archive, "mode = \"keep\"")
	if res := fetch(t, a, Options{}); res.Downloaded != 5 {
		t.Fatalf("%+v", res)
	}
	p := dialPeer(t, d)
	validity, _ := p.view()
	p.c.Logout().Wait()
	d.Doveadm(t, "mailbox", "update", "-u", d.User, "--uid-validity", fmt.Sprint(validity+1000), "INBOX")
	d.Deliver(t, 4, body(4))

	res := fetch(t, a, Options{})
	if res.Downloaded != 1 || res.New != 1 || res.OnServer != 6 || res.Kept != 6 || len(res.Notes) != 1 || !strings.Contains(res.Notes[0], "UIDVALIDITY") || !strings.Contains(res.Notes[0], "5 of its 6 messages were recognized") {
		t.Fatalf("after the change: %+v", res)
	}
	if res := fetch(t, a, Options{}); res.Downloaded != 0 || len(res.Notes) != 0 {
		t.Fatalf("third run: %+v", res)
	}
	got := maildirContents(t, archive)
	if got[lf(1)] != 2 || got[lf(0)] != 1 || got[lf(4)] != 1 || len(got) != 5 {
		t.Fatalf("archive: %v", got)
	}
	a = imapAccount(t, d, d.IMAPSAddr, archive, "")
	if res := fetch(t, a, Options{}); res.Downloaded != 0 || res.Deleted != 6 {
		t.Fatalf("delete: %+v", res)
	}
	if n := d.Count(t); n != 0 {
		t.Fatalf("%d on the server", n)
	}
}

// TestIMAPNoUIDPlus: without UIDPLUS, plain EXPUNGE is used only when no other message is
// marked \Deleted; otherwise ours stay marked until a later run.
func TestIMAPNoUIDPlus(t *testing.T) {
	d := startIMAPDovecot(t)
	for i := 0; i < 3; i++ {
		d.Deliver(t, i, body(i))
	}
	p := dialPeer(t, d)
	archive := filepath.Join(t.TempDir(), "Mail")
	a := imapAccount(t, d, d.IMAPSAddr, archive, "")
	run := func(o Options) Result {
		res := Result{Account: a.Name}
		r := &imapRun{a: a, m: a.IMAP, o: o.withDefaults(), res: &res, noUIDPlus: true}
		if err := r.run(context.Background()); err != nil {
			t.Fatalf("%v (%+v)", err, res)
		}
		return res
	}
	// Another client marks message 9 \Deleted during the run.
	delivered := false
	res := run(Options{Progress: func(Progress) {
		if !delivered {
			delivered = true
			d.Deliver(t, 9, body(9))
			p.flag("msg 9", imap.FlagDeleted, true)
		}
	}})
	if res.Downloaded != 3 || res.Deleted != 0 || len(res.Notes) != 1 || !strings.Contains(res.Notes[0], "UIDPLUS") {
		t.Fatalf("%+v", res)
	}
	if _, v := p.view(); len(v) != 4 || !strings.Contains(v[0], "\\Deleted") {
		t.Fatalf("folder: %v", v)
	}
	p.flag("msg 9", imap.FlagDeleted, false)
	res = run(Options{})
	if res.Downloaded != 1 || res.Deleted != 4 || len(res.Notes) != 0 {
		t.Fatalf("second run: %+v", res)
	}
	if n := d.Count(t); n != 0 {
		t.Fatalf("%d on the server", n)
	}
	got := maildirContents(t, archive)
	if got[lf(9)] != 1 || got[lf(0)] != 1 || got[lf(2)] != 1 || len(got) != 4 {
		t.Fatalf("archive %v", got)
	}
}

// TestIMAPErrors: a missing folder, a wrong password, STARTTLS where the server has TLS only,
// and a server that never answers fail within the account's timeout.
func TestIMAPErrors(t *testing.T) {
	d := startIMAPDovecot(t)
	dir := t.TempDir()
	a := imapAccount(t, d, d.IMAPSAddr, filepath.Join(dir, "Mail"), "folder = \"Nope\"")
	if _, err := Account(context.Background(), a, Options{}); err == nil || !strings.Contains(err.Error(), "Nope") {
		t.Fatalf("missing folder: %v", err)
	}
	a = imapAccount(t, d, d.IMAPSAddr, filepath.Join(dir, "Mail"), "")
	a.PasswordCommand = "echo wrong"
	if _, err := Account(context.Background(), a, Options{}); err == nil || !strings.Contains(err.Error(), "login") {
		t.Fatalf("wrong password: %v", err)
	}
	// STARTTLS on the implicit TLS port: both sides wait (for a greeting, for a ClientHello).
	a = imapAccount(t, d, d.IMAPSAddr, filepath.Join(dir, "Mail"), "tls = \"starttls\"")
	a.Timeout.Duration = 500 * time.Millisecond
	var le *LocalError
	if _, err := Account(context.Background(), a, Options{}); err == nil || errors.As(err, &le) || !strings.Contains(err.Error(), "no answer") {
		t.Fatalf("starttls on an implicit TLS port: %v", err)
	}

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			defer c.Close()
			c.Write([]byte("* OK IMAP4rev1 ready\r\n")) // then silence
		}
	}()
	a = imapAccount(t, d, l.Addr().String(), filepath.Join(dir, "Mail"), "tls = \"plain\"\nallow_plaintext = true")
	a.Timeout.Duration = 500 * time.Millisecond
	start := time.Now()
	if _, err := Account(context.Background(), a, Options{}); err == nil || !strings.Contains(err.Error(), "no answer") || time.Since(start) > 5*time.Second {
		t.Fatalf("silent server: %v after %v", err, time.Since(start))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	a.Timeout.Duration = time.Minute
	start = time.Now()
	if _, err := Account(ctx, a, Options{}); err == nil || time.Since(start) > 5*time.Second {
		t.Fatalf("cancelled: %v after %v", err, time.Since(start))
	}
}

// TestIMAPKill9 kills an IMAP fetch (mode delete) with SIGKILL at several points, then runs
// to completion: every message is archived exactly once, and no message is ever missing from
// both the server and the archive.
func TestIMAPKill9(t *testing.T) {
	for _, format := range []string{"maildir", "mbox"} {
		t.Run(format, func(t *testing.T) {
			const n = 200
			d := startIMAPDovecot(t)
			bodies := make([]string, n)
			for i := range bodies {
				bodies[i] = body(i)
			}
			d.DeliverAll(t, bodies)
			dir := t.TempDir()
			archive := filepath.Join(dir, "box")
			conf := filepath.Join(dir, "client.toml")
			if err := os.WriteFile(conf, []byte(imapConfig(d, d.IMAPSAddr, archive, fmt.Sprintf("format = %q", format))), 0o600); err != nil {
				t.Fatal(err)
			}
			check := func(complete bool) {
				t.Helper()
				got := subjects(t, withoutPartialTail(t, archive, format, complete), format)
				seen := map[string]bool{}
				for _, s := range got {
					if seen[s] {
						t.Fatalf("%s archived twice", s)
					}
					seen[s] = true
				}
				onServer := map[string]bool{}
				for _, s := range serverSubjects(t, d) {
					onServer[s] = true
				}
				for _, w := range want(0, n) {
					if !seen[w] && !onServer[w] {
						t.Fatalf("%s deleted on the server but not archived", w)
					}
					if complete && !seen[w] {
						t.Fatalf("%s not archived", w)
					}
				}
			}
			for _, after := range []int{20, 70, 130} {
				cmd := exec.Command(os.Args[0], "-test.run=^TestHelperFetch$")
				cmd.Env = append(os.Environ(), "PETREL_FETCH_HELPER="+conf)
				if err := cmd.Start(); err != nil {
					t.Fatal(err)
				}
				deadline := time.Now().Add(20 * time.Second)
				for archivedCount(archive, format) < after && time.Now().Before(deadline) {
					time.Sleep(time.Millisecond)
				}
				cmd.Process.Kill()
				cmd.Wait()
				check(false)
			}
			res := fetch(t, imapAccount(t, d, d.IMAPSAddr, archive, fmt.Sprintf("format = %q", format)), Options{})
			if res.Recovered+res.Downloaded == 0 && res.Deleted == 0 {
				t.Fatalf("final run did nothing: %+v", res)
			}
			check(true)
			if left := d.Count(t); left != 0 {
				t.Fatalf("%d left on the server", left)
			}
			t.Logf("final run: %+v", res)
		})
	}
}

// TestIMAPRecoverAfterStateLoss: messages in the archive but not in the state (a run killed
// between the two) are recovered by tag, not downloaded again, and keep their header digest:
// they are still recognized after a UIDVALIDITY change.
func TestIMAPRecoverAfterStateLoss(t *testing.T) {
	for _, format := range []string{"maildir", "mbox"} {
		t.Run(format, func(t *testing.T) {
			d := startIMAPDovecot(t)
			for i := 0; i < 3; i++ {
				d.Deliver(t, i, body(i))
			}
			archive := filepath.Join(t.TempDir(), "box")
			keep := imapAccount(t, d, d.IMAPSAddr, archive, fmt.Sprintf("mode = \"keep\"\nformat = %q", format))
			fetch(t, keep, Options{})
			if err := os.Remove(keep.IMAP.State); err != nil {
				t.Fatal(err)
			}
			if res := fetch(t, keep, Options{}); res.Recovered != 3 || res.Downloaded != 0 || res.New != 3 {
				t.Fatalf("%+v", res)
			}
			p := dialPeer(t, d)
			validity, _ := p.view()
			p.c.Logout().Wait()
			d.Doveadm(t, "mailbox", "update", "-u", d.User, "--uid-validity", fmt.Sprint(validity+7), "INBOX")
			del := imapAccount(t, d, d.IMAPSAddr, archive, fmt.Sprintf("format = %q", format))
			res := fetch(t, del, Options{})
			if res.Downloaded != 0 || res.Deleted != 3 || len(res.Notes) != 1 || !strings.Contains(res.Notes[0], "3 of its 3") {
				t.Fatalf("%+v", res)
			}
			if got := subjects(t, archive, format); fmt.Sprint(got) != fmt.Sprint(want(0, 3)) {
				t.Fatalf("archive %v", got)
			}
			if n := d.Count(t); n != 0 {
				t.Fatalf("%d on the server", n)
			}
		})
	}
}

// TestHeaderDigest: the start of a message and its header alone give the same digest; the
// size and the header bytes both count.
func TestHeaderDigest(t *testing.T) {
	msg := "Subject: a\r\nX: y\r\n\r\nbody\r\n"
	hdr := "Subject: a\r\nX: y\r\n\r\n"
	if headerDigest([]byte(msg), 30) != headerDigest([]byte(hdr), 30) {
		t.Fatal("BODY[] and BODY[HEADER] differ")
	}
	if headerDigest([]byte("Subject: a\n\nbody\n"), 9) != headerDigest([]byte("Subject: a\n\n"), 9) {
		t.Fatal("LF-only header")
	}
	if headerDigest([]byte(hdr), 30) == headerDigest([]byte(hdr), 31) || headerDigest([]byte(hdr), 30) == headerDigest([]byte("Subject: b\r\nX: y\r\n\r\n"), 30) {
		t.Fatal("size or header ignored")
	}
	long := strings.Repeat("X-Long: "+strings.Repeat("z", 70)+"\r\n", 2000) // > maxDigestPrefix
	var w prefixWriter
	w.Write([]byte(long + "\r\nbody"))
	if len(w.b) != maxDigestPrefix || headerDigest(w.b, 1) != headerDigest([]byte(long[:maxDigestPrefix]), 1) {
		t.Fatal("long header")
	}
}
