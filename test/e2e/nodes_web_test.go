package e2e

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"
)

// TestSortAndWebmailOnPostgresNodes: nodes on PostgreSQL serve IMAP SORT and THREAD like
// embedded ones (the store has the sort keys), and webmail sessions live in the shared
// database: a login on node A is a session on node B, and `petrel webmail revoke` run
// against node B logs it out on both.
func TestSortAndWebmailOnPostgresNodes(t *testing.T) {
	t.Parallel()
	nodes := postgresNodes(t, 2)
	a, b := nodes[0], nodes[1]
	a.addAccount("alice@example.test", "password-alice")

	// Delivered on A in an order that is neither the subjects' nor the senders'.
	for _, m := range []struct{ from, subject, id, refs, hour string }{
		{"carol@remote.example", "Re: banana", "2@x", "<1@x>", "11"},
		{"bob@remote.example", "cherry", "3@x", "", "12"},
		{"dave@remote.example", "apple", "1@x", "", "10"},
	} {
		msg := "From: " + m.from + "\r\nTo: alice@example.test\r\nSubject: " + m.subject + "\r\nMessage-ID: <" + m.id + ">\r\n"
		if m.refs != "" {
			msg += "References: " + m.refs + "\r\n"
		}
		msg += "Date: Mon, 01 Jan 2024 " + m.hour + ":00:00 +0000\r\n\r\nbody\r\n"
		mustDeliver(t, a, []string{"alice@example.test"}, []byte(msg))
	}
	c := dialIMAPS(t, b.IMAPS)
	c.run(t, "LOGIN alice@example.test password-alice")
	caps := strings.Join(c.run(t, "CAPABILITY"), " ")
	for _, want := range []string{" SORT ", "SORT=DISPLAY", "ESORT", "THREAD=REFERENCES", "THREAD=ORDEREDSUBJECT"} {
		if !strings.Contains(caps+" ", want) {
			t.Errorf("node b does not advertise %s: %q", strings.TrimSpace(want), caps)
		}
	}
	c.run(t, "SELECT INBOX")
	for _, tc := range []struct{ cmd, want string }{
		{"UID SORT (SUBJECT) UTF-8 ALL", "* SORT 3 1 2"},
		{"UID SORT (FROM) UTF-8 ALL", "* SORT 2 1 3"},
		{"UID SORT (DATE) UTF-8 ALL", "* SORT 3 1 2"},
		{"UID THREAD REFERENCES UTF-8 ALL", "* THREAD (3 1)(2)"},
	} {
		if got := c.run(t, tc.cmd); len(got) != 1 || got[0] != tc.want {
			t.Errorf("%s on node b: %q, want %q", tc.cmd, got, tc.want)
		}
	}

	// A webmail login on node A.
	jar, _ := cookiejar.New(nil) // cookies ignore ports: both nodes are 127.0.0.1
	web := &http.Client{Jar: jar, Transport: &http.Transport{TLSClientConfig: ca.tlsConfig()},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := web.Get("https://" + a.HTTPS + "/")
	if err != nil {
		t.Fatal(err)
	}
	page := readAll(t, resp)
	tok := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindStringSubmatch(page)
	if tok == nil {
		t.Fatalf("no login form on node a:\n%s", page)
	}
	resp, err = web.PostForm("https://"+a.HTTPS+"/login", url.Values{"username": {"alice@example.test"},
		"password": {"password-alice"}, "csrf": {tok[1]}})
	if err != nil {
		t.Fatal(err)
	}
	readAll(t, resp)
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("login on node a: %s", resp.Status)
	}
	session := func(in *instance) (int, string) {
		t.Helper()
		resp, err := web.Get("https://" + in.HTTPS + "/api/session")
		if err != nil {
			t.Fatal(err)
		}
		var s struct{ Address string }
		json.Unmarshal([]byte(readAll(t, resp)), &s)
		return resp.StatusCode, s.Address
	}
	for name, in := range map[string]*instance{"a": a, "b": b} {
		if code, addr := session(in); code != 200 || addr != "alice@example.test" {
			t.Fatalf("session on node %s: %d %q, want alice's", name, code, addr)
		}
	}
	if out := b.mustPetrel("", "webmail", "sessions"); !strings.Contains(out, "alice@example.test") {
		t.Fatalf("webmail sessions on node b: %q", out)
	}
	b.mustPetrel("", "webmail", "revoke", "alice@example.test")
	for name, in := range map[string]*instance{"a": a, "b": b} {
		if code, _ := session(in); code != http.StatusUnauthorized {
			t.Errorf("session on node %s after the revocation on node b: %d, want 401", name, code)
		}
	}
}

// readAll reads and closes a response's body.
func readAll(t *testing.T, resp *http.Response) string {
	t.Helper()
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
