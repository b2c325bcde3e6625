package load

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/mail"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"
)

// testCtx bounds a test's run so a bug cannot hang the suite.
func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestSummarize(t *testing.T) {
	var s []time.Duration
	for i := 100; i >= 1; i-- { // unsorted on purpose
		s = append(s, time.Duration(i)*time.Millisecond)
	}
	got := Summarize(s)
	want := Summary{Count: 100, MinMS: 1, MeanMS: 50.5, P50MS: 50, P95MS: 95, P99MS: 99, MaxMS: 100}
	if got != want {
		t.Errorf("Summarize(1..100 ms) = %+v, want %+v", got, want)
	}
	if got := Summarize([]time.Duration{7 * time.Millisecond}); got.P50MS != 7 || got.P99MS != 7 {
		t.Errorf("one sample: %+v", got)
	}
	if got := Summarize(nil); got != (Summary{}) {
		t.Errorf("no samples: %+v", got)
	}
}

func TestMessageSizes(t *testing.T) {
	m := newMessageMaker("load@example.test", 0, nil)
	hdrLen := len(m.header(1, []string{"a@example.test"}))
	for _, size := range []int{0, hdrLen, hdrLen + 1, hdrLen + 2, hdrLen + 81, 1000, 4096, 100_003} {
		m.size = size
		var b bytes.Buffer
		n, err := m.write(&b, 42, []string{"a@example.test", "b@example.test"})
		if err != nil {
			t.Fatal(err)
		}
		if int(n) != b.Len() {
			t.Errorf("size %d: write returned %d, wrote %d", size, n, b.Len())
		}
		if size >= hdrLen+len(",\r\n <b@example.test>")+2 && b.Len() != size {
			t.Errorf("size %d: message is %d bytes", size, b.Len())
		}
		text := b.String()
		if !strings.HasSuffix(text, "\r\n") {
			t.Errorf("size %d: no final CRLF", size)
		}
		for _, l := range strings.Split(strings.TrimSuffix(text, "\r\n"), "\r\n") {
			if strings.ContainsAny(l, "\r\n") || len(l) > 998 || strings.HasPrefix(l, ".") {
				t.Fatalf("size %d: bad line %q", size, l)
			}
		}
		msg, err := mail.ReadMessage(&b)
		if err != nil {
			t.Fatalf("size %d: %v", size, err)
		}
		if got, want := msg.Header.Get("Subject"), "petrel-load "+m.token(42); got != want {
			t.Errorf("Subject = %q, want %q", got, want)
		}
		if !strings.Contains(msg.Header.Get("Message-ID"), m.token(42)) {
			t.Errorf("Message-ID %q lacks the token", msg.Header.Get("Message-ID"))
		}
		if to, err := msg.Header.AddressList("To"); err != nil || len(to) != 2 {
			t.Errorf("To: %v, %v", to, err)
		}
	}
	if a, b := newMessageMaker("x@y", 1, nil).token(1), newMessageMaker("x@y", 1, nil).token(1); a == b {
		t.Errorf("two runs share token %q", a)
	}
}

func TestPatternsAndAccounts(t *testing.T) {
	if got := ExpandPattern("user{n}@example.test", 3); strings.Join(got, ",") != "user1@example.test,user2@example.test,user3@example.test" {
		t.Errorf("ExpandPattern = %v", got)
	}
	if got := ExpandPattern("dev@example.test", 3); len(got) != 1 {
		t.Errorf("ExpandPattern without placeholder = %v", got)
	}
	cfg := SMTPConfig{To: []string{"u{n}@x", "fixed@x"}, Mailboxes: 2, Messages: 5}
	if got := cfg.recipients(3); got[0] != "u2@x" || got[1] != "fixed@x" {
		t.Errorf("recipients(3) = %v", got)
	}
	if got := cfg.mailboxes(); strings.Join(got, " ") != "u1@x fixed@x u2@x" {
		t.Errorf("mailboxes = %v", got)
	}
	acc, err := ReadAccounts(strings.NewReader("# comment\n\na@x:p:with:colons\r\nb@x:\n"))
	if err != nil || len(acc) != 2 || acc[0] != (Account{"a@x", "p:with:colons"}) || acc[1] != (Account{"b@x", ""}) {
		t.Errorf("ReadAccounts = %v, %v", acc, err)
	}
	if _, err := ReadAccounts(strings.NewReader("nocolon\n")); err == nil {
		t.Error("ReadAccounts accepted a line without a colon")
	}
}

// bothClients runs f with go-smtp's client and with the pipelining one (-pipelining).
func bothClients(t *testing.T, f func(t *testing.T, pipelining bool)) {
	for _, p := range []bool{false, true} {
		t.Run(map[bool]string{false: "go-smtp", true: "pipelining"}[p], func(t *testing.T) { f(t, p) })
	}
}

func TestSMTP(t *testing.T) { bothClients(t, testSMTP) }

func testSMTP(t *testing.T, pipelining bool) {
	srv := newFakeSMTP(t, fakeSMTPOptions{})
	res, err := RunSMTP(testCtx(t), SMTPConfig{
		Target:     Target{Addr: srv.addr, Timeout: 30 * time.Second},
		Messages:   50,
		Size:       2000,
		Conns:      4,
		PerConn:    5,
		From:       "load@example.test",
		To:         []string{"user{n}@example.test"},
		Mailboxes:  3,
		Pipelining: pipelining,
	})
	if err != nil {
		t.Fatal(err)
	}
	srv.check()
	if res.Errors != 0 {
		t.Fatalf("errors: %d %v", res.Errors, res.FirstErrors)
	}
	if res.Ops != 50 || srv.count() != 50 {
		t.Errorf("accepted %d, server has %d, want 50", res.Ops, srv.count())
	}
	if res.Bytes != 50*2000 {
		t.Errorf("bytes = %d, want %d", res.Bytes, 50*2000)
	}
	for _, n := range srv.sizes {
		if n != 2000 {
			t.Errorf("server got a message of %d bytes", n)
		}
	}
	if srv.rcpts["user1@example.test"] != 17 || srv.rcpts["user2@example.test"] != 17 || srv.rcpts["user3@example.test"] != 16 {
		t.Errorf("spread over mailboxes: %v", srv.rcpts)
	}
	// Workers take messages from a shared counter, so each one's last
	// connection may carry fewer than 5.
	if res.Sessions < 10 || res.Sessions > 10+3 {
		t.Errorf("sessions = %d, want 10 to 13 (50 messages, 5 per connection, 4 connections)", res.Sessions)
	}
	checkLatency(t, res.Latency, 50)
	checkLatency(t, res.Connect, int(res.Sessions))
	if res.OpsPerSec <= 0 || res.MBPerSec <= 0 {
		t.Errorf("throughput %v msgs/s %v MB/s", res.OpsPerSec, res.MBPerSec)
	}
	checkJSON(t, res)
	var text bytes.Buffer
	if err := res.WriteText(&text); err != nil || !strings.Contains(text.String(), "p99") {
		t.Errorf("text report: %v\n%s", err, text.String())
	}
}

func TestSMTPTLSAndAuth(t *testing.T) { bothClients(t, testSMTPTLSAndAuth) }

func testSMTPTLSAndAuth(t *testing.T, pipelining bool) {
	login := &Account{User: "dev@example.test", Pass: "secret"}
	for _, mode := range []TLSMode{StartTLS, ImplicitTLS} {
		t.Run(mode.String(), func(t *testing.T) {
			srv := newFakeSMTP(t, fakeSMTPOptions{auth: login, tls: mode == StartTLS, implicit: mode == ImplicitTLS})
			res, err := RunSMTP(testCtx(t), SMTPConfig{
				Target:   Target{Addr: srv.addr, TLS: mode, Insecure: true, Timeout: 30 * time.Second},
				Messages: 10, Size: 500, Conns: 2, Auth: login, Pipelining: pipelining,
				From: "dev@example.test", To: []string{"dev@example.test"},
			})
			if err != nil {
				t.Fatal(err)
			}
			// A worker connects only when it takes a message, so under load one
			// connection may carry all ten: 1 or 2 sessions, each ended by QUIT.
			conns, _ := srv.connsAndMails()
			if res.Errors != 0 || res.Ops != 10 || srv.count() != 10 || res.Sessions < 1 || res.Sessions > 2 || int(res.Sessions) != conns {
				t.Errorf("ops %d server %d sessions %d (server saw %d) errors %d %v", res.Ops, srv.count(), res.Sessions, conns, res.Errors, res.FirstErrors)
			}
		})
	}
	t.Run("verified certificate", func(t *testing.T) {
		srv := newFakeSMTP(t, fakeSMTPOptions{tls: true})
		res, _ := RunSMTP(testCtx(t), SMTPConfig{
			Target:   Target{Addr: srv.addr, TLS: StartTLS, RootCAs: trust(t, srv.tls), Timeout: 30 * time.Second},
			Messages: 3, Size: 500, Conns: 1, From: "a@x", To: []string{"b@x"}, Pipelining: pipelining,
		})
		if res.Errors != 0 || res.Ops != 3 {
			t.Errorf("trusted certificate: %d ops, %d errors %v", res.Ops, res.Errors, res.FirstErrors)
		}
	})
	t.Run("unverified certificate", func(t *testing.T) {
		srv := newFakeSMTP(t, fakeSMTPOptions{implicit: true})
		res, _ := RunSMTP(testCtx(t), SMTPConfig{
			Target:   Target{Addr: srv.addr, TLS: ImplicitTLS, Timeout: 30 * time.Second},
			Messages: 3, Size: 500, Conns: 1, From: "a@x", To: []string{"b@x"}, Pipelining: pipelining,
		})
		if res.Errors != 3 || res.Ops != 0 || !strings.Contains(res.FirstErrors[0], "certificate") {
			t.Errorf("self-signed certificate without -insecure: %d errors %v", res.Errors, res.FirstErrors)
		}
	})
	t.Run("wrong password", func(t *testing.T) {
		srv := newFakeSMTP(t, fakeSMTPOptions{auth: login})
		res, _ := RunSMTP(testCtx(t), SMTPConfig{
			Target:   Target{Addr: srv.addr, Timeout: 30 * time.Second},
			Messages: 4, Size: 500, Conns: 2, Auth: &Account{User: login.User, Pass: "wrong"}, Pipelining: pipelining,
			From: "a@x", To: []string{"b@x"},
		})
		if res.Errors != 4 || res.Ops != 0 || !strings.Contains(res.FirstErrors[0], "AUTH") {
			t.Errorf("wrong password: %d errors %v", res.Errors, res.FirstErrors)
		}
	})
}

func TestSMTPRefusedRecipients(t *testing.T) { bothClients(t, testSMTPRefusedRecipients) }

func testSMTPRefusedRecipients(t *testing.T, pipelining bool) {
	srv := newFakeSMTP(t, fakeSMTPOptions{})
	// One connection, so that "the session survives" has one meaning
	// whatever the scheduler does: every message on it, none reconnecting.
	cfg := SMTPConfig{
		Target:   Target{Addr: srv.addr, Timeout: 30 * time.Second},
		Messages: 8, Size: 500, Conns: 1, PerConn: 0, Pipelining: pipelining,
		From: "a@example.test", To: []string{"reject@example.test"},
	}
	res, err := RunSMTP(testCtx(t), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if res.Ops != 0 || srv.count() != 0 || res.Errors != 8 {
		t.Errorf("all refused: ops %d server %d errors %d", res.Ops, srv.count(), res.Errors)
	}
	if len(res.FirstErrors) != maxFirstErrors || !strings.Contains(res.FirstErrors[0], "550") {
		t.Errorf("first errors: %q", res.FirstErrors)
	}
	// The session survives refusals: RSET, then the next message on the
	// same connection, ended by one QUIT.
	if conns, mails := srv.connsAndMails(); conns != 1 || mails != 8 || res.Sessions != 1 {
		t.Errorf("server saw %d connections and %d transactions, client %d sessions; want 1, 8, 1", conns, mails, res.Sessions)
	}

	// Two connections: refusals never cost a reconnect, however the
	// messages fall between them.
	cfg.Conns = 2
	cfg.To = []string{"ok@example.test", "reject@example.test"}
	srv = newFakeSMTP(t, fakeSMTPOptions{})
	cfg.Target.Addr = srv.addr
	res, _ = RunSMTP(testCtx(t), cfg)
	if res.Ops != 8 || srv.count() != 8 || res.Errors != 8 || srv.rcpts["ok@example.test"] != 8 {
		t.Errorf("one of two refused: ops %d server %d errors %d", res.Ops, srv.count(), res.Errors)
	}
	if conns, mails := srv.connsAndMails(); conns > 2 || mails != 8 || int(res.Sessions) != conns {
		t.Errorf("server saw %d connections and %d transactions, client %d sessions; want at most 2, 8, as many sessions as connections", conns, mails, res.Sessions)
	}
}

func TestSMTPUnreachable(t *testing.T) {
	ln := listen(t)
	addr := ln.Addr().String()
	ln.Close()
	res, err := RunSMTP(testCtx(t), SMTPConfig{
		Target:   Target{Addr: addr, Timeout: time.Second},
		Messages: 5, Size: 100, Conns: 2, From: "a@x", To: []string{"b@x"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Errors != 5 || res.Ops != 0 {
		t.Errorf("closed port: %d errors, %d ops", res.Errors, res.Ops)
	}
}

// A server that accepts connections and never speaks must cost one
// Target.Timeout per attempt, and the overall context must stop the run.
func TestSMTPSilentServer(t *testing.T) {
	ln := listen(t)
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	start := time.Now()
	res, _ := RunSMTP(testCtx(t), SMTPConfig{
		Target:   Target{Addr: ln.Addr().String(), Timeout: 100 * time.Millisecond},
		Messages: 2, Size: 100, Conns: 2, From: "a@x", To: []string{"b@x"},
	})
	if res.Errors != 2 || time.Since(start) > 30*time.Second {
		t.Errorf("per-operation timeout: %d errors after %v: %v", res.Errors, time.Since(start), res.FirstErrors)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start = time.Now()
	res, _ = RunSMTP(ctx, SMTPConfig{
		Target:   Target{Addr: ln.Addr().String(), Timeout: time.Minute},
		Messages: 1000, Size: 100, Conns: 2, From: "a@x", To: []string{"b@x"},
	})
	if time.Since(start) > 5*time.Second || res.Errors != 1 || !strings.HasPrefix(res.Stopped, "overall timeout") {
		t.Errorf("overall timeout: after %v, %d errors, stopped %q", time.Since(start), res.Errors, res.Stopped)
	}
}

// popMessages returns test messages, with lines that need dot-stuffing and
// a line longer than the client's read buffer.
func popMessages() [][]byte {
	return [][]byte{
		[]byte("Subject: one\r\n\r\nhello\r\n"),
		[]byte("Subject: dots\r\n\r\n.leading dot\r\n..two\r\n.\r\nend\r\n"),
		[]byte("Subject: long\r\n\r\n" + strings.Repeat("x", 10000) + "\r\n"),
		[]byte("Subject: empty body\r\n\r\n"),
	}
}

func TestPOP3(t *testing.T) {
	msgs := popMessages()
	var total int64
	for _, m := range msgs {
		total += int64(len(m))
	}
	for _, tc := range []struct {
		name string
		mode TLSMode
	}{{"plain", PlainText}, {"stls", StartTLS}, {"tls", ImplicitTLS}} {
		t.Run(tc.name, func(t *testing.T) {
			srv := newFakePOP3(t, fakePOP3Options{pass: "pw", tls: tc.mode == StartTLS, implicit: tc.mode == ImplicitTLS})
			accounts := PatternAccounts("user{n}@example.test", "pw", 3)
			for _, a := range accounts {
				for _, m := range msgs {
					srv.add(a.User, m)
				}
			}
			res, err := RunPOP3(testCtx(t), POP3Config{
				Target:   Target{Addr: srv.addr, TLS: tc.mode, Insecure: true, Timeout: 30 * time.Second},
				Accounts: accounts, Clients: 2, Delete: true,
			})
			if err != nil {
				t.Fatal(err)
			}
			if res.Errors != 0 {
				t.Fatalf("errors: %d %v", res.Errors, res.FirstErrors)
			}
			if res.Ops != 12 || res.Bytes != 3*total || res.Sessions != 3 {
				t.Errorf("ops %d bytes %d sessions %d, want 12, %d, 3", res.Ops, res.Bytes, res.Sessions, 3*total)
			}
			checkLatency(t, res.Latency, 12)
			for _, a := range accounts {
				if n := srv.count(a.User); n != 0 {
					t.Errorf("%s still has %d messages after -dele", a.User, n)
				}
			}
			checkJSON(t, res)
		})
	}
}

func TestPOP3Checks(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts fakePOP3Options
		want string
	}{
		{"size differs from LIST", fakePOP3Options{pass: "pw", lieSize: true}, "LIST said"},
		{"bare LF", fakePOP3Options{pass: "pw", bareLF: true}, "not terminated by CRLF"},
		{"wrong password", fakePOP3Options{pass: "other"}, "-ERR [AUTH]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := newFakePOP3(t, tc.opts)
			for _, m := range popMessages() {
				srv.add("u@x", m)
			}
			res, _ := RunPOP3(testCtx(t), POP3Config{
				Target:   Target{Addr: srv.addr, Timeout: 30 * time.Second},
				Accounts: []Account{{"u@x", "pw"}}, Clients: 1,
			})
			if res.Errors == 0 || !strings.Contains(strings.Join(res.FirstErrors, "\n"), tc.want) {
				t.Errorf("errors %d %q, want one containing %q", res.Errors, res.FirstErrors, tc.want)
			}
		})
	}
}

// More clients than accounts must not collide on the maildrop lock.
func TestPOP3SharedAccounts(t *testing.T) {
	srv := newFakePOP3(t, fakePOP3Options{pass: "pw"})
	accounts := PatternAccounts("u{n}@x", "pw", 2)
	for _, a := range accounts {
		srv.add(a.User, popMessages()[0])
	}
	res, _ := RunPOP3(testCtx(t), POP3Config{
		Target:   Target{Addr: srv.addr, Timeout: 30 * time.Second},
		Accounts: accounts, Clients: 4, Sessions: 30,
	})
	if res.Errors != 0 || res.Sessions != 30 || res.Ops != 30 {
		t.Errorf("sessions %d ops %d errors %d %v", res.Sessions, res.Ops, res.Errors, res.FirstErrors)
	}

	start := time.Now()
	res, _ = RunPOP3(testCtx(t), POP3Config{
		Target:   Target{Addr: srv.addr, Timeout: 30 * time.Second},
		Accounts: accounts, Clients: 2, Duration: 150 * time.Millisecond,
	})
	if d := time.Since(start); d < 150*time.Millisecond || d > 3*time.Second || res.Sessions == 0 || res.Errors != 0 {
		t.Errorf("duration run: %v, %d sessions, %d errors", d, res.Sessions, res.Errors)
	}
}

func TestWait(t *testing.T) {
	srv := newFakePOP3(t, fakePOP3Options{pass: "pw"})
	accounts := PatternAccounts("u{n}@x", "pw", 2)
	srv.add("u1@x", []byte("old\r\n")) // counts: standalone wait sums STAT
	go func() {
		for i := range 5 {
			time.Sleep(20 * time.Millisecond)
			srv.add(accounts[i%2].User, []byte("new\r\n"))
		}
	}()
	res, err := RunWait(testCtx(t), WaitConfig{
		Target:   Target{Addr: srv.addr, Timeout: 30 * time.Second},
		Accounts: accounts, Expect: 6, Poll: 20 * time.Millisecond, Timeout: 30 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	d := res.Delivery
	if res.Errors != 0 || d.TimedOut || d.Seen != 6 || d.Expected != 6 || d.Polls < 2 {
		t.Errorf("errors %d %v, delivery %+v", res.Errors, res.FirstErrors, d)
	}
	checkJSON(t, res)

	res, _ = RunWait(testCtx(t), WaitConfig{
		Target:   Target{Addr: srv.addr, Timeout: 30 * time.Second},
		Accounts: accounts, Expect: 100, Poll: 20 * time.Millisecond, Timeout: 200 * time.Millisecond,
	})
	if !res.Delivery.TimedOut || res.Errors != 1 || res.Delivery.Seen != 6 {
		t.Errorf("timeout: errors %d, delivery %+v", res.Errors, res.Delivery)
	}
}

// smtp -wait-pop3: the fake SMTP server hands each message to the fake POP3
// server after a delay, like a queue would.
func TestSMTPWaitPOP3(t *testing.T) {
	pop := newFakePOP3(t, fakePOP3Options{pass: "pw"})
	pop.add("user2@example.test", []byte("already there\r\n"))
	srv := newFakeSMTP(t, fakeSMTPOptions{onto: func(rcpt string, msg []byte) {
		time.AfterFunc(50*time.Millisecond, func() { pop.add(rcpt, msg) })
	}})
	res, err := RunSMTP(testCtx(t), SMTPConfig{
		Target:   Target{Addr: srv.addr, Timeout: 30 * time.Second},
		Messages: 20, Size: 1000, Conns: 2,
		From: "a@example.test", To: []string{"user{n}@example.test"}, Mailboxes: 4,
		Wait: &WaitConfig{Target: Target{Addr: pop.addr, Timeout: 30 * time.Second}, Pass: "pw",
			Poll: 20 * time.Millisecond, Timeout: 30 * time.Second},
	})
	if err != nil {
		t.Fatal(err)
	}
	d := res.Delivery
	if res.Errors != 0 || d == nil || d.TimedOut || d.Seen != 20 || d.Expected != 20 {
		t.Fatalf("errors %d %v, delivery %+v", res.Errors, res.FirstErrors, d)
	}
	if d.ElapsedS < res.ElapsedS || d.PerSec <= 0 {
		t.Errorf("delivery took %.3fs, sending %.3fs, %.1f/s", d.ElapsedS, res.ElapsedS, d.PerSec)
	}
	checkJSON(t, res)
}

func TestIdle(t *testing.T) {
	srv := newFakePOP3(t, fakePOP3Options{pass: "pw", implicit: true})
	res, err := RunIdle(testCtx(t), IdleConfig{
		Target:   Target{Addr: srv.addr, TLS: ImplicitTLS, Insecure: true, Timeout: 30 * time.Second},
		Conns:    20,
		Dialers:  4,
		Hold:     50 * time.Millisecond,
		Accounts: PatternAccounts("u{n}@x", "pw", 20),
		PIDs:     []int{os.Getpid()},
	})
	if err != nil {
		t.Fatal(err)
	}
	id := res.Idle
	if res.Errors != 0 || id.Opened != 20 || id.OpenAfterHold != 20 || !id.LoggedIn {
		t.Errorf("errors %d %v, idle %+v", res.Errors, res.FirstErrors, id)
	}
	if len(id.Processes) != 1 || id.Processes[0].After.RSSKB <= 0 || id.NoFile < 20 {
		t.Errorf("memory samples %+v, nofile %d", id.Processes, id.NoFile)
	}
	checkLatency(t, res.Latency, 20)
	checkJSON(t, res)
	if n := srv.open.Load(); n != 0 {
		// The tool closed its side; give the server a moment to notice.
		time.Sleep(100 * time.Millisecond)
		if n = srv.open.Load(); n != 0 {
			t.Errorf("%d connections still open after the run", n)
		}
	}
}

// Connections the server drops during the hold are reported as errors.
func TestIdleDropped(t *testing.T) {
	srv := newFakePOP3(t, fakePOP3Options{pass: "pw", tls: true, dropAt: 5})
	res, _ := RunIdle(testCtx(t), IdleConfig{
		Target: Target{Addr: srv.addr, TLS: StartTLS, Insecure: true, Timeout: 30 * time.Second},
		Conns:  5,
		Hold:   50 * time.Millisecond,
	})
	if res.Idle.Opened != 5 || res.Idle.OpenAfterHold != 0 || res.Errors != 1 {
		t.Errorf("errors %d %v, idle %+v", res.Errors, res.FirstErrors, res.Idle)
	}
}

func TestReadMemUsage(t *testing.T) {
	m, err := ReadMemUsage(os.Getpid())
	if err != nil {
		t.Skip("no smaps_rollup here:", err)
	}
	if m.RSSKB <= 0 || m.PSSKB <= 0 || m.PSSKB > m.RSSKB {
		t.Errorf("ReadMemUsage(self) = %+v", m)
	}
	if _, err := ReadMemUsage(-1); err == nil {
		t.Error("ReadMemUsage(-1) did not fail")
	}
}

// The POP3 client reads a RETR reply to its end even when a check fails,
// so the next command still works.
func TestRetrKeepsStep(t *testing.T) {
	client, server := net.Pipe()
	defer client.Close()
	go func() {
		defer server.Close()
		r := bufio.NewReader(server)
		fmt.Fprint(server, "+OK hi\r\n")
		r.ReadString('\n')
		fmt.Fprint(server, "+OK\r\nbare\nline\r\n.\r\n")
		r.ReadString('\n')
		fmt.Fprint(server, "+OK 0 0\r\n")
	}()
	c := &pop3Client{conn: client, r: bufio.NewReaderSize(client, maxLine)}
	if _, err := c.reply("greeting"); err != nil {
		t.Fatal(err)
	}
	n, err := c.retr(1)
	if _, ok := err.(*verifyError); !ok || n != len64("bare\nline\r\n") {
		t.Errorf("retr = %d, %v", n, err)
	}
	if count, _, err := c.stat(); err != nil || count != 0 {
		t.Errorf("stat after a bad RETR: %d, %v", count, err)
	}
}

func len64(s string) int64 { return int64(len(s)) }

func checkLatency(t *testing.T, s Summary, n int) {
	t.Helper()
	if s.Count != n {
		t.Errorf("latency count = %d, want %d", s.Count, n)
	}
	if !(0 < s.MinMS && s.MinMS <= s.P50MS && s.P50MS <= s.P95MS && s.P95MS <= s.P99MS && s.P99MS <= s.MaxMS) {
		t.Errorf("latency summary out of order: %+v", s)
	}
}

// checkJSON checks the JSON report's shape: the keys a script reads.
func checkJSON(t *testing.T, res *Result) {
	t.Helper()
	var b bytes.Buffer
	if err := res.WriteJSON(&b); err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b.Bytes(), &m); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"scenario", "ops", "ops_per_sec", "mb_per_sec", "errors", "first_errors", "elapsed_s"} {
		if _, ok := m[k]; !ok {
			t.Errorf("JSON lacks %q: %s", k, b.String())
		}
	}
	lat, _ := m["latency"].(map[string]any)
	for _, k := range []string{"count", "p50_ms", "p95_ms", "p99_ms"} {
		if _, ok := lat[k]; !ok {
			t.Errorf("JSON latency lacks %q", k)
		}
	}
}

func TestParsePPID(t *testing.T) {
	for _, tc := range []struct {
		stat string
		ppid int
		ok   bool
	}{
		{"17660 (dovecot) S 1 17660 17660 0 -1", 1, true},
		{"17662 (pop3-login) S 17660 17660 17660 0 -1", 17660, true},
		{"42 (a) b (c) S 7 42 42", 7, true}, // comm with spaces and parentheses
		{"42 (broken", 0, false},
		{"42 (x) S", 0, false},
	} {
		ppid, ok := parsePPID(tc.stat)
		if ppid != tc.ppid || ok != tc.ok {
			t.Errorf("parsePPID(%q) = %d, %v; want %d, %v", tc.stat, ppid, ok, tc.ppid, tc.ok)
		}
	}
}

// A child started by the test is found among the test's descendants, and the
// idle scenario with Children samples it too.
func TestDescendantsAndChildren(t *testing.T) {
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		t.Skip("no /proc here")
	}
	cmd := exec.Command("sleep", "30")
	if err := cmd.Start(); err != nil {
		t.Skip("cannot start sleep:", err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	desc, err := Descendants([]int{os.Getpid()})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(desc, cmd.Process.Pid) || slices.Contains(desc, os.Getpid()) {
		t.Fatalf("Descendants(self) = %v; want the child %d and not self", desc, cmd.Process.Pid)
	}

	srv := newFakePOP3(t, fakePOP3Options{pass: "pw", implicit: true})
	res, err := RunIdle(testCtx(t), IdleConfig{
		Target:   Target{Addr: srv.addr, TLS: ImplicitTLS, Insecure: true, Timeout: 30 * time.Second},
		Conns:    3,
		Hold:     10 * time.Millisecond,
		PIDs:     []int{os.Getpid()},
		Children: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	var pids []int
	var rss int64
	for _, p := range res.Idle.Processes {
		pids = append(pids, p.PID)
		rss += p.After.RSSKB
	}
	if !slices.Contains(pids, cmd.Process.Pid) || !slices.Contains(pids, os.Getpid()) {
		t.Errorf("sampled %v; want self and the child %d", pids, cmd.Process.Pid)
	}
	if res.Idle.Total.After.RSSKB != rss || rss <= 0 {
		t.Errorf("total after RSS %d, sum of processes %d", res.Idle.Total.After.RSSKB, rss)
	}
}

func TestPairSamples(t *testing.T) {
	before := map[int]MemUsage{1: {RSSKB: 10, PSSKB: 5}, 2: {RSSKB: 20, PSSKB: 10}}
	after := map[int]MemUsage{1: {RSSKB: 15, PSSKB: 7}, 3: {RSSKB: 4, PSSKB: 2}} // 2 ended, 3 began
	procs, total := pairSamples(before, after)
	want := []ProcMem{
		{PID: 1, Before: MemUsage{10, 5}, After: MemUsage{15, 7}},
		{PID: 2, Before: MemUsage{20, 10}},
		{PID: 3, After: MemUsage{4, 2}},
	}
	if !slices.Equal(procs, want) {
		t.Errorf("processes %+v, want %+v", procs, want)
	}
	if total.Before != (MemUsage{30, 15}) || total.After != (MemUsage{19, 9}) {
		t.Errorf("total %+v", total)
	}
}

// With a duration, sending stops on time whatever the count, and every
// message started is finished and counted.
func TestSMTPDuration(t *testing.T) {
	srv := newFakeSMTP(t, fakeSMTPOptions{})
	res, err := RunSMTP(testCtx(t), SMTPConfig{
		Target:    Target{Addr: srv.addr, Timeout: 30 * time.Second},
		Duration:  300 * time.Millisecond,
		Size:      500,
		Conns:     2,
		From:      "load@example.test",
		To:        []string{"user{n}@example.test"},
		Mailboxes: 4,
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Errors != 0 || res.Stopped != "" {
		t.Fatalf("errors: %d %v, stopped %q", res.Errors, res.FirstErrors, res.Stopped)
	}
	if res.Ops < 10 || int(res.Ops) != srv.count() {
		t.Errorf("accepted %d, server has %d; want the same, and more than 10 in 300ms", res.Ops, srv.count())
	}
	if res.ElapsedS < 0.3 || res.ElapsedS > 2 {
		t.Errorf("elapsed %.3fs for a 300ms run", res.ElapsedS)
	}

	// A count reached before the duration ends the run first.
	res, err = RunSMTP(testCtx(t), SMTPConfig{
		Target: Target{Addr: srv.addr, Timeout: 30 * time.Second}, Messages: 5, Duration: time.Minute,
		Size: 500, Conns: 2, From: "load@example.test", To: []string{"a@example.test"},
	})
	if err != nil || res.Ops != 5 || res.ElapsedS > 10 {
		t.Errorf("count-bounded run: %v, %d messages in %.1fs", err, res.Ops, res.ElapsedS)
	}
	if _, err := RunSMTP(testCtx(t), SMTPConfig{Target: Target{Addr: srv.addr}, Conns: 1,
		From: "a@x", To: []string{"b@x"}}); err == nil {
		t.Error("no count and no duration accepted")
	}
}
