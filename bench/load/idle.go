package load

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// IdleConfig is the idle and imap-idle scenarios: open Conns POP3 or IMAP
// connections, hold them for Hold, and measure what they cost the server
// processes PIDs.
type IdleConfig struct {
	Target
	// IMAP makes the connections IMAP sessions that log in, SELECT Mailbox
	// and wait in IDLE (RFC 2177), the state of a mail client left open; it
	// needs Accounts. Otherwise they are POP3 connections.
	IMAP     bool
	IMAPAuth IMAPAuth
	Mailbox  string        // IMAP: default INBOX
	Conns    int           // N, connections to open
	Dialers  int           // connections opened in parallel; default 16
	Hold     time.Duration // how long to keep them open
	// Accounts, if set, are logged in to, connection i using account
	// i mod len(Accounts). A POP3 server locks a maildrop per session
	// (RFC 1939 §8), so give at least Conns accounts; IMAP servers limit
	// sessions per account (Dovecot: 10 per user and address by default).
	Accounts []Account
	PIDs     []int // server processes to sample; none: no memory figures
	// Children adds every descendant of PIDs, listed again at each sample: a
	// server that forks per connection or per service (Dovecot, Postfix) has
	// processes at the second sample that did not exist at the first.
	Children bool
}

// IdleReport is the idle scenario's own part of a Result.
type IdleReport struct {
	Requested     int       `json:"requested"`
	Opened        int64     `json:"opened"`          // connections that got to the greeting (and login)
	OpenAfterHold int64     `json:"open_after_hold"` // of those, still answering after Hold
	HoldS         float64   `json:"hold_s"`
	LoggedIn      bool      `json:"logged_in"`
	Processes     []ProcMem `json:"processes"`
	Total         ProcMem   `json:"total"`           // Processes summed (PID 0)
	RSSKBPerConn  float64   `json:"rss_kb_per_conn"` // summed over Processes, per opened connection
	PSSKBPerConn  float64   `json:"pss_kb_per_conn"`
	NoFile        uint64    `json:"nofile_limit"` // RLIMIT_NOFILE of the load tool during the run
}

// ProcMem is one server process's memory before the connections were opened
// and while they were held. A process that did not exist at one of the two
// samples has zeros there.
type ProcMem struct {
	PID    int      `json:"pid"`
	Before MemUsage `json:"before"`
	After  MemUsage `json:"after"`
}

// MemUsage is a process's resident and proportional set size.
type MemUsage struct {
	RSSKB int64 `json:"rss_kb"`
	PSSKB int64 `json:"pss_kb"`
}

// ReadMemUsage reads Rss and Pss of process pid from /proc/PID/smaps_rollup
// (Linux 4.14+). PSS splits shared pages among the processes sharing them,
// so it is the fairer figure for a server with several processes.
func ReadMemUsage(pid int) (MemUsage, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
	if err != nil {
		return MemUsage{}, err
	}
	defer f.Close()
	var m MemUsage
	var found int
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		var dst *int64
		switch k {
		case "Rss":
			dst = &m.RSSKB
		case "Pss":
			dst = &m.PSSKB
		default:
			continue
		}
		n, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		if err != nil {
			return MemUsage{}, fmt.Errorf("smaps_rollup of %d: %s: %w", pid, k, err)
		}
		*dst = n
		found++
	}
	if err := sc.Err(); err != nil {
		return MemUsage{}, err
	}
	if found != 2 {
		return MemUsage{}, fmt.Errorf("smaps_rollup of %d: no Rss or Pss line", pid)
	}
	return m, nil
}

// RunIdle runs the idle scenario. It raises its own RLIMIT_NOFILE to fit
// Conns connections if it can.
func RunIdle(ctx context.Context, cfg IdleConfig) (*Result, error) {
	switch {
	case cfg.Addr == "":
		return nil, errors.New("idle: no server address")
	case cfg.Conns <= 0:
		return nil, errors.New("idle: connection count must be positive")
	case cfg.IMAP && len(cfg.Accounts) == 0:
		return nil, errors.New("imap-idle: IDLE needs a login: no accounts")
	}
	if cfg.Mailbox == "" {
		cfg.Mailbox = "INBOX"
	}
	dialers := cfg.Dialers
	if dialers <= 0 {
		dialers = 16
	}
	var errs errorLog
	rep := &IdleReport{Requested: cfg.Conns, HoldS: cfg.Hold.Seconds(), LoggedIn: len(cfg.Accounts) > 0}
	// Each connection is one descriptor here; leave room for the rest.
	limit, err := raiseNoFile(uint64(cfg.Conns) + 64)
	if err != nil {
		errs.add("raising RLIMIT_NOFILE: %v", err)
	}
	rep.NoFile = limit

	before, err := sampleMem(cfg.PIDs, cfg.Children)
	if err != nil {
		return nil, err
	}

	// Open the connections, Dialers at a time.
	var (
		mu      sync.Mutex
		clients []idleConn
		next    atomic.Int64
		lat     samples
		wg      sync.WaitGroup
	)
	defer func() {
		for _, c := range clients {
			c.Close()
		}
	}()
	start := time.Now()
	for range dialers {
		wg.Go(func() {
			var mine []time.Duration
			defer func() { lat.merge(mine) }()
			for ctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if i >= cfg.Conns {
					return
				}
				t0 := time.Now()
				c, err := openIdle(ctx, cfg, i)
				if err != nil {
					if ctx.Err() == nil {
						errs.add("connection %d: %v", i, err)
					}
					continue
				}
				mine = append(mine, time.Since(t0))
				mu.Lock()
				clients = append(clients, c)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	opening := time.Since(start)
	rep.Opened = int64(len(clients))

	select {
	case <-ctx.Done():
	case <-time.After(cfg.Hold):
	}
	// Sample while the connections are still open.
	if len(cfg.PIDs) > 0 {
		after, err := sampleMem(cfg.PIDs, cfg.Children)
		if err != nil {
			errs.add("after: %v", err)
		} else {
			rep.Processes, rep.Total = pairSamples(before, after)
		}
	}
	if rep.Opened > 0 && len(rep.Processes) > 0 {
		rep.RSSKBPerConn = float64(rep.Total.After.RSSKB-rep.Total.Before.RSSKB) / float64(rep.Opened)
		rep.PSSKBPerConn = float64(rep.Total.After.PSSKB-rep.Total.Before.PSSKB) / float64(rep.Opened)
	}

	res := &Result{
		Scenario:  "idle",
		Target:    cfg.Target.describe(),
		Unit:      "connection",
		Ops:       rep.Opened,
		Latency:   lat.summary(),
		LatencyOf: "connection setup: dial, TLS, greeting, login if asked",
		Idle:      rep,
	}
	if cfg.IMAP {
		res.Scenario = "imap-idle"
		res.LatencyOf = "connection setup: dial, TLS, greeting, login, SELECT, IDLE accepted"
	}
	if ctx.Err() != nil {
		res.Stopped = stoppedText(ctx, fmt.Sprintf("%d of %d connections opened", rep.Opened, cfg.Conns))
		errs.add("%s", res.Stopped)
	} else {
		rep.OpenAfterHold = checkOpen(clients, dialers)
		if lost := rep.Opened - rep.OpenAfterHold; lost > 0 {
			errs.add("%d of %d connections closed during the hold", lost, rep.Opened)
		}
		res.Sessions = rep.OpenAfterHold
	}
	errs.fill(res)
	res.finish(opening)
	return res, nil
}

// idleConn is one held connection.
type idleConn interface {
	// check tells whether the connection still answers, and ends its
	// session politely if it does.
	check() bool
	Close() error
}

// openIdle opens connection i: greeting, STLS/STARTTLS or TLS as configured,
// a login if accounts were given, and for IMAP SELECT and IDLE.
func openIdle(ctx context.Context, cfg IdleConfig, i int) (idleConn, error) {
	if cfg.IMAP {
		return openIMAPIdle(ctx, cfg, i)
	}
	c, err := dialPOP3(ctx, cfg.Target)
	if err != nil {
		return nil, err
	}
	if len(cfg.Accounts) > 0 {
		if err := c.login(cfg.Accounts[i%len(cfg.Accounts)]); err != nil {
			c.Close()
			return nil, err
		}
	}
	return c, nil
}

// check sends NOOP and, if the connection answers, QUIT. Any status line
// counts: NOOP is only valid after login (RFC 1939 §5), so a connection that
// is not logged in answers -ERR, which still shows it is open.
func (c *pop3Client) check() bool {
	_, err := c.cmd("NOOP")
	var refusal *errResponse
	if err == nil || errors.As(err, &refusal) {
		_ = c.quit()
		return true
	}
	return false
}

// imapIdleConn is an IMAP session waiting in IDLE.
type imapIdleConn struct {
	*imapClient
	tag string // of the IDLE command in progress
}

func openIMAPIdle(ctx context.Context, cfg IdleConfig, i int) (idleConn, error) {
	c, err := dialIMAP(ctx, cfg.Target)
	if err != nil {
		return nil, err
	}
	tag, err := func() (string, error) {
		if err := c.login(cfg.Accounts[i%len(cfg.Accounts)], cfg.IMAPAuth); err != nil {
			return "", err
		}
		if _, err := c.selectMailbox(cfg.Mailbox); err != nil {
			return "", err
		}
		return c.idle()
	}()
	if err != nil {
		c.Close()
		return nil, err
	}
	return &imapIdleConn{imapClient: c, tag: tag}, nil
}

// check ends the IDLE with DONE: a connection that answers with the tagged
// OK is still open and in step. Then LOGOUT.
func (c *imapIdleConn) check() bool {
	if err := c.done(c.tag); err != nil {
		return false
	}
	_ = c.logout()
	return true
}

// checkOpen checks every connection, parallel at a time, and counts those
// that still answer.
func checkOpen(clients []idleConn, parallel int) int64 {
	var open atomic.Int64
	var wg sync.WaitGroup
	sem := make(chan struct{}, parallel)
	for _, c := range clients {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			if c.check() {
				open.Add(1)
			}
		})
	}
	wg.Wait()
	return open.Load()
}

// sampleMem reads the memory of pids and, with children, of all their
// descendants. A root that cannot be read is an error; a descendant that
// ended between listing and reading is skipped.
func sampleMem(pids []int, children bool) (map[int]MemUsage, error) {
	out := make(map[int]MemUsage, len(pids))
	for _, pid := range pids {
		m, err := ReadMemUsage(pid)
		if err != nil {
			return nil, err
		}
		out[pid] = m
	}
	if !children {
		return out, nil
	}
	desc, err := Descendants(pids)
	if err != nil {
		return nil, err
	}
	for _, pid := range desc {
		if _, ok := out[pid]; ok {
			continue
		}
		if m, err := ReadMemUsage(pid); err == nil {
			out[pid] = m
		}
	}
	return out, nil
}

// pairSamples lines up two samples by PID, in PID order, and sums them.
func pairSamples(before, after map[int]MemUsage) ([]ProcMem, ProcMem) {
	pids := make([]int, 0, len(after))
	for pid := range before {
		pids = append(pids, pid)
	}
	for pid := range after {
		if _, ok := before[pid]; !ok {
			pids = append(pids, pid)
		}
	}
	slices.Sort(pids)
	var total ProcMem
	procs := make([]ProcMem, 0, len(pids))
	for _, pid := range pids {
		p := ProcMem{PID: pid, Before: before[pid], After: after[pid]}
		procs = append(procs, p)
		total.Before.RSSKB += p.Before.RSSKB
		total.Before.PSSKB += p.Before.PSSKB
		total.After.RSSKB += p.After.RSSKB
		total.After.PSSKB += p.After.PSSKB
	}
	return procs, total
}

// Descendants lists every process whose chain of parents reaches one of
// roots (the roots themselves excluded), from the PPID field of
// /proc/PID/stat.
func Descendants(roots []int) ([]int, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	children := map[int][]int{}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue // ended meanwhile
		}
		if ppid, ok := parsePPID(string(b)); ok {
			children[ppid] = append(children[ppid], pid)
		}
	}
	var out []int
	seen := map[int]bool{}
	queue := slices.Clone(roots)
	for _, r := range roots {
		seen[r] = true
	}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		for _, c := range children[p] {
			if !seen[c] {
				seen[c] = true
				out = append(out, c)
				queue = append(queue, c)
			}
		}
	}
	slices.Sort(out)
	return out, nil
}

// parsePPID takes the parent PID from a /proc/PID/stat line:
// "pid (comm) state ppid ...". comm may hold spaces and parentheses, so the
// fields are counted from the last ')'.
func parsePPID(stat string) (int, bool) {
	i := strings.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, false
	}
	f := strings.Fields(stat[i+1:])
	if len(f) < 2 {
		return 0, false
	}
	ppid, err := strconv.Atoi(f[1])
	return ppid, err == nil
}
