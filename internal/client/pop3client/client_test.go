package pop3client

import (
	"bufio"
	"bytes"
	"context"
	"crypto/md5"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"petrel/internal/lib/scram"
	"petrel/internal/mailtest"
)

const (
	msg1 = "Subject: one\r\n\r\nHello\r\n.hidden\r\n..two\r\n.\r\n"
	msg2 = "Subject: two\r\n\r\nline1\r\n"
)

func caConf(t *testing.T, s *mailtest.Server) *tls.Config {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(s.CertPEM) {
		t.Fatal("bad cert")
	}
	return &tls.Config{RootCAs: pool, ServerName: "localhost"}
}

func dialPetrel(t *testing.T, s *mailtest.Server, mode TLSMode) *Client {
	t.Helper()
	addr := s.Addr
	if mode == ImplicitTLS {
		addr = s.TLSAddr
	}
	c, err := Dial(context.Background(), addr, Options{TLS: mode, TLSConf: caConf(t, s), Timeout: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// TestPetrel runs a whole session against the real Petrel server with each login method.
func TestPetrel(t *testing.T) {
	s := mailtest.Start(t)
	acct := s.AddAccount(t, "alice@example.org", "correct horse")
	s.Deliver(t, acct, msg1)
	s.Deliver(t, acct, msg2)

	for _, tt := range []struct {
		mode TLSMode
		mech string
	}{
		{ImplicitTLS, MechAuto}, {StartTLS, MechSCRAM}, {StartTLS, MechPlain}, {ImplicitTLS, MechUser}, {NoTLS, MechSCRAM},
	} {
		t.Run(fmt.Sprintf("%d-%s", tt.mode, tt.mech), func(t *testing.T) {
			c := dialPetrel(t, s, tt.mode)
			if c.TLS() != (tt.mode != NoTLS) {
				t.Fatalf("TLS() = %v", c.TLS())
			}
			if err := c.Login(tt.mech, "alice@example.org", "correct horse", false); err != nil {
				t.Fatal(err)
			}
			n, size, err := c.Stat()
			if err != nil || n != 2 || size != int64(len(msg1)+len(msg2)) {
				t.Fatalf("Stat = %d %d %v", n, size, err)
			}
			list, err := c.List()
			if err != nil || len(list) != 2 || list[0] != (MessageSize{1, int64(len(msg1))}) {
				t.Fatalf("List = %v %v", list, err)
			}
			uids, err := c.UIDL()
			if err != nil || len(uids) != 2 || uids[0].UID == uids[1].UID {
				t.Fatalf("UIDL = %v %v", uids, err)
			}
			var b bytes.Buffer
			if n, err := c.Retr(1, &b); err != nil || b.String() != msg1 || n != int64(len(msg1)) {
				t.Fatalf("Retr = %d %q %v", n, b.String(), err)
			}
			b.Reset()
			if _, err := c.Top(2, 0, &b); err != nil || b.String() != "Subject: two\r\n\r\n" {
				t.Fatalf("Top = %q %v", b.String(), err)
			}
			var pe *Error
			if _, err := c.Retr(9, io.Discard); !errors.As(err, &pe) {
				t.Fatalf("Retr 9 = %v", err)
			}
			if err := c.Noop(); err != nil {
				t.Fatal(err)
			}
			if err := c.Close(); err != nil { // no QUIT: nothing is deleted
				t.Fatal(err)
			}
		})
	}
	if got := len(s.Inbox(t, acct)); got != 2 {
		t.Fatalf("inbox has %d messages", got)
	}
}

func TestPetrelPlaintextRefused(t *testing.T) {
	s := mailtest.Start(t)
	s.AddAccount(t, "alice@example.org", "correct horse")
	c := dialPetrel(t, s, NoTLS)
	for _, mech := range []string{MechPlain, MechUser} {
		if err := c.Login(mech, "alice@example.org", "correct horse", false); !errors.Is(err, ErrNoMechanism) {
			t.Fatalf("%s over plaintext: %v", mech, err)
		}
	}
	// With the explicit allowance it works (the test server allows plaintext).
	if err := c.Login(MechUser, "alice@example.org", "correct horse", true); err != nil {
		t.Fatal(err)
	}
}

func TestPetrelDeleteAndQuit(t *testing.T) {
	s := mailtest.Start(t)
	acct := s.AddAccount(t, "alice@example.org", "correct horse")
	for i := 0; i < 5; i++ {
		s.Deliver(t, acct, fmt.Sprintf("Subject: %d\r\n\r\nbody\r\n", i))
	}
	c := dialPetrel(t, s, ImplicitTLS)
	if err := c.Login(MechAuto, "alice@example.org", "correct horse", false); err != nil {
		t.Fatal(err)
	}
	if err := c.DeleMany([]int{1, 3, 5}); err != nil {
		t.Fatal(err)
	}
	var pe *Error
	if err := c.Dele(3); !errors.As(err, &pe) { // already deleted
		t.Fatalf("second DELE: %v", err)
	}
	if err := c.Quit(); err != nil {
		t.Fatal(err)
	}
	got := s.Inbox(t, acct)
	if len(got) != 2 || !strings.Contains(got[0], "Subject: 1") || !strings.Contains(got[1], "Subject: 3") {
		t.Fatalf("inbox after QUIT: %q", got)
	}
}

func TestPetrelBadPassword(t *testing.T) {
	s := mailtest.Start(t)
	s.AddAccount(t, "alice@example.org", "correct horse")
	for _, mech := range []string{MechSCRAM, MechPlain, MechUser} {
		c := dialPetrel(t, s, ImplicitTLS)
		err := c.Login(mech, "alice@example.org", "wrong", false)
		var pe *Error
		if !errors.As(err, &pe) || pe.Code != "AUTH" {
			t.Fatalf("%s: %v", mech, err)
		}
	}
}

func TestTLSVerification(t *testing.T) {
	s := mailtest.Start(t)
	// No CA: the self-signed certificate must be refused.
	_, err := Dial(context.Background(), s.TLSAddr, Options{TLS: ImplicitTLS, TLSConf: &tls.Config{ServerName: "localhost"}})
	if err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("unverified certificate accepted: %v", err)
	}
	_, err = Dial(context.Background(), s.Addr, Options{TLS: StartTLS, TLSConf: &tls.Config{ServerName: "localhost"}})
	if err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("unverified certificate accepted after STLS: %v", err)
	}
}

// fakeServer serves one connection with a script: for each expected command line (or "" for
// none) the reply to write. It records what the client sent.
type fakeServer struct {
	addr string
	got  chan string
}

func startFake(t *testing.T, greeting string, handle func(cmd string, w io.Writer) bool) *fakeServer {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	f := &fakeServer{addr: l.Addr().String(), got: make(chan string, 100)}
	go func() {
		conn, err := l.Accept()
		if err != nil {
			return
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(10 * time.Second))
		io.WriteString(conn, greeting)
		r := bufio.NewReader(conn)
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				return
			}
			line = strings.TrimRight(line, "\r\n")
			f.got <- line
			if !handle(line, conn) {
				return
			}
		}
	}()
	return f
}

func dialFake(t *testing.T, f *fakeServer, timeout time.Duration) *Client {
	t.Helper()
	c, err := Dial(context.Background(), f.addr, Options{TLS: NoTLS, Timeout: timeout})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestAPOP(t *testing.T) {
	const stamp = "<1896.697170952@dbc.mtview.ca.us>"
	want := md5.Sum([]byte(stamp + "tanstaaf"))
	f := startFake(t, "+OK POP3 server ready "+stamp+"\r\n", func(cmd string, w io.Writer) bool {
		switch cmd {
		case "CAPA":
			io.WriteString(w, "-ERR no CAPA\r\n")
		case "APOP mrose " + hex.EncodeToString(want[:]):
			io.WriteString(w, "+OK maildrop has 0 messages\r\n")
		default:
			io.WriteString(w, "-ERR unexpected\r\n")
		}
		return true
	})
	c := dialFake(t, f, 30*time.Second)
	// RFC 1939 §7's example digest.
	if hex.EncodeToString(want[:]) != "c4c9334bac560ecc979e58001b3e22fb" {
		t.Fatal("digest differs from RFC 1939 example")
	}
	if err := c.Login(MechAuto, "mrose", "tanstaaf", false); err != nil {
		t.Fatal(err)
	}
}

func TestDotUnstuffing(t *testing.T) {
	long := strings.Repeat("x", 100<<10) // longer than the read buffer
	wire := "+OK\r\n..leading\r\n...\r\n.. \r\n" + long + "\r\n." + long + "\r\nmid.dle\r\n.\r\n"
	want := ".leading\r\n..\r\n. \r\n" + long + "\r\n" + long + "\r\nmid.dle\r\n"
	f := startFake(t, "+OK hi\r\n", func(cmd string, w io.Writer) bool {
		if cmd == "RETR 1" {
			io.WriteString(w, wire)
		} else {
			io.WriteString(w, "+OK\r\n")
		}
		return true
	})
	c := dialFake(t, f, 30*time.Second)
	var b bytes.Buffer
	if _, err := c.Retr(1, &b); err != nil {
		t.Fatal(err)
	}
	if b.String() != want {
		t.Fatalf("unstuffed body differs (%d vs %d bytes)", b.Len(), len(want))
	}
	if err := c.Noop(); err != nil { // the stream is still in step after the body
		t.Fatal(err)
	}
}

func TestErrorCodesAndProtocolErrors(t *testing.T) {
	f := startFake(t, "+OK hi\r\n", func(cmd string, w io.Writer) bool {
		switch cmd {
		case "USER a":
			io.WriteString(w, "+OK\r\n")
		case "PASS b":
			io.WriteString(w, "-ERR [IN-USE] maildrop locked\r\n")
		case "STAT":
			io.WriteString(w, "* garbage\r\n")
		}
		return true
	})
	c := dialFake(t, f, 30*time.Second)
	err := c.UserPass("a", "b")
	var pe *Error
	if !errors.As(err, &pe) || pe.Code != "IN-USE" || !pe.Temporary() || pe.Text != "maildrop locked" {
		t.Fatalf("PASS: %#v", err)
	}
	if strings.Contains(err.Error(), "PASS b") {
		t.Fatal("password in error message")
	}
	if _, _, err := c.Stat(); !errors.Is(err, ErrProtocol) {
		t.Fatalf("Stat: %v", err)
	}
	if err := c.Noop(); !errors.Is(err, ErrProtocol) {
		t.Fatalf("client usable after a protocol error: %v", err)
	}
}

// TestTimeout: a server that stops in the middle of a body makes Retr fail after Timeout.
func TestTimeout(t *testing.T) {
	f := startFake(t, "+OK hi\r\n", func(cmd string, w io.Writer) bool {
		io.WriteString(w, "+OK\r\npartial line\r\n")
		time.Sleep(3 * time.Second)
		return false
	})
	c := dialFake(t, f, 200*time.Millisecond)
	_, err := c.Retr(1, io.Discard)
	// Without the deadline Retr would end in EOF when the fake closes after 3 s: a timeout
	// error says the deadline ended it, however slow the machine is.
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("Retr: %v", err)
	}
}

func TestContextCancelCloses(t *testing.T) {
	// The fake never answers (until the test ends), so only the cancel can end Noop
	// before the client's one-minute timeout.
	hold := make(chan struct{})
	f := startFake(t, "+OK hi\r\n", func(cmd string, w io.Writer) bool {
		<-hold
		return false
	})
	defer close(hold)
	ctx, cancel := context.WithCancel(context.Background())
	c, err := Dial(ctx, f.addr, Options{TLS: NoTLS, Timeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	time.AfterFunc(100*time.Millisecond, cancel)
	start := time.Now()
	if err := c.Noop(); err == nil {
		t.Fatal("Noop succeeded")
	}
	if d := time.Since(start); d > 30*time.Second {
		t.Fatalf("took %v: the cancel did not end Noop", d)
	}
}

func TestSTLSRefusedOrInjected(t *testing.T) {
	f := startFake(t, "+OK hi\r\n", func(cmd string, w io.Writer) bool {
		io.WriteString(w, "-ERR no TLS here\r\n")
		return true
	})
	_, err := Dial(context.Background(), f.addr, Options{TLS: StartTLS, TLSConf: &tls.Config{ServerName: "x"}})
	if err == nil || !strings.Contains(err.Error(), "does not offer TLS") {
		t.Fatalf("STLS refused: %v", err)
	}
	// A response followed by injected plaintext must not be accepted.
	f = startFake(t, "+OK hi\r\n", func(cmd string, w io.Writer) bool {
		io.WriteString(w, "+OK begin\r\n+OK injected\r\n")
		return true
	})
	_, err = Dial(context.Background(), f.addr, Options{TLS: StartTLS, TLSConf: &tls.Config{ServerName: "x"}})
	if !errors.Is(err, ErrProtocol) {
		t.Fatalf("injection: %v", err)
	}
}

// TestSCRAMImpostor: a server that answers +OK without proving it knows the password.
func TestSCRAMImpostor(t *testing.T) {
	f := startFake(t, "+OK hi\r\n", func(cmd string, w io.Writer) bool {
		if strings.HasPrefix(cmd, "AUTH SCRAM-SHA-256 ") {
			io.WriteString(w, "+OK welcome\r\n")
		}
		return true
	})
	c := dialFake(t, f, 30*time.Second)
	if err := c.Auth(scram.NewClient("u", "p")); err == nil || !strings.Contains(err.Error(), "proving") {
		t.Fatalf("Auth: %v", err)
	}
}

func TestUIDLDuplicateAndMissing(t *testing.T) {
	f := startFake(t, "+OK hi\r\n", func(cmd string, w io.Writer) bool {
		switch cmd {
		case "UIDL":
			io.WriteString(w, "+OK\r\n1 abc\r\n2 abc\r\n.\r\n")
		}
		return true
	})
	c := dialFake(t, f, 30*time.Second)
	if _, err := c.UIDL(); !errors.Is(err, ErrProtocol) {
		t.Fatalf("duplicate unique-ids: %v", err)
	}
	f = startFake(t, "+OK hi\r\n", func(cmd string, w io.Writer) bool {
		io.WriteString(w, "-ERR unknown command\r\n")
		return true
	})
	c = dialFake(t, f, 30*time.Second)
	if _, err := c.UIDL(); !errors.Is(err, ErrNoUIDL) {
		t.Fatalf("no UIDL: %v", err)
	}
}
