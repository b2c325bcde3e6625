package smtpclient

import (
	"context"
	"io"
	"net"
	"strings"
	"testing"

	"github.com/emersion/go-smtp"

	"petrel/internal/outbound/mx"
)

// sink is a go-smtp backend that takes everything.
type sink struct{}

func (sink) NewSession(*smtp.Conn) (smtp.Session, error) { return sinkSession{}, nil }

type sinkSession struct{}

func (sinkSession) Reset()                               {}
func (sinkSession) Logout() error                        { return nil }
func (sinkSession) Mail(string, *smtp.MailOptions) error { return nil }
func (sinkSession) Rcpt(string, *smtp.RcptOptions) error { return nil }
func (sinkSession) Data(r io.Reader) error               { _, err := io.Copy(io.Discard, r); return err }

// BenchmarkSend sends 2 KB messages to two recipients over one reused session (what the
// queue does for a busy destination), plaintext, to a go-smtp sink on loopback.
func BenchmarkSend(b *testing.B) {
	srv := smtp.NewServer(sink{})
	srv.Domain = "sink.test"
	l, err := net.Listen("tcp", "127.0.0.2:0")
	if err != nil {
		b.Fatal(err)
	}
	go srv.Serve(l)
	b.Cleanup(func() { srv.Close() })
	c := testClient(route(1, mx.TLSOpportunistic), l.Addr().(*net.TCPAddr).Port)
	s, err := c.Open(context.Background(), "example.test", false)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	body := "Subject: bench\r\n\r\n" + strings.Repeat(strings.Repeat("x", 76)+"\r\n", 26)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		res := s.Send(context.Background(), message(body, "a@example.test", "b@example.test"))
		if !res.Recipients[0].Delivered() || !res.Recipients[1].Delivered() {
			b.Fatal(res)
		}
	}
}
