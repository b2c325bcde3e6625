package smtpclient

import (
	"context"
	"crypto/tls"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"petrel/internal/mailtest"
	"petrel/internal/outbound/mx"
)

const body7 = "Subject: hi\r\n\r\nhello\r\n.leading dot\r\nbare\nlf\r\n"

func TestPerRecipientPipelined(t *testing.T) {
	f := &fake{ext: []string{"PIPELINING", "8BITMIME", "ENHANCEDSTATUSCODES", "DSN"},
		rcpt: func(to string, _ int) string {
			switch {
			case strings.HasPrefix(to, "TO:<busy@"):
				return "450 4.2.1 mailbox busy"
			case strings.HasPrefix(to, "TO:<gone@"):
				return "550-5.1.1 no such user\r\n550 5.1.1 really"
			}
			return "250 2.1.5 ok"
		}}
	port := startFakes(t, f)
	c := testClient(route(1, mx.TLSOpportunistic), port)
	msg := message(body7, "a@example.test", "busy@example.test", "gone@example.test", "b@example.test")
	msg.Ret, msg.EnvID = "HDRS", "id+1=x"
	msg.Recipients[0].Notify = "success,failure"
	msg.Recipients[0].ORcpt = "orig@example.test"
	res := c.Deliver(context.Background(), "example.test", msg)
	wantReplies(t, res, "250 2.0.0 queued", "450 4.2.1 mailbox busy", "550 5.1.1 no such user\nreally", "250 2.0.0")
	if res.Recipients[1].Local || !res.DSN || res.Host != "mx1.example.test" || res.TLS != "" {
		t.Fatalf("result %+v", res)
	}
	log := f.log()
	want := []string{
		"EHLO client.test",
		"MAIL FROM:<sender@origin.test> RET=HDRS ENVID=id+2B1+3Dx",
		"RCPT TO:<a@example.test> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;orig@example.test",
		"RCPT TO:<busy@example.test>", "RCPT TO:<gone@example.test>", "RCPT TO:<b@example.test>",
		"DATA", "QUIT",
	}
	if !slices.Equal(log, want) {
		t.Fatalf("commands\n%q\nwant\n%q", log, want)
	}
	// Dot-stuffed, every line ending in CRLF.
	if got := f.messages(); len(got) != 1 || got[0] != "Subject: hi\r\n\r\nhello\r\n..leading dot\r\nbare\r\nlf\r\n" {
		t.Fatalf("body %q", got)
	}
}

func TestNoExtensions(t *testing.T) {
	// Neither EHLO nor PIPELINING, 8BITMIME, SMTPUTF8, DSN, SIZE: HELO and one command at a
	// time; no DSN parameters; the 8-bit and UTF-8 rules refuse.
	f := &fake{noEHLO: true, rcpt: func(to string, _ int) string {
		if strings.Contains(to, "nobody") {
			return "550 no"
		}
		return "250 ok"
	}}
	port := startFakes(t, f)
	c := testClient(route(1, mx.TLSOpportunistic), port)
	msg := message(body7, "a@example.test", "nobody@example.test", "jøran@example.test", "x@bücher.test")
	msg.Recipients[0].Notify = "SUCCESS"
	res := c.Deliver(context.Background(), "example.test", msg)
	wantReplies(t, res, "250", "550  no", "553 5.6.7", "250")
	if res.DSN || !res.Recipients[2].Local {
		t.Fatalf("result %+v", res)
	}
	// An internationalized domain with an ASCII local part goes in A-labels (RFC 5890).
	want := []string{"EHLO client.test", "HELO client.test", "MAIL FROM:<sender@origin.test>",
		"RCPT TO:<a@example.test>", "RCPT TO:<nobody@example.test>", "RCPT TO:<x@xn--bcher-kva.test>", "DATA", "QUIT"}
	if log := f.log(); !slices.Equal(log, want) {
		t.Fatalf("commands %q, want %q", log, want)
	}

	msg = message("Subject: caf\xc3\xa9\r\n\r\nx\r\n", "a@example.test")
	msg.EightBit, msg.UTF8Headers = true, true
	wantReplies(t, c.Deliver(context.Background(), "example.test", msg), "554 5.6.9")
	msg.UTF8Headers = false
	wantReplies(t, c.Deliver(context.Background(), "example.test", msg), "554 5.6.3")
	msg = message(body7, "a@example.test")
	msg.From = "jøran@origin.test"
	wantReplies(t, c.Deliver(context.Background(), "example.test", msg), "553 5.6.7")
	if n := len(f.messages()); n != 1 {
		t.Fatalf("%d messages sent, want only the first", n)
	}
}

func TestSize(t *testing.T) {
	f := &fake{ext: []string{"SIZE 20", "8BITMIME"}}
	port := startFakes(t, f)
	c := testClient(route(1, mx.TLSOpportunistic), port)
	wantReplies(t, c.Deliver(context.Background(), "example.test", message(body7, "a@example.test")), "552 5.3.4")
	res := c.Deliver(context.Background(), "example.test", message("Subject: x\r\n\r\nx\r\n", "a@example.test"))
	wantReplies(t, res, "250")
	if log := f.log(); !slices.Contains(log, "MAIL FROM:<sender@origin.test> SIZE=17") {
		t.Fatalf("no SIZE parameter: %q", log)
	}
}

func TestWalkHosts(t *testing.T) {
	// Host 1 does not listen (nothing on 127.0.0.9), host 2 greets with garbage, host 3
	// with 421, host 4 refuses EHLO and HELO, host 5 answers MAIL with 451, host 6 takes it.
	fakes := []*fake{
		{greeting: "this is not SMTP"},
		{greeting: "421 4.3.2 shutting down"},
		{noEHLO: true, helo: "550 5.7.1 go away"},
		{mail: func(string) string { return "451 4.3.0 try later" }},
		{},
	}
	port := startFakes(t, fakes...)
	r := route(5, mx.TLSOpportunistic)
	r.Hosts = append([]mx.Host{{Name: "closed.example.test", Addrs: []netip.Addr{netip.MustParseAddr("127.0.0.9")}}}, r.Hosts...)
	c := testClient(r, port)
	res := c.Deliver(context.Background(), "example.test", message(body7, "a@example.test", "b@example.test"))
	wantReplies(t, res, "250 2.0.0", "250 2.0.0")
	if res.Host != "mx5.example.test" || len(res.Trace) != 5 {
		t.Fatalf("result %+v", res)
	}
	for i, want := range []string{"connect to 127.0.0.9", "4.5.0 greeting: protocol error", "421 4.3.2", "HELO refused", "451 4.3.0"} {
		if !strings.Contains(res.Trace[i], want) {
			t.Errorf("trace %d: %q, want %q", i, res.Trace[i], want)
		}
	}
	if len(fakes[4].messages()) != 1 {
		t.Fatal("not delivered to the last host")
	}
}

func TestAllHostsFail(t *testing.T) {
	fakes := []*fake{{greeting: "554 5.3.2 no service"}, {mail: func(string) string { return "550 5.7.1 you are blocked" }}, {}}
	port := startFakes(t, fakes...)
	c := testClient(route(1, mx.TLSOpportunistic), port)
	// A 554 greeting is the host's, and temporary for the message (RFC 5321 §3.1).
	wantReplies(t, c.Deliver(context.Background(), "example.test", message(body7, "a@example.test")), "451 4.4.0")
	// A 5xx to MAIL is final: the next host is not asked.
	c = testClient(&mx.Route{Hosts: route(3, mx.TLSOpportunistic).Hosts[1:]}, port)
	wantReplies(t, c.Deliver(context.Background(), "example.test", message(body7, "a@example.test")), "550 5.7.1 you are blocked")
	if fakes[2].connections() != 0 {
		t.Fatal("asked the next host after a permanent refusal")
	}
}

func TestRouteErrors(t *testing.T) {
	d := mailtest.StartDNS(t, mailtest.Zone{MX: map[string][]mailtest.MX{"null.test": {{Host: "."}}}})
	c := New(Config{Hostname: "client.test", Router: &mx.Router{Resolver: &mx.DNSResolver{Servers: []string{d.Addr}}}})
	res := c.Deliver(context.Background(), "null.test", message(body7, "a@null.test"))
	wantReplies(t, res, "556 5.1.10")
	res = c.Deliver(context.Background(), "nowhere.test", message(body7, "a@nowhere.test"))
	wantReplies(t, res, "550 5.1.2")
	if !res.Recipients[0].Local {
		t.Fatal("a routing failure is not marked as ours")
	}
}

func TestStalls(t *testing.T) {
	// Host 1 stops reading in the middle of DATA: nothing was delivered, host 2 gets it.
	f1, f2 := &fake{stallData: true}, &fake{}
	port := startFakes(t, f1, f2)
	c := stallClient(route(2, mx.TLSOpportunistic), port)
	big := "Subject: big\r\n\r\n" + strings.Repeat(strings.Repeat("x", 998)+"\r\n", 2000) // 2 MB: fills the small socket buffers
	res := c.Deliver(context.Background(), "example.test", message(big, "a@example.test"))
	wantReplies(t, res, "250 2.0.0")
	if !strings.Contains(res.Trace[0], "DATA content: timeout") || len(f2.messages()) != 1 {
		t.Fatalf("trace %q", res.Trace)
	}

	// Host 1 takes the whole message and never answers the final dot: it may have it, so
	// no second host now.
	f1, f2 = &fake{stallEnd: true}, &fake{}
	port = startFakes(t, f1, f2)
	c = stallClient(route(2, mx.TLSOpportunistic), port)
	res = c.Deliver(context.Background(), "example.test", message(body7, "a@example.test"))
	wantReplies(t, res, "451 4.4.2 after the end of DATA: timeout (the message may have been delivered)")
	if f2.connections() != 0 {
		t.Fatal("tried a second host after the final dot")
	}

	// A server that never greets; a cancelled context ends an attempt at once.
	f1 = &fake{greeting: "220-and more to come"}
	port = startFakes(t, f1)
	c = stallClient(route(1, mx.TLSOpportunistic), port)
	wantReplies(t, c.Deliver(context.Background(), "example.test", message(body7, "a@example.test")), "451 4.4.2 greeting: timeout")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	res = c.Deliver(ctx, "example.test", message(body7, "a@example.test"))
	if r := res.Recipients[0]; !r.Temporary() {
		t.Fatalf("cancelled: %s", r)
	}
}

func TestHostileReplies(t *testing.T) {
	for name, greeting := range map[string]string{
		"long line":   "220 " + strings.Repeat("x", 10000),
		"many lines":  strings.Repeat("220-x\r\n", 500) + "220 x",
		"mixed codes": "220-x\r\n250 y",
		"bad code":    "999 what",
		"control":     "220 hello\x00",
	} {
		f := &fake{greeting: greeting}
		port := startFakes(t, f)
		res := testClient(route(1, mx.TLSOpportunistic), port).Deliver(context.Background(), "example.test", message(body7, "a@example.test"))
		wantReplies(t, res, "451 4.5.0 greeting: protocol error")
		_ = name
	}
}

func tlsFake(cert tls.Certificate, ext ...string) *fake {
	return &fake{ext: append([]string{"STARTTLS", "PIPELINING", "8BITMIME"}, ext...),
		tls: &tls.Config{Certificates: []tls.Certificate{cert}}}
}

func TestOpportunisticTLS(t *testing.T) {
	ca := mailtest.NewCA(t)
	cert := ca.Issue(t, "other.name.test") // any certificate will do
	good, broken, refused, plain, inject := tlsFake(cert), tlsFake(cert), tlsFake(cert), &fake{ext: []string{"PIPELINING"}}, tlsFake(cert)
	broken.startTLS = "garbage"
	refused.startTLS = "454 4.7.0 TLS not available"
	inject.startTLS = "inject"
	port := startFakes(t, good, broken, refused, plain, inject)
	hosts := route(5, mx.TLSOpportunistic).Hosts
	deliver := func(hosts []mx.Host, fallback bool) Result {
		msg := message(body7, "a@example.test")
		msg.PlaintextFallback = fallback
		return testClient(&mx.Route{Hosts: hosts}, port).Deliver(context.Background(), "example.test", msg)
	}

	res := deliver(hosts[:1], false)
	wantReplies(t, res, "250 2.0.0")
	if !strings.HasPrefix(res.TLS, "TLS 1.3") || strings.Contains(res.TLS, "verified") || res.TLSFailed {
		t.Fatalf("TLS %q", res.TLS)
	}
	// A failed handshake or a refused STARTTLS: next host, TLS still wanted there; the
	// plaintext-only host takes the message.
	res = deliver(hosts[1:4], false)
	wantReplies(t, res, "250 2.0.0")
	if res.Host != "mx4.example.test" || res.TLS != "" || !res.TLSFailed || len(res.Trace) != 2 ||
		!strings.Contains(res.Trace[0], "4.7.5 TLS with mx2") || !strings.Contains(res.Trace[1], "454 4.7.0") {
		t.Fatalf("result %+v", res)
	}
	// Alone, they fail temporarily; with the fallback the same host gets it in plaintext.
	for _, h := range hosts[1:3] {
		res = deliver([]mx.Host{h}, false)
		if r := res.Recipients[0]; !r.Temporary() || !res.TLSFailed {
			t.Fatalf("%s without fallback: %+v", h.Name, res)
		}
		res = deliver([]mx.Host{h}, true)
		wantReplies(t, res, "250 2.0.0")
		if res.Host != h.Name || res.TLS != "" {
			t.Fatalf("%s with fallback: %+v", h.Name, res)
		}
	}
	if n := len(broken.messages()) + len(refused.messages()); n != 2 {
		t.Fatalf("%d plaintext deliveries after fallback, want 2", n)
	}
	// Bytes behind the 220 to STARTTLS: someone injects commands; refused (CVE-2011-0411).
	res = deliver(hosts[4:], false)
	wantReplies(t, res, "451 4.5.0 STARTTLS: protocol error: data after the STARTTLS reply")
}

func TestRequiredTLS(t *testing.T) {
	ca := mailtest.NewCA(t)
	right := tlsFake(ca.Issue(t, "mx1.example.test"))
	wrong := tlsFake(ca.Issue(t, "evil.test"))
	none := &fake{ext: []string{"PIPELINING"}}
	port := startFakes(t, right, wrong, none)
	newClient := func(hosts ...mx.Host) *Client {
		c := testClient(&mx.Route{Hosts: hosts}, port)
		c.cfg.RootCAs = ca.Pool
		return c
	}
	hosts := route(3, mx.TLSPKIX).Hosts
	msg := message(body7, "a@example.test")
	msg.PlaintextFallback = true // never for a required policy

	res := newClient(hosts[0]).Deliver(context.Background(), "example.test", msg)
	wantReplies(t, res, "250 2.0.0")
	if !strings.HasSuffix(res.TLS, "verified (pkix)") {
		t.Fatalf("TLS %q", res.TLS)
	}
	res = newClient(hosts[1]).Deliver(context.Background(), "example.test", msg)
	wantReplies(t, res, "451 4.7.5 TLS with mx2.example.test[127.0.0.3")
	res = newClient(hosts[2]).Deliver(context.Background(), "example.test", msg)
	wantReplies(t, res, "451 4.7.4 TLS is required (pkix) but mx3.example.test")
	if len(wrong.messages())+len(none.messages()) != 0 || none.connections() != 1 {
		t.Fatal("delivered without the required TLS")
	}

	// MTA-STS testing: the wrong certificate is reported, the message delivered.
	h := hosts[1]
	h.TLS, h.STSViolation = mx.TLSTesting, ""
	res = newClient(h).Deliver(context.Background(), "example.test", msg)
	wantReplies(t, res, "250 2.0.0")
	if len(res.TLSReport) != 1 || !strings.Contains(res.TLSReport[0], "evil.test") {
		t.Fatalf("report %q", res.TLSReport)
	}

	// DANE: the certificate's key in a DANE-EE record; a record of another key fails.
	dane := hosts[1]
	dane.TLS, dane.TLSA, dane.DANENames = mx.TLSDANE, []mx.TLSA{mx.TLSAFor(wrong.tls.Certificates[0].Leaf, 3, 1, 1)}, []string{dane.Name}
	res = newClient(dane).Deliver(context.Background(), "example.test", msg)
	wantReplies(t, res, "250 2.0.0")
	if !strings.HasSuffix(res.TLS, "verified (dane)") {
		t.Fatalf("TLS %q", res.TLS)
	}
	dane.Addrs = hosts[0].Addrs // the server with the other key
	res = newClient(dane).Deliver(context.Background(), "example.test", msg)
	wantReplies(t, res, "451 4.7.5")
	if !strings.Contains(res.Recipients[0].Text, "DANE") {
		t.Fatal(res.Recipients[0])
	}
}

func TestSessionReuseAndRecipientLimits(t *testing.T) {
	// The server takes 2 recipients per transaction and says 452 to the rest (RFC 5321
	// §4.5.3.1.10); the client takes at most 3 per transaction.
	f := &fake{ext: []string{"PIPELINING", "8BITMIME"}, rcpt: func(to string, n int) string {
		if n > 2 {
			return "452 4.5.3 too many recipients"
		}
		return "250 2.1.5 ok"
	}}
	port := startFakes(t, f)
	c := testClient(route(1, mx.TLSOpportunistic), port)
	c.cfg.MaxRecipients = 3
	s, err := c.Open(context.Background(), "example.test", false)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var rcpts []string
	for i := range 7 {
		rcpts = append(rcpts, fmt.Sprintf("r%d@example.test", i))
	}
	res := s.Send(context.Background(), message(body7, rcpts...))
	wantReplies(t, res, "250", "250", "250", "250", "250", "250", "250")
	// A second message over the same connection.
	wantReplies(t, s.Send(context.Background(), message(body7, "x@example.test")), "250")
	if !s.Usable() || f.connections() != 1 {
		t.Fatalf("usable %v, %d connections", s.Usable(), f.connections())
	}
	var txs int
	for _, l := range f.log() {
		if strings.HasPrefix(l, "MAIL") {
			txs++
		}
	}
	// 7 recipients: [0 1 2] -> 2 taken, [3 4 5] -> 2, [6 2] -> 2, [5] -> 1; then 1 message.
	if txs != 5 || len(f.messages()) != 5 {
		t.Fatalf("%d transactions, %d messages:\n%q", txs, len(f.messages()), f.log())
	}
}

func TestRefusalsMidTransaction(t *testing.T) {
	// DATA refused with 451 on host 1: the accepted recipients go to host 2, the one
	// refused at RCPT keeps its 550.
	f1 := &fake{ext: []string{"PIPELINING"}, data: "451 4.3.0 disk full", rcpt: func(to string, _ int) string {
		if strings.Contains(to, "bad") {
			return "550 5.1.1 unknown"
		}
		return "250 ok"
	}}
	f2 := &fake{ext: []string{"PIPELINING"}}
	port := startFakes(t, f1, f2)
	res := testClient(route(2, mx.TLSOpportunistic), port).Deliver(context.Background(), "example.test",
		message(body7, "a@example.test", "bad@example.test", "b@example.test"))
	wantReplies(t, res, "250 2.0.0", "550 5.1.1 unknown", "250 2.0.0")
	if got := f2.log(); !slices.Contains(got, "RCPT TO:<a@example.test>") || slices.Contains(got, "RCPT TO:<bad@example.test>") {
		t.Fatalf("host 2 got %q", got)
	}
	// Every RCPT refused: no DATA content, RSET, and no second host.
	f1 = &fake{rcpt: func(string, int) string { return "550 5.1.1 unknown" }, ext: []string{"PIPELINING"}}
	f2 = &fake{}
	port = startFakes(t, f1, f2)
	res = testClient(route(2, mx.TLSOpportunistic), port).Deliver(context.Background(), "example.test", message(body7, "a@example.test"))
	wantReplies(t, res, "550 5.1.1")
	if len(f1.messages()) != 0 || f2.connections() != 0 || !slices.Contains(f1.log(), "RSET") {
		t.Fatalf("log %q", f1.log())
	}
	// A final 554 is permanent for all.
	f1 = &fake{final: "554 5.6.0 content refused"}
	port = startFakes(t, f1)
	res = testClient(route(1, mx.TLSOpportunistic), port).Deliver(context.Background(), "example.test", message(body7, "a@example.test", "b@example.test"))
	wantReplies(t, res, "554 5.6.0", "554 5.6.0")
}

func TestEveryRecipientGetsAReply(t *testing.T) {
	// The only host fails DATA temporarily with recipients still waiting beyond the
	// per-transaction limit: they share the failure instead of getting nothing.
	f := &fake{ext: []string{"PIPELINING"}, data: "451 4.3.0 disk full"}
	port := startFakes(t, f)
	c := testClient(route(1, mx.TLSOpportunistic), port)
	c.cfg.MaxRecipients = 2
	res := c.Deliver(context.Background(), "example.test", message(body7, "a@x.test", "b@x.test", "c@x.test", "d@x.test", "e@x.test"))
	wantReplies(t, res, "451 4.3.0", "451 4.3.0", "451 4.3.0", "451 4.3.0", "451 4.3.0")
	// Addresses that would break the command line never reach a server.
	res = c.Deliver(context.Background(), "example.test", message(body7, "a@x.test\r\nRSET", "<b@x.test>", ""))
	wantReplies(t, res, "553 5.1.3", "553 5.1.3", "553 5.1.3")
}

// TestThroughDNS is the whole attempt: MX lookup in the test DNS server, preference order,
// the first MX down, delivery to the second.
func TestThroughDNS(t *testing.T) {
	down, up := &fake{greeting: "421 4.3.2 maintenance"}, &fake{ext: []string{"PIPELINING", "8BITMIME"}}
	port := startFakes(t, down, up)
	d := mailtest.StartDNS(t, mailtest.Zone{
		MX: map[string][]mailtest.MX{"example.test": {{Pref: 20, Host: "mx2.example.test"}, {Pref: 10, Host: "mx1.example.test"}}},
		A:  map[string][]string{"mx1.example.test": {"127.0.0.2"}, "mx2.example.test": {"127.0.0.3"}},
	})
	c := New(Config{Hostname: "client.test", Port: port, Router: &mx.Router{Resolver: &mx.DNSResolver{Servers: []string{d.Addr}}}})
	res := c.Deliver(context.Background(), "example.test", message(body7, "a@example.test"))
	wantReplies(t, res, "250 2.0.0")
	if res.Host != "mx2.example.test" || len(res.Trace) != 1 || !strings.Contains(res.Trace[0], "mx1.example.test[127.0.0.2") {
		t.Fatalf("result %+v", res)
	}
}

// TestConcurrentAttempts runs attempts from many goroutines on one Client (the queue's
// workers share it), for the race detector.
func TestConcurrentAttempts(t *testing.T) {
	ca := mailtest.NewCA(t)
	f1, f2 := tlsFake(ca.Issue(t, "mx1.example.test")), &fake{ext: []string{"PIPELINING"}, greeting: "421 4.3.2 busy"}
	port := startFakes(t, f1, f2)
	r := route(2, mx.TLSTesting)
	r.Hosts[0], r.Hosts[1] = r.Hosts[1], r.Hosts[0] // the busy one first
	c := testClient(r, port)
	c.cfg.RootCAs = ca.Pool
	var wg sync.WaitGroup
	results := make([]Result, 16)
	for i := range results {
		wg.Go(func() {
			results[i] = c.Deliver(context.Background(), "example.test", message(body7, fmt.Sprintf("r%d@example.test", i)))
		})
	}
	wg.Wait()
	for _, res := range results {
		wantReplies(t, res, "250 2.0.0")
		if len(res.Trace) != 1 || len(res.TLSReport) != 0 {
			t.Fatalf("result %+v", res)
		}
	}
	if n := len(f1.messages()); n != len(results) {
		t.Fatalf("%d messages", n)
	}
}

// TestMTASTSEnforce: the policy (DNS TXT, HTTPS fetch) allows only mx1; mx1's certificate
// must verify for its name; mx2, outside the policy, never gets the message.
func TestMTASTSEnforce(t *testing.T) {
	ca := mailtest.NewCA(t)
	var cert atomic.Pointer[tls.Certificate] // changed while the server runs
	good := ca.Issue(t, "mx1.example.test")
	cert.Store(&good)
	f1 := tlsFake(good)
	f1.tls = &tls.Config{GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return cert.Load(), nil }}
	f2 := &fake{ext: []string{"PIPELINING"}}
	port := startFakes(t, f1, f2)
	d := mailtest.StartDNS(t, mailtest.Zone{
		MX:  map[string][]mailtest.MX{"example.test": {{Pref: 10, Host: "mx1.example.test"}, {Pref: 20, Host: "mx2.example.test"}}},
		A:   map[string][]string{"mx1.example.test": {"127.0.0.2"}, "mx2.example.test": {"127.0.0.3"}},
		TXT: map[string][]string{"_mta-sts.example.test": {"v=STSv1; id=1"}},
	})
	web := mailtest.StartSTS(t, "example.test")
	web.Set("example.test", "version: STSv1\nmode: enforce\nmx: mx1.example.test\nmax_age: 86400\n")
	resolver := &mx.DNSResolver{Servers: []string{d.Addr}}
	c := New(Config{Hostname: "client.test", Port: port, RootCAs: ca.Pool, Router: &mx.Router{
		Resolver: resolver,
		STS:      &mx.STS{Resolver: resolver, HTTP: web.Client, Cache: &mx.MemoryCache{}},
	}})
	res := c.Deliver(context.Background(), "example.test", message(body7, "a@example.test"))
	wantReplies(t, res, "250 2.0.0")
	if res.Host != "mx1.example.test" || !strings.HasSuffix(res.TLS, "verified (pkix)") {
		t.Fatalf("result %+v", res)
	}
	// mx1 now shows a certificate the policy cannot accept: the attempt fails temporarily,
	// and mx2 is still not used.
	bad := ca.Issue(t, "elsewhere.test")
	cert.Store(&bad)
	res = c.Deliver(context.Background(), "example.test", message(body7, "a@example.test"))
	wantReplies(t, res, "451 4.7.5 TLS with mx1.example.test")
	if f2.connections() != 0 || !slices.ContainsFunc(res.Trace, func(s string) bool { return strings.Contains(s, "mx2.example.test: not in the MTA-STS policy") }) {
		t.Fatalf("trace %q", res.Trace)
	}
}
