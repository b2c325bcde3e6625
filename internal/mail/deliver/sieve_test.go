package deliver

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"petrel/internal/lib/address"
	"petrel/internal/mail/sieve"
	"petrel/internal/store"
	"petrel/internal/store/sqlite"
)

// sieveWorld is a real store with accounts and a Deliverer running their scripts.
type sieveWorld struct {
	t    testing.TB
	ctx  context.Context
	st   *sqlite.Store
	d    *Deliverer
	now  time.Time
	accs map[string]store.Account
}

func newSieveWorld(t testing.TB, sending store.SendingLimits) *sieveWorld {
	t.Helper()
	st, err := sqlite.Open(filepath.Join(t.TempDir(), "petrel.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	w := &sieveWorld{t: t, ctx: context.Background(), st: st, now: time.Date(2026, 7, 1, 12, 0, 0, 0, time.UTC), accs: map[string]store.Account{}}
	if err := st.AddDomain(w.ctx, "example.test"); err != nil {
		t.Fatal(err)
	}
	for _, a := range []string{"ann@example.test", "bob@example.test"} {
		acct, err := st.AddAccount(w.ctx, a, store.Credentials{})
		if err != nil {
			t.Fatal(err)
		}
		w.accs[a] = acct
	}
	w.d = New(st, slog.New(slog.DiscardHandler))
	w.d.SetSieve(&SieveConfig{Store: st, Limits: sieve.DefaultLimits(), Sending: sending, Hostname: "mx.example.test",
		Now: func() time.Time { return w.now }, ActiveTTL: -1})
	return w
}

func (w *sieveWorld) script(addr, src string) {
	w.t.Helper()
	id := w.accs[addr].ID
	if _, err := sieve.Parse(src, sieve.DefaultLimits()); err != nil {
		w.t.Fatalf("script: %v", err)
	}
	if err := w.st.PutSieveScript(w.ctx, id, "s", src); err != nil {
		w.t.Fatal(err)
	}
	if err := w.st.SetActiveSieveScript(w.ctx, id, "s"); err != nil {
		w.t.Fatal(err)
	}
}

type memBody struct{ *bytes.Reader }

func (b memBody) Size() int64 { return b.Reader.Size() }

func (w *sieveWorld) deliver(from string, rcpts []string, msg string) error {
	w.t.Helper()
	var targets []store.Target
	for _, r := range rcpts {
		targets = append(targets, store.Target{AccountID: w.accs[r].ID, Mailbox: store.Inbox})
	}
	msg = strings.ReplaceAll(msg, "\n", "\r\n")
	_, err := w.d.Deliver(w.ctx, Envelope{MailFrom: from, Targets: targets, ReceivedAt: w.now}, memBody{bytes.NewReader([]byte(msg))})
	return err
}

// box lists the flags of each message in a mailbox of an account.
func (w *sieveWorld) box(addr, name string) [][]string {
	w.t.Helper()
	mb, err := w.st.Mailbox(w.ctx, w.accs[addr].ID, name)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		w.t.Fatal(err)
	}
	msgs, err := w.st.Messages(w.ctx, mb.ID, store.Filter{})
	if err != nil {
		w.t.Fatal(err)
	}
	var out [][]string
	for _, m := range msgs {
		out = append(out, append([]string{}, m.Flags...))
	}
	return out
}

// queue returns the queued messages: "from -> to" and the body.
func (w *sieveWorld) queue() (envs []string, bodies []string) {
	w.t.Helper()
	entries, err := w.st.Entries(w.ctx)
	if err != nil {
		w.t.Fatal(err)
	}
	for _, e := range entries {
		var to []string
		for _, r := range e.Recipients {
			to = append(to, r.Address)
		}
		envs = append(envs, fmt.Sprintf("%s -> %s", e.MailFrom, strings.Join(to, ",")))
		rc, err := w.st.OpenBlob(w.ctx, e.BlobID)
		if err != nil {
			w.t.Fatal(err)
		}
		b, _ := io.ReadAll(rc)
		rc.Close()
		bodies = append(bodies, string(b))
	}
	return envs, bodies
}

const plainMsg = `From: Carl <carl@remote.example>
To: ann@example.test
Subject: Lunch
Message-ID: <m1@remote.example>

Shall we?
`

func TestSieveFileintoFlags(t *testing.T) {
	w := newSieveWorld(t, store.SendingLimits{})
	w.st.CreateMailbox(w.ctx, w.accs["ann@example.test"].ID, "Food")
	w.script("ann@example.test", `require ["fileinto","imap4flags","mailbox"];
		if header :contains "subject" "lunch" { fileinto :flags "\\Flagged" "Food"; fileinto :create "New/Box"; stop; }`)
	if err := w.deliver("carl@remote.example", []string{"ann@example.test", "bob@example.test"}, plainMsg); err != nil {
		t.Fatal(err)
	}
	if got := w.box("ann@example.test", "Food"); len(got) != 1 || len(got[0]) != 1 || got[0][0] != `\Flagged` {
		t.Errorf("Food: %v", got)
	}
	if got := w.box("ann@example.test", "New/Box"); len(got) != 1 {
		t.Errorf("New/Box (:create): %v", got)
	}
	if got := w.box("ann@example.test", "INBOX"); len(got) != 0 {
		t.Errorf("ann's INBOX: %v (fileinto cancels the implicit keep)", got)
	}
	if got := w.box("bob@example.test", "INBOX"); len(got) != 1 {
		t.Errorf("bob (no script) INBOX: %v", got)
	}
	// fileinto a missing mailbox without :create falls back to INBOX.
	w.script("bob@example.test", `require "fileinto"; fileinto "Nowhere";`)
	if err := w.deliver("carl@remote.example", []string{"bob@example.test"}, plainMsg); err != nil {
		t.Fatal(err)
	}
	if got := w.box("bob@example.test", "INBOX"); len(got) != 2 {
		t.Errorf("missing mailbox: INBOX has %d messages, want 2", len(got))
	}
}

func TestSieveDiscardAndReject(t *testing.T) {
	w := newSieveWorld(t, store.SendingLimits{})
	w.script("ann@example.test", `discard;`)
	if err := w.deliver("carl@remote.example", []string{"ann@example.test"}, plainMsg); err != nil {
		t.Fatal(err)
	}
	if got := w.box("ann@example.test", "INBOX"); len(got) != 0 {
		t.Errorf("discarded message delivered: %v", got)
	}

	w.script("ann@example.test", "require \"reject\";\nreject \"I do not\r\nwant this\";")
	err := w.deliver("carl@remote.example", []string{"ann@example.test"}, plainMsg)
	var re *RejectError
	if !errors.As(err, &re) || re.Reason != "I do not want this" {
		t.Fatalf("single recipient: err %v, want a RejectError", err)
	}
	if envs, _ := w.queue(); len(envs) != 0 {
		t.Fatalf("rejection at SMTP time also queued %v", envs)
	}
	// With another recipient, bob gets it and carl a DSN.
	if err := w.deliver("carl@remote.example", []string{"ann@example.test", "bob@example.test"}, plainMsg); err != nil {
		t.Fatal(err)
	}
	if got := w.box("bob@example.test", "INBOX"); len(got) != 1 {
		t.Errorf("bob: %v", got)
	}
	envs, bodies := w.queue()
	if len(envs) != 1 || envs[0] != " -> carl@remote.example" || !strings.Contains(bodies[0], "5.7.1") || !strings.Contains(bodies[0], "I do not want this") {
		t.Fatalf("bounce: %v\n%v", envs, bodies)
	}
	// No bounce to the null sender.
	if err := w.deliver("", []string{"ann@example.test", "bob@example.test"}, plainMsg); err != nil {
		t.Fatal(err)
	}
	if envs, _ := w.queue(); len(envs) != 1 {
		t.Fatalf("bounce to the null sender: %v", envs)
	}
}

func TestSieveRedirect(t *testing.T) {
	w := newSieveWorld(t, store.SendingLimits{HourMessages: 2})
	w.script("ann@example.test", `require "copy"; redirect :copy "ann@elsewhere.example"; redirect "second@elsewhere.example";`)
	for i := 0; i < 3; i++ {
		if err := w.deliver("carl@remote.example", []string{"ann@example.test"}, plainMsg); err != nil {
			t.Fatal(err)
		}
	}
	envs, bodies := w.queue()
	if len(envs) != 2 {
		t.Fatalf("queued %v, want 2 (the third is over the sending limit)", envs)
	}
	if envs[0] != "carl@remote.example -> ann@elsewhere.example,second@elsewhere.example" {
		t.Errorf("envelope %q", envs[0])
	}
	if !strings.HasPrefix(bodies[0], "Delivered-To: ann@example.test\r\nFrom: Carl") {
		t.Errorf("redirected body %q", bodies[0])
	}
	// :copy keeps nothing here (the second redirect cancels the implicit keep); the one
	// over the limit is kept so that it is not lost.
	if got := w.box("ann@example.test", "INBOX"); len(got) != 1 {
		t.Errorf("INBOX has %d, want 1 (the message over the limit)", len(got))
	}
	// A message that went through ann's redirect already is not redirected again.
	w.now = w.now.Add(2 * time.Hour)
	if err := w.deliver("carl@remote.example", []string{"ann@example.test"}, "Delivered-To: ann@example.test\n"+plainMsg); err != nil {
		t.Fatal(err)
	}
	if envs, _ := w.queue(); len(envs) != 2 {
		t.Errorf("redirect loop not stopped: %v", envs)
	}
}

func TestSieveThousandRedirects(t *testing.T) {
	w := newSieveWorld(t, store.SendingLimits{})
	var b strings.Builder
	for i := 0; i < 1000; i++ {
		fmt.Fprintf(&b, "redirect \"u%d@elsewhere.example\";\n", i)
	}
	w.script("ann@example.test", b.String())
	if err := w.deliver("carl@remote.example", []string{"ann@example.test"}, plainMsg); err != nil {
		t.Fatal(err)
	}
	if envs, _ := w.queue(); len(envs) != 0 {
		t.Fatalf("a script redirecting 1000 times queued %d messages", len(envs))
	}
	if got := w.box("ann@example.test", "INBOX"); len(got) != 1 {
		t.Fatalf("the stopped script's message is not kept: %v", got)
	}
}

func TestSieveVacation(t *testing.T) {
	w := newSieveWorld(t, store.SendingLimits{})
	w.script("ann@example.test", `require "vacation"; vacation :days 2 :subject "Away" "Back on Monday.";`)
	send := func(from, msg string) int {
		t.Helper()
		before, _ := w.queue()
		if err := w.deliver(from, []string{"ann@example.test"}, msg); err != nil {
			t.Fatal(err)
		}
		after, _ := w.queue()
		return len(after) - len(before)
	}
	if n := send("carl@remote.example", plainMsg); n != 1 {
		t.Fatalf("first message: %d replies", n)
	}
	envs, bodies := w.queue()
	if envs[0] != " -> carl@remote.example" || !strings.Contains(bodies[0], "Subject: Away\r\n") ||
		!strings.Contains(bodies[0], "In-Reply-To: <m1@remote.example>") || !strings.Contains(bodies[0], "Back on Monday.") {
		t.Fatalf("reply %v:\n%s", envs, bodies[0])
	}
	if n := send("carl@remote.example", plainMsg); n != 0 {
		t.Errorf("second message within the period: %d replies", n)
	}
	if n := send("dora@remote.example", strings.Replace(plainMsg, "carl@", "dora@", 1)); n != 1 {
		t.Errorf("another sender: %d replies", n)
	}
	if n := send("", plainMsg); n != 0 {
		t.Errorf("null sender: %d replies", n)
	}
	if n := send("list@remote.example", "List-Id: <l.remote.example>\n"+plainMsg); n != 0 {
		t.Errorf("list mail: %d replies", n)
	}
	if n := send("news@remote.example", "Precedence: bulk\n"+plainMsg); n != 0 {
		t.Errorf("bulk mail: %d replies", n)
	}
	if n := send("ann@example.test", plainMsg); n != 0 {
		t.Errorf("mail from ourselves: %d replies", n)
	}
	w.now = w.now.Add(49 * time.Hour)
	if n := send("carl@remote.example", plainMsg); n != 1 {
		t.Errorf("after the period: %d replies", n)
	}
	// Every message was kept in INBOX (vacation does not cancel the implicit keep).
	if got := w.box("ann@example.test", "INBOX"); len(got) != 8 {
		t.Errorf("INBOX has %d messages, want 8", len(got))
	}
}

// TestSieveActiveCache: with the cache on, a script activated after a delivery applies
// once its TTL has passed, and not before.
func TestSieveActiveCache(t *testing.T) {
	w := newSieveWorld(t, store.SendingLimits{})
	w.d.sieve.cfg.ActiveTTL = time.Hour
	deliver := func() {
		t.Helper()
		if err := w.deliver("carl@remote.example", []string{"ann@example.test"}, plainMsg); err != nil {
			t.Fatal(err)
		}
	}
	deliver() // reads "no script" into the cache
	w.script("ann@example.test", "discard;")
	deliver()
	if got := w.box("ann@example.test", "INBOX"); len(got) != 2 {
		t.Fatalf("INBOX has %d, want 2 (the cached answer holds within the TTL)", len(got))
	}
	w.d.sieve.cfg.ActiveTTL = -1 // as if the TTL had passed
	deliver()
	if got := w.box("ann@example.test", "INBOX"); len(got) != 2 {
		t.Fatalf("INBOX has %d, want 2 (discarded after the TTL)", len(got))
	}
}

func TestSieveBrokenScriptKeeps(t *testing.T) {
	w := newSieveWorld(t, store.SendingLimits{})
	// Stored without the parser's check (as an older version might have): kept in INBOX.
	id := w.accs["ann@example.test"].ID
	w.st.PutSieveScript(w.ctx, id, "bad", "this is not sieve")
	w.st.SetActiveSieveScript(w.ctx, id, "bad")
	if err := w.deliver("carl@remote.example", []string{"ann@example.test"}, plainMsg); err != nil {
		t.Fatal(err)
	}
	if got := w.box("ann@example.test", "INBOX"); len(got) != 1 {
		t.Fatalf("INBOX: %v", got)
	}
}

// TestSieveEnvelopeToAlias: a message that reached ann through an alias shows the alias as
// envelope "to" (RFC 5228 §5.4), not ann's own address, and vacation answers mail sent
// to the alias (RFC 5230 §4.5: the envelope recipient is one of the user's addresses).
func TestSieveEnvelopeToAlias(t *testing.T) {
	w := newSieveWorld(t, store.SendingLimits{})
	if err := w.st.AddAlias(w.ctx, "sales@example.test", []string{"ann@example.test"}); err != nil {
		t.Fatal(err)
	}
	w.script("ann@example.test", `require ["envelope", "fileinto", "mailbox", "vacation"];
		if envelope :is "to" "sales@example.test" { fileinto :create "Sales"; }
		vacation :days 1 "Away.";`)
	a, err := address.Parse("Sales@example.test")
	if err != nil {
		t.Fatal(err)
	}
	targets, err := w.d.Resolve(w.ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	ann := w.accs["ann@example.test"].ID
	msg := strings.ReplaceAll(strings.Replace(plainMsg, "To: ann@", "To: sales@", 1), "\n", "\r\n")
	env := Envelope{MailFrom: "carl@remote.example", Targets: targets, ReceivedAt: w.now, To: map[int64]string{ann: "sales@example.test"}}
	if _, err := w.d.Deliver(w.ctx, env, memBody{bytes.NewReader([]byte(msg))}); err != nil {
		t.Fatal(err)
	}
	if got := w.box("ann@example.test", "Sales"); len(got) != 1 {
		t.Errorf("Sales has %d messages, want 1 (envelope to is the alias)", len(got))
	}
	if envs, _ := w.queue(); len(envs) != 1 {
		t.Errorf("vacation replies: %v, want one to carl (the alias is ann's address)", envs)
	}
	// Sent to ann's own address, the same script keeps the message in INBOX.
	if err := w.deliver("dora@remote.example", []string{"ann@example.test"}, plainMsg); err != nil {
		t.Fatal(err)
	}
	if got := w.box("ann@example.test", "INBOX"); len(got) != 1 {
		t.Errorf("INBOX has %d messages, want 1", len(got))
	}
}

// bytesBody is a Body over a byte slice.
type bytesBody struct{ *bytes.Reader }

func (b bytesBody) Size() int64 { return b.Reader.Size() }

// TestSieveMessageHeader: scripts see every field of a header section, a long one (over
// the first read) too, folded fields unfolded, and the raw body starts after its empty line.
func TestSieveMessageHeader(t *testing.T) {
	for _, n := range []int{0, 3, 400} {
		var h strings.Builder
		h.WriteString("Subject: first\r\n")
		for i := range n {
			fmt.Fprintf(&h, "X-Filler-%d: %s\r\n", i, strings.Repeat("x", 40))
		}
		h.WriteString("x-LAST: folded\r\n\tvalue\r\n\r\n")
		raw := h.String() + "the body\r\nSubject: not a field\r\n"
		m := newSieveMessage(bytesBody{bytes.NewReader([]byte(raw))}, store.ParsedMessage{})
		if got := m.Header("X-Last"); len(got) != 1 || got[0] != "folded\tvalue" {
			t.Errorf("%d fields: X-Last %q", n, got)
		}
		if got := m.Header("subject"); len(got) != 1 || got[0] != "first" {
			t.Errorf("%d fields: Subject %q", n, got)
		}
		if got := m.Body(sieve.BodyRaw, nil); got != "the body\r\nSubject: not a field\r\n" {
			t.Errorf("%d fields: raw body %q", n, got)
		}
	}
}
