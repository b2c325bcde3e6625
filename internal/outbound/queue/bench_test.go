package queue

import (
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"petrel/internal/mail/deliver"
	"petrel/internal/mail/msgauth"
	"petrel/internal/outbound/smtpclient"
	"petrel/internal/store"
	"petrel/internal/store/sqlite"
)

// sink is an MX that takes everything and counts the messages.
type sink struct {
	mu   sync.Mutex
	n    int
	done chan struct{}
	want int
}

func (s *sink) NewSession(*smtp.Conn) (smtp.Session, error) { return sinkSession{s}, nil }

type sinkSession struct{ s *sink }

func (sinkSession) Reset()                               {}
func (sinkSession) Logout() error                        { return nil }
func (sinkSession) Mail(string, *smtp.MailOptions) error { return nil }
func (sinkSession) Rcpt(string, *smtp.RcptOptions) error { return nil }
func (ss sinkSession) Data(r io.Reader) error {
	_, err := io.Copy(io.Discard, r)
	ss.s.mu.Lock()
	ss.s.n++
	if ss.s.n == ss.s.want {
		close(ss.s.done)
	}
	ss.s.mu.Unlock()
	return err
}

// BenchmarkRelay measures the outbound path end to end in one process: b.N messages of 2 KB
// submitted (DKIM-signed, Ed25519 and RSA-2048, queued in the store with group commit) by 8
// concurrent submitters, and delivered by the queue (32 workers) to a loopback sink over
// SMTP. It reports delivered messages per second and the process's CPU time per message.
func BenchmarkRelay(b *testing.B) {
	dir := b.TempDir()
	st, err := sqlite.Open(filepath.Join(dir, "petrel.db"), sqlite.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	log := slog.New(slog.DiscardHandler)
	keys := msgauth.StaticKeys{}
	for _, alg := range []msgauth.Algorithm{msgauth.Ed25519, msgauth.RSA} {
		k, err := msgauth.GenerateKey("example.org", string(alg)+"1", alg, rand.Reader)
		if err != nil {
			b.Fatal(err)
		}
		keys["example.org"] = append(keys["example.org"], k)
	}
	dl := deliver.New(st, log)

	sk := &sink{done: make(chan struct{}), want: b.N}
	srv := smtp.NewServer(sk)
	srv.Domain = "sink.test"
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	go srv.Serve(l)
	defer srv.Close()
	addr := netip.MustParseAddrPort(l.Addr().String())
	client := smtpclient.New(smtpclient.Config{Hostname: "petrel.example.org", Router: fixedRouter{}, Port: int(addr.Port())})
	q := New(Config{Hostname: "petrel.example.org", Workers: 32, PerDomain: 32}, st, client, dl, log)
	dl.SetOutbound(&msgauth.Signer{Keys: keys}, q.Kick)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); q.Run(ctx) }()
	defer func() { cancel(); <-done }()

	body := "From: alice@example.org\r\nTo: x@remote.test\r\nSubject: load\r\n\r\n" +
		strings.Repeat(strings.Repeat("x", 76)+"\r\n", 2048/78)
	var before, after syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &before)
	start := time.Now()
	b.ResetTimer()
	var wg sync.WaitGroup
	next := make(chan int)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				// Ten domains, so that the per-domain limit and connection reuse both play.
				d := fmt.Sprintf("d%d.test", i%10)
				env := deliver.Envelope{MailFrom: "alice@example.org",
					Remote: []store.OutboundRecipient{{Address: "x@" + d, Domain: d}}}
				if _, err := dl.Deliver(ctx, env, strings.NewReader(body)); err != nil {
					b.Error(err)
				}
			}
		}()
	}
	for i := range b.N {
		next <- i
	}
	close(next)
	wg.Wait()
	submitted := time.Since(start)
	select {
	case <-sk.done:
	case <-time.After(5 * time.Minute):
		b.Fatalf("only %d of %d delivered", sk.n, b.N)
	}
	elapsed := time.Since(start)
	b.StopTimer()
	syscall.Getrusage(syscall.RUSAGE_SELF, &after)
	cpu := time.Duration(syscall.TimevalToNsec(after.Utime) + syscall.TimevalToNsec(after.Stime) -
		syscall.TimevalToNsec(before.Utime) - syscall.TimevalToNsec(before.Stime))
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "msg/s")
	b.ReportMetric(float64(b.N)/submitted.Seconds(), "submitted-msg/s")
	b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-µs/msg")
}
