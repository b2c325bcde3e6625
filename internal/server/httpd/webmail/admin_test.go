package webmail

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
)

// fakeManage records the command lines the admin pages run.
type fakeManage struct {
	mu    sync.Mutex
	calls [][]string
	stdin []string
}

func (f *fakeManage) run(_ context.Context, args []string, stdin string) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, args)
	f.stdin = append(f.stdin, stdin)
	if args[0] == "domain" && args[1] == "del" {
		return "", errors.New("domain example.test has accounts")
	}
	return "ran <" + strings.Join(args, " ") + ">\n", nil
}

// last is the last command run that is not one of the dashboard's.
func (f *fakeManage) last() ([]string, string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i := len(f.calls) - 1; i >= 0; i-- {
		if len(f.calls[i]) != 2 || f.calls[i][1] != "list" {
			return f.calls[i], f.stdin[i]
		}
	}
	return nil, ""
}

func (b *browser) form(path string, v url.Values) (*http.Response, string) {
	b.e.t.Helper()
	v.Set("csrf", b.csrf)
	req, _ := http.NewRequest("POST", b.e.url+path, strings.NewReader(v.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := b.c.Do(req)
	if err != nil {
		b.e.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, string(body)
}

func TestAdminPages(t *testing.T) {
	e := newEnv(t)
	fm := &fakeManage{}
	e.wm.SetAdmin(e.st, fm.run)
	if err := e.st.SetAdmin(context.Background(), e.alice.ID, true); err != nil {
		t.Fatal(err)
	}
	user, _ := e.login("bob@example.test", "secret-bob@example.test")
	admin, _ := e.login("alice@example.test", "secret-alice@example.test")

	// A user's session is refused on every admin URL, and nothing runs.
	if r, _ := user.c.Get(e.url + "/admin/"); r.StatusCode != http.StatusForbidden {
		t.Errorf("GET /admin/ as a user: %s", r.Status)
	}
	if r, _ := user.form("/admin/run", url.Values{"action": {"domain-add"}, "domain": {"x.test"}}); r.StatusCode != http.StatusForbidden {
		t.Errorf("POST /admin/run as a user: %s", r.Status)
	}
	if len(fm.calls) != 0 {
		t.Fatalf("a user ran %q", fm.calls)
	}
	// Without a session: 401.
	if r, _ := http.Get(e.url + "/admin/"); r.StatusCode != http.StatusUnauthorized {
		t.Errorf("GET /admin/ without a session: %s", r.Status)
	}

	resp, err := admin.c.Get(e.url + "/admin/")
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(page), "ran &lt;queue list&gt;") || resp.Header.Get("Content-Security-Policy") != PageCSP {
		t.Fatalf("admin page %s:\n%s", resp.Status, page)
	}

	for _, c := range []struct {
		form  url.Values
		argv  string
		stdin string
	}{
		{url.Values{"action": {"account-add"}, "address": {"carol@example.test"}, "password": {"a-long-password"}}, "account add carol@example.test", "a-long-password\n"},
		{url.Values{"action": {"account-quota"}, "address": {"carol@example.test"}, "storage": {"2GiB"}, "messages": {""}}, "account quota carol@example.test 2GiB", ""},
		{url.Values{"action": {"account-limits"}, "address": {"carol@example.test"}, "hour-messages": {"10"}, "day-recipients": {"default"}}, "account limits carol@example.test --hour-messages 10 --day-recipients default", ""},
		{url.Values{"action": {"alias-add"}, "alias": {"info@example.test"}, "targets": {"carol@example.test, bob@example.test"}}, "alias add info@example.test carol@example.test bob@example.test", ""},
		{url.Values{"action": {"queue-hold"}, "id": {"7"}}, "queue hold 7", ""},
		{url.Values{"action": {"dns"}, "domain": {"example.test"}}, "dns example.test", ""},
	} {
		r, body := admin.form("/admin/run", c.form)
		argv, stdin := fm.last()
		if r.StatusCode != 200 || strings.Join(argv, " ") != c.argv || stdin != c.stdin {
			t.Errorf("%v: %s ran %q with stdin %q; want %q", c.form, r.Status, argv, stdin, c.argv)
		}
		if !strings.Contains(body, "petrel "+c.argv) {
			t.Errorf("%v: the page does not show the command", c.form)
		}
	}
	if _, body := admin.form("/admin/run", url.Values{"action": {"domain-del"}, "domain": {"example.test"}}); !strings.Contains(body, "error: domain example.test has accounts") {
		t.Errorf("a failing command's error is not shown:\n%s", body)
	}
	n := len(fm.calls)
	for _, bad := range []url.Values{
		{"action": {"serve"}},
		{"action": {"account-del"}, "address": {"--help"}},
	} {
		if r, _ := admin.form("/admin/run", bad); r.StatusCode != http.StatusBadRequest {
			t.Errorf("%v: %s", bad, r.Status)
		}
	}
	// Without the CSRF token, refused.
	req, _ := http.NewRequest("POST", e.url+"/admin/run", strings.NewReader("action=dns&domain=example.test"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if r, err := admin.c.Do(req); err != nil || r.StatusCode != http.StatusForbidden {
		t.Errorf("without the token: %v %v", r.Status, err)
	}
	if len(fm.calls) != n {
		t.Errorf("refused requests ran %q", fm.calls[n:])
	}
	// The role is checked at every request: taken away, the next request is refused.
	e.st.SetAdmin(context.Background(), e.alice.ID, false)
	if r, _ := admin.c.Get(e.url + "/admin/"); r.StatusCode != http.StatusForbidden {
		t.Errorf("after admin off: %s", r.Status)
	}
}

// TestAdminLive: the dashboard's live figures are read at each request (a change shows at
// the next poll), for admins only.
func TestAdminLive(t *testing.T) {
	e := newEnv(t)
	e.wm.SetAdmin(e.st, (&fakeManage{}).run)
	var mu sync.Mutex
	deliveries := 0
	e.wm.SetLive(func() (any, error) {
		mu.Lock()
		defer mu.Unlock()
		return map[string]any{"deliveries": deliveries, "connections": map[string]int{"smtp": 2}}, nil
	})
	if err := e.st.SetAdmin(context.Background(), e.alice.ID, true); err != nil {
		t.Fatal(err)
	}
	user, _ := e.login("bob@example.test", "secret-bob@example.test")
	admin, _ := e.login("alice@example.test", "secret-alice@example.test")
	if r, _ := user.c.Get(e.url + "/admin/live"); r.StatusCode != http.StatusForbidden {
		t.Errorf("GET /admin/live as a user: %s", r.Status)
	}
	read := func() (n float64, sessions float64) {
		resp, err := admin.c.Get(e.url + "/admin/live")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var v struct {
			Sessions float64 `json:"web_sessions"`
			Live     struct {
				Deliveries  float64        `json:"deliveries"`
				Connections map[string]int `json:"connections"`
			} `json:"live"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&v); err != nil || resp.StatusCode != 200 {
			t.Fatalf("GET /admin/live: %s %v", resp.Status, err)
		}
		if v.Live.Connections["smtp"] != 2 {
			t.Errorf("connections %v", v.Live.Connections)
		}
		return v.Live.Deliveries, v.Sessions
	}
	if n, s := read(); n != 0 || s != 2 {
		t.Errorf("first read: %v deliveries, %v sessions; want 0 and 2", n, s)
	}
	mu.Lock()
	deliveries = 7
	mu.Unlock()
	if n, _ := read(); n != 7 {
		t.Errorf("second read: %v deliveries, want 7", n)
	}
	// The page loads the script that polls it; the script is served.
	if r, _ := admin.c.Get(e.url + "/static/admin.js"); r.StatusCode != 200 {
		t.Errorf("admin.js: %s", r.Status)
	}
}
