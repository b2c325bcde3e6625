package httpd

import (
	"crypto/subtle"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"
)

// Metrics is the Prometheus registry of one Petrel instance (series named petrel_*): what
// the protocol servers count through their small Metrics interfaces (a *Listener each),
// what internal/app reads from its listeners, deliveries and store, and the Go runtime.
// It is a registry of its own, never prometheus's global one, so that two instances in one
// test process count apart.
type Metrics struct {
	reg        *prometheus.Registry
	auth       *prometheus.CounterVec
	commands   *prometheus.CounterVec
	smtp       *prometheus.CounterVec
	deliveries *prometheus.CounterVec
	delivery   prometheus.Histogram
	commit     prometheus.Histogram
	batch      prometheus.Histogram
	tlsOK      *prometheus.CounterVec // by listener and version (tlsmetrics.go)
	tlsFail    *prometheus.CounterVec // by listener
	queue      *prometheus.CounterVec // outbound attempts by result (queue.go)
	dsns       *prometheus.CounterVec // delivery status notifications by action
}

// latencyBuckets span a fast commit (a fraction of a millisecond) to a stuck disk.
var latencyBuckets = prometheus.ExponentialBuckets(0.0001, 2.5, 14) // 100µs .. ~15s

// NewMetrics makes an empty registry with the Go runtime and process collectors.
func NewMetrics() *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		auth: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "petrel_auth_total", Help: "Login attempts by listener and result (success, failure).",
		}, []string{"listener", "result"}),
		commands: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "petrel_commands_total", Help: "POP3 and IMAP commands by listener and command name.",
		}, []string{"listener", "command"}),
		smtp: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "petrel_smtp_replies_total",
			Help: "SMTP transaction outcomes by listener, stage (mail and rcpt: refusals; data: every reply) and enhanced status code; stage=data code=2.0.0 is an accepted message.",
		}, []string{"listener", "stage", "code"}),
		deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "petrel_deliveries_total", Help: "Messages committed to local mailboxes (result ok) or failed at commit (result error).",
		}, []string{"result"}),
		delivery: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "petrel_delivery_seconds", Help: "Time to deliver one received message: parse, resolve, commit.",
			Buckets: latencyBuckets,
		}),
		commit: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "petrel_store_commit_seconds", Help: "Time of one store write batch, BEGIN to COMMIT with its fsync.",
			Buckets: latencyBuckets,
		}),
		batch: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "petrel_store_commit_requests", Help: "Write requests per store commit (group commit).",
			Buckets: prometheus.ExponentialBuckets(1, 2, 9), // 1 .. 256
		}),
		tlsOK: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "petrel_tls_handshakes_total", Help: "TLS handshakes the server completed, by listener and protocol version (resumptions included).",
		}, []string{"listener", "version"}),
		tlsFail: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "petrel_tls_handshake_failures_total", Help: "TLS handshakes the server refused or lost after the client's hello (version, cipher suites, ALPN, a client gone), by listener.",
		}, []string{"listener"}),
		queue: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "petrel_queue_attempts_total",
			Help: "Outbound delivery attempts per recipient, by result (delivered, deferred, bounced: refused for good, expired: gave up).",
		}, []string{"result"}),
		dsns: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "petrel_queue_dsns_total", Help: "Delivery status notifications sent by the queue, by action (failed, delayed, delivered, relayed).",
		}, []string{"action"}),
	}
	m.reg.MustRegister(m.auth, m.commands, m.smtp, m.deliveries, m.delivery, m.commit, m.batch, m.tlsOK, m.tlsFail, m.queue, m.dsns,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Listener returns the sink of one listener (smtp, submission, pop3s, imap, ...): what app
// gives the listener's server as its Metrics.
func (m *Metrics) Listener(name string) *Listener {
	return &Listener{
		m: m, name: name,
		authOK:   m.auth.WithLabelValues(name, "success"),
		authFail: m.auth.WithLabelValues(name, "failure"),
	}
}

// Connections publishes a listener's connection counts: accepted (a counter) and open (a
// gauge, accepted - closed), read when scraped. Call it once per listener name.
func (m *Metrics) Connections(listener string, accepted, closed func() uint64) {
	labels := prometheus.Labels{"listener": listener}
	m.reg.MustRegister(
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "petrel_connections_total", Help: "Connections accepted, by listener.", ConstLabels: labels,
		}, func() float64 { return float64(accepted()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "petrel_connections_open", Help: "Connections open now, by listener.", ConstLabels: labels,
		}, func() float64 {
			// Closed is read first: a connection closing between the reads is never negative.
			c := closed()
			return float64(accepted() - c)
		}),
	)
}

// Certificate publishes the served certificate's expiry (Unix seconds; 0: none from the CA
// yet) and the failed renewals since the last success, read when scraped, so that an alert
// can fire long before a failing renewal becomes an expired certificate.
func (m *Metrics) Certificate(notAfter func() time.Time, failures func() int) {
	m.reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "petrel_tls_certificate_expiry_seconds", Help: "Expiry of the TLS certificate from the ACME CA, as a Unix time (0: none yet).",
		}, func() float64 {
			t := notAfter()
			if t.IsZero() {
				return 0
			}
			return float64(t.Unix())
		}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "petrel_acme_failures", Help: "Failed ACME certificate orders since the last certificate.",
		}, func() float64 { return float64(failures()) }),
	)
}

// Delivery counts one delivery attempt of a received message and its duration.
func (m *Metrics) Delivery(d time.Duration, err error) {
	if err != nil {
		m.deliveries.WithLabelValues("error").Inc()
		return
	}
	m.deliveries.WithLabelValues("ok").Inc()
	m.delivery.Observe(d.Seconds())
}

// Commit records one store write batch (sqlite.Options.ObserveCommit).
func (m *Metrics) Commit(d time.Duration, requests int) {
	m.commit.Observe(d.Seconds())
	m.batch.Observe(float64(requests))
}

// Listener counts for one listener; it implements the Metrics interfaces of smtpd, pop3d and
// imapd. Its label values come from the servers' own tables (command names, enhanced status
// codes), never from client input, so the number of series stays bounded.
type Listener struct {
	m                *Metrics
	name             string
	authOK, authFail prometheus.Counter
	// commands caches the series of each command name: WithLabelValues hashes the labels
	// and takes the vector's lock on every call, for every command of every session
	// (docs/benchmarks.md has both costs).
	commands sync.Map // string -> prometheus.Counter
}

// Auth counts a login attempt.
func (l *Listener) Auth(ok bool) {
	if ok {
		l.authOK.Inc()
	} else {
		l.authFail.Inc()
	}
}

// Command counts a POP3 or IMAP command.
func (l *Listener) Command(name string) {
	c, ok := l.commands.Load(name)
	if !ok {
		c, _ = l.commands.LoadOrStore(name, l.m.commands.WithLabelValues(l.name, name))
	}
	c.(prometheus.Counter).Inc()
}

// Message counts an SMTP reply to MAIL, RCPT or DATA. Once per transaction, next to a
// delivery's commit: not worth a cache (whose key would cost an allocation).
func (l *Listener) Message(stage, code string) { l.m.smtp.WithLabelValues(l.name, stage, code).Inc() }

// MetricsAccess says who may read /metrics, which tells anyone the server's load, its
// accounts' activity and its software versions: clients from loopback always, clients in
// Allow, and anyone presenting Token as a bearer token (RFC 6750 §2.1) when it is set.
type MetricsAccess struct {
	Allow []netip.Prefix
	Token string
}

// Handler serves the registry in the Prometheus exposition format to the clients access
// admits, and 403 to the others.
func (m *Metrics) Handler(access MetricsAccess, log *slog.Logger) http.Handler {
	h := promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !access.admits(r) {
			http.Error(w, "403 metrics are not public; see http.metrics_allow and http.metrics_token", http.StatusForbidden)
			return
		}
		w.Header().Set("Cache-Control", "no-store")
		h.ServeHTTP(w, r)
	})
}

func (a MetricsAccess) admits(r *http.Request) bool {
	if a.Token != "" {
		if tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok &&
			subtle.ConstantTimeCompare([]byte(strings.TrimSpace(tok)), []byte(a.Token)) == 1 {
			return true
		}
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return false
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return false
	}
	ip = ip.Unmap()
	if ip.IsLoopback() {
		return true
	}
	for _, p := range a.Allow {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// Attempt counts one outbound recipient's attempt by result (queue.Metrics).
func (m *Metrics) Attempt(result string) { m.queue.WithLabelValues(result).Inc() }

// DSN counts a delivery status notification the queue sent (queue.Metrics).
func (m *Metrics) DSN(action string) { m.dsns.WithLabelValues(action).Inc() }

// QueueStats is the outbound queue's size at one moment.
type QueueStats struct {
	Messages, Recipients int
	Oldest               time.Time // the oldest entry's creation; zero when empty
}

// queueStatsEvery bounds how often a scrape reads the queue: reading it lists every entry,
// and a scraper, a dashboard and a second scraper should not each pay for it.
const queueStatsEvery = 10 * time.Second

// Queue publishes the outbound queue's size (messages, recipients, age of the oldest),
// read when scraped, at most every queueStatsEvery; a failed read keeps the last values.
func (m *Metrics) Queue(read func() (QueueStats, error)) {
	var (
		mu   sync.Mutex
		last QueueStats
		at   time.Time
	)
	get := func() QueueStats {
		mu.Lock()
		defer mu.Unlock()
		if time.Since(at) >= queueStatsEvery {
			if s, err := read(); err == nil {
				last = s
			}
			at = time.Now()
		}
		return last
	}
	m.reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "petrel_queue_messages", Help: "Messages in the outbound queue.",
		}, func() float64 { return float64(get().Messages) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "petrel_queue_recipients", Help: "Recipients waiting in the outbound queue.",
		}, func() float64 { return float64(get().Recipients) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "petrel_queue_oldest_seconds", Help: "Age of the oldest message in the outbound queue (0: empty).",
		}, func() float64 {
			if o := get().Oldest; !o.IsZero() {
				return time.Since(o).Seconds()
			}
			return 0
		}),
	)
}

// Live is what the admin dashboard shows and refreshes: read from the registry, so the
// page and a Prometheus scrape never disagree.
type Live struct {
	Connections   map[string]int     `json:"connections"`    // open now, by listener
	Deliveries    float64            `json:"deliveries"`     // received messages committed since the start
	Failures      float64            `json:"failures"`       // deliveries that failed at commit
	QueueMessages float64            `json:"queue_messages"` // messages in the outbound queue
	QueueOldest   float64            `json:"queue_oldest"`   // age of the oldest, seconds
	Outbound      map[string]float64 `json:"outbound"`       // outbound attempts by result
}

// Live reads the dashboard's figures from the registry now.
func (m *Metrics) Live() (Live, error) {
	fams, err := m.reg.Gather()
	if err != nil {
		return Live{}, err
	}
	l := Live{Connections: map[string]int{}, Outbound: map[string]float64{}}
	label := func(mt *dto.Metric, name string) string {
		for _, lp := range mt.GetLabel() {
			if lp.GetName() == name {
				return lp.GetValue()
			}
		}
		return ""
	}
	for _, f := range fams {
		for _, mt := range f.GetMetric() {
			switch f.GetName() {
			case "petrel_connections_open":
				l.Connections[label(mt, "listener")] = int(mt.GetGauge().GetValue())
			case "petrel_deliveries_total":
				if label(mt, "result") == "ok" {
					l.Deliveries = mt.GetCounter().GetValue()
				} else {
					l.Failures += mt.GetCounter().GetValue()
				}
			case "petrel_queue_messages":
				l.QueueMessages = mt.GetGauge().GetValue()
			case "petrel_queue_oldest_seconds":
				l.QueueOldest = mt.GetGauge().GetValue()
			case "petrel_queue_attempts_total":
				l.Outbound[label(mt, "result")] = mt.GetCounter().GetValue()
			}
		}
	}
	return l, nil
}
