package load

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"fmt"
	"io"
	"log"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
	"github.com/emersion/go-imap/v2/imapserver/imapmemserver"
)

// fakeIMAP is a real IMAP server for the tests: go-imap's in-memory server
// (imapmemserver), on 127.0.0.1, with a few users whose INBOX holds the
// messages given.
type fakeIMAP struct {
	addr  string
	tls   *tls.Config
	mem   *imapmemserver.Server
	users map[string]*imapmemserver.User
}

type fakeIMAPOptions struct {
	pass        string
	starttls    bool // offer STARTTLS
	implicit    bool // TLS from the first byte
	literalPlus bool // advertise LITERAL+
}

func newFakeIMAP(t testing.TB, o fakeIMAPOptions, users []string, msgs [][]byte) *fakeIMAP {
	t.Helper()
	f := &fakeIMAP{mem: imapmemserver.New(), users: map[string]*imapmemserver.User{}}
	for _, u := range users {
		user := imapmemserver.NewUser(u, o.pass)
		if err := user.Create("INBOX", nil); err != nil {
			t.Fatal(err)
		}
		for _, m := range msgs {
			f.appendTo(t, user, m)
		}
		f.mem.AddUser(user)
		f.users[u] = user
	}
	caps := imap.CapSet{imap.CapIMAP4rev1: {}}
	if o.literalPlus {
		caps[imap.CapLiteralPlus] = struct{}{}
	}
	ln := listen(t)
	if o.starttls || o.implicit {
		f.tls = testTLSConfig(t)
	}
	opts := &imapserver.Options{
		NewSession: func(*imapserver.Conn) (imapserver.Session, *imapserver.GreetingData, error) {
			return f.mem.NewSession(), nil, nil
		},
		Caps:         caps,
		InsecureAuth: !o.starttls && !o.implicit,
		Logger:       log.New(io.Discard, "", 0),
	}
	if o.starttls {
		opts.TLSConfig = f.tls
	}
	if o.implicit {
		ln = tls.NewListener(ln, f.tls)
	}
	s := imapserver.New(opts)
	f.addr = ln.Addr().String()
	go s.Serve(ln)
	t.Cleanup(func() { s.Close() })
	return f
}

// literal is an imap.LiteralReader over bytes, for APPEND into the memory
// server.
type literal struct {
	*bytes.Reader
}

func (l literal) Size() int64 { return l.Reader.Size() }

func (f *fakeIMAP) appendTo(t testing.TB, u *imapmemserver.User, m []byte) {
	t.Helper()
	if _, err := u.Append("INBOX", literal{bytes.NewReader(m)}, &imap.AppendOptions{}); err != nil {
		t.Fatal(err)
	}
}

// count returns the number of messages in a user's INBOX.
func (f *fakeIMAP) count(t testing.TB, user string) int {
	t.Helper()
	st, err := f.users[user].Status("INBOX", &imap.StatusOptions{NumMessages: true})
	if err != nil {
		t.Fatal(err)
	}
	return int(*st.NumMessages)
}

// imapMessages returns test messages: one with a long line (longer than the
// client's read buffer would hold as one slice), one with a line that is
// only a dot, one without a body.
func imapMessages() [][]byte {
	return [][]byte{
		[]byte("Subject: one\r\n\r\nhello\r\n"),
		[]byte("Subject: dots\r\n\r\n.leading dot\r\n.\r\nend\r\n"),
		[]byte("Subject: long\r\n\r\n" + strings.Repeat("x", 40000) + "\r\n"),
		[]byte("Subject: empty body\r\n\r\n"),
	}
}

func TestIMAPFetch(t *testing.T) {
	msgs := imapMessages()
	var total int64
	for _, m := range msgs {
		total += int64(len(m))
	}
	for _, tc := range []struct {
		name  string
		mode  TLSMode
		auth  IMAPAuth
		batch int
	}{
		{"plain login", PlainText, IMAPLogin, 0},
		{"starttls authenticate", StartTLS, IMAPPlain, 0},
		{"tls batches", ImplicitTLS, IMAPLogin, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			accounts := PatternAccounts("user{n}@example.test", "pw", 3)
			srv := newFakeIMAP(t, fakeIMAPOptions{pass: "pw", starttls: tc.mode == StartTLS, implicit: tc.mode == ImplicitTLS},
				ExpandPattern("user{n}@example.test", 3), msgs)
			res, err := RunIMAPFetch(testCtx(t), IMAPFetchConfig{
				Target:   Target{Addr: srv.addr, TLS: tc.mode, Insecure: true, Timeout: 30 * time.Second},
				Accounts: accounts, Auth: tc.auth, Clients: 2, Sessions: 5, Batch: tc.batch,
			})
			if err != nil {
				t.Fatal(err)
			}
			if res.Errors != 0 {
				t.Fatalf("errors: %d %v", res.Errors, res.FirstErrors)
			}
			if res.Ops != 5*4 || res.Bytes != 5*total || res.Sessions != 5 {
				t.Errorf("ops %d bytes %d sessions %d, want 20, %d, 5", res.Ops, res.Bytes, res.Sessions, 5*total)
			}
			commands := 5 // one UID FETCH 1:* per session
			if tc.batch == 3 {
				commands = 5 * 2 // 4 messages in batches of 3
			}
			checkLatency(t, res.Latency, commands)
			checkLatency(t, res.Connect, 5)
			checkJSON(t, res)
			// BODY.PEEK[] must not set \Seen.
			if st, _ := srv.users["user1@example.test"].Status("INBOX", &imap.StatusOptions{NumUnseen: true}); *st.NumUnseen != 4 {
				t.Errorf("%d unseen after the fetch, want 4: the tool set \\Seen", *st.NumUnseen)
			}
		})
	}
}

func TestIMAPFetchChecks(t *testing.T) {
	t.Run("bare LF", func(t *testing.T) {
		srv := newFakeIMAP(t, fakeIMAPOptions{pass: "pw"}, []string{"u@x"},
			[][]byte{[]byte("Subject: ok\r\n\r\nok\r\n"), []byte("Subject: bad\n\nbare\n")})
		res, _ := RunIMAPFetch(testCtx(t), IMAPFetchConfig{
			Target:   Target{Addr: srv.addr, Timeout: 30 * time.Second},
			Accounts: []Account{{"u@x", "pw"}}, Clients: 1,
		})
		// The good message counts, the bad one is an error, and the session
		// still ends with LOGOUT: the client stayed in step.
		if res.Ops != 1 || res.Sessions != 1 || res.Errors == 0 || !strings.Contains(res.FirstErrors[0], "not terminated by CRLF") {
			t.Errorf("ops %d sessions %d errors %d %q", res.Ops, res.Sessions, res.Errors, res.FirstErrors)
		}
	})
	t.Run("wrong password", func(t *testing.T) {
		srv := newFakeIMAP(t, fakeIMAPOptions{pass: "other"}, []string{"u@x"}, imapMessages())
		res, _ := RunIMAPFetch(testCtx(t), IMAPFetchConfig{
			Target:   Target{Addr: srv.addr, Timeout: 30 * time.Second},
			Accounts: []Account{{"u@x", "pw"}}, Clients: 1, Auth: IMAPPlain,
		})
		if res.Errors != 1 || res.Ops != 0 || !strings.Contains(res.FirstErrors[0], "AUTHENTICATE: NO") {
			t.Errorf("errors %d %q", res.Errors, res.FirstErrors)
		}
	})
	t.Run("empty mailbox", func(t *testing.T) {
		srv := newFakeIMAP(t, fakeIMAPOptions{pass: "pw"}, []string{"u@x"}, nil)
		res, _ := RunIMAPFetch(testCtx(t), IMAPFetchConfig{
			Target:   Target{Addr: srv.addr, Timeout: 30 * time.Second},
			Accounts: []Account{{"u@x", "pw"}}, Clients: 1,
		})
		if res.Errors != 1 || !strings.Contains(res.FirstErrors[0], "INBOX is empty") {
			t.Errorf("errors %d %q", res.Errors, res.FirstErrors)
		}
	})
}

// scriptedIMAP answers one connection with canned responses, one per
// command line it reads, and returns what the client sent.
func scriptedIMAP(t *testing.T, greeting string, replies ...string) (addr string, sent chan string) {
	t.Helper()
	ln := listen(t)
	sent = make(chan string, 1)
	go func() {
		defer ln.Close()
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		var got strings.Builder
		defer func() { sent <- got.String() }()
		r := bufio.NewReader(c)
		io.WriteString(c, greeting)
		for _, reply := range replies {
			line, err := r.ReadString('\n')
			if err != nil {
				return
			}
			got.WriteString(line)
			io.WriteString(c, reply)
		}
	}()
	return ln.Addr().String(), sent
}

// A server whose RFC822.SIZE disagrees with the literal, and responses that
// put literals and items in other places, are read correctly.
func TestIMAPFetchParsing(t *testing.T) {
	body := "Subject: x\r\n\r\nbody\r\n"
	addr, sent := scriptedIMAP(t, "* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] hi\r\n",
		"a1 OK logged in\r\n",
		"* 2 EXISTS\r\n* FLAGS (\\Seen)\r\na2 OK [READ-WRITE] done\r\n",
		// Items in another order, a literal in the envelope-like position,
		// and a lying size on the second message.
		fmt.Sprintf("* 1 FETCH (BODY[] {%d}\r\n%s RFC822.SIZE %d UID 7)\r\n", len(body), body, len(body))+
			fmt.Sprintf("* 2 FETCH (UID 9 RFC822.SIZE %d BODY[] {%d}\r\n%s)\r\n", len(body)+1, len(body), body)+
			"a3 OK fetched\r\n",
		"* BYE bye\r\na4 OK bye\r\n")
	res, _ := RunIMAPFetch(testCtx(t), IMAPFetchConfig{
		Target:   Target{Addr: addr, Timeout: 30 * time.Second},
		Accounts: []Account{{"u@x", `p"w\`}}, Clients: 1,
	})
	if res.Ops != 1 || res.Bytes != int64(len(body)) || res.Sessions != 1 {
		t.Errorf("ops %d bytes %d sessions %d, want 1 good message and a clean LOGOUT", res.Ops, res.Bytes, res.Sessions)
	}
	if res.Errors != 2 || !strings.Contains(res.FirstErrors[0], "RFC822.SIZE says") || !strings.Contains(res.FirstErrors[1], "FETCH returned 1 good") {
		t.Errorf("errors %d %q", res.Errors, res.FirstErrors)
	}
	got := <-sent
	for _, want := range []string{`a1 LOGIN "u@x" "p\"w\\"` + "\r\n", "a2 SELECT \"INBOX\"\r\n", "a3 UID FETCH 1:* (UID RFC822.SIZE BODY.PEEK[])\r\n", "a4 LOGOUT\r\n"} {
		if !strings.Contains(got, want) {
			t.Errorf("client sent %q, want %q in it", got, want)
		}
	}
}

func TestIMAPIdle(t *testing.T) {
	for _, mode := range []TLSMode{ImplicitTLS, StartTLS} {
		t.Run(mode.String(), func(t *testing.T) {
			srv := newFakeIMAP(t, fakeIMAPOptions{pass: "pw", implicit: mode == ImplicitTLS, starttls: mode == StartTLS},
				ExpandPattern("u{n}@x", 3), imapMessages()[:1])
			res, err := RunIdle(testCtx(t), IdleConfig{
				Target:   Target{Addr: srv.addr, TLS: mode, Insecure: true, Timeout: 30 * time.Second},
				IMAP:     true,
				Conns:    12,
				Dialers:  4,
				Hold:     50 * time.Millisecond,
				Accounts: PatternAccounts("u{n}@x", "pw", 3), // four sessions per account
				PIDs:     []int{os.Getpid()},
			})
			if err != nil {
				t.Fatal(err)
			}
			id := res.Idle
			if res.Errors != 0 || id.Opened != 12 || id.OpenAfterHold != 12 || !id.LoggedIn || res.Scenario != "imap-idle" {
				t.Errorf("errors %d %v, scenario %s, idle %+v", res.Errors, res.FirstErrors, res.Scenario, id)
			}
			if len(id.Processes) != 1 || id.Processes[0].After.RSSKB <= 0 {
				t.Errorf("memory samples %+v", id.Processes)
			}
			checkLatency(t, res.Latency, 12)
			checkJSON(t, res)
		})
	}
	if _, err := RunIdle(testCtx(t), IdleConfig{Target: Target{Addr: "127.0.0.1:1"}, IMAP: true, Conns: 1}); err == nil {
		t.Error("imap-idle without accounts accepted")
	}
}

// A session in IDLE that the server ends (here: a wrong reply to DONE) is
// counted as lost.
func TestIMAPIdleLost(t *testing.T) {
	addr, _ := scriptedIMAP(t, "* OK [CAPABILITY IMAP4rev1] hi\r\n",
		"a1 OK logged in\r\n",
		"* 0 EXISTS\r\na2 OK selected\r\n",
		"+ idling\r\n",
		"* BYE going away\r\n")
	res, _ := RunIdle(testCtx(t), IdleConfig{
		Target: Target{Addr: addr, Timeout: 30 * time.Second},
		IMAP:   true, Conns: 1, Hold: 10 * time.Millisecond, Accounts: []Account{{"u@x", "pw"}},
	})
	if res.Idle.Opened != 1 || res.Idle.OpenAfterHold != 0 || res.Errors != 1 {
		t.Errorf("errors %d %v, idle %+v", res.Errors, res.FirstErrors, res.Idle)
	}
}

func TestIMAPMixed(t *testing.T) {
	for _, lp := range []bool{false, true} {
		t.Run(fmt.Sprintf("literal+ %v", lp), func(t *testing.T) {
			users := ExpandPattern("u{n}@x", 2)
			var msgs [][]byte
			for i := range 30 {
				msgs = append(msgs, fmt.Appendf(nil, "Subject: m%d\r\nFrom: <a@x>\r\n\r\nbody\r\n", i))
			}
			srv := newFakeIMAP(t, fakeIMAPOptions{pass: "pw", literalPlus: lp}, users, msgs)
			res, err := RunIMAPMixed(testCtx(t), IMAPMixedConfig{
				Target:   Target{Addr: srv.addr, Timeout: 30 * time.Second},
				Accounts: PatternAccounts("u{n}@x", "pw", 2),
				Clients:  4, // two sessions per account: each sees the other's EXPUNGEs
				Commands: 400,
				Window:   10,
				Size:     1000,
			})
			if err != nil {
				t.Fatal(err)
			}
			if res.Errors != 0 {
				t.Fatalf("errors %d %v", res.Errors, res.FirstErrors)
			}
			// A budget of 400 steps; EXPUNGE steps are two commands.
			if res.Ops < 400 || res.Ops > int64(400+400/len(mixedCycle)+4) || res.Sessions != 4 {
				t.Errorf("ops %d sessions %d, want 400 to ~450 commands and 4 clean LOGOUTs", res.Ops, res.Sessions)
			}
			for _, k := range stepNames {
				if res.Mixed[k].Count == 0 {
					t.Errorf("no %s command ran: %v", k, res.Mixed)
				}
			}
			checkJSON(t, res)
			// APPEND and EXPUNGE balance within a few messages per client
			// (an EXPUNGE may find nothing when another session removed the
			// message it marked).
			for _, u := range users {
				if n := srv.count(t, u); n < 30-4 || n > 30+8 {
					t.Errorf("%s has %d messages after the run, want about 30", u, n)
				}
			}
			var text bytes.Buffer
			if err := res.WriteText(&text); err != nil || !strings.Contains(text.String(), "fetch-headers") {
				t.Errorf("text report: %v\n%s", err, text.String())
			}
		})
	}
}

// The client's literal check finds a bare LF however the reads split the
// literal.
func TestHasBareLF(t *testing.T) {
	for _, tc := range []struct {
		prev byte
		buf  string
		want bool
	}{
		{'\n', "a\r\nb\r\n", false},
		{'\n', "a\nb", true},
		{'\r', "\nabc", false}, // CR ended the previous piece
		{'x', "\nabc", true},
		{'\n', "no newline", false},
		{'\n', "\r\n\r\n\n", true},
	} {
		if got := hasBareLF(tc.prev, []byte(tc.buf)); got != tc.want {
			t.Errorf("hasBareLF(%q, %q) = %v", tc.prev, tc.buf, got)
		}
	}
	if n, ok := literalAt([]byte("* 1 FETCH (BODY[] ~{12}")); !ok || n != 12 {
		t.Errorf("literal8: %d %v", n, ok)
	}
	if _, ok := literalAt([]byte("* OK [x] {not}")); ok {
		t.Error("literalAt accepted {not}")
	}
}
