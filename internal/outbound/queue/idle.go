package queue

import (
	"context"
	"time"

	"petrel/internal/outbound/smtpclient"
)

// Idle connections. A worker ends when its domain has nothing more due; before, it closed
// its connection, and the next message to that domain, often queued a moment later, paid a
// new connection: MX and address look-ups, TCP, greeting, EHLO and usually STARTTLS (a
// sixth of the relay's CPU in a profile, docs/benchmarks.md). Now the connection waits up
// to Config.IdleConnection for the next worker of its domain, as Postfix's connection
// cache does (smtp_connection_cache_time_limit, 2 s). The rules:
//   - at most PerDomain connections wait per domain, so a domain never has more than twice
//     PerDomain open (the busy ones and the waiting ones);
//   - a connection that carried MessagesPerConnection messages is closed, not kept;
//   - a waiting connection must answer RSET before it carries a message (Session.Ready):
//     the server may have closed it meanwhile, and a message sent into a closed
//     connection would be deferred for a retry minutes later;
//   - the scheduler closes connections that waited longer (closeIdle), and all of them
//     when the queue stops.

// idleSession is a connection waiting for a message.
type idleSession struct {
	sess  *smtpclient.Session
	sent  int       // messages it carried
	since time.Time // when it began to wait
}

// takeIdle returns a waiting connection to domain that still answers, and the messages it
// carried; nil and 0 when there is none.
func (q *Queue) takeIdle(domain string) (*smtpclient.Session, int) {
	for {
		q.mu.Lock()
		list := q.idle[domain]
		if len(list) == 0 {
			q.mu.Unlock()
			return nil, 0
		}
		is := list[len(list)-1] // the most recent: the least likely to have been closed
		if q.idle[domain] = list[:len(list)-1]; len(q.idle[domain]) == 0 {
			delete(q.idle, domain)
		}
		q.mu.Unlock()
		if is.sess.Ready() {
			return is.sess, is.sent
		}
	}
}

// park keeps sess waiting for the next message to domain, or closes it (see the rules).
func (q *Queue) park(ctx context.Context, domain string, sess *smtpclient.Session, sent int) {
	if sess == nil {
		return
	}
	if ctx.Err() != nil || !sess.Usable() || sent >= q.cfg.MessagesPerConnection || q.cfg.IdleConnection < 0 {
		sess.Close()
		return
	}
	q.mu.Lock()
	if len(q.idle[domain]) >= q.cfg.PerDomain {
		q.mu.Unlock()
		sess.Close()
		return
	}
	q.idle[domain] = append(q.idle[domain], idleSession{sess: sess, sent: sent, since: q.cfg.Now()})
	q.mu.Unlock()
}

// closeIdle closes the connections that have waited IdleConnection by now (all of them when
// now is zero: the queue stops) and returns when the next one will have; zero if none
// waits. Expired ones are closed in the background: QUIT to a server that does not answer
// may take its timeout, and the scheduler must not wait for it.
func (q *Queue) closeIdle(now time.Time) time.Time {
	var closing []*smtpclient.Session
	var next time.Time
	q.mu.Lock()
	for domain, list := range q.idle {
		kept := list[:0]
		for _, is := range list {
			expires := is.since.Add(q.cfg.IdleConnection)
			if now.IsZero() || !now.Before(expires) {
				closing = append(closing, is.sess)
				continue
			}
			kept = append(kept, is)
			if next.IsZero() || expires.Before(next) {
				next = expires
			}
		}
		if len(kept) == 0 {
			delete(q.idle, domain)
		} else {
			q.idle[domain] = kept
		}
	}
	q.mu.Unlock()
	for _, sess := range closing {
		if now.IsZero() {
			sess.Close()
		} else {
			go sess.Close()
		}
	}
	return next
}
