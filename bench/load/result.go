package load

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"
)

// Summary describes a set of latency samples, in milliseconds.
type Summary struct {
	Count  int     `json:"count"`
	MinMS  float64 `json:"min_ms"`
	MeanMS float64 `json:"mean_ms"`
	P50MS  float64 `json:"p50_ms"`
	P95MS  float64 `json:"p95_ms"`
	P99MS  float64 `json:"p99_ms"`
	MaxMS  float64 `json:"max_ms"`
}

// Summarize sorts samples in place and returns their summary. Percentiles use
// the nearest-rank method: p99 of 100 samples is the 99th smallest.
func Summarize(samples []time.Duration) Summary {
	if len(samples) == 0 {
		return Summary{}
	}
	slices.Sort(samples)
	var sum time.Duration
	for _, d := range samples {
		sum += d
	}
	rank := func(p float64) float64 {
		i := int(math.Ceil(p/100*float64(len(samples)))) - 1
		return ms(samples[max(i, 0)])
	}
	return Summary{
		Count:  len(samples),
		MinMS:  ms(samples[0]),
		MeanMS: ms(sum / time.Duration(len(samples))),
		P50MS:  rank(50),
		P95MS:  rank(95),
		P99MS:  rank(99),
		MaxMS:  ms(samples[len(samples)-1]),
	}
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// Result is what every scenario reports. Ops counts the successful unit
// operations (messages accepted, messages retrieved, connections opened).
type Result struct {
	Scenario    string   `json:"scenario"`
	Target      string   `json:"target"`
	Unit        string   `json:"unit"` // what one op is, e.g. "message"
	ElapsedS    float64  `json:"elapsed_s"`
	Ops         int64    `json:"ops"`
	Bytes       int64    `json:"bytes"`
	OpsPerSec   float64  `json:"ops_per_sec"`
	MBPerSec    float64  `json:"mb_per_sec"` // 1 MB = 10^6 bytes
	Latency     Summary  `json:"latency"`    // per op (SMTP transaction, RETR, connection setup)
	LatencyOf   string   `json:"latency_of"` // what Latency measures
	Connect     Summary  `json:"connect"`    // connection setup: dial, TLS, greeting, auth
	Sessions    int64    `json:"sessions"`   // connections that completed their work
	Errors      int64    `json:"errors"`
	FirstErrors []string `json:"first_errors"`
	Stopped     string   `json:"stopped,omitempty"` // why the run ended early (timeout, interrupt)
	// ToolCPUS is this process's own CPU time (user and system) when the result was made:
	// the load tool shares the machine with the server it measures.
	ToolCPUS float64 `json:"tool_cpu_s,omitempty"`

	Delivery *Delivery     `json:"delivery,omitempty"` // smtp -wait-pop3 and wait
	Idle     *IdleReport   `json:"idle,omitempty"`     // idle, imap-idle
	Mixed    MixedReport   `json:"mixed,omitempty"`    // imap-mixed: latency per kind of command
	Search   *SearchReport `json:"search,omitempty"`   // imap-search: hits per word
}

func (r *Result) finish(elapsed time.Duration) {
	r.ElapsedS = elapsed.Seconds()
	if r.ElapsedS > 0 {
		r.OpsPerSec = float64(r.Ops) / r.ElapsedS
		r.MBPerSec = float64(r.Bytes) / 1e6 / r.ElapsedS
	}
	if r.FirstErrors == nil {
		r.FirstErrors = []string{}
	}
	r.ToolCPUS = processCPU().Seconds()
}

// WriteJSON writes the result as one indented JSON object.
func (r *Result) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// WriteText writes the result as a table for people.
func (r *Result) WriteText(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	row := func(k, format string, args ...any) { fmt.Fprintf(tw, "%s\t"+format+"\n", append([]any{k}, args...)...) }
	lat := func(s Summary) string {
		if s.Count == 0 {
			return "-"
		}
		return fmt.Sprintf("p50 %.2f  p95 %.2f  p99 %.2f  max %.2f  mean %.2f  (n=%d)",
			s.P50MS, s.P95MS, s.P99MS, s.MaxMS, s.MeanMS, s.Count)
	}
	row("scenario", "%s", r.Scenario)
	row("target", "%s", r.Target)
	row("elapsed", "%.3f s", r.ElapsedS)
	row(r.Unit+"s", "%d (%d bytes, %d sessions)", r.Ops, r.Bytes, r.Sessions)
	row("throughput", "%.1f %ss/s  %.2f MB/s", r.OpsPerSec, r.Unit, r.MBPerSec)
	row("latency ms", "%s  [%s]", lat(r.Latency), r.LatencyOf)
	row("connect ms", "%s", lat(r.Connect))
	if d := r.Delivery; d != nil {
		note := ""
		if d.TimedOut {
			note = "  TIMED OUT"
		}
		row("delivery", "%d of %d visible over POP3 after %.3f s  (%.1f msgs/s end-to-end, %d polls)%s",
			d.Seen, d.Expected, d.ElapsedS, d.PerSec, d.Polls, note)
	}
	if id := r.Idle; id != nil {
		row("connections", "%d requested, %d opened, %d still open after %.1f s", id.Requested, id.Opened, id.OpenAfterHold, id.HoldS)
		// A forking server has dozens of processes: then only the sum.
		if len(id.Processes) <= 8 {
			for _, p := range id.Processes {
				row("pid "+fmt.Sprint(p.PID), "RSS %d -> %d KB, PSS %d -> %d KB", p.Before.RSSKB, p.After.RSSKB, p.Before.PSSKB, p.After.PSSKB)
			}
		}
		if len(id.Processes) > 0 {
			t := id.Total
			row("all processes", "%d: RSS %d -> %d KB, PSS %d -> %d KB", len(id.Processes), t.Before.RSSKB, t.After.RSSKB, t.Before.PSSKB, t.After.PSSKB)
			row("per connection", "RSS %.1f KB  PSS %.1f KB", id.RSSKBPerConn, id.PSSKBPerConn)
		}
	}
	for _, k := range stepNames {
		if s, ok := r.Mixed[k]; ok {
			row("  "+k, "%s", lat(s))
		}
	}
	if sr := r.Search; sr != nil {
		row("mailbox", "%d messages", sr.Exists)
		for w, n := range sr.Hits {
			row("  hits", "%s: %d", w, n)
		}
	}
	if r.Stopped != "" {
		row("stopped", "%s", r.Stopped)
	}
	row("errors", "%d", r.Errors)
	for _, e := range r.FirstErrors {
		row("", "%s", e)
	}
	return tw.Flush()
}

// maxFirstErrors is how many error texts a Result keeps.
const maxFirstErrors = 5

// errorLog counts errors from all workers and keeps the first few.
type errorLog struct {
	n     atomic.Int64
	mu    sync.Mutex
	first []string
}

func (e *errorLog) add(format string, args ...any) {
	if e.n.Add(1) > maxFirstErrors {
		return
	}
	msg := fmt.Sprintf(format, args...)
	e.mu.Lock()
	if len(e.first) < maxFirstErrors {
		e.first = append(e.first, msg)
	}
	e.mu.Unlock()
}

func (e *errorLog) fill(r *Result) {
	r.Errors = e.n.Load()
	e.mu.Lock()
	r.FirstErrors = slices.Clone(e.first)
	e.mu.Unlock()
}

// samples gathers latency batches from workers.
type samples struct {
	mu  sync.Mutex
	all []time.Duration
}

func (s *samples) merge(batch []time.Duration) {
	s.mu.Lock()
	s.all = append(s.all, batch...)
	s.mu.Unlock()
}

func (s *samples) summary() Summary {
	s.mu.Lock()
	defer s.mu.Unlock()
	return Summarize(s.all)
}
