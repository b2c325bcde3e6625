package webmail

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

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
	tok, _, _ := e.wm.Sessions.create(e.alice, netip.MustParseAddr("127.0.0.1"))
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

// eventStreams is the number of open live-update connections of BenchmarkEventStreams
// (issue 14: 1,000 open connections under 30 KB each).
const eventStreams = 1000

// BenchmarkEventStreams measures the memory one open /api/events stream holds in the
// server: it opens eventStreams streams over loopback TCP to the real listener
// (httpd.Server), waits for each one's first event, and reports the growth of the Go heap
// and goroutine stacks per stream ("B/stream") after a GC. The client side is a bare TCP
// connection read into one shared buffer, so nearly all of the figure is the server's: its
// connection goroutine, net/http's buffers, the store subscription. Run it with
// -benchtime=1x: each iteration opens and closes every stream.
func BenchmarkEventStreams(b *testing.B) {
	e := newEnv(b)
	tok, _, _ := e.wm.Sessions.create(e.alice, netip.MustParseAddr("127.0.0.1"))
	addr := strings.TrimPrefix(e.url, "http://")
	req := "GET /api/events HTTP/1.1\r\nHost: " + addr + "\r\nCookie: " + cookiePlain + "=" + tok + "\r\n\r\n"
	heap := func() uint64 {
		runtime.GC()
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapInuse + ms.StackInuse
	}
	for b.Loop() {
		before := heap()
		conns := make([]net.Conn, 0, eventStreams)
		buf := make([]byte, 4096)
		for range eventStreams {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				b.Fatal(err)
			}
			conns = append(conns, c)
			c.SetDeadline(time.Now().Add(60 * time.Second))
			if _, err := io.WriteString(c, req); err != nil {
				b.Fatal(err)
			}
			got := ""
			for !strings.Contains(got, "event: hello") {
				n, err := c.Read(buf)
				if err != nil {
					b.Fatalf("stream %d: %v after %q", len(conns), err, got)
				}
				got += string(buf[:n])
			}
		}
		after := heap()
		b.ReportMetric(float64(after-before)/eventStreams, "B/stream")
		for _, c := range conns {
			c.Close()
		}
	}
}
