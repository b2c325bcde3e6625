package app

// Returning memory to the operating system after a burst of connections.
//
// A TLS handshake allocates about 63 KB of garbage (mostly the X25519MLKEM768 key exchange),
// while the idle connection it opens keeps about 13 KB. During a burst of handshakes the GC
// lets the heap grow to its goal (live heap × (1 + GOGC/100), 3× at Petrel's GOGC=200), and Go
// gives freed pages back to the OS only slowly and only down to that goal; when connections
// close, what they kept is freed into the same heap. A process that had just taken 2,000 idle
// connections thus held 36 KB for each instead of 14, until a later burst reused the memory
// (docs/benchmarks.md, idle connections).
//
// The trimmer watches the listeners. Once at least trimBurst connections have been opened or
// closed since its last run, and then none for trimQuiet while the process used less than
// trimMaxCPU of a core, it calls debug.FreeOSMemory: one garbage collection, then every free
// page goes back. It never runs while connections keep coming and going or the process is
// busy, so a loaded server does not pay for it; an idle one pays one collection per burst
// (8 ms of CPU with 2,000 connections open).

import (
	"context"
	"log/slog"
	"runtime/debug"
	"runtime/metrics"
	"syscall"
	"time"
)

const (
	trimTick   = time.Second
	trimQuiet  = 2 * time.Second // no connection opened or closed for this long
	trimBurst  = 100             // connections opened or closed since the last trim
	trimMaxCPU = 0.1             // share of one core the process used over the last tick
)

// trimmer decides when to return memory; run drives it with a ticker, tests call tick.
type trimmer struct {
	events  func() uint64        // connections opened or closed so far, over every listener
	cpuTime func() time.Duration // CPU time the process has used so far
	trim    func()               // debug.FreeOSMemory in production
	log     *slog.Logger

	lastEvents uint64        // events() at the previous tick
	lastCPU    time.Duration // cpuTime() at the previous tick
	lastChange time.Time     // when events() last changed
	trimmedAt  uint64        // events() when memory was last returned
}

func newTrimmer(events func() uint64, log *slog.Logger) *trimmer {
	return &trimmer{events: events, cpuTime: processCPUTime, trim: debug.FreeOSMemory, log: log}
}

// run ticks until ctx ends.
func (t *trimmer) run(ctx context.Context) {
	t.lastEvents, t.lastCPU, t.lastChange = t.events(), t.cpuTime(), time.Now()
	t.trimmedAt = t.lastEvents
	tk := time.NewTicker(trimTick)
	defer tk.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-tk.C:
			t.tick(now, trimTick)
		}
	}
}

// tick looks at the last interval of length d ending at now, and trims if it is time to.
// It reports whether it trimmed.
func (t *trimmer) tick(now time.Time, d time.Duration) bool {
	n, cpu := t.events(), t.cpuTime()
	busy := cpu-t.lastCPU > time.Duration(trimMaxCPU*float64(d))
	t.lastCPU = cpu
	if n != t.lastEvents {
		t.lastEvents, t.lastChange = n, now
		return false
	}
	if busy || n-t.trimmedAt < trimBurst || now.Sub(t.lastChange) < trimQuiet {
		return false
	}
	t.trimmedAt = n
	before := heapReleased()
	start := time.Now()
	t.trim()
	t.log.Debug("returned memory to the OS after a burst of connections",
		"released_bytes", heapReleased()-before, "took", time.Since(start).Round(time.Microsecond))
	// The collection itself used CPU; it must not count as load at the next tick.
	t.lastCPU = t.cpuTime()
	return true
}

// heapReleased is the heap memory that the runtime has returned to the OS.
func heapReleased() int64 {
	s := []metrics.Sample{{Name: "/memory/classes/heap/released:bytes"}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindUint64 {
		return 0
	}
	return int64(s[0].Value.Uint64())
}

// processCPUTime is the user and system CPU time the process has used.
func processCPUTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
