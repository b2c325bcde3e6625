package load

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// IMAPAppendConfig is the imap-append scenario: it fills a mailbox with the search corpus
// (corpus.go), Clients sessions appending in parallel, Batch messages per command.
type IMAPAppendConfig struct {
	Target
	Account Account
	Auth    IMAPAuth
	Mailbox string // created if missing; default INBOX
	Clients int
	// Messages is the corpus size: messages 0..Messages-1 are appended, each once.
	Messages int
	// Words is the number of words of text per message (about 9 bytes each).
	Words int
	// Batch is the number of messages per command: MULTIAPPEND (RFC 3502) when the server
	// offers it and Batch > 1, else one APPEND each.
	Batch int
}

// RunIMAPAppend runs the imap-append scenario. One op is one message appended (its command
// answered OK).
func RunIMAPAppend(ctx context.Context, cfg IMAPAppendConfig) (*Result, error) {
	switch {
	case cfg.Addr == "":
		return nil, errors.New("imap-append: no server address")
	case cfg.Account.User == "":
		return nil, errors.New("imap-append: no account")
	case cfg.Clients <= 0 || cfg.Messages <= 0 || cfg.Words <= 0:
		return nil, errors.New("imap-append: clients, messages and words must be positive")
	}
	if cfg.Mailbox == "" {
		cfg.Mailbox = "INBOX"
	}
	cfg.Batch = max(cfg.Batch, 1)
	var (
		next, ops, size atomic.Int64
		cs              imapClients
	)
	start := time.Now()
	open := func(int) (*imapClient, error) { return loginIMAP(ctx, cfg.Target, cfg.Account, cfg.Auth) }
	eachClient(ctx, &cs, cfg.Clients, open, nil, func(_ int, c *imapClient, lat *[]time.Duration) sessionEnd {
		if err := c.createMailbox(cfg.Mailbox); err != nil {
			cs.errs.add("%v", err)
			return sessionBroken
		}
		multi := cfg.Batch > 1 && c.caps["MULTIAPPEND"]
		for ctx.Err() == nil {
			n := 1
			if multi {
				n = cfg.Batch
			}
			first := int(next.Add(int64(n))) - n
			if first >= cfg.Messages {
				break
			}
			n = min(n, cfg.Messages-first)
			var msgs [][]byte
			for i := first; i < first+n; i++ {
				var b bytes.Buffer
				sz, _ := corpusMessage(&b, i, cfg.Words)
				size.Add(sz)
				msgs = append(msgs, b.Bytes())
			}
			t1 := time.Now()
			if err := c.appendMany(cfg.Mailbox, msgs, nil); err != nil {
				cs.errs.add("%s: messages %d..%d: %v", cfg.Account.User, first, first+n-1, err)
				var se *imapStatusError
				if !errors.As(err, &se) {
					return sessionBroken // the connection is out of step
				}
				continue
			}
			*lat = append(*lat, time.Since(t1))
			ops.Add(int64(n))
		}
		return sessionDone
	})
	res := &Result{
		Scenario:  "imap-append",
		Target:    cfg.Target.describe(),
		Unit:      "message",
		Ops:       ops.Load(),
		Bytes:     size.Load(),
		Sessions:  cs.clean.Load(),
		Latency:   cs.lat.summary(),
		LatencyOf: "one APPEND or MULTIAPPEND command: sent to tagged OK",
		Connect:   cs.conn.summary(),
	}
	if ctx.Err() != nil {
		res.Stopped = stoppedText(ctx, fmt.Sprintf("%d messages started", next.Load()))
		cs.errs.add("%s", res.Stopped)
	}
	cs.errs.fill(res)
	res.finish(time.Since(start))
	return res, nil
}

// createMailbox creates mailbox unless it exists (INBOX always does).
func (c *imapClient) createMailbox(mailbox string) error {
	if strings.EqualFold(mailbox, "INBOX") {
		return nil
	}
	q, err := quote(mailbox)
	if err != nil {
		return err
	}
	exists := false
	if err := c.command(func(r *imapResponse) error {
		exists = exists || bytes.HasPrefix(r.text, []byte("* LIST "))
		return nil
	}, "LIST \"\" %s", q); err != nil {
		return err
	}
	if exists {
		return nil
	}
	err = c.command(nil, "CREATE %s", q)
	var se *imapStatusError
	if errors.As(err, &se) && strings.Contains(se.text, "ALREADYEXISTS") {
		return nil // another client of the run created it meanwhile
	}
	return err
}

// appendMany appends msgs to mailbox in one command: APPEND for one message, MULTIAPPEND
// (RFC 3502) for more, each with the \Seen flag. Literals are non-synchronizing when the
// server has LITERAL+ (RFC 7888), else each waits for its continuation request. Untagged
// responses go to each (which may be nil).
func (c *imapClient) appendMany(mailbox string, msgs [][]byte, each func(*imapResponse) error) error {
	q, err := quote(mailbox)
	if err != nil {
		return err
	}
	plus := c.caps["LITERAL+"]
	mark := ""
	if plus {
		mark = "+"
	}
	c.tag++
	tag := "a" + strconv.Itoa(c.tag)
	fmt.Fprintf(c.w, "%s APPEND %s", tag, q)
	for _, m := range msgs {
		fmt.Fprintf(c.w, " (\\Seen) {%d%s}\r\n", len(m), mark)
		if !plus {
			if err := c.w.Flush(); err != nil {
				return fmt.Errorf("APPEND: %w", err)
			}
			if err := c.waitContinuation("APPEND", tag); err != nil {
				return err
			}
		}
		c.w.Write(m)
	}
	c.w.WriteString("\r\n")
	if err := c.w.Flush(); err != nil {
		return fmt.Errorf("APPEND: %w", err)
	}
	_, err = c.finish("APPEND", tag, each)
	return err
}

// IMAPSearchConfig is the imap-search scenario: Clients sessions logged in to one account
// with Mailbox selected, each sending "UID SEARCH Key word" for the words in turn.
type IMAPSearchConfig struct {
	Target
	Account  Account
	Auth     IMAPAuth
	Mailbox  string   // default INBOX
	Key      string   // the SEARCH key: TEXT (default), BODY, SUBJECT ...
	Words    []string // searched in turn
	Clients  int
	Searches int           // stop after this many searches in total; 0: see Duration
	Duration time.Duration // stop starting searches after this long (at least one per word)
	// Warmup is the number of untimed searches of each word per session before the timed
	// ones: a server's first search may build what later ones use (a cache, a pending index).
	Warmup int
}

// SearchReport is the imap-search scenario's own part of a Result.
type SearchReport struct {
	Exists int            `json:"exists"` // messages in the mailbox, from SELECT
	Hits   map[string]int `json:"hits"`   // UIDs found, per word
	// HitsPerSearch is the mean of the hits over the timed searches: with one word, its
	// hits (a table row can compare them between servers).
	HitsPerSearch float64 `json:"hits_per_search"`
}

// RunIMAPSearch runs the imap-search scenario. One op is one search answered OK. A word that
// finds a different number of UIDs than its first search did is an error.
func RunIMAPSearch(ctx context.Context, cfg IMAPSearchConfig) (*Result, error) {
	switch {
	case cfg.Addr == "":
		return nil, errors.New("imap-search: no server address")
	case cfg.Account.User == "":
		return nil, errors.New("imap-search: no account")
	case len(cfg.Words) == 0:
		return nil, errors.New("imap-search: no words")
	case cfg.Clients <= 0:
		return nil, errors.New("imap-search: client count must be positive")
	case cfg.Searches <= 0 && cfg.Duration <= 0:
		return nil, errors.New("imap-search: give a search count or a duration")
	}
	if cfg.Mailbox == "" {
		cfg.Mailbox = "INBOX"
	}
	if cfg.Key == "" {
		cfg.Key = "TEXT"
	}
	var (
		begun, ops, hits atomic.Int64
		cs               imapClients
		mu               sync.Mutex
		rep              = &SearchReport{Hits: map[string]int{}}
	)
	// found records a word's hits, and checks them against the first count seen.
	found := func(word string, n int) {
		mu.Lock()
		defer mu.Unlock()
		if first, ok := rep.Hits[word]; !ok {
			rep.Hits[word] = n
		} else if first != n {
			cs.errs.add("SEARCH %s %s: %d UIDs, an earlier search found %d", cfg.Key, word, n, first)
		}
	}
	start := time.Now()
	var stopAt time.Time
	if cfg.Duration > 0 {
		stopAt = start.Add(cfg.Duration)
	}
	open := func(int) (*imapClient, error) { return loginIMAP(ctx, cfg.Target, cfg.Account, cfg.Auth) }
	eachClient(ctx, &cs, cfg.Clients, open, nil, func(k int, c *imapClient, lat *[]time.Duration) sessionEnd {
		exists, err := c.selectMailbox(cfg.Mailbox)
		if err != nil {
			cs.errs.add("%v", err)
			return sessionBroken
		}
		mu.Lock()
		rep.Exists = exists
		mu.Unlock()
		search := func(word string) (int, error) {
			q, err := quote(word)
			if err != nil {
				return 0, err
			}
			n := 0
			err = c.command(func(r *imapResponse) error {
				if rest, ok := bytes.CutPrefix(r.text, []byte("* SEARCH")); ok {
					n += len(bytes.Fields(rest))
				}
				return nil
			}, "UID SEARCH %s %s", cfg.Key, q)
			return n, err
		}
		for range cfg.Warmup {
			for _, w := range cfg.Words {
				n, err := search(w)
				if err != nil {
					cs.errs.add("warm-up: %v", err)
					return sessionBroken
				}
				found(w, n)
			}
		}
		for i := k; ctx.Err() == nil; i++ {
			w := cfg.Words[i%len(cfg.Words)]
			// Every word once at least, then until the budget is spent.
			if i-k >= len(cfg.Words) && !stopAt.IsZero() && time.Now().After(stopAt) {
				break
			}
			if cfg.Searches > 0 && begun.Add(1) > int64(cfg.Searches) {
				break
			}
			t1 := time.Now()
			n, err := search(w)
			if err != nil {
				cs.errs.add("%v", err)
				var se *imapStatusError
				if !errors.As(err, &se) {
					return sessionBroken
				}
				continue
			}
			*lat = append(*lat, time.Since(t1))
			ops.Add(1)
			hits.Add(int64(n))
			found(w, n)
		}
		return sessionDone
	})
	if n := ops.Load(); n > 0 {
		rep.HitsPerSearch = float64(hits.Load()) / float64(n)
	}
	res := &Result{
		Scenario:  "imap-search",
		Target:    cfg.Target.describe(),
		Unit:      "search",
		Ops:       ops.Load(),
		Sessions:  cs.clean.Load(),
		Latency:   cs.lat.summary(),
		LatencyOf: "UID SEARCH " + cfg.Key + " word: sent to tagged OK",
		Connect:   cs.conn.summary(),
		Search:    rep,
	}
	if ctx.Err() != nil {
		res.Stopped = stoppedText(ctx, fmt.Sprintf("%d searches done", ops.Load()))
		cs.errs.add("%s", res.Stopped)
	}
	cs.errs.fill(res)
	res.finish(time.Since(start))
	return res, nil
}
