// Package rspamd consults rspamd over its HTTP protocol (POST /checkv2 to a normal or
// proxy worker): a door.Filter that collects the envelope during the transaction and sends
// the message with it at the end of DATA, in one request.
//
// rspamd's action decides (https://rspamd.com/doc/architecture/protocol.html):
//
//	reject          → refused (5xx), with rspamd's smtp_message if it gave one
//	soft reject     → deferred (4xx)
//	greylist        → deferred (4xx): rspamd keeps its own greylisting state
//	add header      → Junk, with rspamd's headers (or X-Spam: Yes)
//	rewrite subject → Junk, with the Subject rspamd wrote
//	no action       → accepted
//
// The headers rspamd asks for in its "milter" block (add_headers, remove_headers) are
// applied in every case, as its milter would have them applied.
package rspamd

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"petrel/internal/mail/door"
)

// Filter is one rspamd instance.
type Filter struct {
	url      string // the base URL, e.g. http://127.0.0.1:11333
	password string
	client   *http.Client
}

var _ door.Filter = (*Filter)(nil)

// New returns a filter asking the rspamd at baseURL; password, when set, is sent in the
// Password header (the controller's); client nil means a client of its own.
func New(baseURL, password string, client *http.Client) *Filter {
	if client == nil {
		client = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16}}
	}
	return &Filter{url: strings.TrimSuffix(baseURL, "/") + "/checkv2", password: password, client: client}
}

// Name implements door.Filter.
func (f *Filter) Name() string { return "rspamd" }

// Begin implements door.Filter; nothing is sent before the message.
func (f *Filter) Begin(_ context.Context, c door.ConnInfo) (door.FilterSession, error) {
	return &session{f: f, conn: c}, nil
}

type session struct {
	f     *Filter
	conn  door.ConnInfo
	from  string
	rcpts []string
}

func (s *session) Mail(_ context.Context, from string) (door.Verdict, error) {
	s.from = from
	return door.Verdict{}, nil
}

func (s *session) Rcpt(_ context.Context, rcpt string) (door.Verdict, error) {
	s.rcpts = append(s.rcpts, rcpt)
	return door.Verdict{}, nil
}

func (s *session) Close() error { return nil }

// maxReply bounds rspamd's answer; a real one is a few KB.
const maxReply = 1 << 20

// Data implements door.FilterSession.
func (s *session) Data(ctx context.Context, header []byte, body io.Reader) (door.Verdict, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.f.url, io.MultiReader(bytes.NewReader(header), body))
	if err != nil {
		return door.Verdict{}, err
	}
	h := req.Header
	if s.conn.IP.IsValid() {
		h.Set("IP", s.conn.IP.String())
	}
	if s.conn.Helo != "" {
		h.Set("Helo", s.conn.Helo)
	}
	if s.conn.Hostname != "" {
		h.Set("Hostname", s.conn.Hostname)
	}
	if s.conn.User != "" {
		h.Set("User", s.conn.User)
	}
	if s.conn.QueueID != "" {
		h.Set("Queue-Id", s.conn.QueueID)
	}
	if s.conn.Ours != "" {
		h.Set("MTA-Name", s.conn.Ours)
	}
	if s.from != "" {
		h.Set("From", s.from)
	}
	for _, r := range s.rcpts {
		h.Add("Rcpt", r)
	}
	if s.f.password != "" {
		h.Set("Password", s.f.password)
	}
	resp, err := s.f.client.Do(req)
	if err != nil {
		return door.Verdict{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxReply+1))
	if err != nil {
		return door.Verdict{}, err
	}
	if resp.StatusCode != http.StatusOK {
		return door.Verdict{}, fmt.Errorf("rspamd: HTTP %s", resp.Status)
	}
	if len(b) > maxReply {
		return door.Verdict{}, errors.New("rspamd: reply too large")
	}
	return Decode(b)
}

// reply is the part of rspamd's answer we read.
type reply struct {
	Action   *string  `json:"action"`
	Score    float64  `json:"score"`
	Subject  string   `json:"subject"`
	Messages struct { // messages.smtp_message: the reply text rspamd wants the client to see
		SMTP string `json:"smtp_message"`
	} `json:"messages"`
	Milter struct {
		AddHeaders    map[string]json.RawMessage `json:"add_headers"`
		RemoveHeaders map[string]int             `json:"remove_headers"`
	} `json:"milter"`
}

// headerValue is an add_headers entry: a string, {"value": ..., "order": n}, or a list.
type headerValue struct {
	Value string `json:"value"`
	Order int    `json:"order"`
}

// Decode turns a /checkv2 answer into a verdict.
func Decode(b []byte) (door.Verdict, error) {
	var r reply
	if err := json.Unmarshal(b, &r); err != nil {
		return door.Verdict{}, fmt.Errorf("rspamd: %w", err)
	}
	if r.Action == nil {
		return door.Verdict{}, errors.New("rspamd: no action in the reply")
	}
	v := door.Verdict{Score: r.Score, Result: *r.Action + "/" + strconv.FormatFloat(r.Score, 'f', 2, 64)}
	addSpam := false
	switch *r.Action {
	case "no action":
	case "reject":
		v.Action, v.Text = door.FilterReject, r.Messages.SMTP
	case "soft reject":
		v.Action, v.Text = door.FilterTempFail, r.Messages.SMTP
	case "greylist":
		v.Action, v.Text = door.FilterTempFail, "4.7.1 greylisted, please try again later"
	case "add header":
		v.Action, addSpam = door.FilterQuarantine, true
	case "rewrite subject":
		v.Action = door.FilterQuarantine
		if r.Subject != "" {
			v.Mods = append(v.Mods, door.HeaderMod{Op: door.HeaderChange, Name: "Subject", Index: 1, Value: r.Subject})
		}
	default:
		// An action of a newer rspamd (or a custom one): known to rspamd, not to us.
		// Accept, and say so in the log.
	}
	for _, name := range slices.Sorted(maps.Keys(r.Milter.RemoveHeaders)) {
		if n := r.Milter.RemoveHeaders[name]; n > 0 {
			v.Mods = append(v.Mods, door.HeaderMod{Op: door.HeaderChange, Name: name, Index: n})
			continue
		}
		// 0 (and negative, counted from the end, which we do not track): every one.
		for range 50 {
			v.Mods = append(v.Mods, door.HeaderMod{Op: door.HeaderChange, Name: name, Index: 1})
		}
	}
	for _, name := range slices.Sorted(maps.Keys(r.Milter.AddHeaders)) {
		for _, hv := range headerValues(r.Milter.AddHeaders[name]) {
			v.Mods = append(v.Mods, door.HeaderMod{Op: door.HeaderAdd, Name: name, Value: hv.Value})
			if strings.EqualFold(name, "X-Spam") {
				addSpam = false
			}
		}
	}
	if addSpam {
		v.Mods = append(v.Mods, door.HeaderMod{Op: door.HeaderAdd, Name: "X-Spam", Value: "Yes"})
	}
	return v, nil
}

func headerValues(raw json.RawMessage) []headerValue {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return []headerValue{{Value: s}}
	}
	var one headerValue
	if json.Unmarshal(raw, &one) == nil && one.Value != "" {
		return []headerValue{one}
	}
	var list []headerValue
	if json.Unmarshal(raw, &list) == nil {
		return list
	}
	return nil
}
