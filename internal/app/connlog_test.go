package app

import (
	"bufio"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/smtp"
	"net/url"
	"petrel/internal/mailtest"
	"strings"
	"testing"
	"time"
)

// logRecords are the JSON log records written to buf so far.
func logRecords(t *testing.T, buf *mailtest.SyncBuffer) []map[string]any {
	var out []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		if l == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("log line %q: %v", l, err)
		}
		out = append(out, m)
	}
	return out
}

// TestConnectionIDsInLogs: every protocol's session lines carry a "conn" id; one
// connection's lines share it and different connections' differ, so that grepping for one
// id finds one connection.
func TestConnectionIDsInLogs(t *testing.T) {
	var buf mailtest.SyncBuffer
	a, printed := runConfigLog(t, devConfig(t.TempDir()), slog.New(slog.NewJSONHandler(&buf, nil)))
	_, pw, _ := strings.Cut(printed, "created account dev@example.test with password ")
	pw, _, _ = strings.Cut(pw, " ")
	c := &http.Client{}
	waitReady(t, c, "http://"+a.addr(t, "http")+"/readyz")

	// SMTP: two transactions on one connection, one on another.
	for _, n := range []int{2, 1} {
		sc, err := smtp.Dial(a.addr(t, "smtp"))
		if err != nil {
			t.Fatal(err)
		}
		for range n {
			if err := sc.Mail("someone@example.net"); err != nil {
				t.Fatal(err)
			}
			if err := sc.Rcpt("dev@example.test"); err != nil {
				t.Fatal(err)
			}
			w, err := sc.Data()
			if err != nil {
				t.Fatal(err)
			}
			io.WriteString(w, "Subject: x\r\n\r\nx\r\n")
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
		}
		sc.Quit()
	}
	// POP3, IMAP and ManageSieve: a login and a logout each (the session line is written
	// at the end of the session).
	dialogue := func(listener string, steps ...string) {
		nc, err := net.Dial("tcp", a.addr(t, listener))
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		nc.SetDeadline(time.Now().Add(60 * time.Second))
		r := bufio.NewReader(nc)
		for _, s := range steps {
			io.WriteString(nc, s+"\r\n")
		}
		io.Copy(io.Discard, r) // until the server closes
	}
	dialogue("pop3", "USER dev@example.test", "PASS "+pw, "QUIT")
	dialogue("imap", "a LOGIN dev@example.test "+pw, "b LOGOUT")
	dialogue("managesieve", "LOGOUT")
	// HTTP: a refused webmail login is logged.
	req, _ := http.NewRequest("POST", "http://"+a.addr(t, "http")+"/login",
		strings.NewReader(url.Values{"username": {"dev@example.test"}, "password": {"wrong"}, "csrf": {"t"}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.AddCookie(&http.Cookie{Name: "petrel-login", Value: "t"})
	if resp, err := c.Do(req); err != nil {
		t.Fatal(err)
	} else if resp.Body.Close(); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("login with a wrong password: %s", resp.Status)
	}

	want := []string{"smtp transaction", "pop3 session", "imap session", "managesieve session", "webmail login"}
	var byMsg map[string][]string
	deadline := time.Now().Add(60 * time.Second)
	for {
		byMsg = map[string][]string{}
		for _, l := range logRecords(t, &buf) {
			msg, _ := l["msg"].(string)
			for _, w := range want {
				if strings.HasPrefix(msg, w) {
					id, _ := l["conn"].(string)
					byMsg[w] = append(byMsg[w], id)
				}
			}
		}
		if len(byMsg["smtp transaction"]) >= 3 && len(byMsg) == len(want) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("log lines after 60 s: %v\n%s", byMsg, buf.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	owner := map[string]string{}
	for msg, ids := range byMsg {
		for _, id := range ids {
			if id == "" {
				t.Errorf("%q line without a conn id", msg)
			}
			if o, ok := owner[id]; ok && o != msg {
				t.Errorf("conn id %s on a %q line and a %q line", id, o, msg)
			}
			owner[id] = msg
		}
	}
	smtpIDs := byMsg["smtp transaction"]
	if len(smtpIDs) != 3 || smtpIDs[0] != smtpIDs[1] || smtpIDs[1] == smtpIDs[2] {
		t.Errorf("smtp transaction conn ids %v: want the first two equal (one connection), the third different", smtpIDs)
	}
}
