package queue

import (
	"strings"
	"testing"
	"time"
)

// TestIdleConnectionReused: a message queued after the previous one to its domain went out
// takes the connection that one left open; when the far side has closed it meanwhile, the
// RSET check notices and the message goes out at once on a new connection (a deferral would
// wait an hour here, past the test's deadline).
func TestIdleConnectionReused(t *testing.T) {
	e := newEnv(t, Config{PerDomain: 1, IdleConnection: time.Hour, Schedule: Schedule{First: time.Hour, Max: time.Hour}})
	e.start()
	send := func(n int) {
		t.Helper()
		e.enqueue("alice@example.org", strings.Replace(msg, "hello", "hello "+string(rune('0'+n)), 1), "x@remote.test")
		e.waitFor("the message to arrive", func() bool { return len(e.far.messages()) == n })
	}
	send(1)
	send(2)
	if n := e.far.conns.Load(); n != 1 {
		t.Errorf("%d connections for 2 messages queued one after the other, want 1", n)
	}
	// The far side drops the connection once it waits idle: a worker still busy with it
	// would send message 3 into it, and that attempt would fail for the hour of Schedule.
	e.waitFor("the connection to wait idle", func() bool {
		e.q.mu.Lock()
		defer e.q.mu.Unlock()
		return len(e.q.idle["remote.test"]) == 1
	})
	e.far.dropAll()
	send(3)
	if n := e.far.conns.Load(); n != 2 {
		t.Errorf("%d connections after the far side closed the idle one, want 2", n)
	}
}

// TestIdleConnectionClosed: a connection nobody needs is closed with QUIT once it has waited
// IdleConnection, and so is every waiting one when the queue stops.
func TestIdleConnectionClosed(t *testing.T) {
	e := newEnv(t, Config{IdleConnection: 50 * time.Millisecond})
	e.start()
	e.enqueue("alice@example.org", msg, "x@remote.test")
	e.waitFor("the message to arrive", func() bool { return len(e.far.messages()) == 1 })
	e.waitFor("the idle connection to close", func() bool { return e.far.logouts.Load() == 1 })

	e2 := newEnv(t, Config{IdleConnection: time.Hour})
	e2.start()
	e2.enqueue("alice@example.org", msg, "x@remote.test")
	e2.waitFor("the message to arrive", func() bool { return len(e2.far.messages()) == 1 })
	if n := e2.far.logouts.Load(); n != 0 {
		t.Fatalf("%d sessions ended while the connection should wait", n)
	}
	e2.stop()
	e2.waitFor("the stop to close the idle connection", func() bool { return e2.far.logouts.Load() == 1 })
}
