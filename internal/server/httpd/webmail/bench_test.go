package webmail

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"sync"
	"testing"

	"petrel/internal/server/httpd"
)

// benchMessages is the size of the mailbox of the benchmarks (issue 14: the first page of
// a 100,000-message folder and a one-word search, server time).
const benchMessages = 100_000

// BenchmarkMailbox measures the server's time for the first page of a 100,000-message
// INBOX (FirstPage) and for a search of a word that 1% of its messages have (SearchWord:
// 1,000 hits, of which the newest page is answered): the handler and the store, without
// the network. The mailbox is filled once (about a minute).
func BenchmarkMailbox(b *testing.B) {
	be := benchEnv(b)
	b.Run("FirstPage", func(b *testing.B) {
		for b.Loop() {
			be.get(b, fmt.Sprintf("/api/mailboxes/%d/messages", be.inbox))
		}
	})
	b.Run("SearchWord", func(b *testing.B) {
		for b.Loop() {
			be.get(b, fmt.Sprintf("/api/mailboxes/%d/search?q=kittiwake", be.inbox))
		}
	})
}

type benchState struct {
	e      *env
	mux    http.Handler
	cookie *http.Cookie
	inbox  int64
}

// benchEnv fills alice's INBOX with benchMessages messages, one word in a hundred of
// them "kittiwake", and gives a session for her.
func benchEnv(b *testing.B) *benchState {
	e := newEnv(b)
	const workers = 8 // concurrent deliveries share the store's group commits
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := w; i < benchMessages; i += workers {
				word := "plover"
				if i%100 == 0 {
					word = "kittiwake"
				}
				e.deliver(e.alice, "INBOX", fmt.Sprintf("From: sender%d@example.org\nTo: alice@example.test\nSubject: report number %d\nDate: Mon, 07 Dec 2026 10:00:00 +0000\n\nThe %s was seen at the harbour, entry %d.\n", i, i, word, i))
			}
		})
	}
	wg.Wait()
	mux := httpd.NewRoutes()
	e.wm.Register(mux)
	tok, _ := e.wm.Sessions.create(e.alice, netip.MustParseAddr("127.0.0.1"))
	return &benchState{e: e, mux: mux, cookie: &http.Cookie{Name: cookiePlain, Value: tok}, inbox: e.mailboxID(e.alice, "INBOX")}
}

func (be *benchState) get(b *testing.B, path string) {
	req := httptest.NewRequest("GET", path, nil)
	req.AddCookie(be.cookie)
	w := httptest.NewRecorder()
	be.mux.ServeHTTP(w, req)
	if w.Code != 200 || w.Body.Len() < 1000 {
		b.Fatalf("%s: %d %s", path, w.Code, w.Body.String())
	}
}
