package smtpd_test

// The door of the MX port: DNS lists, greylisting and external filters, through a real
// listener, with the production resolver (mx.NetResolver) asking a test DNS server.

import (
	"context"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"petrel/internal/mail/door"
	"petrel/internal/mailtest"
	"petrel/internal/outbound/mx"
	"petrel/internal/server/smtpd"
	"petrel/internal/store"
)

// doorResolver asks d. Its bound only stops a hang (d answers at once, on loopback), and
// holds on a loaded machine: a query that outlived it would turn a listing into a temporary
// error.
func doorResolver(d *mailtest.DNS) *mx.NetResolver {
	return &mx.NetResolver{DNS: &mx.DNSResolver{Servers: []string{d.Addr}, Timeout: time.Minute}} // no cache
}

// session sends one message from 127.0.0.1 and returns the replies to MAIL, RCPT and the
// end of data ("" for stages not reached).
func session(t *testing.T, ts *testServer, helo string) (mail, rcpt, data string) {
	return sessionMsg(t, ts, helo, message("sender@example.org"))
}

// sessionMsg is session with the message msg.
func sessionMsg(t *testing.T, ts *testServer, helo, msg string) (mail, rcpt, data string) {
	t.Helper()
	c := dial(t, ts.addr)
	c.Run("S: 220\nC: EHLO " + helo + "\nS: 250")
	last := func() string {
		lines, err := c.ReadReply()
		if err != nil {
			t.Fatal(err)
		}
		return lines[len(lines)-1]
	}
	defer c.Run("C: QUIT\nS: 221")
	c.Raw("MAIL FROM:<sender@example.org>\r\n")
	if mail = last(); !strings.HasPrefix(mail, "250") {
		return mail, "", ""
	}
	c.Raw("RCPT TO:<alice@example.test>\r\n")
	if rcpt = last(); !strings.HasPrefix(rcpt, "250") {
		return mail, rcpt, ""
	}
	c.Raw("DATA\r\n")
	if r := last(); !strings.HasPrefix(r, "354") {
		t.Fatalf("DATA: %s", r)
	}
	c.Raw(msg + ".\r\n")
	data = last()
	return mail, rcpt, data
}

func TestDoorDNSLists(t *testing.T) {
	d := mailtest.StartDNS(t, mailtest.Zone{A: map[string][]string{
		"1.0.0.127.block.example":   {"127.0.0.2"},
		"1.0.0.127.score.example":   {"127.0.0.11"},
		"1.0.0.127.refused.example": {"127.255.255.254"},
		"1.0.0.127.white.example":   {"127.0.9.1"},
	}})
	for _, tc := range []struct {
		zones             []door.Zone
		mail, data, where string // reply prefixes; the mailbox the message went to
		reasons           string
	}{
		{[]door.Zone{{Name: "block.example", Action: door.ZoneReject}}, "550 5.7.1", "", "",
			"door=reject score=1.5 reasons=\"dnsbl:block.example=127.0.0.2(reject) rdns=no-ptr(1.5)\""},
		{[]door.Zone{{Name: "score.example", Weight: 4}}, "250", "250", store.Junk,
			"door=junk score=5.5 reasons=\"dnsbl:score.example=127.0.0.11(4) rdns=no-ptr(1.5)\""},
		// Spamhaus's "query refused" answer is an error, not a listing.
		{[]door.Zone{{Name: "refused.example", Weight: 20}}, "250", "250", store.Inbox,
			"door=accept score=1.5 reasons=\"dnsbl:refused.example=refused-127.255.255.254 rdns=no-ptr(1.5)\""},
		{[]door.Zone{{Name: "score.example", Weight: 4}, {Name: "white.example", Weight: -4, Action: door.ZonePass}}, "250", "250", store.Inbox,
			"door=accept score=1.5 reasons=\"dnsbl:score.example=127.0.0.11(4) dnswl:white.example=127.0.9.1(-4) rdns=no-ptr(1.5)\""},
	} {
		ts := startServer(t, smtpd.Config{Door: &smtpd.Door{Checks: &door.Checks{
			Resolver: doorResolver(d), Zones: tc.zones, HELO: true, RDNS: true, Weights: door.DefaultWeights,
		}}}, nil)
		mail, _, data := session(t, ts, "client.example.org")
		if !strings.HasPrefix(mail, tc.mail) || !strings.HasPrefix(data, tc.data) {
			t.Errorf("%v: MAIL %q, end of data %q; want %s, %s", tc.zones, mail, data, tc.mail, tc.data)
		}
		if strings.Contains(mail, "block.example") {
			t.Errorf("the reply names the zone: %s", mail)
		}
		if msgs := ts.fd.delivered(); tc.where != "" && (len(msgs) != 1 || msgs[0].env.Targets[0].Mailbox != tc.where) {
			t.Errorf("%v: delivered %+v, want one into %s", tc.zones, msgs, tc.where)
		}
		if logs := ts.logs.String(); !strings.Contains(logs, tc.reasons) {
			t.Errorf("%v: the log does not have %s:\n%s", tc.zones, tc.reasons, logs)
		}
	}
}

// memGreylist is a store.Greylist in memory.
type memGreylist struct {
	mu sync.Mutex
	m  map[string]store.GreyEntry
}

func (g *memGreylist) GreyGet(_ context.Context, keys []string) ([]store.GreyEntry, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	var out []store.GreyEntry
	for _, k := range keys {
		if e, ok := g.m[k]; ok {
			out = append(out, e)
		}
	}
	return out, nil
}

func (g *memGreylist) GreyPut(_ context.Context, es []store.GreyEntry) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, e := range es {
		g.m[e.Key] = e
	}
	return nil
}

func (g *memGreylist) GreyExpire(context.Context, time.Time) (int64, error) { return 0, nil }

func TestDoorGreylisting(t *testing.T) {
	d := mailtest.StartDNS(t, mailtest.Zone{A: map[string][]string{"1.0.0.127.white.example": {"127.0.9.1"}}})
	var mu sync.Mutex
	now := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	gl := &door.Greylister{Store: &memGreylist{m: map[string]store.GreyEntry{}}, Now: clock}
	ts := startServer(t, smtpd.Config{Door: &smtpd.Door{Greylist: gl}}, nil)
	if _, rcpt, _ := session(t, ts, "client.example.org"); !strings.HasPrefix(rcpt, "451 4.7.1") {
		t.Fatalf("first attempt: RCPT %q, want 451 4.7.1", rcpt)
	}
	if _, rcpt, _ := session(t, ts, "client.example.org"); !strings.HasPrefix(rcpt, "451 4.7.1") {
		t.Fatalf("immediate retry: RCPT %q, want 451 4.7.1", rcpt)
	}
	mu.Lock()
	now = now.Add(6 * time.Minute)
	mu.Unlock()
	if _, _, data := session(t, ts, "client.example.org"); !strings.HasPrefix(data, "250") {
		t.Fatalf("retry after the delay: %q", data)
	}
	if !strings.Contains(ts.logs.String(), "greylist=passed") {
		t.Errorf("the log does not say the triplet passed:\n%s", ts.logs.String())
	}

	// A client on an allow list is never greylisted.
	ts = startServer(t, smtpd.Config{Door: &smtpd.Door{Greylist: &door.Greylister{Store: &memGreylist{m: map[string]store.GreyEntry{}}, Now: clock},
		Checks: &door.Checks{Resolver: doorResolver(d), Zones: []door.Zone{{Name: "white.example", Action: door.ZonePass}}}}}, nil)
	if _, _, data := session(t, ts, "client.example.org"); !strings.HasPrefix(data, "250") {
		t.Fatalf("DNSWL client: %q", data)
	}
}

// fakeFilter answers every stage with the verdict of its table.
type fakeFilter struct {
	mail, rcpt, data door.Verdict
	slow             string // the stage that waits until its deadline
	mu               sync.Mutex
	seen             []string
}

func (f *fakeFilter) Name() string { return "fake" }

func (f *fakeFilter) Begin(ctx context.Context, c door.ConnInfo) (door.FilterSession, error) {
	f.record("connect " + c.IP.String() + " " + c.Helo)
	return &fakeFilterSession{f}, nil
}

func (f *fakeFilter) record(s string) {
	f.mu.Lock()
	f.seen = append(f.seen, s)
	f.mu.Unlock()
}

type fakeFilterSession struct{ f *fakeFilter }

func (s *fakeFilterSession) stage(ctx context.Context, name string, v door.Verdict) (door.Verdict, error) {
	if s.f.slow == name {
		<-ctx.Done()
		return door.Verdict{}, ctx.Err()
	}
	return v, nil
}

func (s *fakeFilterSession) Mail(ctx context.Context, from string) (door.Verdict, error) {
	s.f.record("mail " + from)
	return s.stage(ctx, "mail", s.f.mail)
}

func (s *fakeFilterSession) Rcpt(ctx context.Context, rcpt string) (door.Verdict, error) {
	s.f.record("rcpt " + rcpt)
	return s.stage(ctx, "rcpt", s.f.rcpt)
}

func (s *fakeFilterSession) Data(ctx context.Context, hdr []byte, body io.Reader) (door.Verdict, error) {
	b, _ := io.ReadAll(body)
	s.f.record("data " + strings.SplitN(string(hdr), "\r\n", 2)[0] + " " + strings.TrimSpace(string(b)))
	return s.stage(ctx, "data", s.f.data)
}

func (s *fakeFilterSession) Close() error { s.f.record("close"); return nil }

func TestDoorFilters(t *testing.T) {
	for _, tc := range []struct {
		name             string
		f                *fakeFilter
		failOpen         bool
		mail, rcpt, data string // reply prefixes ("" for not reached)
		where            string // the mailbox it was stored in, "" for none
		header           string // a header line of the stored message
	}{
		{name: "continue", f: &fakeFilter{}, mail: "250", rcpt: "250", data: "250", where: store.Inbox},
		{name: "reject at data", f: &fakeFilter{data: door.Verdict{Action: door.FilterReject, Code: 550, Text: "5.7.1 Gtube pattern"}},
			mail: "250", rcpt: "250", data: "550 5.7.1 Gtube pattern"},
		{name: "reject at mail", f: &fakeFilter{mail: door.Verdict{Action: door.FilterReject}}, mail: "550 5.7.1"},
		{name: "tempfail at rcpt", f: &fakeFilter{rcpt: door.Verdict{Action: door.FilterTempFail, Text: "4.7.1 later"}}, mail: "250", rcpt: "451 4.7.1 later"},
		{name: "quarantine", f: &fakeFilter{data: door.Verdict{Action: door.FilterQuarantine}}, mail: "250", rcpt: "250", data: "250", where: store.Junk},
		{name: "discard", f: &fakeFilter{data: door.Verdict{Action: door.FilterDiscard}}, mail: "250", rcpt: "250", data: "250"},
		{name: "headers", f: &fakeFilter{data: door.Verdict{Mods: []door.HeaderMod{
			{Op: door.HeaderAdd, Name: "X-Spam", Value: "Yes"}, {Op: door.HeaderChange, Name: "Subject", Index: 1, Value: "*** SPAM *** test"}}}},
			mail: "250", rcpt: "250", data: "250", where: store.Inbox, header: "Subject: *** SPAM *** test\r\nDate"},
		{name: "slow, fail-open", f: &fakeFilter{slow: "data"}, failOpen: true, mail: "250", rcpt: "250", data: "250", where: store.Inbox},
		{name: "slow, fail-closed", f: &fakeFilter{slow: "data"}, mail: "250", rcpt: "250", data: "451 4.3.0"},
		{name: "slow at mail, fail-open", f: &fakeFilter{slow: "mail"}, failOpen: true, mail: "250", rcpt: "250", data: "250", where: store.Inbox},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// A stage runs out of time when the call outlives the bound, whether the filter
			// was slow or the machine was: a short bound is for the slow cases, where it is
			// what the case tests; the others must not depend on the scheduler.
			timeout := time.Minute
			if tc.f.slow != "" {
				timeout = 300 * time.Millisecond
			}
			ts := startServer(t, smtpd.Config{Door: &smtpd.Door{Filters: []smtpd.FilterHook{
				{Filter: tc.f, Timeout: timeout, FailOpen: tc.failOpen}}}}, nil)
			mail, rcpt, data := session(t, ts, "client.example.org")
			for _, r := range [][2]string{{mail, tc.mail}, {rcpt, tc.rcpt}, {data, tc.data}} {
				if !strings.HasPrefix(r[0], r[1]) || r[1] == "" && r[0] != "" {
					t.Errorf("replies %q %q %q, want %q %q %q", mail, rcpt, data, tc.mail, tc.rcpt, tc.data)
					break
				}
			}
			msgs := ts.fd.delivered()
			switch {
			case tc.where == "" && len(msgs) != 0:
				t.Errorf("stored %d messages, want none", len(msgs))
			case tc.where != "" && (len(msgs) != 1 || msgs[0].env.Targets[0].Mailbox != tc.where):
				t.Errorf("stored %+v, want one into %s", msgs, tc.where)
			case tc.header != "" && !strings.Contains(msgs[0].body, tc.header):
				t.Errorf("stored message lacks %q:\n%s", tc.header, msgs[0].body)
			}
			if tc.header != "" && !strings.Contains(msgs[0].body, "\r\n\r\nHello.") || tc.header != "" && !strings.Contains(msgs[0].body, "X-Spam: Yes\r\n\r\n") {
				t.Errorf("header changes misplaced:\n%s", msgs[0].body)
			}
			// The conversation is closed when the session ends, which may come just after
			// the reply to QUIT.
			var seen string
			for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
				tc.f.mu.Lock()
				seen = strings.Join(tc.f.seen, "; ")
				tc.f.mu.Unlock()
				if strings.HasSuffix(seen, "close") {
					break
				}
			}
			if !strings.HasPrefix(seen, "connect 127.0.0.1 client.example.org; mail sender@example.org") || !strings.HasSuffix(seen, "close") {
				t.Errorf("the filter saw %s", seen)
			}
			if tc.data != "" && tc.f.slow != "mail" && !strings.Contains(seen, "data From: <sender@example.org> Hello.") {
				t.Errorf("the filter did not see the message: %s", seen)
			}
		})
	}
}

// unknownFilter is fakeFilter whose sessions also take unknown commands.
type unknownFilter struct{ fakeFilter }

func (f *unknownFilter) Begin(ctx context.Context, c door.ConnInfo) (door.FilterSession, error) {
	f.record("connect " + c.IP.String() + " " + c.Helo)
	return &unknownSession{fakeFilterSession{&f.fakeFilter}}, nil
}

type unknownSession struct{ fakeFilterSession }

func (s *unknownSession) Unknown(_ context.Context, line string) (door.Verdict, error) {
	s.f.record("unknown " + line)
	return door.Verdict{Action: door.FilterReject}, nil
}

// TestDoorUnknownCommand: a command the server does not know, sent within a transaction,
// reaches the filters that take it (a milter's SMFIC_UNKNOWN); the client still gets 500,
// and the filter's refusal of the command does not refuse the message.
func TestDoorUnknownCommand(t *testing.T) {
	f := &unknownFilter{}
	ts := startServer(t, smtpd.Config{Door: &smtpd.Door{Filters: []smtpd.FilterHook{{Filter: f}}}}, nil)
	c := dial(t, ts.addr)
	c.Run(`
		S: 220
		C: EHLO client.example.org
		S: 250
		C: XYZW before any transaction
		S: 500
		C: MAIL FROM:<sender@example.org>
		S: 250
		C: XYZW plugh
		S: 500 5.5.2
		C: RCPT TO:<alice@example.test>
		S: 250
		C: DATA
		S: 354
		C: Subject: hi
		C:
		C: Hello.
		C: .
		S: 250
		C: QUIT
		S: 221
	`)
	f.mu.Lock()
	seen := strings.Join(f.seen, "; ")
	f.mu.Unlock()
	if !strings.Contains(seen, "mail sender@example.org; unknown XYZW plugh; rcpt alice@example.test") || strings.Contains(seen, "before") {
		t.Errorf("the filter saw %s", seen)
	}
}
