package httpd

import (
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"
	"time"

	"petrel/internal/mailtest"
)

// TestMetricsCounts: what the listeners report comes out of the scrape under the
// documented names and labels, with the Go runtime beside it.
func TestMetricsCounts(t *testing.T) {
	m := NewMetrics()
	smtp, pop := m.Listener("smtp"), m.Listener("pop3s")
	for range 3 {
		smtp.Message("data", "2.0.0")
	}
	smtp.Message("rcpt", "5.1.1")
	pop.Auth(true)
	pop.Auth(false)
	pop.Auth(false)
	pop.Command("STAT")
	pop.Command("RETR")
	pop.Command("RETR")
	m.Delivery(2*time.Millisecond, nil)
	m.Delivery(time.Millisecond, errors.New("disk full"))
	m.Commit(3*time.Millisecond, 4)
	var accepted, closed uint64 = 7, 5
	m.Connections("smtp", func() uint64 { return accepted }, func() uint64 { return closed })

	rec := httptest.NewRecorder()
	req := httptest.NewRequest("GET", "/metrics", nil)
	req.RemoteAddr = "127.0.0.1:4000"
	m.Handler(MetricsAccess{}, slog.New(slog.DiscardHandler)).ServeHTTP(rec, req)
	if rec.Code != 200 {
		t.Fatalf("scrape: %d %s", rec.Code, rec.Body)
	}
	got := mailtest.Scrape(t, rec.Body)
	for series, want := range map[string]float64{
		`petrel_smtp_replies_total{code="2.0.0",listener="smtp",stage="data"}`: 3,
		`petrel_smtp_replies_total{code="5.1.1",listener="smtp",stage="rcpt"}`: 1,
		`petrel_auth_total{listener="pop3s",result="success"}`:                 1,
		`petrel_auth_total{listener="pop3s",result="failure"}`:                 2,
		`petrel_commands_total{command="STAT",listener="pop3s"}`:               1,
		`petrel_commands_total{command="RETR",listener="pop3s"}`:               2,
		`petrel_deliveries_total{result="ok"}`:                                 1,
		`petrel_deliveries_total{result="error"}`:                              1,
		`petrel_delivery_seconds_count`:                                        1,
		`petrel_delivery_seconds_sum`:                                          0.002,
		`petrel_store_commit_seconds_count`:                                    1,
		`petrel_store_commit_requests_sum`:                                     4,
		`petrel_connections_total{listener="smtp"}`:                            7,
		`petrel_connections_open{listener="smtp"}`:                             2,
	} {
		if got[series] != want {
			t.Errorf("%s = %v, want %v", series, got[series], want)
		}
	}
	if got["go_goroutines"] < 1 || got["process_open_fds"] < 1 {
		t.Errorf("runtime and process collectors missing: go_goroutines %v, process_open_fds %v", got["go_goroutines"], got["process_open_fds"])
	}
}

// TestMetricsAccess: loopback and the allow-list may scrape, others need the token.
func TestMetricsAccess(t *testing.T) {
	m := NewMetrics()
	access := MetricsAccess{Allow: []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}, Token: "s3cret"}
	h := m.Handler(access, slog.New(slog.DiscardHandler))
	for _, tc := range []struct {
		remote, auth string
		code         int
	}{
		{"127.0.0.1:1", "", 200},
		{"[::1]:1", "", 200},
		{"[::ffff:127.0.0.1]:1", "", 200},
		{"192.0.2.7:1", "", 200},
		{"198.51.100.1:1", "", 403},
		{"[2001:db8::1]:1", "", 403},
		{"198.51.100.1:1", "Bearer s3cret", 200},
		{"198.51.100.1:1", "Bearer wrong", 403},
		{"198.51.100.1:1", "Basic s3cret", 403},
		{"garbage", "", 403},
	} {
		req := httptest.NewRequest("GET", "/metrics", nil)
		req.RemoteAddr = tc.remote
		if tc.auth != "" {
			req.Header.Set("Authorization", tc.auth)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != tc.code {
			t.Errorf("%s %q: %d, want %d", tc.remote, tc.auth, rec.Code, tc.code)
		}
	}
	// Without a token, the Authorization header opens nothing.
	h = m.Handler(MetricsAccess{}, slog.New(slog.DiscardHandler))
	req := httptest.NewRequest("GET", "/metrics", nil)
	req.RemoteAddr = "198.51.100.1:1"
	req.Header.Set("Authorization", "Bearer ")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusForbidden {
		t.Errorf("empty token: %d", rec.Code)
	}
}

// BenchmarkListenerCommand is what a POP3 or IMAP command pays for being counted.
func BenchmarkListenerCommand(b *testing.B) {
	l := NewMetrics().Listener("imaps")
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			l.Command("FETCH")
		}
	})
}

// BenchmarkListenerMessage is what an SMTP reply pays for being counted.
func BenchmarkListenerMessage(b *testing.B) {
	l := NewMetrics().Listener("smtp")
	b.ReportAllocs()
	for b.Loop() {
		l.Message("data", "2.0.0")
	}
}

// BenchmarkWithLabelValues is the uncached way, for comparison with the two above.
func BenchmarkWithLabelValues(b *testing.B) {
	m := NewMetrics()
	for b.Loop() {
		m.commands.WithLabelValues("imaps", "FETCH").Inc()
	}
}

// TestLive: the dashboard's figures are the registry's series.
func TestLive(t *testing.T) {
	m := NewMetrics()
	m.Connections("imaps", func() uint64 { return 5 }, func() uint64 { return 2 })
	m.Delivery(time.Millisecond, nil)
	m.Delivery(time.Millisecond, nil)
	m.Delivery(time.Millisecond, errors.New("disk full"))
	m.Attempt("deferred")
	m.Queue(func() (QueueStats, error) { return QueueStats{Messages: 4, Recipients: 6}, nil })
	l, err := m.Live()
	if err != nil {
		t.Fatal(err)
	}
	if l.Connections["imaps"] != 3 || l.Deliveries != 2 || l.Failures != 1 || l.QueueMessages != 4 || l.Outbound["deferred"] != 1 {
		t.Errorf("Live = %+v", l)
	}
}
