package sqlite

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"petrel/internal/store"
)

// inOneBatch runs calls, queued in this order, in one committer batch: a request that
// blocks holds the committer until all of them wait in its queue.
func inOneBatch(t *testing.T, s *Store, calls ...func()) {
	t.Helper()
	held, release := make(chan struct{}), make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := s.write(context.Background(), 0, func(*tx) error {
			close(held)
			<-release
			return nil
		}); err != nil {
			t.Error(err)
		}
	})
	<-held
	for _, f := range calls {
		n := len(s.reqs)
		wg.Go(f)
		for len(s.reqs) == n {
			time.Sleep(100 * time.Microsecond)
		}
	}
	before := s.batches.Load()
	close(release)
	wg.Wait()
	if got := s.batches.Load() - before; got != 1 {
		t.Fatalf("calls ran in %d batches, want 1", got)
	}
}

// checkCounters reopens the database and compares the rows the counters write with what
// the deliveries returned.
func checkCounters(t *testing.T, path string, accountID int64, boxes map[string]store.Mailbox) {
	t.Helper()
	s := openPath(t, path, Options{})
	defer s.Close()
	ctx := context.Background()
	var highest uint64
	for name, want := range boxes {
		got, err := s.Mailbox(ctx, accountID, name)
		if err != nil {
			t.Fatal(err)
		}
		if got.UIDNext != want.UIDNext || got.Messages != want.Messages || got.HighestModSeq != want.HighestModSeq {
			t.Errorf("mailbox %s after reopen: %+v, want UIDNext %d, %d messages, MODSEQ %d",
				name, got, want.UIDNext, want.Messages, want.HighestModSeq)
		}
		ms, err := s.Messages(ctx, got.ID, store.Filter{})
		if err != nil || len(ms) != want.Messages {
			t.Errorf("mailbox %s lists %d messages (%v), want %d", name, len(ms), err, want.Messages)
		}
		var size int64
		unseen := 0
		for _, m := range ms {
			size += m.Size
			if !slices.Contains(m.Flags, store.FlagSeen) {
				unseen++
			}
		}
		if got.Size != size || got.Unseen != unseen || got.Size != want.Size || got.Unseen != want.Unseen {
			t.Errorf("mailbox %s after reopen: size %d, unseen %d; its messages make %d, %d; before the reopen %d, %d",
				name, got.Size, got.Unseen, size, unseen, want.Size, want.Unseen)
		}
		highest = max(highest, want.HighestModSeq)
	}
	// The usage the counters raise is the sum over all the account's mailboxes.
	mbs, err := s.Mailboxes(ctx, accountID)
	if err != nil {
		t.Fatal(err)
	}
	var want store.Usage
	for _, m := range mbs {
		want.Messages += int64(m.Messages)
		want.Size += m.Size
		want.Mailboxes++
	}
	if u, err := s.Usage(ctx, accountID); err != nil || u != want {
		t.Errorf("Usage after reopen %+v, %v; the mailboxes make %+v", u, err, want)
	}
	a, err := s.AccountByID(ctx, accountID)
	if err != nil {
		t.Fatal(err)
	}
	// The account MODSEQ is not part of store.Account; read the row.
	var modseq uint64
	if err := s.rdb.QueryRowContext(ctx, `SELECT modseq FROM accounts WHERE id = ?`, a.ID).Scan(&modseq); err != nil {
		t.Fatal(err)
	}
	if modseq < highest {
		t.Errorf("account MODSEQ %d below a mailbox's %d", modseq, highest)
	}
}

// TestCountersInOneBatch mixes deliveries, a failing delivery and a request of another
// kind in one transaction: UIDs and MODSEQs stay strictly increasing, the failure takes
// nothing, the new mailbox is used at once, and the rows match after a reopen.
func TestCountersInOneBatch(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "petrel.db")
	s := openPath(t, path, Options{})
	a := setup(t, s, "batch@example.org")

	var got []store.Message
	var mu sync.Mutex
	deliverTo := func(accountID int64, mailbox string, fallback bool, wantErr error) func() {
		return func() {
			d := message("Subject: x\r\n\r\nbody\r\n", accountID)
			d.Targets[0].Mailbox = mailbox
			d.InboxFallback = fallback
			out, err := s.Deliver(ctx, d)
			if !errors.Is(err, wantErr) {
				t.Errorf("Deliver to %d/%s: %v, want %v", accountID, mailbox, err, wantErr)
			}
			if err == nil {
				mu.Lock()
				got = append(got, out.Messages...)
				mu.Unlock()
			}
		}
	}
	deliver := func(accountID int64, mailbox string, wantErr error) func() {
		return deliverTo(accountID, mailbox, true, wantErr)
	}
	createProjects := func() {
		if _, err := s.CreateMailbox(ctx, a.ID, "Projects"); err != nil {
			t.Error(err)
		}
	}
	inOneBatch(t, s,
		deliver(a.ID, "Projects", nil), // no Projects yet: INBOX
		// The same name without the fallback must not reuse the fallback's INBOX.
		deliverTo(a.ID, "Projects", false, store.ErrNotFound),
		deliver(a.ID+1000, store.Inbox, store.ErrNotFound),
		func() {
			// Takes an INBOX UID for its first target, then fails on the second: the UID
			// and MODSEQ it took must not count.
			d := message("Subject: y\r\n\r\nbody\r\n", a.ID)
			d.Targets = append(d.Targets, store.Target{AccountID: a.ID + 1000, Mailbox: store.Inbox})
			if _, err := s.Deliver(ctx, d); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("Deliver to a missing account: %v", err)
			}
		},
		deliver(a.ID, store.Inbox, nil),
		createProjects,
		deliver(a.ID, "Projects", nil),
		deliver(a.ID, "Projects", nil),
		deliver(a.ID, store.Inbox, nil),
	)
	// Two more, each in a batch of its own, from the counters that batch left.
	deliver(a.ID, "Projects", nil)()
	deliver(a.ID, store.Inbox, nil)()

	inbox, err := s.Mailbox(ctx, a.ID, store.Inbox)
	if err != nil {
		t.Fatal(err)
	}
	projects, err := s.Mailbox(ctx, a.ID, "Projects")
	if err != nil {
		t.Fatal(err)
	}
	lastUID := map[int64]uint32{}
	var lastModSeq uint64
	counts := map[int64]int{}
	// The committer gives MODSEQs in the order it runs requests.
	slices.SortFunc(got, func(x, y store.Message) int { return cmp.Compare(x.ModSeq, y.ModSeq) })
	for _, m := range got {
		if m.ModSeq <= lastModSeq {
			t.Errorf("MODSEQ %d after %d", m.ModSeq, lastModSeq)
		}
		if m.UID != lastUID[m.MailboxID]+1 {
			t.Errorf("mailbox %d: UID %d after %d", m.MailboxID, m.UID, lastUID[m.MailboxID])
		}
		lastModSeq, lastUID[m.MailboxID] = m.ModSeq, m.UID
		counts[m.MailboxID]++
	}
	if counts[inbox.ID] != 4 || counts[projects.ID] != 3 {
		t.Errorf("INBOX got %d, Projects %d; want 4 and 3", counts[inbox.ID], counts[projects.ID])
	}
	for _, b := range []store.Mailbox{inbox, projects} {
		if b.Messages != counts[b.ID] || b.UIDNext != lastUID[b.ID]+1 {
			t.Errorf("mailbox %+v after %d deliveries ending at UID %d", b, counts[b.ID], lastUID[b.ID])
		}
	}
	if inbox.HighestModSeq != lastModSeq && projects.HighestModSeq != lastModSeq {
		t.Errorf("neither mailbox has the last MODSEQ %d: %d, %d", lastModSeq, inbox.HighestModSeq, projects.HighestModSeq)
	}
	s.Close()
	checkCounters(t, path, a.ID, map[string]store.Mailbox{store.Inbox: inbox, "Projects": projects})
}

// TestCountersAcrossStores alternates deliveries between two stores on one file (the
// server and the CLI): each must notice the other's commits (PRAGMA data_version) instead
// of giving out UIDs and MODSEQs from stale counters.
func TestCountersAcrossStores(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "petrel.db")
	server := openPath(t, path, Options{})
	cli := openPath(t, path, Options{})
	a := setup(t, server, "two@example.org")

	var lastUID uint32
	var lastModSeq uint64
	for i := range 12 {
		s := server
		if i%3 == 2 { // the server twice, then the CLI
			s = cli
		}
		out, err := s.Deliver(ctx, message(fmt.Sprintf("Subject: %d\r\n\r\n", i), a.ID))
		if err != nil {
			t.Fatal(err)
		}
		m := out.Messages[0]
		if m.UID != lastUID+1 || m.ModSeq <= lastModSeq {
			t.Fatalf("delivery %d: UID %d MODSEQ %d after UID %d MODSEQ %d", i, m.UID, m.ModSeq, lastUID, lastModSeq)
		}
		lastUID, lastModSeq = m.UID, m.ModSeq
	}
	// A change of another kind from the other store: the server's next delivery sees it.
	box, err := cli.CreateMailbox(ctx, a.ID, "Lists")
	if err != nil {
		t.Fatal(err)
	}
	d := message("Subject: lists\r\n\r\n", a.ID)
	d.Targets[0].Mailbox = "Lists"
	out, err := server.Deliver(ctx, d)
	if err != nil {
		t.Fatal(err)
	}
	if m := out.Messages[0]; m.MailboxID != box.ID || m.UID != 1 || m.ModSeq <= box.HighestModSeq {
		t.Errorf("delivery after the CLI created Lists: %+v (Lists %+v)", m, box)
	}
	inbox, err := cli.Mailbox(ctx, a.ID, store.Inbox)
	if err != nil {
		t.Fatal(err)
	}
	lists, err := cli.Mailbox(ctx, a.ID, "Lists")
	if err != nil {
		t.Fatal(err)
	}
	if inbox.UIDNext != 13 || inbox.Messages != 12 || inbox.HighestModSeq != lastModSeq {
		t.Errorf("INBOX %+v, want UIDNext 13, 12 messages, MODSEQ %d", inbox, lastModSeq)
	}
	server.Close()
	cli.Close()
	checkCounters(t, path, a.ID, map[string]store.Mailbox{store.Inbox: inbox, "Lists": lists})
}
