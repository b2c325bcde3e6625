package smtpclient

import (
	"context"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"petrel/internal/mailtest"
	"petrel/internal/outbound/mx"
)

// TestPostfix delivers into a real Postfix (Debian's) in the MX role: STARTTLS,
// pipelining, a 550 for an unknown recipient, DSN parameters, SMTPUTF8, the size limit.
func TestPostfix(t *testing.T) {
	p := mailtest.StartPostfixMX(t, mailtest.PostfixMXOptions{
		Recipients: []string{"a@example.test", "b@example.test", "jøran@example.test"}, SizeLimit: 100000})
	_, portStr, _ := net.SplitHostPort(p.SMTP)
	port, _ := strconv.Atoi(portStr)
	c := New(Config{Hostname: "client.test", Port: port, Router: staticRouter{&mx.Route{Hosts: []mx.Host{
		{Name: "localhost", Addrs: []netip.Addr{netip.MustParseAddr("127.0.0.1")}},
	}}}})
	msg := message("From: x@origin.test\r\nSubject: to postfix\r\n\r\nhello\r\n.dot\r\n", "a@example.test", "nobody@example.test", "b@example.test")
	msg.Recipients[0].Notify = "SUCCESS,FAILURE"
	msg.EnvID = "env1"
	res := c.Deliver(context.Background(), "example.test", msg)
	wantReplies(t, res, "250 2.0.0 Ok: queued", "550 5.1.1", "250 2.0.0")
	if !res.DSN || !strings.HasPrefix(res.TLS, "TLS 1.3") || res.Recipients[1].Local {
		t.Fatalf("result %+v", res)
	}

	utf8 := message("From: jøran@origin.test\r\nSubject: blåbær\r\n\r\nsmørbrød\r\n", "jøran@example.test")
	utf8.From = "jøran@origin.test"
	utf8.EightBit, utf8.UTF8Headers = true, true
	wantReplies(t, c.Deliver(context.Background(), "example.test", utf8), "250 2.0.0")

	big := message("Subject: big\r\n\r\n"+strings.Repeat("x", 200000)+"\r\n", "a@example.test")
	wantReplies(t, c.Deliver(context.Background(), "example.test", big), "552 5.3.4")

	// a and b, the success DSN that NOTIFY=SUCCESS asked of Postfix, and jøran's. The
	// sink creates a file before it has written it: read again until all is there.
	wants := []string{"Delivered-To: a@example.test", "Delivered-To: b@example.test",
		"Delivered-To: jøran@example.test", "Subject: to postfix", "\n.dot\n", "smørbrød", "with ESMTPS", "with UTF8SMTPS",
		"Delivered-To: sender@origin.test", "Original-Envelope-Id: env1", "Status: 2.0.0"}
	var all string
	for deadline := time.Now().Add(2 * time.Minute); ; time.Sleep(50 * time.Millisecond) {
		all = strings.Join(p.Messages(t, 4), "\n--\n")
		missing := slices.DeleteFunc(slices.Clone(wants), func(w string) bool { return strings.Contains(all, w) })
		if len(missing) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("delivered messages lack %q:\n%s", missing, all)
		}
	}
}
