package rspamd_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"

	"petrel/internal/mail/door"
	"petrel/internal/mail/rspamd"
)

func TestDecode(t *testing.T) {
	const hdr = "From: <a@example.org>\r\nSubject: hello\r\nX-Spam: forged\r\n\r\n"
	for _, tc := range []struct {
		json   string
		action door.FilterAction
		text   string
		header string
	}{
		{`{"action":"no action","score":0.5}`, door.FilterContinue, "", hdr},
		{`{"action":"reject","score":1000,"messages":{"smtp_message":"5.7.1 Gtube pattern"}}`, door.FilterReject, "5.7.1 Gtube pattern", hdr},
		{`{"action":"soft reject","score":3}`, door.FilterTempFail, "", hdr},
		{`{"action":"greylist","score":4}`, door.FilterTempFail, "4.7.1 greylisted, please try again later", hdr},
		{`{"action":"add header","score":7}`, door.FilterQuarantine, "", hdr[:len(hdr)-2] + "X-Spam: Yes\r\n\r\n"},
		{`{"action":"rewrite subject","score":7,"subject":"*** SPAM *** hello"}`, door.FilterQuarantine, "",
			"From: <a@example.org>\r\nSubject: *** SPAM *** hello\r\nX-Spam: forged\r\n\r\n"},
		{`{"action":"add header","score":7,"milter":{"remove_headers":{"X-Spam":0},"add_headers":{"X-Spam":{"value":"yes","order":0},"X-Rspamd-Score":"7.00"}}}`,
			door.FilterQuarantine, "", "From: <a@example.org>\r\nSubject: hello\r\nX-Rspamd-Score: 7.00\r\nX-Spam: yes\r\n\r\n"},
		{`{"action":"something new","score":1}`, door.FilterContinue, "", hdr},
	} {
		v, err := rspamd.Decode([]byte(tc.json))
		if err != nil {
			t.Errorf("%s: %v", tc.json, err)
			continue
		}
		if v.Action != tc.action || v.Text != tc.text {
			t.Errorf("%s: %+v", tc.json, v)
		}
		if got := string(door.ApplyHeaderMods([]byte(hdr), v.Mods)); got != tc.header {
			t.Errorf("%s: header\n%q\nwant\n%q", tc.json, got, tc.header)
		}
	}
	for _, bad := range []string{``, `{}`, `[1]`, `{"action":5}`} {
		if _, err := rspamd.Decode([]byte(bad)); err == nil {
			t.Errorf("%q decoded", bad)
		}
	}
}

func TestRequest(t *testing.T) {
	var got *http.Request
	var body string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = r
		b, _ := io.ReadAll(r.Body)
		body = string(b)
		io.WriteString(w, `{"action":"no action","score":-1}`)
	}))
	defer srv.Close()
	f := rspamd.New(srv.URL+"/", "secret", nil)
	ctx := context.Background()
	s, err := f.Begin(ctx, door.ConnInfo{IP: netip.MustParseAddr("192.0.2.7"), Helo: "client.example.org", QueueID: "q1"})
	if err != nil {
		t.Fatal(err)
	}
	s.Mail(ctx, "a@example.org")
	s.Rcpt(ctx, "b@example.test")
	s.Rcpt(ctx, "c@example.test")
	v, err := s.Data(ctx, []byte("Subject: x\r\n\r\n"), strings.NewReader("Hello.\r\n"))
	if err != nil || v.Action != door.FilterContinue || v.Score != -1 {
		t.Fatalf("%+v %v", v, err)
	}
	if got.URL.Path != "/checkv2" || got.Header.Get("IP") != "192.0.2.7" || got.Header.Get("Helo") != "client.example.org" ||
		got.Header.Get("From") != "a@example.org" || strings.Join(got.Header.Values("Rcpt"), ",") != "b@example.test,c@example.test" ||
		got.Header.Get("Queue-Id") != "q1" || got.Header.Get("Password") != "secret" {
		t.Errorf("request %s %v", got.URL.Path, got.Header)
	}
	if body != "Subject: x\r\n\r\nHello.\r\n" {
		t.Errorf("body %q", body)
	}
	// An HTTP error is an error, for the policy to decide.
	srv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { http.Error(w, "no", 500) })
	if _, err := s.Data(ctx, []byte("Subject: x\r\n\r\n"), strings.NewReader("")); err == nil {
		t.Error("HTTP 500 gave a verdict")
	}
}
