package smtpclient

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"

	"github.com/emersion/go-smtp"

	"petrel/internal/mailtest"
	"petrel/internal/outbound/mx"
)

// recorder is a go-smtp backend that keeps what it was given.
type recorder struct {
	mu   sync.Mutex
	got  []string // "MAIL from opts", "RCPT to opts", "DATA body"
	tlsd bool
}

func (r *recorder) add(s string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.got = append(r.got, s)
}

func (r *recorder) NewSession(c *smtp.Conn) (smtp.Session, error) {
	_, isTLS := c.TLSConnectionState()
	r.mu.Lock()
	r.tlsd = isTLS
	r.mu.Unlock()
	return &recSession{r}, nil
}

type recSession struct{ r *recorder }

func (s *recSession) Reset()        {}
func (s *recSession) Logout() error { return nil }
func (s *recSession) Mail(from string, o *smtp.MailOptions) error {
	s.r.add(fmt.Sprintf("MAIL %s body=%s utf8=%v ret=%s envid=%s size=%d", from, o.Body, o.UTF8, o.Return, o.EnvelopeID, o.Size))
	return nil
}

func (s *recSession) Rcpt(to string, o *smtp.RcptOptions) error {
	if strings.HasPrefix(to, "full@") {
		return &smtp.SMTPError{Code: 452, EnhancedCode: smtp.EnhancedCode{4, 2, 2}, Message: "mailbox full"}
	}
	s.r.add(fmt.Sprintf("RCPT %s notify=%v orcpt=%s;%s", to, o.Notify, o.OriginalRecipientType, o.OriginalRecipient))
	return nil
}

func (s *recSession) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	s.r.add("DATA " + string(b))
	return err
}

// TestGoSMTPServer delivers to emersion/go-smtp's server: STARTTLS, pipelining, SMTPUTF8,
// 8BITMIME and DSN parameters as another implementation reads them.
func TestGoSMTPServer(t *testing.T) {
	rec := &recorder{}
	srv := smtp.NewServer(rec)
	srv.Domain = "mx1.example.test"
	srv.EnableSMTPUTF8, srv.EnableDSN = true, true
	ca := mailtest.NewCA(t)
	srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{ca.Issue(t, "mx1.example.test")}}
	l, err := net.Listen("tcp", "127.0.0.2:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })

	c := testClient(route(1, mx.TLSPKIX), l.Addr().(*net.TCPAddr).Port)
	c.cfg.RootCAs = ca.Pool
	body := "From: jøran@origin.test\r\nSubject: blåbær\r\n\r\nsmørbrød\r\n"
	msg := message(body, "jøran@example.test", "full@example.test", "plain@example.test")
	msg.From = "jøran@origin.test"
	msg.EightBit, msg.UTF8Headers, msg.Ret, msg.EnvID = true, true, "FULL", "Q123"
	msg.Recipients[0].Notify, msg.Recipients[0].ORcpt = "FAILURE,DELAY", "jøran@example.test"
	msg.Recipients[2].Notify = "NEVER"
	res := c.Deliver(context.Background(), "example.test", msg)
	wantReplies(t, res, "250 2.0.0", "452 4.2.2 mailbox full", "250 2.0.0")
	if !res.DSN || !strings.HasSuffix(res.TLS, "verified (pkix)") {
		t.Fatalf("result %+v", res)
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	want := []string{
		fmt.Sprintf("MAIL jøran@origin.test body=8BITMIME utf8=true ret=FULL envid=Q123 size=%d", len(body)),
		"RCPT jøran@example.test notify=[FAILURE DELAY] orcpt=UTF-8;jøran@example.test",
		"RCPT plain@example.test notify=[NEVER] orcpt=;",
		"DATA " + body,
	}
	if strings.Join(rec.got, "\n") != strings.Join(want, "\n") || !rec.tlsd {
		t.Fatalf("server got\n%s\nwant\n%s", strings.Join(rec.got, "\n"), strings.Join(want, "\n"))
	}
}

// TestSmartHostImplicitTLS relays through a server on implicit TLS (port 465 style, RFC
// 8314) whose certificate must verify for the smart host's name.
func TestSmartHostImplicitTLS(t *testing.T) {
	rec := &recorder{}
	srv := smtp.NewServer(rec)
	srv.Domain = "relay.test"
	ca := mailtest.NewCA(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(tls.NewListener(l, &tls.Config{Certificates: []tls.Certificate{ca.Issue(t, "127.0.0.1")}}))
	t.Cleanup(func() { srv.Close() })
	newClient := func(roots *x509.CertPool) *Client {
		return New(Config{Hostname: "client.test", RootCAs: roots,
			SmartHost: &SmartHost{Host: "127.0.0.1", Port: l.Addr().(*net.TCPAddr).Port, ImplicitTLS: true}})
	}
	res := newClient(ca.Pool).Deliver(context.Background(), "anywhere.test", message(body7, "a@anywhere.test"))
	wantReplies(t, res, "250 2.0.0")
	rec.mu.Lock()
	tlsd := rec.tlsd
	rec.mu.Unlock()
	if !strings.HasSuffix(res.TLS, "verified (pkix)") || !tlsd {
		t.Fatalf("result %+v", res)
	}
	res = newClient(mailtest.NewCA(t).Pool).Deliver(context.Background(), "anywhere.test", message(body7, "a@anywhere.test"))
	wantReplies(t, res, "451 4.7.5 TLS with 127.0.0.1")
}
