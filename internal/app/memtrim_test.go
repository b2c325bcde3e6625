package app

import (
	"context"
	"log/slog"
	"testing"
	"time"
)

// fakeProcess drives a trimmer through a scripted history, one tick per second.
type fakeProcess struct {
	events uint64
	cpu    time.Duration
	trims  int
	now    time.Time
	tr     *trimmer
}

func newFakeProcess() *fakeProcess {
	p := &fakeProcess{now: time.Unix(1000, 0)}
	p.tr = &trimmer{
		events:  func() uint64 { return p.events },
		cpuTime: func() time.Duration { return p.cpu },
		trim:    func() { p.trims++ },
		log:     slog.New(slog.DiscardHandler),
	}
	p.tr.lastChange = p.now
	return p
}

// second lets one second pass in which conns connections are opened or closed and the process
// uses cpu.
func (p *fakeProcess) second(conns uint64, cpu time.Duration) bool {
	p.events += conns
	p.cpu += cpu
	p.now = p.now.Add(time.Second)
	return p.tr.tick(p.now, time.Second)
}

func TestTrimAfterBurst(t *testing.T) {
	p := newFakeProcess()
	// A burst of 2,000 connections over 4 s, with the CPU busy.
	for range 4 {
		if p.second(500, 900*time.Millisecond) {
			t.Fatal("trimmed while connections were arriving")
		}
	}
	// Quiet from here: the trim comes once no connection arrived for trimQuiet.
	var at int
	for i := 1; i <= 10; i++ {
		if p.second(0, time.Millisecond) {
			at = i
		}
	}
	if p.trims != 1 {
		t.Fatalf("%d trims after one burst, want 1", p.trims)
	}
	if at == 0 || time.Duration(at)*time.Second < trimQuiet || time.Duration(at)*time.Second > trimQuiet+time.Second {
		t.Errorf("trimmed %d s after the burst, want about %v", at, trimQuiet)
	}
	// Without another burst, never again.
	for range 100 {
		p.second(0, 0)
	}
	if p.trims != 1 {
		t.Errorf("%d trims, want still 1", p.trims)
	}
}

func TestNoTrimUnderLoad(t *testing.T) {
	t.Run("connections keep arriving", func(t *testing.T) {
		p := newFakeProcess()
		for range 60 {
			p.second(20, 0)
		}
		if p.trims != 0 {
			t.Errorf("%d trims while connections arrived every second", p.trims)
		}
	})
	t.Run("busy CPU", func(t *testing.T) {
		p := newFakeProcess()
		p.second(1000, 0)
		for range 30 {
			p.second(0, 500*time.Millisecond) // long sessions keep the process busy
		}
		if p.trims != 0 {
			t.Fatalf("%d trims while the process was busy", p.trims)
		}
		p.second(0, 0)
		if p.trims != 1 {
			t.Errorf("%d trims once idle, want 1", p.trims)
		}
	})
	t.Run("trickle", func(t *testing.T) {
		p := newFakeProcess()
		for range 20 { // 40 connections, 3 s apart: never a burst worth a collection
			p.second(2, 0)
			p.second(0, 0)
			p.second(0, 0)
			p.second(0, 0)
		}
		if p.trims != 0 {
			t.Fatalf("%d trims for %d connections", p.trims, p.events)
		}
		for range 40 {
			p.second(2, 0)
			p.second(0, 0)
			p.second(0, 0)
			p.second(0, 0)
		}
		if p.trims != 1 {
			t.Errorf("%d trims after %d connections, want 1", p.trims, p.events)
		}
	})
}

// run stops with its context.
func TestTrimmerStops(t *testing.T) {
	tr := newTrimmer(func() uint64 { return 0 }, slog.New(slog.DiscardHandler))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { tr.run(ctx); close(done) }()
	cancel()
	select {
	case <-done:
	case <-time.After(time.Minute):
		t.Fatal("run did not return after cancel")
	}
}
