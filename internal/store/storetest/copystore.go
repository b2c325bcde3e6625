package storetest

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"petrel/internal/store"
)

// CopyStore is a store that a whole-store copy reads and writes, with every optional part
// that a copy carries.
type CopyStore interface {
	store.Store
	store.ResumableExporter
	store.Importer
	store.Sieve
	store.JunkStats
	store.Greylist
	store.Admins
	store.Pulls
}

// RunCopy checks store.CopyStore between two backends: a store filled through its methods
// with something of every kind (FillForCopy) is copied from a store of open1 into a new
// one of open2 and from there into a new one of open1 again. Each copy must hold the same
// rows (store.CompareStores) and show the same state through the Store methods, and go
// on from it: new mailboxes get new UIDVALIDITYs, new messages the next UID and a higher
// MODSEQ. A change to one copy must make the comparison fail.
func RunCopy(t *testing.T, open1, open2 func(t *testing.T) CopyStore) {
	ctx := context.Background()
	closeLater := func(s CopyStore) CopyStore {
		t.Cleanup(func() {
			if err := s.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
		})
		return s
	}
	src := closeLater(open1(t))
	FillForCopy(t, src)
	mid := closeLater(open2(t))
	back := closeLater(open1(t))
	for _, step := range []struct {
		name     string
		from, to CopyStore
	}{{"there", src, mid}, {"back", mid, back}} {
		var last string
		counts, err := store.CopyStore(ctx, step.from, step.to, store.CopyOptions{Source: step.name, Progress: func(p store.CopyProgress) { last = p.Table }})
		if err != nil {
			t.Fatalf("copy %s: %v (last table %q)", step.name, err, last)
		}
		if counts["messages"] == 0 || counts["blobs"] == 0 || counts["expunged"] == 0 {
			t.Fatalf("copy %s: %v", step.name, counts)
		}
		if err := store.CompareStores(ctx, step.from, step.to); err != nil {
			t.Fatalf("copy %s: %v", step.name, err)
		}
		compareState(t, step.from, step.to)
	}
	// A copy goes only into an empty store.
	if _, err := store.CopyStore(ctx, src, mid, store.CopyOptions{Source: "there"}); !errors.Is(err, store.ErrExists) {
		t.Fatalf("copy into a used store: %v, want ErrExists", err)
	}

	// The copies go on where the original was.
	for _, s := range []CopyStore{mid, back} {
		f := &fixture{t: t, s: s, ctx: ctx}
		a, err := s.AccountByAddress(ctx, "ann@copy.test")
		if err != nil {
			t.Fatal(err)
		}
		inbox := f.mailbox(a.ID, store.Inbox)
		d := f.deliver("Subject: after the copy\r\n\r\nnew\r\n", store.Target{AccountID: a.ID})
		if m := d.Messages[0]; m.UID != inbox.UIDNext || m.ModSeq <= inbox.HighestModSeq {
			t.Errorf("first delivery after the copy: UID %d MODSEQ %d, want UID %d and MODSEQ above %d", m.UID, m.ModSeq, inbox.UIDNext, inbox.HighestModSeq)
		}
		boxes, err := s.Mailboxes(ctx, a.ID)
		if err != nil {
			t.Fatal(err)
		}
		nb := f.create(a.ID, "Created after the copy")
		for _, b := range boxes {
			if b.UIDValidity == nb.UIDValidity || b.ID == nb.ID {
				t.Errorf("new mailbox %+v repeats %+v", nb, b)
			}
		}
		if _, err := s.AddAccount(ctx, "new@copy.test", store.Credentials{}); err != nil {
			t.Errorf("new account after the copy: %v", err)
		}
	}
	// The comparison sees what changed since.
	if err := store.CompareStores(ctx, src, mid); err == nil || !strings.Contains(err.Error(), "messages") {
		t.Fatalf("comparing changed copies: %v, want a difference in messages (delivered since)", err)
	}
}

// FillForCopy writes into s something of every kind a copy carries: domains with a
// catch-all, aliases, accounts with quotas, limits and admin rights, mailboxes with
// adopted UIDs, keywords and special uses, messages with flags (one body shared, one
// larger than any chunk a backend splits bodies into), tombstones, subscriptions, Sieve
// scripts and the vacation log, junk counts, greylisting, sending counters and a queued
// message with a lease.
func FillForCopy(t *testing.T, s CopyStore) {
	t.Helper()
	ctx := context.Background()
	f := &fixture{t: t, s: s, ctx: ctx}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	ann := f.account("ann@copy.test")
	bob := f.account("bob@copy.test")
	f.account("carl@other.test")
	must(s.SetCatchAll(ctx, "copy.test", "bob@copy.test"))
	must(s.AddAlias(ctx, "team@copy.test", []string{"ann@copy.test", "bob@copy.test"}))
	must(s.SetQuota(ctx, ann.ID, store.QuotaLimits{Storage: 50 << 20, Messages: store.QuotaDefault}))
	must(s.SetPOP3UIDL(ctx, bob.ID, store.UIDLDovecot))
	must(s.SetPOP3Delete(ctx, bob.ID, store.POP3Archive))
	must(s.SetAdmin(ctx, ann.ID, true))
	must(s.SetSendingOverride(ctx, ann.ID, store.SendingLimits{HourMessages: 7, HourRecipients: store.Inherit, DayMessages: 70, DayRecipients: store.Inherit}))
	if _, err := s.ChargeSending(ctx, ann.ID, time.Now(), 2, 3, store.SendingLimits{HourMessages: 100, HourRecipients: 100, DayMessages: 100, DayRecipients: 100}); err != nil {
		t.Fatal(err)
	}

	moved := f.create(ann.ID, "Moved/From Dovecot")
	must(s.AdoptUIDs(ctx, moved.ID, 1234567, 500))
	must(s.SetSubscribed(ctx, ann.ID, "Not there", true))
	must(s.SetSpecialUse(ctx, ann.ID, "Moved", store.UseArchive))
	for i := range 30 {
		body := fmt.Sprintf("Subject: message %d\r\n\r\nbody %d\r\n", i, i)
		f.deliver(body, store.Target{AccountID: ann.ID}, store.Target{AccountID: bob.ID})
	}
	// The same content twice (stored once by a backend that shares bodies), and one body
	// larger than a chunk.
	f.deliver("Subject: twice\r\n\r\nsame\r\n", store.Target{AccountID: ann.ID})
	f.deliver("Subject: twice\r\n\r\nsame\r\n", store.Target{AccountID: bob.ID})
	big := "Subject: big\r\n\r\n" + strings.Repeat("0123456789abcdef\r\n", 40000)
	f.deliver(big, store.Target{AccountID: ann.ID, Mailbox: "Moved/From Dovecot"})
	// One message whose copies carry each account's own fields (store.FieldDeliverer): a
	// copy holds them whole, and the shared body only they use goes with them.
	if fd, ok := s.(store.FieldDeliverer); ok {
		spam := "Return-Path: <s@remote.example>\r\nSubject: offer\r\n\r\nbuy\r\n"
		at := int64(len("Return-Path: <s@remote.example>\r\n"))
		_, err := fd.DeliverFields(ctx, delivery(spam, store.Target{AccountID: ann.ID, Mailbox: store.Junk}, store.Target{AccountID: bob.ID}),
			[]store.AccountFields{
				{AccountID: ann.ID, Fields: "X-Spam-Status: Yes\r\n", At: at, Parsed: store.ParsedMessage{Subject: "offer"}},
				{AccountID: bob.ID, Fields: "X-Spam-Status: No\r\n", At: at, Parsed: store.ParsedMessage{Subject: "offer"}},
			})
		must(err)
	}
	inbox := f.mailbox(ann.ID, store.Inbox)
	f.setFlags(inbox.ID, []uint32{1, 2, 3}, store.FlagsAdd, store.FlagSeen, "$Important")
	f.setFlags(inbox.ID, []uint32{4}, store.FlagsAdd, store.FlagDeleted)
	f.expunge(inbox.ID, 4, 5)
	if _, err := s.Move(ctx, inbox.ID, []uint32{6, 7}, moved.ID); err != nil {
		t.Fatal(err)
	}
	out := "Subject: out\r\n\r\nout\r\n"
	if _, err := s.Enqueue(ctx, &store.Outbound{MailFrom: "ann@copy.test", Ret: "HDRS", EightBit: true,
		Recipients: []store.OutboundRecipient{{Address: "x@remote.example", Domain: "remote.example", Notify: "FAILURE"},
			{Address: "y@far.example", Domain: "far.example"}},
		Body: strings.NewReader(out), Size: int64(len(out))}); err != nil {
		t.Fatal(err)
	}
	groups, err := s.Due(ctx, time.Now().Add(time.Minute), "", 10)
	if err != nil || len(groups) == 0 {
		t.Fatalf("Due: %v %v", groups, err)
	}
	if _, err := s.Claim(ctx, groups[0], time.Now(), time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}

	must(s.PutSieveScript(ctx, ann.ID, "rules", "keep;\r\n"))
	must(s.PutSieveScript(ctx, ann.ID, "other", "discard;\r\n"))
	must(s.SetActiveSieveScript(ctx, ann.ID, "rules"))
	if _, err := s.VacationReply(ctx, ann.ID, "handle", "Someone@Remote.example", time.Now(), time.Hour); err != nil {
		t.Fatal(err)
	}
	if _, err := s.TrainJunk(ctx, ann.ID, []byte("key-1"), []string{"cheap", "pills", "now"}, true); err != nil {
		t.Fatal(err)
	}
	if _, err := s.TrainJunk(ctx, ann.ID, []byte("key-2"), []string{"meeting", "now"}, false); err != nil {
		t.Fatal(err)
	}
	must(s.SetJunkThreshold(ctx, bob.ID, 0.75))
	now := time.Now()
	must(s.GreyPut(ctx, []store.GreyEntry{{Key: "192.0.2.0/24 a@b c@d", First: now.Add(-time.Hour), Last: now, Passed: true},
		{Key: "pass:example.net", First: now, Last: now}}))
	src, err := s.AddPullSource(ctx, store.PullSource{AccountID: bob.ID, Protocol: "pop3", Addr: "pop.far.example:995",
		TLS: "tls", User: "bob", Secret: []byte("sealed"), Keep: true, Every: 10 * time.Minute})
	must(err)
	must(s.MarkPulled(ctx, src, []string{"uidl-1", "uidl-2"}, now))
}

// compareState checks through the Store methods that b shows what a shows.
func compareState(t *testing.T, a, b CopyStore) {
	t.Helper()
	ctx := context.Background()
	same := func(what string, x, y any, errx, erry error) {
		t.Helper()
		if errx != nil || erry != nil {
			t.Fatalf("%s: %v, %v", what, errx, erry)
		}
		if !reflect.DeepEqual(x, y) {
			t.Fatalf("%s differs:\n%+v\n%+v", what, x, y)
		}
	}
	da, err1 := a.Domains(ctx)
	db, err2 := b.Domains(ctx)
	same("domains", da, db, err1, err2)
	aa, err1 := a.Aliases(ctx, "")
	ab, err2 := b.Aliases(ctx, "")
	same("aliases", aa, ab, err1, err2)
	accts, err1 := a.Accounts(ctx, "")
	acctsB, err2 := b.Accounts(ctx, "")
	same("accounts", accts, acctsB, err1, err2)
	for _, acct := range accts {
		id := acct.ID
		x, err1 := a.Mailboxes(ctx, id)
		y, err2 := b.Mailboxes(ctx, id)
		same("mailboxes", x, y, err1, err2)
		for _, mb := range x {
			ma, err1 := a.Messages(ctx, mb.ID, store.Filter{})
			mb2, err2 := b.Messages(ctx, mb.ID, store.Filter{})
			same("messages of "+mb.Name, ma, mb2, err1, err2)
			va, err1 := a.Vanished(ctx, mb.ID, store.Filter{})
			vb, err2 := b.Vanished(ctx, mb.ID, store.Filter{})
			same("tombstones of "+mb.Name, va, vb, err1, err2)
			for _, m := range ma {
				fa := &fixture{t: t, s: a, ctx: ctx}
				fb := &fixture{t: t, s: b, ctx: ctx}
				if fa.blob(m.BlobID) != fb.blob(m.BlobID) {
					t.Fatalf("body %d differs", m.BlobID)
				}
				pa, err1 := a.Parsed(ctx, m.BlobID)
				pb, err2 := b.Parsed(ctx, m.BlobID)
				same("parse", pa, pb, err1, err2)
			}
		}
		sa, err1 := a.Subscriptions(ctx, id)
		sb, err2 := b.Subscriptions(ctx, id)
		same("subscriptions", sa, sb, err1, err2)
		qa, err1 := a.Quota(ctx, id)
		qb, err2 := b.Quota(ctx, id)
		same("quota", qa, qb, err1, err2)
		ada, err1 := a.IsAdmin(ctx, id)
		adb, err2 := b.IsAdmin(ctx, id)
		same("admin", ada, adb, err1, err2)
		sca, err1 := a.SieveScripts(ctx, id)
		scb, err2 := b.SieveScripts(ctx, id)
		same("sieve scripts", sca, scb, err1, err2)
		tokens := []string{"cheap", "pills", "now", "meeting", "absent"}
		ja, err1 := a.JunkState(ctx, id, tokens)
		jb, err2 := b.JunkState(ctx, id, tokens)
		same("junk state", ja, jb, err1, err2)
		oa, err1 := a.SendingOverride(ctx, id)
		ob, err2 := b.SendingOverride(ctx, id)
		same("sending limits", oa, ob, err1, err2)
		ua, err1 := a.SendingUsage(ctx, id, time.Now())
		ub, err2 := b.SendingUsage(ctx, id, time.Now())
		same("sending usage", ua, ub, err1, err2)
	}
	ea, err1 := a.Entries(ctx)
	eb, err2 := b.Entries(ctx)
	same("queue", ea, eb, err1, err2)
	keys := []string{"192.0.2.0/24 a@b c@d", "pass:example.net"}
	ga, err1 := a.GreyGet(ctx, keys)
	gb, err2 := b.GreyGet(ctx, keys)
	slices.SortFunc(ga, func(x, y store.GreyEntry) int { return strings.Compare(x.Key, y.Key) })
	slices.SortFunc(gb, func(x, y store.GreyEntry) int { return strings.Compare(x.Key, y.Key) })
	same("greylist", ga, gb, err1, err2)
}

// errInterrupted stops a copy in RunCopyResume, as a crash would.
var errInterrupted = errors.New("interrupted")

// countingExporter counts the rows its store's export reads, resumed or not.
type countingExporter struct {
	CopyStore
	rows int64
}

func (c *countingExporter) count(fn func(string, []any) error) func(string, []any) error {
	return func(table string, row []any) error {
		c.rows++
		return fn(table, row)
	}
}

func (c *countingExporter) Export(ctx context.Context, fn func(string, []any) error) error {
	return c.CopyStore.Export(ctx, c.count(fn))
}

func (c *countingExporter) ExportAfter(ctx context.Context, table string, key []any, fn func(string, []any) error) error {
	return c.CopyStore.ExportAfter(ctx, table, key, c.count(fn))
}

// RunCopyResume checks that an interrupted store.CopyStore resumes: a copy from a store
// of open1 into one of open2 is stopped after a batch in each of several tables (small
// batches, so that each table takes several) and run again until it finishes. The
// result holds the same rows as the source, none twice and none missing; the progress
// says where each run went on; and each run reads the source from where the last one
// stopped, not from the start. A copy from another source is refused, and so is a copy
// into a store with data of its own.
func RunCopyResume(t *testing.T, open1, open2 func(t *testing.T) CopyStore) {
	ctx := context.Background()
	store1, dst := open1(t), open2(t)
	defer store1.Close()
	defer dst.Close()
	FillForCopy(t, store1)
	checkExportAfter(t, store1)
	src := &countingExporter{CopyStore: store1}
	// Stop in the middle of these tables, then at their ends: the state then names a
	// table whose last row was written, and the next run starts with the next table.
	stops := []string{"accounts", "mailboxes", "blobs", "messages", "messages", "expunged", "queue_rcpts", "junk_tokens"}
	var total map[string]int64
	runs := 0
	for {
		runs++
		if runs > 100 {
			t.Fatal("the copy does not finish")
		}
		var first *store.CopyProgress
		written := 0
		opts := store.CopyOptions{Source: "src", BatchRows: 7,
			Progress: func(p store.CopyProgress) {
				if first == nil {
					first = &p
				}
				total = p.Total
			},
			AfterBatch: func(p store.CopyProgress) error {
				written++
				if len(stops) > 0 && p.Table == stops[0] && (written > 1 || p.Rows == p.Total[p.Table]) {
					stops = stops[1:]
					return errInterrupted
				}
				return nil
			}}
		counts, err := store.CopyStore(ctx, src, dst, opts)
		if runs > 1 && (first == nil || !first.Resumed || first.ResumedRows == 0) {
			t.Fatalf("run %d: first progress %+v, want a resumed copy", runs, first)
		}
		if errors.Is(err, errInterrupted) {
			if _, err := store.CopyStore(ctx, src, dst, store.CopyOptions{Source: "another"}); !errors.Is(err, store.ErrOtherCopy) {
				t.Fatalf("resuming from another source: %v, want ErrOtherCopy", err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("run %d: %v", runs, err)
		}
		if len(stops) > 0 {
			t.Fatalf("the copy finished without passing through %v", stops)
		}
		if !reflect.DeepEqual(counts, nonZero(total)) {
			t.Errorf("rows copied %v, want the source's %v", counts, total)
		}
		break
	}
	if runs < 5 {
		t.Fatalf("%d runs: the copy was not interrupted", runs)
	}
	// Each row is read once, but for the row that an interrupted run read before it
	// stopped (the first of its next batch) and the next run reads again.
	var rows int64
	for _, n := range total {
		rows += n
	}
	if src.rows < rows || src.rows > rows+int64(runs-1) {
		t.Errorf("%d runs read %d rows of a source of %d: a resumed copy must read only from where it stopped", runs, src.rows, rows)
	}
	if err := store.CompareStores(ctx, src, dst); err != nil {
		t.Fatalf("after %d runs: %v", runs, err)
	}
	compareState(t, src, dst)
	// Finished: neither resumed nor repeated.
	if _, err := store.CopyStore(ctx, src, dst, store.CopyOptions{Source: "src"}); !errors.Is(err, store.ErrExists) {
		t.Fatalf("copy into a finished copy: %v, want ErrExists", err)
	}
}

// checkExportAfter checks store.ResumableExporter on every table the store has rows of:
// an export after a row in the middle of a table gives what the whole export gives after
// that row, the rest of the table (keys of text and bytes included) and every later table.
func checkExportAfter(t *testing.T, s CopyStore) {
	t.Helper()
	ctx := context.Background()
	type row struct {
		table string
		vals  []any
	}
	collect := func(export func(fn func(string, []any) error) error) []row {
		t.Helper()
		var out []row
		err := export(func(table string, vals []any) error {
			own := make([]any, len(vals))
			for i, v := range vals {
				if b, ok := v.([]byte); ok {
					v = slices.Clone(b)
				}
				own[i] = v
			}
			out = append(out, row{table, own})
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	all := collect(func(fn func(string, []any) error) error { return s.Export(ctx, fn) })
	tried := 0
	for _, ct := range store.CopyTables {
		first := slices.IndexFunc(all, func(r row) bool { return r.table == ct.Name })
		if first < 0 {
			continue
		}
		n := 0
		for _, r := range all[first:] {
			if r.table != ct.Name {
				break
			}
			n++
		}
		at := first + n/2
		key := all[at].vals[:ct.Key]
		got := collect(func(fn func(string, []any) error) error { return s.ExportAfter(ctx, ct.Name, key, fn) })
		if want := all[at+1:]; len(got) != len(want) || len(want) > 0 && !reflect.DeepEqual(got, want) {
			t.Errorf("ExportAfter(%s, %v): %d rows, want the %d after it in Export", ct.Name, key, len(got), len(all[at+1:]))
		}
		tried++
	}
	if tried < 10 {
		t.Errorf("ExportAfter tried on %d tables only: the store has too few kinds of rows", tried)
	}
	if err := s.ExportAfter(ctx, "no such table", []any{int64(1)}, func(string, []any) error { return nil }); !errors.Is(err, store.ErrInvalid) {
		t.Errorf("ExportAfter of an unknown table = %v, want ErrInvalid", err)
	}
}

func nonZero(m map[string]int64) map[string]int64 {
	out := map[string]int64{}
	for k, v := range m {
		if v != 0 {
			out[k] = v
		}
	}
	return out
}
