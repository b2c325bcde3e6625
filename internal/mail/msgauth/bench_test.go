package msgauth

import (
	"context"
	"net/netip"
	"strings"
	"syscall"
	"testing"
	"time"
)

// cpuTime is the CPU time (user and system) the process has used so far.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// reportCPU adds "cpu-µs/op": the process's CPU time (GC included) per operation since
// start. On a shared machine it is steadier than ns/op, which counts the time other
// processes held the CPU too.
func reportCPU(b *testing.B, start time.Duration) {
	b.ReportMetric(float64((cpuTime(b)-start).Microseconds())/float64(b.N), "cpu-µs/op")
}

// message2KB is a typical 2 KB message: the size of the inbound benchmark (bench/).
func message2KB() string {
	var b strings.Builder
	b.WriteString(crlf(plainMessage))
	line := "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor.\r\n"
	for b.Len() < 2048-len(line) {
		b.WriteString(line)
	}
	return b.String()
}

// benchWorld is world() with an SPF record that needs an include, as most senders' do.
func benchWorld(b *testing.B, keys ...Key) (string, *Verifier) {
	dns, _, verifier := world(b)
	dns.setTXT("example.org", "v=spf1 ip4:198.51.100.0/24 include:_spf.example.org -all")
	dns.setTXT("_spf.example.org", "v=spf1 ip4:192.0.2.0/24 ip6:2001:db8::/32 -all")
	signed := sign(b, &Signer{Keys: StaticKeys{"example.org": keys}}, "example.org", message2KB())
	return signed, verifier
}

// BenchmarkVerify is the inbound cost: SPF (with an include), DKIM and DMARC for one 2 KB
// message, DNS answered from memory, so the figure is the CPU cost alone. Compare with the
// inbound throughput per core (issue 11: verification may cost at most 30% of it).
func BenchmarkVerify(b *testing.B) {
	rk, ek := testKeys(b)
	for _, tc := range []struct {
		name string
		keys []Key
	}{{"rsa2048", []Key{rk}}, {"ed25519", []Key{ek}}, {"both", []Key{rk, ek}}, {"unsigned", nil}} {
		b.Run(tc.name, func(b *testing.B) {
			signed, verifier := benchWorld(b, tc.keys...)
			env := Envelope{RemoteIP: netip.MustParseAddr("192.0.2.1"), Helo: "mail.example.org", MailFrom: "alice@example.org"}
			b.SetBytes(int64(len(signed)))
			b.ReportAllocs()
			start := cpuTime(b)
			for b.Loop() {
				v, err := verifier.Verify(context.Background(), env, strings.NewReader(signed))
				if err != nil || v.DMARC.Result != Pass {
					b.Fatalf("%v %+v", err, v)
				}
			}
			reportCPU(b, start)
		})
	}
}

// BenchmarkSign is the outbound cost per 2 KB message: one RSA-2048 signature dominates.
func BenchmarkSign(b *testing.B) {
	rk, ek := testKeys(b)
	msg := message2KB()
	for _, tc := range []struct {
		name string
		keys []Key
	}{{"rsa2048", []Key{rk}}, {"ed25519", []Key{ek}}, {"both", []Key{rk, ek}}} {
		b.Run(tc.name, func(b *testing.B) {
			s := &Signer{Keys: StaticKeys{"example.org": tc.keys}}
			b.SetBytes(int64(len(msg)))
			b.ReportAllocs()
			start := cpuTime(b)
			for b.Loop() {
				if _, err := s.Sign(context.Background(), "example.org", strings.NewReader(msg)); err != nil {
					b.Fatal(err)
				}
			}
			reportCPU(b, start)
		})
	}
}
