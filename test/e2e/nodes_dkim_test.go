package e2e

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"petrel/internal/mail/msgauth"
	"petrel/internal/mailtest"
)

// TestDKIMKeysSharedOnPostgres: two nodes of one PostgreSQL store start at the same moment
// with example.test in their config. The domain's keys are made once (one node's, or one of
// each, but one key per selector) and every node signs with them: a message submitted on
// node B and relayed to a far MX verifies against the records `petrel dns` prints on node
// A. A rotation made on A is seen by B's commands at once and by its signer once it is
// removed from B; the message B signs after that verifies against the new records alone.
func TestDKIMKeysSharedOnPostgres(t *testing.T) {
	t.Parallel()
	sink := startSMTPSink(t)
	dns := mailtest.StartDNS(t, mailtest.Zone{
		MX: map[string][]mailtest.MX{"far.test": {{Pref: 10, Host: "mx.far.test"}}},
		A:  map[string][]string{"mx.far.test": {"127.0.0.1"}},
	})
	_, port, _ := net.SplitHostPort(sink.addr)
	opts := postgresOptions(t)
	opts["outbound"] = []string{fmt.Sprintf("resolver = %q", dns.Addr), "port = " + port,
		`retry_first = "200ms"`, `retry_max = "1s"`}
	a, b := newInstance(t, opts), newInstance(t, opts)
	t.Cleanup(a.cleanup)
	t.Cleanup(b.cleanup)
	a.launch()
	b.launch()
	a.waitListening()
	b.waitListening()

	made := strings.Count(a.stdout.String(), "petrel: created DKIM") + strings.Count(b.stdout.String(), "petrel: created DKIM")
	if made != 2 {
		t.Errorf("the nodes reported %d keys made, want 2 (one Ed25519 and one RSA key for the cluster)\nA:\n%s\nB:\n%s",
			made, a.stdout, b.stdout)
	}
	recA := a.mustPetrel("", "dns", "example.test")
	if got, want := dkimRecords(b.mustPetrel("", "dns", "example.test")), dkimRecords(recA); len(want) != 2 || strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("DKIM records on node B:\n%s\nnode A:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}

	const pass = "bob-secret-1"
	b.addAccount("bob@example.test", pass)
	send := func(token string) []byte {
		t.Helper()
		msg := testMessage(token, "bob@example.test", "carol@far.test")
		if err := sendMail(b.Submissions, true, "bob@example.test", pass, "bob@example.test", []string{"carol@far.test"}, msg); err != nil {
			t.Fatalf("submitting on node B: %v", err)
		}
		select {
		case got := <-sink.msgs:
			return got
		case <-time.After(time.Minute):
			t.Fatalf("node B did not relay %s to the far MX\nqueue:\n%s", token, b.mustPetrel("", "queue", "list"))
			return nil
		}
	}
	if verdict := verifyWith(t, recA, send("signed-on-b")); !allPass(verdict, 2) {
		t.Fatalf("signatures of node B against node A's records: %+v\n%s", verdict.DKIM, verdict.AuthResults)
	}

	// Rotation: new keys on A, which B's commands see at once; the old ones removed on B.
	if out := a.mustPetrel("", "dkim", "keygen", "example.test"); strings.Count(out, "created DKIM") != 2 {
		t.Fatalf("dkim keygen on node A:\n%s", out)
	}
	if recs := dkimRecords(b.mustPetrel("", "dns", "example.test")); len(recs) != 4 {
		t.Fatalf("during the rotation node B prints %d DKIM records, want 4:\n%s", len(recs), strings.Join(recs, "\n"))
	}
	for _, l := range dkimRecords(recA) {
		sel, _, _ := strings.Cut(l, "._domainkey.")
		b.mustPetrel("", "dkim", "remove", "example.test", sel)
	}
	recNew := a.mustPetrel("", "dns", "example.test")
	if recs := dkimRecords(recNew); len(recs) != 2 || strings.Contains(strings.Join(recs, "\n"), strings.Join(dkimRecords(recA), "\n")) {
		t.Fatalf("after the rotation node A prints:\n%s", strings.Join(recs, "\n"))
	}
	// B's signer reads the keys again within a second: poll until a message carries only
	// the new signatures, and check that it verifies against the new records alone.
	var last *msgauth.Verdict
	ok := waitFor(time.Minute, func() bool {
		last = verifyWith(t, recNew, send(fmt.Sprintf("rotated-%d", time.Now().UnixNano())))
		return allPass(last, 2)
	})
	if !ok {
		t.Fatalf("node B never signed with the new keys only: %+v\n%s", last.DKIM, last.AuthResults)
	}
}

// dkimRecords are the DKIM key records among the lines `petrel dns` prints.
func dkimRecords(out string) []string {
	var recs []string
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, "._domainkey.") && strings.Contains(l, " IN TXT ") {
			recs = append(recs, l)
		}
	}
	return recs
}

// verifyWith verifies msg's signatures with a resolver that knows only the TXT records
// printed in dnsOut.
func verifyWith(t *testing.T, dnsOut string, msg []byte) *msgauth.Verdict {
	t.Helper()
	dns := mailtest.StartDNS(t, mailtest.Zone{TXT: printedTXT(dnsOut)})
	res := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, dns.Addr)
	}}
	v := &msgauth.Verifier{Resolver: res, AuthServID: "mx.far.test"}
	env := msgauth.Envelope{RemoteIP: netip.MustParseAddr("127.0.0.1"), Helo: "mail.example.test", MailFrom: "bob@example.test"}
	verdict, err := v.Verify(context.Background(), env, bytes.NewReader(msg))
	if err != nil {
		t.Fatal(err)
	}
	return verdict
}

// allPass reports whether the message has n DKIM signatures and every one passes.
func allPass(v *msgauth.Verdict, n int) bool {
	if len(v.DKIM) != n {
		return false
	}
	for _, d := range v.DKIM {
		if d.Result != msgauth.Pass {
			return false
		}
	}
	return true
}

// smtpSink is the far side's MX: it accepts every message and hands it to the test.
type smtpSink struct {
	addr string
	msgs chan []byte
}

// startSMTPSink listens on loopback and answers SMTP just enough for an MTA to deliver
// (no extensions, so no STARTTLS); it stops with the test.
func startSMTPSink(t *testing.T) *smtpSink {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &smtpSink{addr: l.Addr().String(), msgs: make(chan []byte, 16)}
	done := make(chan struct{})
	t.Cleanup(func() { close(done); l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go s.serve(c, done)
		}
	}()
	return s
}

func (s *smtpSink) serve(c net.Conn, done chan struct{}) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * time.Minute))
	r := bufio.NewReader(c)
	reply := func(line string) bool { _, err := c.Write([]byte(line + "\r\n")); return err == nil }
	if !reply("220 mx.far.test sink") {
		return
	}
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		verb := strings.ToUpper(strings.Fields(line + " x")[0])
		switch verb {
		case "DATA":
			if !reply("354 go on") {
				return
			}
			var msg bytes.Buffer
			for {
				l, err := r.ReadString('\n')
				if err != nil {
					return
				}
				if l == ".\r\n" {
					break
				}
				msg.WriteString(strings.TrimPrefix(l, ".")) // RFC 5321 §4.5.2
			}
			select {
			case s.msgs <- msg.Bytes():
			case <-done:
				return
			}
			reply("250 kept")
		case "QUIT":
			reply("221 bye")
			return
		default: // EHLO, HELO, MAIL, RCPT, RSET, NOOP
			if !reply("250 ok") {
				return
			}
		}
	}
}
