package smtpd_test

import (
	"bufio"
	"context"
	"net"
	"net/netip"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"petrel/internal/mail/door"
	"petrel/internal/mailtest"
	"petrel/internal/outbound/mx"
	"petrel/internal/server/smtpd"
	"petrel/internal/store/sqlite"
)

// The inbound cost of the door: 2 KB messages over 32 clients, the SMTP layer alone (a
// Deliverer that stores nothing), with a DNS server on loopback answering as a local
// caching resolver would. The connection checks run once per SMTP session, so they are
// measured twice: on 32 long sessions (their cost spread over many messages) and with one
// session per message (a check of every connection, as spam usually arrives).
//
//	go test -run '^$' -bench 'Door' -benchtime 20000x ./internal/server/smtpd
func BenchmarkDoor(b *testing.B) {
	d := mailtest.StartDNS(b, mailtest.Zone{
		A: map[string][]string{
			"1.0.0.127.bl1.example": {"127.0.0.2"}, // listed: scores, stays under junk
			"client.example.org":    {"127.0.0.1"},
		},
		PTR: map[string][]string{"127.0.0.1": {"client.example.org"}},
	})
	checks := func(cache bool) *door.Checks {
		res := &mx.NetResolver{DNS: &mx.DNSResolver{Servers: []string{d.Addr}}}
		if cache {
			res.DNS.Cache = &mx.LookupCache{}
		}
		return &door.Checks{Resolver: res, HELO: true, RDNS: true, Weights: door.DefaultWeights,
			Zones: []door.Zone{{Name: "bl1.example", Weight: 1}, {Name: "bl2.example", Weight: 1}}}
	}
	st, err := sqlite.Open(filepath.Join(b.TempDir(), "grey.db"), sqlite.Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	// The client passed greylisting before: the steady state of a known sender, one store
	// read per recipient.
	t0 := time.Now()
	grey := &door.Greylister{Store: st, Now: func() time.Time { return t0 }}
	ip := netip.MustParseAddr("127.0.0.1")
	for _, at := range []time.Time{t0, t0.Add(10 * time.Minute)} {
		t0 = at
		if _, err := grey.Check(context.Background(), ip, "bounce@bench.test", "alice@example.test"); err != nil {
			b.Fatal(err)
		}
	}
	grey.Now = nil
	plain := "From: <news@bench.test>\r\nTo: <alice@example.test>\r\nSubject: bench\r\n" +
		"Date: Mon, 07 Dec 2026 11:00:00 +0000\r\nMessage-ID: <bench@bench.test>\r\n\r\n" +
		strings.Repeat(strings.Repeat("x", 62)+"\r\n", 2048/64-3)
	for _, tc := range []struct {
		name    string
		door    *smtpd.Door
		perConn bool
	}{
		{"off", nil, false},
		{"checks", &smtpd.Door{Checks: checks(true)}, false},
		{"greylist-known", &smtpd.Door{Greylist: grey}, false},
		{"off-newconn", nil, true},
		{"checks-newconn", &smtpd.Door{Checks: checks(true)}, true},
		{"checks-nocache-newconn", &smtpd.Door{Checks: checks(false)}, true},
	} {
		b.Run(tc.name, func(b *testing.B) {
			addr := smtpd.StartBenchServer(b, smtpd.Config{Door: tc.door})
			if !tc.perConn {
				smtpd.BenchInboundMessage(b, addr, 32, "bounce@bench.test", plain, []string{"alice@example.test"})
				return
			}
			benchPerConnection(b, addr, 32, plain)
		})
	}
}

// benchPerConnection sends b.N messages over conns clients, each message in its own SMTP
// session (connect, EHLO, MAIL, RCPT, DATA, QUIT).
func benchPerConnection(b *testing.B, addr string, conns int, body string) {
	var next atomic.Int64
	var wg sync.WaitGroup
	var failed atomic.Value
	b.SetBytes(int64(len(body)))
	b.ResetTimer()
	start := time.Now()
	for range conns {
		wg.Go(func() {
			for i := next.Add(1); i <= int64(b.N); i = next.Add(1) {
				if err := oneSession(addr, body); err != nil {
					failed.Store(err)
					return
				}
			}
		})
	}
	wg.Wait()
	b.StopTimer()
	if err, _ := failed.Load().(error); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
}

type sessionError string

func (e sessionError) Error() string { return string(e) }

func oneSession(addr, body string) error {
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		return err
	}
	defer nc.Close()
	r := bufio.NewReader(nc)
	expect := func(code string) error {
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				return err
			}
			if !strings.HasPrefix(line, code) {
				return sessionError("want " + code + ", got " + line)
			}
			if line[3] == ' ' {
				return nil
			}
		}
	}
	steps := []struct{ send, want string }{
		{"", "220"}, {"EHLO client.example.org\r\n", "250"}, {"MAIL FROM:<bounce@bench.test>\r\n", "250"},
		{"RCPT TO:<alice@example.test>\r\n", "250"}, {"DATA\r\n", "354"}, {body + ".\r\n", "250"}, {"QUIT\r\n", "221"},
	}
	for _, s := range steps {
		if s.send != "" {
			if _, err := nc.Write([]byte(s.send)); err != nil {
				return err
			}
		}
		if err := expect(s.want); err != nil {
			return err
		}
	}
	return nil
}
