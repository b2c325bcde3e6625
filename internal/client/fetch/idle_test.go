package fetch

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"petrel/internal/client/clientconf"
	"petrel/internal/client/oauth"
	"petrel/internal/mailtest"
)

// dropProxy forwards connections to upstream and can cut all of them at once (a server
// restart, a NAT timeout, a Wi-Fi change).
type dropProxy struct {
	addr  string
	mu    sync.Mutex
	conns []net.Conn
}

func startDropProxy(t *testing.T, upstream string) *dropProxy {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &dropProxy{addr: l.Addr().String()}
	t.Cleanup(func() { l.Close(); p.drop() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			u, err := net.Dial("tcp", upstream)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, u)
			p.mu.Unlock()
			go func() { io.Copy(u, c); u.Close() }()
			go func() { io.Copy(c, u); c.Close() }()
		}
	}()
	return p
}

func (p *dropProxy) drop() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

type report struct {
	res Result
	err error
}

// idleRun runs Idle on a in the background; the test fires its re-arm timer through rearm
// and reads its reports.
type idleRun struct {
	reports chan report
	rearm   chan time.Time
	poll    chan time.Time
	done    chan error
	cancel  func()
}

func startIdle(t *testing.T, a *clientconf.Account, o Options) *idleRun {
	ctx, cancel := context.WithCancel(context.Background())
	ir := &idleRun{reports: make(chan report, 100), rearm: make(chan time.Time), poll: make(chan time.Time), done: make(chan error, 1), cancel: cancel}
	const rearm, poll = time.Hour, 2 * time.Hour // only the test fires them
	opt := IdleOptions{
		Rearm: rearm, Poll: poll, MinBackoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond,
		Report: func(r Result, err error) { ir.reports <- report{r, err} },
		After: func(d time.Duration) <-chan time.Time {
			switch d {
			case rearm:
				return ir.rearm
			case poll:
				return ir.poll
			}
			return time.After(d)
		},
	}
	go func() { ir.done <- Idle(ctx, a, o, opt) }()
	t.Cleanup(func() {
		cancel()
		if err := <-ir.done; err != nil {
			t.Errorf("Idle: %v", err)
		}
	})
	return ir
}

// until reads reports until one downloaded something; failures on the way are logged.
func (ir *idleRun) until(t *testing.T, what string) Result {
	t.Helper()
	deadline := time.After(time.Minute) // generous: the event, not the clock, ends the wait
	for {
		select {
		case r := <-ir.reports:
			if r.err != nil {
				t.Logf("%s: reported: %v", what, r.err)
				continue
			}
			if r.res.Downloaded > 0 {
				return r.res
			}
		case <-deadline:
			t.Fatalf("%s: nothing downloaded", what)
		}
	}
}

// TestIdlePetrel: push over IDLE from Petrel's IMAP server, with OAuth: each message
// delivered is archived without another command; a re-arm refreshes the access token about
// to expire; a dropped connection is re-established (logging in again with a refreshed
// token after the provider forgot the old one) and nothing is missed or duplicated.
func TestIdlePetrel(t *testing.T) {
	e := newOAuthEnv(t, 2)
	proxy := startDropProxy(t, e.srv.IMAPAddr)
	archive := filepath.Join(t.TempDir(), "Mail")
	a := e.account(t, "imap", "", archive, "delete")
	a.IMAP.Port = mustPort(t, proxy.addr)
	clk := mailtest.NewClock()
	tokens := &oauth.FileTokens{Account: a.Name, Conf: a.OAuth, Now: clk.Now}
	ir := startIdle(t, a, Options{Tokens: tokens})

	if r := ir.until(t, "first sync"); r.Downloaded != 2 {
		t.Fatalf("first sync downloaded %d, want 2", r.Downloaded)
	}
	for i := 2; i < 4; i++ {
		e.srv.Deliver(t, e.acct, body(i))
		if r := ir.until(t, "push"); r.Downloaded != 1 {
			t.Fatalf("push of message %d downloaded %d", i, r.Downloaded)
		}
	}

	// An hour later, the stored token is about to expire: the re-arm refreshes it.
	clk.Add(time.Hour - oauth.Early + time.Minute)
	ir.rearm <- time.Now()
	select {
	case <-e.prov.Refreshed:
	case <-time.After(time.Minute):
		t.Fatal("no refresh at the re-arm")
	}

	// The connection drops and the provider forgets every token: the reconnect's login is
	// refused, refreshed and retried; a message delivered meanwhile arrives.
	e.prov.ExpireAll()
	proxy.drop()
	e.srv.Deliver(t, e.acct, body(4))
	if r := ir.until(t, "after the drop"); r.Downloaded != 1 {
		t.Fatalf("after the drop downloaded %d", r.Downloaded)
	}
	if got := subjects(t, archive, "maildir"); !slices.Equal(got, want(0, 5)) {
		t.Fatalf("archive %v", got)
	}
	if n := len(e.srv.Inbox(t, e.acct)); n != 0 {
		t.Fatalf("%d messages left on the server in delete mode", n)
	}
}

// TestIdleWithoutIDLE: a server that does not offer IDLE (a proxy removes it, and
// IMAP4rev2 which implies it, from the capabilities) is polled with NOOP; a poll after a delivery brings the message.
func TestIdleWithoutIDLE(t *testing.T) {
	e := newOAuthEnv(t, 1)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			u, err := net.Dial("tcp", e.srv.IMAPAddr)
			if err != nil {
				c.Close()
				continue
			}
			go func() { io.Copy(u, c); u.Close() }()
			go func() {
				defer c.Close()
				br := bufio.NewReader(u)
				for {
					line, err := br.ReadString('\n')
					if line != "" && strings.Contains(line, "CAPABILITY") {
						// IMAP4rev2 includes IDLE (RFC 9051 §6.3.13), so it goes too.
						line = strings.ReplaceAll(line, " IDLE", "")
						line = strings.ReplaceAll(line, " IMAP4rev2", "")
					}
					if _, werr := io.WriteString(c, line); werr != nil || err != nil {
						return
					}
				}
			}()
		}
	}()
	archive := filepath.Join(t.TempDir(), "Mail")
	a := e.account(t, "imap", "", archive, "keep")
	a.IMAP.Port = mustPort(t, l.Addr().String())
	ir := startIdle(t, a, Options{})
	ir.until(t, "first sync")
	e.srv.Deliver(t, e.acct, body(1))
	select { // taken when the session waits for its poll
	case ir.poll <- time.Now():
	case <-time.After(time.Minute):
		t.Fatal("the session never waited for a poll: did it IDLE?")
	}
	if r := ir.until(t, "after a NOOP"); r.Downloaded != 1 {
		t.Fatalf("downloaded %d after the poll", r.Downloaded)
	}
}

// TestIdleNeedsIMAP: a POP3 account cannot idle.
func TestIdleNeedsIMAP(t *testing.T) {
	a := account(t, "127.0.0.1:1", "", filepath.Join(t.TempDir(), "Mail"), "")
	if err := Idle(context.Background(), a, Options{}, IdleOptions{}); err == nil {
		t.Fatal("Idle on a POP3 account did not fail")
	}
}

// TestIdleLoginAgain: a revoked login ends Idle with oauth.ErrLoginAgain.
func TestIdleLoginAgain(t *testing.T) {
	e := newOAuthEnv(t, 0)
	a := e.account(t, "imap", "", filepath.Join(t.TempDir(), "Mail"), "keep")
	e.prov.Revoke()
	e.prov.ExpireAll()
	err := Idle(context.Background(), a, Options{}, IdleOptions{MinBackoff: time.Millisecond})
	if !errors.Is(err, oauth.ErrLoginAgain) {
		t.Fatalf("Idle = %v, want ErrLoginAgain", err)
	}
}

func mustPort(t *testing.T, addr string) int {
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, c := range p {
		n = n*10 + int(c-'0')
	}
	return n
}

// TestIdleDovecot: push over IDLE from Dovecot (TLS, password): messages delivered one by one
// are archived as they come, exactly once. They arrive by APPEND from another client: a file
// written into the Maildir (Dovecot.Deliver) is seen by Dovecot's inotify before the harness
// gives it to the mail user.
func TestIdleDovecot(t *testing.T) {
	d := startIMAPDovecot(t)
	d.Deliver(t, 0, body(0))
	archive := filepath.Join(t.TempDir(), "Mail")
	a := imapAccount(t, d, d.IMAPSAddr, archive, "")
	ir := startIdle(t, a, Options{})
	ir.until(t, "first sync")
	p := dialPeer(t, d)
	for i := 1; i < 4; i++ {
		b := []byte(lf(i))
		cmd := p.c.Append("INBOX", int64(len(b)), nil)
		cmd.Write(b)
		cmd.Close()
		if _, err := cmd.Wait(); err != nil {
			t.Fatal(err)
		}
		ir.until(t, "push")
	}
	checkArchiveExact(t, archive, 0, 4)
	if n := d.Count(t); n != 0 {
		t.Fatalf("%d messages left in Dovecot in delete mode", n)
	}
}
