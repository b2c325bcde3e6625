package e2e

import (
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"petrel/internal/mailtest"
)

// Outbound delivery between two Petrel instances: A (a.test, MX 127.0.0.2) and B (b.test and
// d.test, MX 127.0.0.3), which find each other through a test DNS server, on one SMTP port
// that both addresses share (outbound.port). The whole 127/8 answers on lo, in a network
// namespace as outside one.

// sharedPort finds a port free on every given loopback address. It comes from
// mailtest.FreePorts, which hands a port out once per process, so that TestOutbound and
// TestForward, running in parallel, never share one.
func sharedPort(t *testing.T, addrs ...string) int {
	t.Helper()
	for range 50 {
		port := mailtest.FreePort(t)
		ok := true
		for _, a := range addrs {
			l, err := net.Listen("tcp", fmt.Sprintf("%s:%d", a, port))
			if err != nil {
				ok = false
				break
			}
			defer l.Close()
		}
		if ok {
			return port
		}
	}
	t.Fatalf("no port free on every one of %v (is lo up?)", addrs)
	return 0
}

func TestOutbound(t *testing.T) {
	t.Parallel()
	port := sharedPort(t, "127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5")
	// d.test's MX starts as a server that accepts and never greets: an attempt in progress.
	stall, err := net.Listen("tcp", fmt.Sprintf("127.0.0.5:%d", port))
	if err != nil {
		t.Fatal(err)
	}
	stalled := make(chan net.Conn, 16)
	go func() {
		for {
			c, err := stall.Accept()
			if err != nil {
				return
			}
			stalled <- c
		}
	}()
	t.Cleanup(func() {
		stall.Close()
		close(stalled)
		for c := range stalled {
			c.Close()
		}
	})
	dns := mailtest.StartDNS(t, mailtest.Zone{
		MX: map[string][]mailtest.MX{
			"a.test": {{Pref: 10, Host: "mx.a.test"}},
			"b.test": {{Pref: 10, Host: "mx.b.test"}},
			"c.test": {{Pref: 10, Host: "mx.c.test"}}, // nothing listens there: expiry
			"d.test": {{Pref: 10, Host: "mx.d.test"}},
		},
		A: map[string][]string{"mx.a.test": {"127.0.0.2"}, "mx.b.test": {"127.0.0.3"}, "mx.c.test": {"127.0.0.4"},
			"mx.d.test": {"127.0.0.5"}},
	})
	outbound := func(expire string) []string {
		return []string{fmt.Sprintf("resolver = %q", dns.Addr), fmt.Sprintf("port = %d", port),
			`retry_first = "200ms"`, `retry_max = "1s"`, fmt.Sprintf("expire = %q", expire)}
	}
	a := startInstance(t, options{
		"":         {`hostname = "mx.a.test"`, `domains = ["a.test"]`},
		"smtp":     {fmt.Sprintf("listen = [\"127.0.0.2:%d\"]", port)},
		"outbound": outbound("20s"),
	})
	b := startInstance(t, options{
		"":         {`hostname = "mx.b.test"`, `domains = ["b.test", "d.test"]`},
		"smtp":     {fmt.Sprintf("listen = [\"127.0.0.3:%d\"]", port)},
		"outbound": outbound("20s"),
	})
	const alicePass, bobPass = "alice-secret-1", "bob-secret-1"
	a.addAccount("alice@a.test", alicePass)
	b.addAccount("bob@b.test", bobPass)
	b.addAccount("carol@d.test", bobPass)

	submit := func(token string, to ...string) {
		t.Helper()
		msg := testMessage(token, "alice@a.test", to[0])
		if err := sendMail(a.Submissions, true, "alice@a.test", alicePass, "alice@a.test", to, msg); err != nil {
			t.Fatalf("submitting %s: %v", token, err)
		}
	}
	// fetch returns the messages of a mailbox by token.
	fetch := func(in *instance, user, pass string) map[string]string {
		msgs, err := fetchAll(in.POP3S, user, pass, false)
		if err != nil {
			t.Fatalf("POP3 for %s: %v", user, err)
		}
		out := map[string]string{}
		for _, m := range msgs {
			out[tokenOf(m)] = string(m)
		}
		return out
	}
	// dsnAbout waits for a DSN in alice's mailbox that names rcpt and returns it.
	dsnAbout := func(rcpt string, within time.Duration) string {
		t.Helper()
		var found string
		waitFor(within, func() bool {
			for _, m := range fetch(a, "alice@a.test", alicePass) {
				if strings.Contains(m, "multipart/report") && strings.Contains(m, "Final-Recipient: rfc822; "+rcpt) {
					found = m
					return true
				}
			}
			return false
		})
		if found == "" {
			t.Fatalf("no DSN about %s in alice's mailbox\nqueue of A:\n%s", rcpt, a.mustPetrel("", "queue", "list"))
		}
		return found
	}

	// The expiry runs in the background from the start: c.test never answers.
	submit("to-c", "nobody@c.test")

	t.Run("delivered and signed", func(t *testing.T) {
		submit("to-b", "bob@b.test")
		var got string
		waitFor(30*time.Second, func() bool { got = fetch(b, "bob@b.test", bobPass)["to-b"]; return got != "" })
		if got == "" {
			t.Fatalf("bob did not get the message\nqueue of A:\n%s", a.mustPetrel("", "queue", "list"))
		}
		if !strings.Contains(got, "DKIM-Signature:") || !strings.Contains(got, "d=a.test") {
			t.Errorf("message not DKIM-signed by a.test:\n%s", got)
		}
		if n := strings.Count(got, "Return-Path:"); n != 1 {
			t.Errorf("%d Return-Path fields:\n%s", n, got)
		}
		if !strings.Contains(got, "by mx.a.test with ESMTPSA") || !strings.Contains(got, "by mx.b.test with ESMTP") {
			t.Errorf("trace fields of both hops missing:\n%s", got)
		}
	})

	t.Run("permanent failure bounces", func(t *testing.T) {
		submit("to-nobody", "nobody@b.test")
		d := dsnAbout("nobody@b.test", 30*time.Second)
		for _, want := range []string{"Action: failed", "Status: 5.1.1", "Remote-MTA: dns; mx.b.test", "Diagnostic-Code: smtp; 550"} {
			if !strings.Contains(d, want) {
				t.Errorf("DSN lacks %q:\n%s", want, d)
			}
		}
	})

	t.Run("far side down, then up", func(t *testing.T) {
		b.kill()
		submit("while-down", "bob@b.test")
		if !waitFor(30*time.Second, func() bool {
			out := a.mustPetrel("", "queue", "list")
			return strings.Contains(out, "bob@b.test") && strings.Contains(out, "connect")
		}) {
			t.Fatalf("no failed attempt in the queue:\n%s", a.mustPetrel("", "queue", "list"))
		}
		b.start()
		if !waitFor(30*time.Second, func() bool { return fetch(b, "bob@b.test", bobPass)["while-down"] != "" }) {
			t.Fatalf("not delivered after the far side came back\nqueue of A:\n%s", a.mustPetrel("", "queue", "list"))
		}
	})

	t.Run("kill -9 during an attempt", func(t *testing.T) {
		submit("stalled", "carol@d.test")
		select {
		case <-stalled: // A is connected and waits for a greeting: the attempt is in progress
		case <-time.After(30 * time.Second):
			t.Fatal("no delivery attempt reached the stalling server")
		}
		a.kill()
		dns.Update(func(z *mailtest.Zone) { z.A["mx.d.test"] = []string{"127.0.0.3"} })
		a.start()
		if !waitFor(30*time.Second, func() bool { return fetch(b, "carol@d.test", bobPass)["stalled"] != "" }) {
			t.Fatalf("message lost after kill -9\nqueue of A:\n%s", a.mustPetrel("", "queue", "list"))
		}
	})

	t.Run("expiry", func(t *testing.T) {
		d := dsnAbout("nobody@c.test", 60*time.Second)
		for _, want := range []string{"Action: failed", "Status: 5.4.7", "gave up after"} {
			if !strings.Contains(d, want) {
				t.Errorf("DSN lacks %q:\n%s", want, d)
			}
		}
		if out := a.mustPetrel("", "queue", "list"); !strings.Contains(out, "queue is empty") {
			t.Errorf("queue after everything:\n%s", out)
		}
	})
}
