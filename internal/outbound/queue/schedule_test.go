package queue

import (
	"testing"
	"time"
)

func TestScheduleWait(t *testing.T) {
	s := Schedule{}
	want := []time.Duration{5 * time.Minute, 10 * time.Minute, 20 * time.Minute, 40 * time.Minute,
		80 * time.Minute, 160 * time.Minute, 4 * time.Hour, 4 * time.Hour}
	for i, w := range want {
		if got := s.Wait(i + 1); got != w {
			t.Errorf("Wait(%d) = %v, want %v", i+1, got, w)
		}
	}
	if got := (Schedule{First: time.Second, Max: 3 * time.Second}).Wait(100); got != 3*time.Second {
		t.Errorf("capped wait = %v", got)
	}
	if got := (Schedule{First: time.Hour, Max: time.Minute}).Wait(1); got != time.Hour {
		t.Errorf("Max below First: wait %v", got)
	}
}

func TestScheduleNext(t *testing.T) {
	q := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	s := Schedule{First: time.Minute, Max: time.Hour, Expire: 3 * time.Hour}
	if next, exp := s.Next(q, q, 1); exp || !next.Equal(q.Add(time.Minute)) {
		t.Errorf("first retry %v %v", next, exp)
	}
	// Close to the end: the next attempt is at the expiry, not after it.
	now := q.Add(2*time.Hour + 30*time.Minute)
	if next, exp := s.Next(q, now, 10); exp || !next.Equal(q.Add(3*time.Hour)) {
		t.Errorf("last retry %v %v", next, exp)
	}
	if _, exp := s.Next(q, q.Add(3*time.Hour), 11); !exp {
		t.Error("not expired at the end")
	}
	// Defaults: five days.
	if _, exp := (Schedule{}).Next(q, q.Add(119*time.Hour), 30); exp {
		t.Error("expired before 5 days")
	}
	if _, exp := (Schedule{}).Next(q, q.Add(120*time.Hour), 30); !exp {
		t.Error("not expired after 5 days")
	}
}

func TestScheduleWarn(t *testing.T) {
	q := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	if (Schedule{}).Warn(q, q.Add(100*time.Hour)) {
		t.Error("warning without DelayWarning")
	}
	s := Schedule{DelayWarning: 4 * time.Hour}
	if s.Warn(q, q.Add(3*time.Hour)) || !s.Warn(q, q.Add(4*time.Hour)) {
		t.Error("warning at the wrong time")
	}
}
