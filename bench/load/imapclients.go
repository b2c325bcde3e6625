package load

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// imapClients is what the scenarios with long IMAP sessions (imap-append, imap-search,
// imap-mixed) share: clients working at once, each logging in, doing its work and logging
// out, and the counts and latencies of the run.
type imapClients struct {
	errs  errorLog
	lat   samples      // of the clients' commands, merged as each session ends
	conn  samples      // of the logins: dial, TLS, greeting, login (and what open adds)
	clean atomic.Int64 // sessions ended with LOGOUT
}

// sessionEnd says how a client's session ended, and so what eachClient does next.
type sessionEnd int

const (
	sessionDone   sessionEnd = iota // the work is done: LOGOUT
	sessionBroken                   // the connection is out of step: close it, the client ends
	sessionAgain                    // the connection broke and work remains: log in again
)

// eachClient runs n clients at once and returns when all have ended. Client k opens its
// session with open(k) (the time it takes goes to conn; a failure is an error), runs
// session on it and ends it as session says. more, if not nil, is asked before each open,
// so that a client whose connection broke (or whose login failed) logs in again while work
// remains; without it each client has one session, or none when its login fails.
// A client is an *imapClient or a type that wraps one with what its scenario keeps.
func eachClient[C interface {
	logout() error
	Close() error
}](ctx context.Context, cs *imapClients, n int, open func(k int) (C, error), more func() bool,
	session func(k int, c C, lat *[]time.Duration) sessionEnd) {
	var wg sync.WaitGroup
	for k := range n {
		wg.Go(func() {
			for more == nil || more() {
				t0 := time.Now()
				c, err := open(k)
				if err != nil {
					if ctx.Err() == nil {
						cs.errs.add("%v", err)
					}
					if more == nil {
						return
					}
					continue
				}
				cs.conn.merge([]time.Duration{time.Since(t0)})
				var lat []time.Duration
				end := session(k, c, &lat)
				cs.lat.merge(lat)
				if end == sessionDone && c.logout() == nil {
					cs.clean.Add(1)
				}
				c.Close()
				if end != sessionAgain || more == nil {
					return
				}
			}
		})
	}
	wg.Wait()
}

// loginIMAP connects and logs in.
func loginIMAP(ctx context.Context, t Target, a Account, how IMAPAuth) (*imapClient, error) {
	c, err := dialIMAP(ctx, t)
	if err != nil {
		return nil, err
	}
	if err := c.login(a, how); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}
