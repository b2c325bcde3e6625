package deliver

import (
	"bytes"
	"strings"
	"syscall"
	"testing"
	"time"

	"petrel/internal/mail/sieve"
	"petrel/internal/store"
)

// The cost of Sieve at delivery: the same message delivered to one account without a
// script and with the sieve package's 20-rule script, through a real store, several deliveries at once so that
// the store's group commit works as under SMTP load.

func benchmarkDeliver(b *testing.B, script string) {
	w := newSieveWorld(b, store.SendingLimits{})
	w.d.sieve.cfg.ActiveTTL = 0 // the default cache, as in production
	if script != "" {
		w.script("ann@example.test", script)
	}
	msg := []byte(strings.ReplaceAll(plainMsg, "\n", "\r\n") + strings.Repeat("Some text of an ordinary message body.\r\n", 40))
	target := []store.Target{{AccountID: w.accs["ann@example.test"].ID, Mailbox: store.Inbox}}
	b.SetParallelism(8) // 16 deliveries at once on 2 cores, as an SMTP load has
	b.ReportAllocs()
	// Wall time per message depends on what else the machine runs; the process's CPU time
	// per message (user + system, fsync waits excluded) is the cost the script adds.
	cpu0 := cpuTime()
	b.ResetTimer()
	defer func() {
		b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/float64(b.N), "cpu-µs/op")
	}()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := w.d.Deliver(w.ctx, Envelope{MailFrom: "carl@remote.example", Targets: target}, memBody{bytes.NewReader(msg)}); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

func BenchmarkDeliverNoScript(b *testing.B) { benchmarkDeliver(b, "") }
func BenchmarkDeliver20Rules(b *testing.B)  { benchmarkDeliver(b, sieve.Rules20()) }

// cpuTime is the CPU time (user and system) the process used so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
