package queue

import "time"

// Schedule says when a recipient that failed temporarily is tried again, when the queue
// gives up on it, and when its sender hears that it is late.
//
// The wait after the n-th failed attempt is First·2^(n-1), capped at Max: with the
// defaults 5m, 10m, 20m, 40m, 1h20m, 2h40m, then every 4h, about 35 attempts in 5 days.
// Doubling keeps the first retries close (most temporary failures are greylisting or a
// restart, over within minutes) and the late ones cheap. RFC 5321 §4.5.4.1 asks for at
// least 30 minutes between retries to one destination and 4-5 days before giving up; the
// first retries come sooner than 30 minutes, as Postfix's and Exim's do, because
// greylisting expects exactly that.
type Schedule struct {
	First time.Duration // wait after the first failure; default 5m
	Max   time.Duration // longest wait; default 4h
	// Expire is how long after queueing a message is given up (a DSN "failed"); default
	// 120h (5 days).
	Expire time.Duration
	// DelayWarning, when positive, sends one "delayed" DSN per recipient (as NOTIFY allows)
	// once the message has waited this long; default 0 (off). Postfix's delay_warning_time
	// is off by default too: most senders would rather not hear of a delay that ends well.
	DelayWarning time.Duration
}

// Defaults of Schedule.
const (
	DefaultFirst  = 5 * time.Minute
	DefaultMax    = 4 * time.Hour
	DefaultExpire = 5 * 24 * time.Hour
)

func (s Schedule) withDefaults() Schedule {
	if s.First <= 0 {
		s.First = DefaultFirst
	}
	if s.Max <= 0 {
		s.Max = DefaultMax
	}
	if s.Max < s.First {
		s.Max = s.First
	}
	if s.Expire <= 0 {
		s.Expire = DefaultExpire
	}
	return s
}

// Wait is the pause after the given number of failed attempts (1 for the first).
func (s Schedule) Wait(failures int) time.Duration {
	s = s.withDefaults()
	w := s.First
	for i := 1; i < failures; i++ {
		w *= 2
		if w >= s.Max {
			return s.Max
		}
	}
	return w
}

// Next is when a recipient queued at queued and failed for the failures-th time at now is
// tried again; expired is true when that would be past Expire, and the recipient bounces.
// The last attempt is made at the expiry instant itself rather than skipped, so a message
// gets its full lifetime.
func (s Schedule) Next(queued, now time.Time, failures int) (next time.Time, expired bool) {
	s = s.withDefaults()
	end := queued.Add(s.Expire)
	if !now.Before(end) {
		return time.Time{}, true
	}
	next = now.Add(s.Wait(failures))
	if next.After(end) {
		next = end
	}
	return next, false
}

// Warn reports whether a recipient queued at queued deserves its delay warning at now.
func (s Schedule) Warn(queued, now time.Time) bool {
	return s.DelayWarning > 0 && !now.Before(queued.Add(s.DelayWarning))
}
