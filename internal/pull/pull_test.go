package pull

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"petrel/internal/mail/deliver"
	"petrel/internal/mailtest"
	"petrel/internal/store"
	"petrel/internal/store/sqlite"
)

const outsidePass = "outside-secret-1"

// env is an outside POP3 server (a Petrel pop3d over its own store) and a local store the
// poller delivers into.
type env struct {
	outside  *mailtest.Server
	remote   store.Account // the account on the outside server
	local    *sqlite.Store
	acct     store.Account // the local account pulled into
	keyFile  string
	dl       *deliver.Deliverer
	poller   *Poller
	sourceID int64
}

func newEnv(t *testing.T) *env {
	e := &env{outside: mailtest.Start(t)}
	e.remote = e.outside.AddAccount(t, "far@outside.test", outsidePass)
	dir := t.TempDir()
	st, err := sqlite.Open(filepath.Join(dir, "petrel.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	e.local = st
	ctx := context.Background()
	if err := st.AddDomain(ctx, "home.test"); err != nil {
		t.Fatal(err)
	}
	if e.acct, err = st.AddAccount(ctx, "me@home.test", store.Credentials{}); err != nil {
		t.Fatal(err)
	}
	e.keyFile = filepath.Join(t.TempDir(), "pull.key")
	e.dl = deliver.New(st, slog.New(slog.DiscardHandler))
	e.poller = New(st, e.dl, Options{KeyFile: e.keyFile, DialTimeout: 30 * time.Second, SpoolDir: dir})
	return e
}

// add adds a POP3 source for the outside account at addr (the implicit-TLS listener unless
// told otherwise).
func (e *env) add(t *testing.T, addr string, keep bool) int64 {
	t.Helper()
	_, port, _ := net.SplitHostPort(addr)
	return e.addSource(t, store.PullSource{Protocol: "pop3", Addr: "localhost:" + port, // the name in the certificate
		TLS: "tls", CAFile: e.outside.CertFile, User: e.remote.Address, Keep: keep}, outsidePass)
}

// addSource stores src for the local account, polled hourly and due now, with pass sealed
// by the test's key, and makes it the source the env polls.
func (e *env) addSource(t *testing.T, src store.PullSource, pass string) int64 {
	t.Helper()
	s, err := LoadKey(e.keyFile, true)
	if err != nil {
		t.Fatal(err)
	}
	src.AccountID, src.Every, src.NextPoll = e.acct.ID, time.Hour, time.Now()
	src.Secret = s.Seal(pass, e.acct.ID, src.Protocol, src.Addr, src.User)
	if e.sourceID, err = e.local.AddPullSource(context.Background(), src); err != nil {
		t.Fatal(err)
	}
	return e.sourceID
}

func msg(i int) string {
	return fmt.Sprintf("Return-Path: <sender%d@outside.test>\r\nSubject: pulled %d\r\nMessage-ID: <%d@outside.test>\r\n\r\nbody %d\r\n.leading dot\r\n", i, i, i, i)
}

func (e *env) put(t *testing.T, from, to int) {
	for i := from; i < to; i++ {
		e.outside.Deliver(t, e.remote, msg(i))
	}
}

// subjects lists the subjects in the local account's INBOX, in UID order.
func (e *env) subjects(t *testing.T) []string {
	t.Helper()
	ctx := context.Background()
	mb, err := e.local.Mailbox(ctx, e.acct.ID, store.Inbox)
	if err != nil {
		t.Fatal(err)
	}
	msgs, err := e.local.Messages(ctx, mb.ID, store.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, m := range msgs {
		rc, err := e.local.OpenBlob(ctx, m.BlobID)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(rc)
		rc.Close()
		_, rest, _ := strings.Cut(string(b), "Subject: ")
		subj, _, _ := strings.Cut(rest, "\r\n")
		out = append(out, subj)
	}
	return out
}

// wantPulled fails the test unless the local INBOX holds messages 0 to n-1, in that order.
func (e *env) wantPulled(t *testing.T, n int) {
	t.Helper()
	if got := e.subjects(t); !slices.Equal(got, want(0, n)) {
		t.Fatalf("pulled %v, want %v", got, want(0, n))
	}
}

func want(from, to int) []string {
	var out []string
	for i := from; i < to; i++ {
		out = append(out, fmt.Sprintf("pulled %d", i))
	}
	return out
}

// source returns the stored source.
func (e *env) source(t *testing.T) store.PullSource {
	t.Helper()
	list, err := e.local.PullSources(context.Background(), e.acct.ID)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range list {
		if s.ID == e.sourceID {
			return s
		}
	}
	t.Fatalf("no source %d", e.sourceID)
	return store.PullSource{}
}

// pollNow makes the source due and polls.
func (e *env) pollNow(t *testing.T) store.PullSource {
	t.Helper()
	if err := e.local.PullNow(context.Background(), e.acct.ID, e.sourceID); err != nil {
		t.Fatal(err)
	}
	if n := e.poller.PollDue(context.Background()); n != 1 {
		t.Fatalf("polled %d sources", n)
	}
	return e.source(t)
}

func TestPOP3DeleteAndKeep(t *testing.T) {
	e := newEnv(t)
	e.put(t, 0, 3)
	e.add(t, e.outside.TLSAddr, false)
	if src := e.pollNow(t); src.LastError != "" || src.Failures != 0 || src.NextPoll.Before(time.Now().Add(50*time.Minute)) {
		t.Fatalf("after the poll %+v", src)
	}
	e.wantPulled(t, 3)
	if n := len(e.outside.Inbox(t, e.remote)); n != 0 {
		t.Fatalf("%d messages left on the outside server in delete mode", n)
	}
	// The envelope sender comes from Return-Path.
	ms, _ := e.local.Messages(context.Background(), mustInbox(t, e).ID, store.Filter{})
	if b := e.blob(t, ms[0].BlobID); !strings.Contains(b, "\r\n.leading dot\r\n") {
		t.Errorf("body %q", b)
	}

	// A keeping source: pulled once, left on the server, not pulled again.
	e.put(t, 3, 5)
	e.add(t, e.outside.TLSAddr, true)
	e.pollNow(t)
	e.pollNow(t)
	e.wantPulled(t, 5)
	if n := len(e.outside.Inbox(t, e.remote)); n != 2 {
		t.Fatalf("%d messages on the outside server in keep mode", n)
	}
	seen, _ := e.local.PulledUIDs(context.Background(), e.sourceID)
	if len(seen) != 2 {
		t.Errorf("state %v", seen)
	}
}

func mustInbox(t *testing.T, e *env) store.Mailbox {
	mb, err := e.local.Mailbox(context.Background(), e.acct.ID, store.Inbox)
	if err != nil {
		t.Fatal(err)
	}
	return mb
}

func (e *env) blob(t *testing.T, id int64) string {
	rc, err := e.local.OpenBlob(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	b, _ := io.ReadAll(rc)
	return string(b)
}

// crashAfter is a Deliverer that fails the n-th delivery after it committed, as a process
// killed between the commit and anything after it would.
type crashAfter struct {
	d *deliver.Deliverer
	n int
}

var errCrash = errors.New("crashed after the commit")

func (c *crashAfter) Deliver(ctx context.Context, env deliver.Envelope, body deliver.Body) (store.Delivered, error) {
	out, err := c.d.Deliver(ctx, env, body)
	if c.n--; c.n == 0 && err == nil {
		return out, errCrash
	}
	return out, err
}

// A poll that dies after a delivery committed (before its state or DELE): the next poll
// delivers nothing twice, misses nothing, and deletes everything.
func TestCrashAfterCommit(t *testing.T) {
	e := newEnv(t)
	e.put(t, 0, 5)
	e.add(t, e.outside.TLSAddr, false)
	e.poller.dl = &crashAfter{d: e.dl, n: 3}
	src := e.pollNow(t)
	if src.Failures != 1 || !strings.Contains(src.LastError, errCrash.Error()) || src.NextPoll.After(time.Now().Add(2*time.Minute)) {
		t.Fatalf("after the crash %+v", src)
	}
	e.wantPulled(t, 3)
	if n := len(e.outside.Inbox(t, e.remote)); n != 5 {
		t.Fatalf("the failed poll deleted: %d left", n)
	}
	// The state recorded the crashed message in its commit, though the poll never did.
	e.poller.dl = e.dl
	if src := e.pollNow(t); src.Failures != 0 || src.LastError != "" {
		t.Fatalf("after the retry %+v", src)
	}
	e.wantPulled(t, 5)
	if n := len(e.outside.Inbox(t, e.remote)); n != 0 {
		t.Fatalf("%d left outside", n)
	}
}

// The outside server goes away mid-session (the connection is cut in the middle of the
// downloads) and then is unreachable: each poll fails with its error and backs off; when it
// is back, the poll completes without duplicates.
func TestServerGoesAway(t *testing.T) {
	e := newEnv(t)
	for i := range 20 {
		e.outside.Deliver(t, e.remote, msg(i)+strings.Repeat("padding line\r\n", 400))
	}
	cut := startCutter(t, e.outside.TLSAddr, 40<<10)
	e.add(t, cut.addr, false)
	src := e.pollNow(t)
	if src.Failures != 1 || src.LastError == "" {
		t.Fatalf("after the cut %+v", src)
	}
	partial := e.subjects(t)
	if len(partial) == 0 || len(partial) == 20 {
		t.Fatalf("the cut came at %d messages, not in the middle", len(partial))
	}
	if n := len(e.outside.Inbox(t, e.remote)); n != 20 {
		t.Fatalf("a session without QUIT deleted: %d left", n)
	}
	cut.close()
	src = e.pollNow(t)
	if src.Failures != 2 || !strings.Contains(src.LastError, "connect") {
		t.Fatalf("with the server away %+v", src)
	}
	cut.reopen(t, 0)
	if src = e.pollNow(t); src.Failures != 0 || src.LastError != "" {
		t.Fatalf("back %+v", src)
	}
	e.wantPulled(t, 20)
	if n := len(e.outside.Inbox(t, e.remote)); n != 0 {
		t.Fatalf("%d left outside", n)
	}
}

// cutter is a TCP proxy to upstream on a fixed loopback port that cuts each connection after
// limit bytes from the server (0: never), and can be closed and opened again.
type cutter struct {
	addr, upstream string
	mu             sync.Mutex
	l              net.Listener
	limit          int64
}

func startCutter(t *testing.T, upstream string, limit int64) *cutter {
	c := &cutter{upstream: upstream}
	c.reopen(t, limit)
	c.addr = c.l.Addr().String()
	t.Cleanup(c.close)
	return c
}

func (c *cutter) reopen(t *testing.T, limit int64) {
	addr := c.addr
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c.mu.Lock()
	c.l, c.limit = l, limit
	c.mu.Unlock()
	go func() {
		for {
			conn, err := l.Accept()
			if err != nil {
				return
			}
			go c.serve(conn, limit)
		}
	}()
}

func (c *cutter) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.l.Close()
}

func (c *cutter) serve(conn net.Conn, limit int64) {
	defer conn.Close()
	u, err := net.Dial("tcp", c.upstream)
	if err != nil {
		return
	}
	defer u.Close()
	go func() { io.Copy(u, conn); u.Close() }()
	if limit > 0 {
		io.CopyN(conn, u, limit)
		return
	}
	io.Copy(conn, u)
}

// Two pollers (two nodes) polling at once deliver each message once.
func TestTwoPollers(t *testing.T) {
	e := newEnv(t)
	e.put(t, 0, 10)
	e.add(t, e.outside.TLSAddr, true)
	other := New(e.local, e.dl, Options{KeyFile: e.keyFile, DialTimeout: 30 * time.Second})
	var wg sync.WaitGroup
	var polled [2]int
	wg.Go(func() { polled[0] = e.poller.PollDue(context.Background()) })
	wg.Go(func() { polled[1] = other.PollDue(context.Background()) })
	wg.Wait()
	if polled[0]+polled[1] != 1 {
		t.Fatalf("polled %v times", polled)
	}
	// Even polling the same source without the lease (Poll directly) duplicates nothing.
	src := e.source(t)
	wg.Go(func() { e.poller.Poll(context.Background(), src) })
	wg.Go(func() { other.Poll(context.Background(), src) })
	wg.Wait()
	e.wantPulled(t, 10)
}

func TestWrongPasswordReported(t *testing.T) {
	e := newEnv(t)
	e.add(t, e.outside.TLSAddr, true)
	s, _ := LoadKey(e.keyFile, false)
	src := e.source(t)
	// Sealed for another server: the poller refuses to open it.
	other := s.Seal(outsidePass, e.acct.ID, "pop3", "evil.example:995", e.remote.Address)
	if _, err := s.Open(other, src.AccountID, src.Protocol, src.Addr, src.User); !errors.Is(err, ErrSealed) {
		t.Fatalf("a secret moved to another source opened: %v", err)
	}
	if err := e.local.RemovePullSource(context.Background(), e.acct.ID, src.ID); err != nil {
		t.Fatal(err)
	}
	src.Secret = s.Seal("wrong password", e.acct.ID, "pop3", src.Addr, src.User)
	src.ID = 0
	id, err := e.local.AddPullSource(context.Background(), src)
	if err != nil {
		t.Fatal(err)
	}
	e.sourceID = id
	got := e.pollNow(t)
	if got.Failures != 1 || !strings.Contains(got.LastError, "login") {
		t.Fatalf("%+v", got)
	}
}

func TestSealer(t *testing.T) {
	path := filepath.Join(t.TempDir(), "conf", "pull.key")
	if _, err := LoadKey(path, false); err == nil {
		t.Fatal("a missing key loaded")
	}
	s, err := LoadKey(path, true)
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file %v %v", fi.Mode(), err)
	}
	sealed := s.Seal("p4ssword", 7, "imap", "h:993", "u")
	if strings.Contains(string(sealed), "p4ssword") {
		t.Fatal("the password is in the sealed form")
	}
	again, err := LoadKey(path, true) // exists: read, not replaced
	if err != nil {
		t.Fatal(err)
	}
	if pw, err := again.Open(sealed, 7, "imap", "h:993", "u"); err != nil || pw != "p4ssword" {
		t.Fatalf("Open = %q, %v", pw, err)
	}
	for _, c := range []struct {
		acct       int64
		proto, adr string
		user       string
	}{{8, "imap", "h:993", "u"}, {7, "pop3", "h:993", "u"}, {7, "imap", "h:994", "u"}, {7, "imap", "h:993", "v"}} {
		if _, err := again.Open(sealed, c.acct, c.proto, c.adr, c.user); !errors.Is(err, ErrSealed) {
			t.Errorf("opened for %v: %v", c, err)
		}
	}
	other, _ := LoadKey(filepath.Join(t.TempDir(), "k"), true)
	if _, err := other.Open(sealed, 7, "imap", "h:993", "u"); !errors.Is(err, ErrSealed) {
		t.Errorf("another key opened it: %v", err)
	}
	for _, bad := range [][]byte{nil, {1}, append([]byte{2}, sealed[1:]...)} {
		if _, err := s.Open(bad, 7, "imap", "h:993", "u"); !errors.Is(err, ErrSealed) {
			t.Errorf("opened %x: %v", bad, err)
		}
	}
	os.WriteFile(path, []byte("not hex\n"), 0o600)
	if _, err := LoadKey(path, true); err == nil {
		t.Error("a damaged key loaded")
	}
}

func TestBackoff(t *testing.T) {
	for _, c := range []struct {
		every time.Duration
		n     int
		want  time.Duration
	}{
		{time.Hour, 1, time.Minute}, {time.Hour, 2, 2 * time.Minute}, {time.Hour, 5, 16 * time.Minute},
		{time.Hour, 20, 16 * time.Hour}, {5 * time.Hour, 30, 24 * time.Hour}, {time.Second, 3, time.Minute},
	} {
		if got := backoff(c.every, c.n); got != c.want {
			t.Errorf("backoff(%v, %d) = %v, want %v", c.every, c.n, got, c.want)
		}
	}
}
