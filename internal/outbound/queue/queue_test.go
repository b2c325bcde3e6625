package queue

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"petrel/internal/mail/deliver"
	"petrel/internal/outbound/dsn"
	"petrel/internal/outbound/mx"
	"petrel/internal/outbound/smtpclient"
	"petrel/internal/store"
	"petrel/internal/store/sqlite"
)

// farSide is a go-smtp server standing in for a remote MX. Recipients starting with "bad"
// are refused with 550, "later" with 451; everything else is accepted.
type farSide struct {
	mu      sync.Mutex
	got     []string // "from -> to1,to2: body"
	open    []*smtp.Conn
	conns   atomic.Int32
	logouts atomic.Int32 // sessions ended (QUIT or a closed connection)
	addr    netip.AddrPort
}

func (f *farSide) NewSession(c *smtp.Conn) (smtp.Session, error) {
	f.conns.Add(1)
	f.mu.Lock()
	f.open = append(f.open, c)
	f.mu.Unlock()
	return &farSession{f: f}, nil
}

// dropAll closes every connection, as a server that times idle clients out does.
func (f *farSide) dropAll() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, c := range f.open {
		c.Close()
	}
	f.open = nil
}

type farSession struct {
	f     *farSide
	from  string
	rcpts []string
}

func (s *farSession) Reset()        { s.from, s.rcpts = "", nil }
func (s *farSession) Logout() error { s.f.logouts.Add(1); return nil }
func (s *farSession) Mail(from string, _ *smtp.MailOptions) error {
	s.from = from
	return nil
}
func (s *farSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	switch {
	case strings.HasPrefix(to, "bad"):
		return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such user here"}
	case strings.HasPrefix(to, "later"):
		return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 2, 0}, Message: "try later"}
	}
	s.rcpts = append(s.rcpts, to)
	return nil
}
func (s *farSession) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	s.f.mu.Lock()
	s.f.got = append(s.f.got, s.from+" -> "+strings.Join(s.rcpts, ",")+": "+string(b))
	s.f.mu.Unlock()
	return err
}

func (f *farSide) messages() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.got...)
}

func startFarSide(t *testing.T) *farSide {
	f := &farSide{}
	srv := smtp.NewServer(f)
	srv.Domain = "mx.remote.test"
	srv.AllowInsecureAuth = true
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f.addr = netip.MustParseAddrPort(l.Addr().String())
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return f
}

// closedPort returns a loopback port nothing listens on.
func closedPort(t *testing.T) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	return port
}

type env struct {
	t     *testing.T
	st    store.Store
	far   *farSide
	down  atomic.Bool
	dl    *deliver.Deliverer
	q     *Queue
	alice store.Account
	post  store.Account
	stop  func()
}

// newEnv builds a store with example.org (alice, postmaster), a far side and a queue
// (not started).
func newEnv(t *testing.T, cfg Config) *env {
	e := &env{t: t, far: startFarSide(t)}
	st, err := sqlite.Open(filepath.Join(t.TempDir(), "petrel.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	e.st = st
	ctx := context.Background()
	if err := st.AddDomain(ctx, "example.org"); err != nil {
		t.Fatal(err)
	}
	if e.alice, err = st.AddAccount(ctx, "alice@example.org", store.Credentials{}); err != nil {
		t.Fatal(err)
	}
	if e.post, err = st.AddAccount(ctx, "postmaster@example.org", store.Credentials{}); err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(&testWriter{t}, nil))
	}
	e.dl = deliver.New(st, log)
	downPort := closedPort(t)
	client := smtpclient.New(smtpclient.Config{Hostname: "petrel.example.org", Router: fixedRouter{},
		Timeouts: smtpclient.Timeouts{Connect: 5 * time.Second},
		Dial: func(ctx context.Context, network, addr string) (net.Conn, error) {
			target := e.far.addr.String()
			if e.down.Load() {
				target = fmt.Sprintf("127.0.0.1:%d", downPort)
			}
			var d net.Dialer
			return d.DialContext(ctx, network, target)
		}})
	cfg.Hostname = "petrel.example.org"
	cfg.Postmaster = "postmaster@example.org"
	e.q = New(cfg, st, client, e.dl, log)
	return e
}

type fixedRouter struct{}

func (fixedRouter) Route(context.Context, string) (*mx.Route, error) {
	return &mx.Route{Hosts: []mx.Host{{Name: "mx.remote.test", Addrs: []netip.Addr{netip.MustParseAddr("127.0.0.1")}}}}, nil
}

type testWriter struct{ t *testing.T }

func (w *testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

func (e *env) start() {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := e.q.Run(ctx); err != nil {
			e.t.Error(err)
		}
	}()
	e.stop = func() { cancel(); <-done }
	e.t.Cleanup(e.stop)
}

// enqueue queues a message from from to rcpts.
func (e *env) enqueue(from, body string, rcpts ...string) int64 {
	o := &store.Outbound{MailFrom: from, Body: strings.NewReader(body), Size: int64(len(body))}
	for _, r := range rcpts {
		_, d, _ := strings.Cut(r, "@")
		o.Recipients = append(o.Recipients, store.OutboundRecipient{Address: r, Domain: d})
	}
	id, err := e.st.Enqueue(context.Background(), o)
	if err != nil {
		e.t.Fatal(err)
	}
	e.q.Kick()
	return id
}

// waitFor polls cond until it holds or a generous deadline passes.
func (e *env) waitFor(what string, cond func() bool) {
	e.t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			e.t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (e *env) queueEmpty() bool {
	es, err := e.st.Entries(context.Background())
	return err == nil && len(es) == 0
}

// inbox returns the bodies in an account's INBOX.
func (e *env) inbox(acct store.Account) []string {
	ctx := context.Background()
	box, err := e.st.Mailbox(ctx, acct.ID, store.Inbox)
	if err != nil {
		e.t.Fatal(err)
	}
	ms, err := e.st.Messages(ctx, box.ID, store.Filter{})
	if err != nil {
		e.t.Fatal(err)
	}
	var out []string
	for _, m := range ms {
		rc, err := e.st.OpenBlob(ctx, m.BlobID)
		if err != nil {
			e.t.Fatal(err)
		}
		b, _ := io.ReadAll(rc)
		out = append(out, string(b))
	}
	return out
}

const msg = "From: alice@example.org\r\nTo: x@remote.test\r\nSubject: hello\r\nMessage-ID: <m1@example.org>\r\n\r\nHello.\r\n"

func TestDeliverOneTransaction(t *testing.T) {
	e := newEnv(t, Config{})
	e.start()
	e.enqueue("alice@example.org", msg, "x@remote.test", "y@remote.test")
	e.waitFor("the queue to empty", e.queueEmpty)
	got := e.far.messages()
	if len(got) != 1 || !strings.HasPrefix(got[0], "alice@example.org -> x@remote.test,y@remote.test: From: alice") {
		t.Errorf("far side got %q", got)
	}
	if len(e.inbox(e.alice)) != 0 {
		t.Error("a DSN for a delivered message without NOTIFY=SUCCESS")
	}
}

// countMetrics records what the queue counts.
type countMetrics struct {
	mu               sync.Mutex
	attempts, notice map[string]int
}

func (c *countMetrics) Attempt(r string) { c.mu.Lock(); c.attempts[r]++; c.mu.Unlock() }
func (c *countMetrics) DSN(a string)     { c.mu.Lock(); c.notice[a]++; c.mu.Unlock() }
func (c *countMetrics) get(m map[string]int, k string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return m[k]
}

func TestPermanentFailureBounces(t *testing.T) {
	m := &countMetrics{attempts: map[string]int{}, notice: map[string]int{}}
	e := newEnv(t, Config{Metrics: m})
	e.start()
	e.enqueue("alice@example.org", msg, "bad@remote.test", "y@remote.test")
	e.waitFor("the DSN", func() bool { return len(e.inbox(e.alice)) == 1 })
	e.waitFor("the queue to empty", e.queueEmpty)
	d := e.inbox(e.alice)[0]
	for _, want := range []string{"Content-Type: multipart/report", "report-type=delivery-status", "Action: failed",
		"Final-Recipient: rfc822; bad@remote.test", "Status: 5.1.1", "Diagnostic-Code: smtp; 550 5.1.1 no such user here",
		"Subject: hello"} {
		if !strings.Contains(d, want) {
			t.Errorf("DSN lacks %q:\n%s", want, d)
		}
	}
	if strings.Contains(d, "y@remote.test\r\nAction") {
		t.Error("the delivered recipient is in the DSN")
	}
	if got := e.far.messages(); len(got) != 1 || !strings.Contains(got[0], "-> y@remote.test:") {
		t.Errorf("far side got %q", got)
	}
	// Counted before the attempt is recorded, so known once the queue is empty.
	m.mu.Lock()
	if m.attempts["delivered"] != 1 || m.attempts["bounced"] != 1 || len(m.attempts) != 2 || m.notice["failed"] != 1 || len(m.notice) != 1 {
		t.Errorf("metrics: attempts %v, DSNs %v", m.attempts, m.notice)
	}
	m.mu.Unlock()
}

func TestNullSenderBounceGoesToPostmaster(t *testing.T) {
	e := newEnv(t, Config{})
	e.start()
	e.enqueue("", msg, "bad@remote.test")
	e.waitFor("the double bounce", func() bool { return len(e.inbox(e.post)) == 1 })
	if n := len(e.inbox(e.alice)); n != 0 {
		t.Errorf("%d messages for alice", n)
	}
	if d := e.inbox(e.post)[0]; !strings.Contains(d, dsn.DoubleBounceHeader) {
		t.Errorf("double bounce without its mark:\n%s", d)
	}
}

func TestDownThenUp(t *testing.T) {
	m := &countMetrics{attempts: map[string]int{}, notice: map[string]int{}}
	e := newEnv(t, Config{Metrics: m, Schedule: Schedule{First: 50 * time.Millisecond, Max: 100 * time.Millisecond}, Poll: 20 * time.Millisecond})
	e.down.Store(true)
	e.start()
	id := e.enqueue("alice@example.org", msg, "x@remote.test")
	e.waitFor("a failed attempt", func() bool {
		en, err := e.st.Entry(context.Background(), id)
		return err == nil && len(en.Recipients) == 1 && en.Recipients[0].Attempts >= 2 && en.Recipients[0].LastError != ""
	})
	if len(e.far.messages()) != 0 {
		t.Fatal("delivered while down")
	}
	e.down.Store(false)
	e.waitFor("the delivery", func() bool { return len(e.far.messages()) == 1 })
	e.waitFor("the queue to empty", e.queueEmpty)
	if len(e.inbox(e.alice)) != 0 {
		t.Error("a DSN although delivered")
	}
	if d, f := m.get(m.attempts, "delivered"), m.get(m.attempts, "deferred"); d != 1 || f < 2 {
		t.Errorf("metrics: %d delivered, %d deferred; want 1 and at least 2", d, f)
	}
}

func TestExpiry(t *testing.T) {
	e := newEnv(t, Config{Schedule: Schedule{First: 20 * time.Millisecond, Max: 50 * time.Millisecond, Expire: 300 * time.Millisecond},
		Poll: 20 * time.Millisecond})
	e.start()
	e.enqueue("alice@example.org", msg, "later@remote.test")
	e.waitFor("the DSN", func() bool { return len(e.inbox(e.alice)) == 1 })
	e.waitFor("the queue to empty", e.queueEmpty)
	d := e.inbox(e.alice)[0]
	for _, want := range []string{"Action: failed", "Final-Recipient: rfc822; later@remote.test", "Status: 5.4.7", "last error: 451 4.2.0 try later", "gave up after"} {
		if !strings.Contains(d, want) {
			t.Errorf("DSN lacks %q:\n%s", want, d)
		}
	}
}

func TestDelayWarning(t *testing.T) {
	e := newEnv(t, Config{Schedule: Schedule{First: 20 * time.Millisecond, Max: 20 * time.Millisecond, DelayWarning: time.Millisecond},
		Poll: 20 * time.Millisecond})
	e.start()
	id := e.enqueue("alice@example.org", msg, "later@remote.test")
	e.waitFor("the warning", func() bool { return len(e.inbox(e.alice)) == 1 })
	// One warning only, however many attempts follow.
	e.waitFor("more attempts", func() bool {
		en, err := e.st.Entry(context.Background(), id)
		return err == nil && en.Recipients[0].Attempts >= 4
	})
	if n := len(e.inbox(e.alice)); n != 1 {
		t.Errorf("%d warnings", n)
	}
	if d := e.inbox(e.alice)[0]; !strings.Contains(d, "Action: delayed") || !strings.Contains(d, "Will-Retry-Until:") {
		t.Errorf("warning:\n%s", d)
	}
	e.stop()
}

func TestSeveralMessagesOneConnection(t *testing.T) {
	e := newEnv(t, Config{PerDomain: 1})
	for i := range 5 {
		e.enqueue("alice@example.org", strings.Replace(msg, "hello", fmt.Sprint("hello ", i), 1), "x@remote.test")
	}
	e.start()
	e.waitFor("the queue to empty", e.queueEmpty)
	if n := len(e.far.messages()); n != 5 {
		t.Errorf("%d messages delivered", n)
	}
	if n := e.far.conns.Load(); n != 1 {
		t.Errorf("%d connections for 5 messages to one domain", n)
	}
}

// TestCrashDuringAttempt: recipients a dead process claimed are delivered after a restart.
func TestCrashDuringAttempt(t *testing.T) {
	e := newEnv(t, Config{})
	id := e.enqueue("alice@example.org", msg, "x@remote.test")
	now := time.Now()
	if _, err := e.st.Claim(context.Background(), store.QueueGroup{EntryID: id, Domain: "remote.test"}, now.Add(time.Second), now.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	e.start()
	e.waitFor("the queue to empty", e.queueEmpty)
	if n := len(e.far.messages()); n != 1 {
		t.Errorf("%d deliveries", n)
	}
}

func TestOperatorBounce(t *testing.T) {
	e := newEnv(t, Config{Schedule: Schedule{First: time.Hour}, Poll: 20 * time.Millisecond})
	e.start()
	id := e.enqueue("alice@example.org", msg, "later@remote.test")
	e.waitFor("a failed attempt", func() bool {
		en, err := e.st.Entry(context.Background(), id)
		return err == nil && en.Recipients[0].Attempts == 1
	})
	if err := e.st.Bounce(context.Background(), id, time.Now()); err != nil {
		t.Fatal(err)
	}
	e.waitFor("the DSN", func() bool { return len(e.inbox(e.alice)) == 1 })
	if d := e.inbox(e.alice)[0]; !strings.Contains(d, "returned to the sender by the postmaster") {
		t.Errorf("DSN:\n%s", d)
	}
	e.waitFor("the queue to empty", e.queueEmpty)
}

func TestSTSCache(t *testing.T) {
	e := newEnv(t, Config{})
	c := STSCache{Store: e.st}
	ctx := context.Background()
	if _, ok, err := c.Get(ctx, "example.net"); ok || err != nil {
		t.Fatalf("Get of nothing = %v, %v", ok, err)
	}
	p := mx.CachedPolicy{Policy: mx.Policy{MX: []string{"mx.example.net"}, MaxAge: time.Hour}, ID: "abc", Fetched: time.Unix(1000, 0).UTC()}
	if err := c.Put(ctx, "example.net", p); err != nil {
		t.Fatal(err)
	}
	got, ok, err := c.Get(ctx, "example.net")
	if !ok || err != nil || got.ID != "abc" || got.Policy.MaxAge != time.Hour || got.Policy.MX[0] != "mx.example.net" || !got.Fetched.Equal(p.Fetched) {
		t.Errorf("Get = %+v, %v, %v", got, ok, err)
	}
}

// TestStalledFarSide: a server that accepts and never greets ends as a retry with the reason,
// within the attempt timeout, and the worker is free for the next attempt.
func TestStalledFarSide(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var held []net.Conn
	var mu sync.Mutex
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			held = append(held, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		l.Close()
		mu.Lock()
		for _, c := range held {
			c.Close()
		}
		mu.Unlock()
	})
	e := newEnv(t, Config{AttemptTimeout: 300 * time.Millisecond, Workers: 1, Schedule: Schedule{First: time.Hour}})
	e.far.addr = netip.MustParseAddrPort(l.Addr().String())
	e.start()
	id := e.enqueue("alice@example.org", msg, "x@remote.test")
	e.waitFor("the attempt to end", func() bool {
		en, err := e.st.Entry(context.Background(), id)
		return err == nil && en.Recipients[0].Attempts == 1
	})
	en, _ := e.st.Entry(context.Background(), id)
	if r := en.Recipients[0]; !strings.HasPrefix(r.LastError, "4") || r.NextAttempt.Before(time.Now().Add(30*time.Minute)) {
		t.Errorf("after a stalled attempt: %+v", r)
	}
	t.Logf("reason: %s", en.Recipients[0].LastError)
	// The single worker is free again: another message gets its attempt.
	id2 := e.enqueue("alice@example.org", msg, "y@remote.test")
	e.waitFor("the second attempt", func() bool {
		en, err := e.st.Entry(context.Background(), id2)
		return err == nil && en.Recipients[0].Attempts == 1
	})
}
