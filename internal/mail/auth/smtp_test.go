package auth

import (
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// TestGoSMTP runs every mechanism through go-smtp's real AUTH loops (server and client) over
// a socket: this is how smtpd uses the package, and it checks that SCRAM's server-final
// message reaches the client (see NewSASL).
func TestGoSMTP(t *testing.T) {
	s, _ := newTestService(t)
	authenticated := make(chan int64, 1)
	be := smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) {
		remote := netip.MustParseAddrPort(c.Conn().RemoteAddr().String()).Addr()
		return &testSession{s: s, remote: remote, authenticated: authenticated}, nil
	})
	srv := smtp.NewServer(be)
	srv.Domain = "localhost"
	srv.AllowInsecureAuth = true
	srv.ReadTimeout = 10 * time.Second
	srv.WriteTimeout = 10 * time.Second
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(l)
	defer srv.Close()

	tests := []struct {
		name   string
		client sasl.Client
		ok     bool
	}{
		{"PLAIN", sasl.NewPlainClient("", "user@example.com", "pencil"), true},
		{"PLAIN wrong", sasl.NewPlainClient("", "user@example.com", "pen"), false},
		{"LOGIN", sasl.NewLoginClient("user@example.com", "pencil"), true},
		{"LOGIN wrong", sasl.NewLoginClient("user@example.com", "pen"), false},
		{"SCRAM-SHA-256", &scramClient{username: "user@example.com", password: "pencil"}, true},
		{"SCRAM-SHA-256 wrong", &scramClient{username: "user@example.com", password: "pen"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			conn, err := net.DialTimeout("tcp", l.Addr().String(), 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			conn.SetDeadline(time.Now().Add(time.Minute))
			c := smtp.NewClient(conn)
			defer c.Close()
			if err := c.Hello("client.example"); err != nil {
				t.Fatal(err)
			}
			err = c.Auth(tt.client)
			if tt.ok {
				if err != nil {
					t.Fatalf("Auth: %v", err)
				}
				if id := <-authenticated; id != 7 {
					t.Errorf("session authenticated account %d", id)
				}
			} else {
				var smtpErr *smtp.SMTPError
				if !errors.As(err, &smtpErr) || smtpErr.Code != 454 {
					t.Fatalf("Auth = %v, want a 454 reply", err)
				}
			}
			if err := c.Quit(); err != nil {
				t.Errorf("Quit: %v", err)
			}
		})
	}
}

// testSession is the least go-smtp needs to offer AUTH.
type testSession struct {
	s             *Service
	remote        netip.Addr
	authenticated chan<- int64
}

func (ts *testSession) AuthMechanisms() []string { return ts.s.Mechanisms() }

func (ts *testSession) Auth(mech string) (sasl.Server, error) {
	x, err := ts.s.NewSASL(context.Background(), mech, ts.remote)
	if err != nil {
		return nil, err
	}
	return &reportingSASL{SASL: x, authenticated: ts.authenticated}, nil
}

func (ts *testSession) Reset()                               {}
func (ts *testSession) Logout() error                        { return nil }
func (ts *testSession) Mail(string, *smtp.MailOptions) error { return nil }
func (ts *testSession) Rcpt(string, *smtp.RcptOptions) error { return nil }
func (ts *testSession) Data(r io.Reader) error               { _, err := io.Copy(io.Discard, r); return err }

// reportingSASL reports the account when the exchange completes.
type reportingSASL struct {
	SASL
	authenticated chan<- int64
}

func (r *reportingSASL) Next(response []byte) ([]byte, bool, error) {
	challenge, done, err := r.SASL.Next(response)
	if done && err == nil {
		r.authenticated <- r.Account().ID
	}
	return challenge, done, err
}
