package fetch

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"petrel/internal/client/clientconf"
	"petrel/internal/mailtest"
)

const password = "correct horse"

// account builds an account through the real config parser. extra is added to the pop3 table.
func account(t testing.TB, addr, certFile, archive, extra string) *clientconf.Account {
	t.Helper()
	c, err := clientconf.Parse(filepath.Join(t.TempDir(), "client.toml"), []byte(configSrc(addr, certFile, archive, extra)))
	if err != nil {
		t.Fatal(err)
	}
	return c.Accounts["test"]
}

func configSrc(addr, certFile, archive, extra string) string {
	host, port, _ := net.SplitHostPort(addr)
	return fmt.Sprintf(`
[accounts.test]
user = "alice@example.org"
password_command = "echo '%s'"
timeout = "5s"
[accounts.test.pop3]
host = %q
port = %s
ca_file = %q
archive = %q
%s
`, password, host, port, certFile, archive, extra)
}

type env struct {
	srv  *mailtest.Server
	acct mailtest.Account
	dir  string
}

func newEnv(t testing.TB, n int) *env {
	s := mailtest.Start(t)
	e := &env{srv: s, acct: s.AddAccount(t, "alice@example.org", password), dir: t.TempDir()}
	e.deliver(t, 0, n)
	return e
}

func body(i int) string {
	return fmt.Sprintf("Subject: msg %d\r\nMessage-ID: <%d@test>\r\n\r\nHello %d\r\nFrom the start of a line\r\n>From quoted\r\n.dot\r\n", i, i, i)
}

func (e *env) deliver(t testing.TB, from, to int) {
	for i := from; i < to; i++ {
		e.srv.Deliver(t, e.acct, body(i))
	}
}

// tlsAccount fetches over implicit TLS with the test CA; host "localhost" matches the cert.
func (e *env) tlsAccount(t testing.TB, archive, extra string) *clientconf.Account {
	_, port, _ := net.SplitHostPort(e.srv.TLSAddr)
	return account(t, "localhost:"+port, e.srv.CertFile, archive, extra)
}

// subjects lists the "msg N" subjects found in a Maildir or mbox archive, via python3's
// mailbox module: the archive must be readable by a standard tool.
func subjects(t testing.TB, archive, format string) []string {
	t.Helper()
	if _, err := os.Stat(archive); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	script := `
import mailbox, sys
box = mailbox.Maildir(sys.argv[1], create=False) if sys.argv[2] == "maildir" else mailbox.mbox(sys.argv[1], create=False)
# Python reads mbox without undoing the mboxrd quoting, so there the quoted lines show.
want = "From the start of a line\n>From quoted\n.dot\n" if sys.argv[2] == "maildir" else ">From the start of a line\n>>From quoted\n.dot\n"
for m in box:
    body = m.get_payload()
    assert want in body, repr(body)
    assert "\r" not in body, repr(body)
    print(m["Subject"])
`
	out, err := exec.Command("python3", "-c", script, archive, format).CombinedOutput()
	if err != nil {
		t.Fatalf("python3 mailbox: %v\n%s", err, out)
	}
	got := strings.Fields(strings.ReplaceAll(string(out), "msg ", "msg_"))
	sort.Strings(got)
	return got
}

// withoutPartialTail returns archive, or, when a run was killed (not complete) in the middle
// of an mbox append, a copy without the partial message at its end, which the next Commit
// removes (a complete check sees the real file, and so checks that it was removed).
func withoutPartialTail(t testing.TB, archive, format string, complete bool) string {
	t.Helper()
	if complete || format != "mbox" {
		return archive
	}
	cut, partial, err := (&mbox{path: archive}).partialTail()
	if err != nil || !partial {
		return archive
	}
	b, err := os.ReadFile(archive)
	if err != nil {
		t.Fatal(err)
	}
	cp := filepath.Join(t.TempDir(), "mbox")
	if err := os.WriteFile(cp, b[:cut], 0o600); err != nil {
		t.Fatal(err)
	}
	return cp
}

func want(from, to int) []string {
	var w []string
	for i := from; i < to; i++ {
		w = append(w, fmt.Sprintf("msg_%d", i))
	}
	sort.Strings(w)
	return w
}

// checkOnce checks that the archive holds each of msg 0..n-1 at most once, all of them if
// complete, and that every message missing from the server is in the archive.
func (e *env) checkOnce(t testing.TB, archive, format string, n int, complete bool) {
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
	for _, b := range e.srv.Inbox(t, e.acct) {
		subj := strings.TrimPrefix(strings.SplitN(b, "\r\n", 2)[0], "Subject: ")
		onServer[strings.ReplaceAll(subj, " ", "_")] = true
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

func fetch(t testing.TB, a *clientconf.Account, o Options) Result {
	t.Helper()
	res, err := Account(context.Background(), a, o)
	if err != nil {
		t.Fatalf("fetch: %v (%+v)", err, res)
	}
	return res
}

func TestDeleteMaildir(t *testing.T) {
	e := newEnv(t, 5)
	archive := filepath.Join(e.dir, "Mail")
	a := e.tlsAccount(t, archive, "")
	var progress []Progress
	res := fetch(t, a, Options{Progress: func(p Progress) { progress = append(progress, p) }})
	if res.Downloaded != 5 || res.Deleted != 5 || res.OnServer != 5 || res.Kept != 0 {
		t.Fatalf("%+v", res)
	}
	if len(progress) != 5 || progress[4].Done != 5 || progress[4].DoneBytes != progress[4].TotalSize {
		t.Fatalf("progress %+v", progress)
	}
	if got := subjects(t, archive, "maildir"); strings.Join(got, " ") != strings.Join(want(0, 5), " ") {
		t.Fatalf("archive %v", got)
	}
	if n := len(e.srv.Inbox(t, e.acct)); n != 0 {
		t.Fatalf("%d left on server", n)
	}
	// Exact bytes of one file: LF line endings, nothing added.
	files, _ := filepath.Glob(filepath.Join(archive, "new", "*"))
	var found bool
	for _, f := range files {
		b, _ := os.ReadFile(f)
		if string(b) == strings.ReplaceAll(body(3), "\r\n", "\n") {
			found = true
		}
	}
	if !found {
		t.Fatal("message 3 not stored byte for byte")
	}
	e.deliver(t, 5, 7)
	res = fetch(t, a, Options{})
	if res.Downloaded != 2 || res.Deleted != 2 {
		t.Fatalf("second run %+v", res)
	}
	e.checkOnce(t, archive, "maildir", 7, true)
}

func TestKeep(t *testing.T) {
	for _, format := range []string{"maildir", "mbox"} {
		t.Run(format, func(t *testing.T) {
			e := newEnv(t, 4)
			archive := filepath.Join(e.dir, "inbox")
			a := e.tlsAccount(t, archive, fmt.Sprintf("mode = \"keep\"\nformat = %q", format))
			if res := fetch(t, a, Options{}); res.Downloaded != 4 || res.Deleted != 0 || res.Kept != 4 {
				t.Fatalf("%+v", res)
			}
			if res := fetch(t, a, Options{}); res.Downloaded != 0 || res.New != 0 || res.Kept != 4 {
				t.Fatalf("second run downloaded again: %+v", res)
			}
			e.deliver(t, 4, 5)
			if res := fetch(t, a, Options{}); res.Downloaded != 1 || res.Kept != 5 {
				t.Fatalf("third run %+v", res)
			}
			if n := len(e.srv.Inbox(t, e.acct)); n != 5 {
				t.Fatalf("%d on server", n)
			}
			e.checkOnce(t, archive, format, 5, true)
		})
	}
}

func TestKeepDays(t *testing.T) {
	e := newEnv(t, 3)
	archive := filepath.Join(e.dir, "Mail")
	a := e.tlsAccount(t, archive, "mode = \"keep-days\"\nkeep_days = 3")
	t0 := time.Date(2025, 1, 10, 12, 0, 0, 0, time.UTC)
	clock := func(d time.Duration) Options { return Options{Now: func() time.Time { return t0.Add(d) }} }
	if res := fetch(t, a, clock(0)); res.Downloaded != 3 || res.Deleted != 0 {
		t.Fatalf("%+v", res)
	}
	e.deliver(t, 3, 4) // first seen a day later
	if res := fetch(t, a, clock(24*time.Hour)); res.Downloaded != 1 || res.Deleted != 0 || res.Kept != 4 {
		t.Fatalf("day 1 %+v", res)
	}
	if res := fetch(t, a, clock(72*time.Hour-time.Second)); res.Deleted != 0 {
		t.Fatalf("deleted too early %+v", res)
	}
	if res := fetch(t, a, clock(72*time.Hour)); res.Deleted != 3 || res.Kept != 1 {
		t.Fatalf("day 3 %+v", res)
	}
	if res := fetch(t, a, clock(96*time.Hour)); res.Deleted != 1 || res.Kept != 0 {
		t.Fatalf("day 4 %+v", res)
	}
	e.checkOnce(t, archive, "maildir", 4, true)
	if n := len(e.srv.Inbox(t, e.acct)); n != 0 {
		t.Fatalf("%d on server", n)
	}
}

func TestDryRun(t *testing.T) {
	e := newEnv(t, 3)
	archive := filepath.Join(e.dir, "Mail")
	a := e.tlsAccount(t, archive, "")
	res := fetch(t, a, Options{DryRun: true})
	if res.Downloaded != 0 || res.New != 3 || len(res.Notes) != 1 || !strings.Contains(res.Notes[0], "would download 3 messages") {
		t.Fatalf("%+v", res)
	}
	if entries, _ := os.ReadDir(e.dir); len(entries) != 0 {
		t.Fatalf("dry run wrote %v", entries)
	}
	if n := len(e.srv.Inbox(t, e.acct)); n != 3 {
		t.Fatalf("%d on server", n)
	}
}

// TestRecoverAfterStateLoss simulates a kill between the archive commit and the state write:
// the messages are in the archive, the state does not know them. The next run must not
// download them again, and (mode delete) must delete them from the server.
func TestRecoverAfterStateLoss(t *testing.T) {
	for _, format := range []string{"maildir", "mbox"} {
		t.Run(format, func(t *testing.T) {
			e := newEnv(t, 4)
			archive := filepath.Join(e.dir, "box")
			keep := e.tlsAccount(t, archive, fmt.Sprintf("mode = \"keep\"\nformat = %q", format))
			fetch(t, keep, Options{})
			if err := os.Remove(keep.POP3.State); err != nil {
				t.Fatal(err)
			}
			del := e.tlsAccount(t, archive, fmt.Sprintf("format = %q", format))
			del.POP3.State = keep.POP3.State
			res := fetch(t, del, Options{})
			if res.Recovered != 4 || res.Downloaded != 0 || res.Deleted != 4 {
				t.Fatalf("%+v", res)
			}
			e.checkOnce(t, archive, format, 4, true)
		})
	}
}

// TestPartialMboxAppendIgnored: a message whose append was cut short is not "present".
func TestPartialMboxAppendIgnored(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "mbox")
	content := "From MAILER-DAEMON Thu Jan  1 00:00:00 2025\nX-Petrel-Fetch: aaaa 10\n123456789\n\n" +
		"From MAILER-DAEMON Thu Jan  1 00:00:00 2025\nX-Petrel-Fetch: bbbb 10\n12345"
	os.WriteFile(path, []byte(content), 0o600)
	mb, err := openMbox(path)
	if err != nil {
		t.Fatal(err)
	}
	found, err := mb.Present(map[string]bool{"aaaa": true, "bbbb": true})
	if err != nil || !found["aaaa"] || found["bbbb"] {
		t.Fatalf("found %v %v", found, err)
	}
}

// proxy forwards connections to upstream; it can rewrite client commands and cut the
// connection after the server sent cutAfter bytes (0: never).
type proxy struct {
	addr     string
	mu       sync.Mutex
	rewrite  map[string]string // command prefix → replacement
	cutAfter int64
}

func (p *proxy) set(cut int64, from, to string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cutAfter = cut
	if from != "" {
		p.rewrite[from] = to
	}
}

func startProxy(t *testing.T, upstream string) *proxy {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	p := &proxy{addr: l.Addr().String(), rewrite: map[string]string{}}
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go p.serve(c, upstream)
		}
	}()
	return p
}

func (p *proxy) serve(c net.Conn, upstream string) {
	u, err := net.Dial("tcp", upstream)
	if err != nil {
		c.Close()
		return
	}
	defer c.Close()
	defer u.Close()
	go func() {
		r := bufio.NewReader(c)
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				u.Close()
				return
			}
			p.mu.Lock()
			for from, to := range p.rewrite {
				if strings.HasPrefix(line, from) {
					line = to + strings.TrimPrefix(line, from)
				}
			}
			p.mu.Unlock()
			io.WriteString(u, line)
		}
	}()
	p.mu.Lock()
	limit := p.cutAfter
	p.mu.Unlock()
	if limit > 0 {
		io.CopyN(c, u, limit)
		return // cut
	}
	io.Copy(c, u)
}

func plainAccount(t testing.TB, addr, archive, extra string) *clientconf.Account {
	return account(t, addr, "", archive, "tls = \"plain\"\nallow_plaintext = true\n"+extra)
}

// TestConnectionDrop cuts the connection in the middle of the downloads: nothing archived is
// lost, nothing is deleted, and a second run completes without duplicates.
func TestConnectionDrop(t *testing.T) {
	for _, format := range []string{"maildir", "mbox"} {
		t.Run(format, func(t *testing.T) {
			e := newEnv(t, 30)
			p := startProxy(t, e.srv.Addr)
			archive := filepath.Join(e.dir, "box")
			a := plainAccount(t, p.addr, archive, fmt.Sprintf("format = %q", format))
			for _, cut := range []int64{2000, 3500} {
				p.set(cut, "", "")
				res, err := Account(context.Background(), a, Options{BatchSize: 4})
				if err == nil {
					t.Fatalf("cut after %d: no error, %+v", cut, res)
				}
				var le *LocalError
				if errors.As(err, &le) {
					t.Fatalf("network drop reported as local: %v", err)
				}
				if n := len(e.srv.Inbox(t, e.acct)); n != 30 {
					t.Fatalf("%d on server after a drop: deleted without QUIT", n)
				}
				e.checkOnce(t, archive, format, 30, false)
				if res.Downloaded == 0 {
					t.Fatalf("cut after %d: nothing downloaded, the test proves little", cut)
				}
			}
			p.set(0, "", "")
			res := fetch(t, a, Options{})
			if res.Deleted != 30 {
				t.Fatalf("%+v", res)
			}
			e.checkOnce(t, archive, format, 30, true)
		})
	}
}

func TestNoUIDL(t *testing.T) {
	e := newEnv(t, 3)
	p := startProxy(t, e.srv.Addr)
	p.set(0, "UIDL", "XUIDL")
	archive := filepath.Join(e.dir, "Mail")
	a := plainAccount(t, p.addr, archive, "mode = \"keep\"")
	res := fetch(t, a, Options{})
	if res.Downloaded != 3 || len(res.Notes) == 0 || !strings.Contains(res.Notes[0], "UIDL") {
		t.Fatalf("%+v", res)
	}
	if res := fetch(t, a, Options{}); res.Downloaded != 0 {
		t.Fatalf("header digests did not identify: %+v", res)
	}
	// Neither UIDL nor TOP: keep is refused, delete works.
	p.set(0, "TOP", "XTOP")
	if _, err := Account(context.Background(), a, Options{}); err == nil || !strings.Contains(err.Error(), "neither UIDL nor TOP") {
		t.Fatalf("keep without identity: %v", err)
	}
	e.deliver(t, 3, 4)
	a = plainAccount(t, p.addr, filepath.Join(e.dir, "Other"), "")
	res = fetch(t, a, Options{})
	if res.Downloaded != 4 || res.Deleted != 4 {
		t.Fatalf("%+v", res)
	}
}

func TestLocalErrorAndLock(t *testing.T) {
	e := newEnv(t, 2)
	file := filepath.Join(e.dir, "file")
	os.WriteFile(file, nil, 0o600)
	a := e.tlsAccount(t, filepath.Join(file, "Mail"), "") // a Maildir under a regular file
	a.POP3.State = filepath.Join(e.dir, "state")
	_, err := Account(context.Background(), a, Options{})
	var le *LocalError
	if !errors.As(err, &le) {
		t.Fatalf("got %v", err)
	}
	if n := len(e.srv.Inbox(t, e.acct)); n != 2 {
		t.Fatal("deleted although nothing was archived")
	}
	unlock, err := lockFile(a.POP3.State + ".lock")
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	if _, err := Account(context.Background(), a, Options{}); !errors.As(err, &le) || !strings.Contains(err.Error(), "another fetch") {
		t.Fatalf("concurrent run: %v", err)
	}
}

func TestBadCertificate(t *testing.T) {
	e := newEnv(t, 1)
	_, port, _ := net.SplitHostPort(e.srv.TLSAddr)
	a := account(t, "localhost:"+port, "", filepath.Join(e.dir, "Mail"), "") // system roots
	if _, err := Account(context.Background(), a, Options{}); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("got %v", err)
	}
	fp := fmt.Sprintf("%x", e.srv.Fingerprint)
	a = account(t, "localhost:"+port, "", filepath.Join(e.dir, "Mail"), "fingerprint = \""+fp+"\"")
	fetch(t, a, Options{})
	a = account(t, "localhost:"+port, "", filepath.Join(e.dir, "Mail"), "fingerprint = \""+strings.Repeat("ab", 32)+"\"")
	if _, err := Account(context.Background(), a, Options{}); err == nil || !strings.Contains(err.Error(), "fingerprint") {
		t.Fatalf("wrong pin: %v", err)
	}
}

func TestLineWriter(t *testing.T) {
	for _, tt := range []struct {
		in    []string
		quote bool
		want  string
	}{
		{[]string{"a\r\nb\r\n"}, false, "a\nb\n"},
		{[]string{"a\r", "\nb"}, false, "a\nb\n"},
		{[]string{"From x\r\n>From y\r\n>>From z\r\nFrom\r\n"}, true, ">From x\n>>From y\n>>>From z\nFrom\n"},
		{[]string{">", ">", "From split\r\n"}, true, ">>>From split\n"},
		{[]string{"From x\r\n"}, false, "From x\n"},
		{[]string{"bare\rcr\r\n"}, false, "bare\rcr\n"},
	} {
		var b strings.Builder
		w := bufio.NewWriter(&b)
		lw := lineWriter{w: w, quote: tt.quote}
		for _, s := range tt.in {
			lw.Write([]byte(s))
		}
		lw.finish()
		if b.String() != tt.want || lw.n != int64(len(tt.want)) {
			t.Errorf("%q: got %q (n=%d)", tt.in, b.String(), lw.n)
		}
	}
}

// TestHelperFetch is not a test: TestKill9 runs it in a subprocess to have a fetch to kill.
func TestHelperFetch(t *testing.T) {
	conf := os.Getenv("PETREL_FETCH_HELPER")
	if conf == "" {
		t.Skip("helper process only")
	}
	c, err := clientconf.Load(conf)
	if err != nil {
		t.Fatal(err)
	}
	Account(context.Background(), c.Accounts["test"], Options{BatchSize: 3, Progress: func(Progress) {
		time.Sleep(2 * time.Millisecond) // give the parent time to kill us mid-run
	}})
}

// TestKill9 kills a fetch subprocess with SIGKILL several times at different points, then
// runs to completion: every message is archived exactly once, and at no point is a message
// missing from both the server and the archive.
func TestKill9(t *testing.T) {
	for _, format := range []string{"maildir", "mbox"} {
		t.Run(format, func(t *testing.T) {
			const n = 200
			e := newEnv(t, n)
			archive := filepath.Join(e.dir, "box")
			_, port, _ := net.SplitHostPort(e.srv.TLSAddr)
			conf := filepath.Join(e.dir, "client.toml")
			src := configSrc("localhost:"+port, e.srv.CertFile, archive, fmt.Sprintf("format = %q", format))
			if err := os.WriteFile(conf, []byte(src), 0o600); err != nil {
				t.Fatal(err)
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
				e.checkOnce(t, archive, format, n, false)
			}
			res := fetch(t, account(t, "localhost:"+port, e.srv.CertFile, archive, fmt.Sprintf("format = %q", format)), Options{})
			if res.Recovered+res.Downloaded == 0 && res.Deleted == 0 {
				t.Fatalf("final run did nothing: %+v", res)
			}
			e.checkOnce(t, archive, format, n, true)
			if left := len(e.srv.Inbox(t, e.acct)); left != 0 {
				t.Fatalf("%d left on the server", left)
			}
			t.Logf("final run: %+v", res)
		})
	}
}

// archivedCount counts messages in the archive cheaply (files in new/, or "From " lines).
func archivedCount(archive, format string) int {
	if format == "maildir" {
		entries, _ := os.ReadDir(filepath.Join(archive, "new"))
		return len(entries)
	}
	b, _ := os.ReadFile(archive)
	return strings.Count(string(b), "\nX-Petrel-Fetch: ")
}

// TestPartialMboxAppendCut: the next Commit removes a partial message a killed run left at the
// end of the mbox, and keeps a foreign message that follows a partial one.
func TestPartialMboxAppendCut(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "mbox")
	complete := "From MAILER-DAEMON Thu Jan  1 00:00:00 2025\nX-Petrel-Fetch: aaaa 10\n123456789\n\n"
	partial := "From MAILER-DAEMON Thu Jan  1 00:00:00 2025\nX-Petrel-Fetch: bbbb 100\n12345"
	os.WriteFile(path, []byte(complete+partial), 0o600)
	mb, err := openMbox(path)
	if err != nil {
		t.Fatal(err)
	}
	p, _ := mb.Begin("cccc")
	io.WriteString(p, "Subject: c\r\n\r\nc\r\n")
	if err := p.Finish(); err != nil {
		t.Fatal(err)
	}
	if err := mb.Commit(); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(path)
	if !strings.HasPrefix(string(b), complete+"From ") || strings.Contains(string(b), "bbbb") || !strings.Contains(string(b), "cccc") {
		t.Fatalf("mbox:\n%s", b)
	}

	// A foreign message after the partial one: nothing is cut.
	foreign := "\nFrom someone Thu Jan  1 00:00:00 2025\nSubject: x\n\nx\n"
	os.WriteFile(path, []byte(complete+partial+foreign), 0o600)
	mb, _ = openMbox(path)
	p, _ = mb.Begin("dddd")
	io.WriteString(p, "Subject: d\r\n\r\nd\r\n")
	p.Finish()
	if err := mb.Commit(); err != nil {
		t.Fatal(err)
	}
	b, _ = os.ReadFile(path)
	if !strings.HasPrefix(string(b), complete+partial+foreign) {
		t.Fatalf("foreign message damaged:\n%s", b)
	}
}
