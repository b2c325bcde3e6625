package outbox

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"petrel/internal/client/clientconf"
	"petrel/internal/mailtest"
)

const password = "correct horse"

// petrel is a Petrel store with a submission listener (STARTTLS) on a fixed address, which
// can be stopped and started again to simulate the server being down.
type petrel struct {
	st    *mailtest.Server
	alice mailtest.Account
	bob   mailtest.Account
	addr  string
	sub   *mailtest.Submission
}

func newPetrel(t *testing.T) *petrel {
	s := mailtest.Start(t)
	p := &petrel{st: s, alice: s.AddAccount(t, "alice@example.org", password), bob: s.AddAccount(t, "bob@example.org", password)}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p.addr = l.Addr().String()
	l.Close() // down until start
	return p
}

func (p *petrel) start(t *testing.T) {
	p.sub = p.st.StartSubmission(t, mailtest.SubmissionOptions{Addr: p.addr})
}

func (p *petrel) stop() {
	if p.sub != nil {
		p.sub.Stop()
		p.sub = nil
	}
}

func (p *petrel) account(t *testing.T, extra string) *clientconf.Account {
	host, port, _ := net.SplitHostPort(p.addr)
	_ = host
	src := fmt.Sprintf(`
outbox = %q
[accounts.a]
user = "alice@example.org"
password_command = "echo '%s'"
timeout = "5s"
[accounts.a.smtp]
host = "localhost"
port = %s
ca_file = %q
%s
`, t.TempDir(), password, port, p.st.CertFile, extra)
	c, err := clientconf.Parse("client.toml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	return c.Accounts["a"]
}

func dialer(a *clientconf.Account) func() (Sender, error) {
	return func() (Sender, error) {
		s, err := Dial(context.Background(), a, password)
		if err != nil {
			return nil, err
		}
		return s, nil
	}
}

func queue(t *testing.T, o *Outbox, args []string, msg string) Entry {
	t.Helper()
	a, err := ParseArgs(args)
	if err != nil {
		t.Fatal(err)
	}
	env, r, err := Prepare(a, "alice@example.org", strings.NewReader(msg))
	if err != nil {
		t.Fatal(err)
	}
	e, err := o.Add(env, r)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// TestOfflineThenFlush: with the server down, Flush keeps everything; once it is up, the
// messages arrive in the order they were queued.
func TestOfflineThenFlush(t *testing.T) {
	p := newPetrel(t)
	a := p.account(t, "")
	o, err := Open(filepath.Join(t.TempDir(), "a"))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 5; i++ {
		queue(t, o, []string{"bob@example.org"}, fmt.Sprintf("From: alice@example.org\nSubject: n%d\n\nbody %d\n", i, i))
	}
	res, err := o.Flush(dialer(a))
	var ue *UnreachableError
	if !errors.As(err, &ue) || res.Remaining != 5 || len(res.Sent) != 0 {
		t.Fatalf("server down: %+v %v", res, err)
	}
	list, err := o.List()
	if err != nil || len(list) != 5 || list[0].Envelope.To[0] != "bob@example.org" || list[0].Envelope.From != "alice@example.org" {
		t.Fatalf("List = %+v %v", list, err)
	}
	for i := 1; i < len(list); i++ {
		if list[i-1].ID >= list[i].ID {
			t.Fatal("IDs not increasing")
		}
	}

	p.start(t)
	res, err = o.Flush(dialer(a))
	if err != nil || len(res.Sent) != 5 || res.Remaining != 0 {
		t.Fatalf("flush: %+v %v", res, err)
	}
	if list, _ := o.List(); len(list) != 0 {
		t.Fatalf("still queued: %v", list)
	}
	inbox := p.st.Inbox(t, p.bob)
	if len(inbox) != 5 {
		t.Fatalf("bob has %d messages", len(inbox))
	}
	for i, m := range inbox {
		if !strings.Contains(m, fmt.Sprintf("Subject: n%d\r\n", i)) || !strings.Contains(m, fmt.Sprintf("body %d\r\n", i)) {
			t.Fatalf("message %d out of order or mangled: %q", i, m)
		}
	}
}

// TestPermanentRejection: a 5xx moves the message to failed/ with the reason and the queue
// goes on with the next one.
func TestPermanentRejection(t *testing.T) {
	p := newPetrel(t)
	p.start(t)
	a := p.account(t, "")
	o, _ := Open(filepath.Join(t.TempDir(), "a"))
	queue(t, o, []string{"nobody@example.org"}, "From: alice@example.org\nSubject: bad\n\nx\n")
	queue(t, o, []string{"bob@example.org"}, "From: alice@example.org\nSubject: good\n\nx\n")
	res, err := o.Flush(dialer(a))
	if err != nil || len(res.Failed) != 1 || len(res.Sent) != 1 {
		t.Fatalf("%+v %v", res, err)
	}
	failed, err := o.Failed()
	if err != nil || len(failed) != 1 || !strings.HasPrefix(failed[0].Err, "recipient nobody@example.org: 5") {
		t.Fatalf("failed = %+v %v", failed, err)
	}
	if n := len(p.st.Inbox(t, p.bob)); n != 1 {
		t.Fatalf("bob has %d", n)
	}
}

func TestBccStripped(t *testing.T) {
	p := newPetrel(t)
	p.start(t)
	a := p.account(t, "")
	o, _ := Open(filepath.Join(t.TempDir(), "a"))
	msg := "From: alice@example.org\nTo: bob@example.org\nBcc: Alice\n  <alice@example.org>\nSubject: secret\n\nhi\n"
	e := queue(t, o, []string{"-t", "-i"}, msg)
	if strings.Join(e.Envelope.To, ",") != "bob@example.org,alice@example.org" {
		t.Fatalf("envelope %v", e.Envelope)
	}
	if _, err := o.Flush(dialer(a)); err != nil {
		t.Fatal(err)
	}
	for _, acct := range []mailtest.Account{p.alice, p.bob} {
		inbox := p.st.Inbox(t, acct)
		if len(inbox) != 1 || strings.Contains(strings.ToLower(inbox[0]), "bcc") || !strings.Contains(inbox[0], "Subject: secret") {
			t.Fatalf("%s got %q", acct.Address, inbox)
		}
	}
}

func TestAuthFailureKeepsQueue(t *testing.T) {
	p := newPetrel(t)
	p.start(t)
	a := p.account(t, "")
	o, _ := Open(filepath.Join(t.TempDir(), "a"))
	queue(t, o, []string{"bob@example.org"}, "Subject: x\n\nx\n")
	res, err := o.Flush(func() (Sender, error) { return Dial(context.Background(), a, "wrong") })
	var ue *UnreachableError
	if err == nil || errors.As(err, &ue) || res.Remaining != 1 {
		t.Fatalf("%+v %v", res, err)
	}
}

func TestImplicitTLSAndPlaintextRefusal(t *testing.T) {
	p := newPetrel(t)
	// A plaintext server without STARTTLS: starttls mode must refuse it (unreachable).
	sub := p.st.StartSubmission(t, mailtest.SubmissionOptions{Addr: p.addr, NoTLS: true, Plaintext: true})
	defer sub.Stop()
	a := p.account(t, "")
	_, err := Dial(context.Background(), a, password)
	var ue *UnreachableError
	if !errors.As(err, &ue) || !strings.Contains(err.Error(), "STARTTLS") {
		t.Fatalf("no STARTTLS: %v", err)
	}
	// plain mode with the allowance sends (SCRAM does not reveal the password anyway).
	a = p.account(t, "tls = \"plain\"\nallow_plaintext = true")
	s, err := Dial(context.Background(), a, password)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
}

func TestParseArgs(t *testing.T) {
	for _, tt := range []struct {
		args []string
		want Args
		err  bool
	}{
		{[]string{"-t", "-i"}, Args{FromHeaders: true}, false},
		{[]string{"-oi", "-f", "me@x", "a@b", "c@d"}, Args{Sender: "me@x", SenderSet: true, Recipients: []string{"a@b", "c@d"}}, false},
		{[]string{"-fme@x", "--", "-weird@b"}, Args{Sender: "me@x", SenderSet: true, Recipients: []string{"-weird@b"}}, false},
		{[]string{"-f", "<>", "a@b"}, Args{SenderSet: true, Recipients: []string{"a@b"}}, false},
		{[]string{"-F", "Full Name", "-oem", "a@b"}, Args{Recipients: []string{"a@b"}}, false},
		{[]string{"-X"}, Args{}, true},
		{[]string{"-f"}, Args{}, true},
	} {
		got, err := ParseArgs(tt.args)
		if (err != nil) != tt.err || (!tt.err && fmt.Sprint(got) != fmt.Sprint(tt.want)) {
			t.Errorf("%q: %+v %v", tt.args, got, err)
		}
	}
}

func TestPrepare(t *testing.T) {
	msg := "From: \"A\" <a@example.org>\r\nTo: b@example.org, \"C\" <c@example.org>\r\nCc: d@example.org\r\nBCC: e@example.org\r\nSubject: x\r\n\r\nBcc: not a header\r\n"
	env, r, err := Prepare(Args{FromHeaders: true, Recipients: []string{"b@example.org"}}, "", strings.NewReader(msg))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(r)
	if env.From != "a@example.org" || strings.Join(env.To, " ") != "b@example.org c@example.org d@example.org e@example.org" {
		t.Fatalf("env %+v", env)
	}
	if want := strings.Replace(msg, "BCC: e@example.org\r\n", "", 1); string(b) != want {
		t.Fatalf("got %q", b)
	}
	// Without -t the message is untouched and needs recipients.
	if _, _, err := Prepare(Args{}, "x@y", strings.NewReader(msg)); err == nil {
		t.Fatal("no recipients accepted")
	}
	if _, _, err := Prepare(Args{Recipients: []string{"a@b"}}, "", strings.NewReader("Subject: x\n\n")); err == nil {
		t.Fatal("no sender accepted")
	}
}

func TestCorruptFileIsReported(t *testing.T) {
	o, _ := Open(t.TempDir())
	os.WriteFile(filepath.Join(o.Dir(), "00000000000000000001.msg"), []byte("garbage\n"), 0o600)
	if _, err := o.List(); err == nil {
		t.Fatal("garbage listed")
	}
}
