package storetest

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"petrel/internal/store"
)

// SieveStore is a store with Sieve scripts (store.Sieve).
type SieveStore interface {
	store.Store
	store.Sieve
}

// RunSieve runs the checks of store.Sieve, and of the delivery fields only a Sieve backend
// honours (Delivery.TargetFlags, Delivery.More). open returns a new, empty store.
func RunSieve(t *testing.T, open func(t *testing.T) SieveStore) {
	tests := []struct {
		name string
		fn   func(*testing.T, *fixture, store.Sieve)
	}{
		{"Scripts", testSieveScripts},
		{"Active", testSieveActive},
		{"Vacation", testVacationLog},
		{"VacationConcurrent", testVacationConcurrent},
		{"DeliverSieveFields", testDeliverSieveFields},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := open(t)
			t.Cleanup(func() {
				if err := s.Close(); err != nil {
					t.Errorf("Close: %v", err)
				}
			})
			tc.fn(t, &fixture{t: t, s: s, ctx: context.Background()}, s)
		})
	}
}

func testSieveScripts(t *testing.T, f *fixture, sv store.Sieve) {
	a := f.account("ann@example.test")
	b := f.account("bob@example.test")
	ctx := f.ctx
	if list, err := sv.SieveScripts(ctx, a.ID); err != nil || len(list) != 0 {
		t.Fatalf("new account: %v %v", list, err)
	}
	if _, err := sv.SieveScripts(ctx, 9999); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("missing account: %v", err)
	}
	for _, n := range []string{"work", "home"} {
		if err := sv.PutSieveScript(ctx, a.ID, n, "keep; # "+n); err != nil {
			t.Fatal(err)
		}
	}
	if err := sv.PutSieveScript(ctx, a.ID, "work", "discard;"); err != nil {
		t.Fatal(err)
	}
	list, err := sv.SieveScripts(ctx, a.ID)
	if err != nil || len(list) != 2 || list[0].Name != "home" || list[1].Name != "work" || list[1].Content != "discard;" {
		t.Fatalf("list = %+v, %v", list, err)
	}
	if other, _ := sv.SieveScripts(ctx, b.ID); len(other) != 0 {
		t.Fatalf("scripts leak into another account: %+v", other)
	}
	if _, err := sv.SieveScript(ctx, b.ID, "work"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("another account's script: %v", err)
	}
	if err := sv.PutSieveScript(ctx, a.ID, "bad\nname", "keep;"); !errors.Is(err, store.ErrInvalid) {
		t.Fatalf("bad name: %v", err)
	}
	if err := sv.RenameSieveScript(ctx, a.ID, "home", "work"); !errors.Is(err, store.ErrExists) {
		t.Fatalf("rename onto existing: %v", err)
	}
	if err := sv.RenameSieveScript(ctx, a.ID, "home", "house"); err != nil {
		t.Fatal(err)
	}
	if sc, err := sv.SieveScript(ctx, a.ID, "house"); err != nil || sc.Content != "keep; # home" {
		t.Fatalf("renamed: %+v %v", sc, err)
	}
	if err := sv.RenameSieveScript(ctx, a.ID, "nope", "x"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("rename missing: %v", err)
	}
	if err := sv.DeleteSieveScript(ctx, a.ID, "house"); err != nil {
		t.Fatal(err)
	}
	if err := sv.DeleteSieveScript(ctx, a.ID, "house"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("delete twice: %v", err)
	}
	// Deleting the account takes its scripts.
	if err := f.s.DeleteAccount(ctx, "ann@example.test"); err != nil {
		t.Fatal(err)
	}
	a2 := f.account("ann@example.test")
	if list, _ := sv.SieveScripts(ctx, a2.ID); len(list) != 0 {
		t.Fatalf("a new account sees old scripts: %+v", list)
	}
}

func testSieveActive(t *testing.T, f *fixture, sv store.Sieve) {
	a := f.account("ann@example.test")
	ctx := f.ctx
	if _, err := sv.ActiveSieveScript(ctx, a.ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("no script active: %v", err)
	}
	sv.PutSieveScript(ctx, a.ID, "one", "keep;")
	sv.PutSieveScript(ctx, a.ID, "two", "discard;")
	if err := sv.SetActiveSieveScript(ctx, a.ID, "missing"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("activate missing: %v", err)
	}
	for _, name := range []string{"one", "two"} {
		if err := sv.SetActiveSieveScript(ctx, a.ID, name); err != nil {
			t.Fatal(err)
		}
		act, err := sv.ActiveSieveScript(ctx, a.ID)
		if err != nil || act.Name != name || !act.Active {
			t.Fatalf("active = %+v %v, want %s", act, err, name)
		}
		list, _ := sv.SieveScripts(ctx, a.ID)
		n := 0
		for _, sc := range list {
			if sc.Active {
				n++
			}
		}
		if n != 1 {
			t.Fatalf("%d active scripts", n)
		}
	}
	// Replacing the content keeps it active; deleting it is refused.
	sv.PutSieveScript(ctx, a.ID, "two", "stop;")
	if act, _ := sv.ActiveSieveScript(ctx, a.ID); act.Name != "two" || act.Content != "stop;" {
		t.Fatalf("after replace: %+v", act)
	}
	if err := sv.DeleteSieveScript(ctx, a.ID, "two"); !errors.Is(err, store.ErrInvalid) {
		t.Fatalf("delete active: %v", err)
	}
	// Renaming keeps it active.
	if err := sv.RenameSieveScript(ctx, a.ID, "two", "deux"); err != nil {
		t.Fatal(err)
	}
	if act, _ := sv.ActiveSieveScript(ctx, a.ID); act.Name != "deux" {
		t.Fatalf("after rename: %+v", act)
	}
	if err := sv.SetActiveSieveScript(ctx, a.ID, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := sv.ActiveSieveScript(ctx, a.ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("after deactivating: %v", err)
	}
}

func testVacationLog(t *testing.T, f *fixture, sv store.Sieve) {
	a := f.account("ann@example.test")
	b := f.account("bob@example.test")
	ctx := f.ctx
	now := time.Date(2026, 7, 1, 12, 0, 0, 0, time.UTC)
	week := 7 * 24 * time.Hour
	check := func(acct int64, handle, sender string, at time.Time, want bool) {
		t.Helper()
		got, err := sv.VacationReply(ctx, acct, handle, sender, at, week)
		if err != nil || got != want {
			t.Fatalf("VacationReply(%d, %q, %q, %v) = %v, %v; want %v", acct, handle, sender, at, got, err, want)
		}
	}
	check(a.ID, "h", "x@remote.example", now, true)
	check(a.ID, "h", "X@Remote.Example", now.Add(time.Hour), false) // same sender, any case
	check(a.ID, "h", "y@remote.example", now.Add(time.Hour), true)  // another sender
	check(a.ID, "other", "x@remote.example", now.Add(time.Hour), true)
	check(b.ID, "h", "x@remote.example", now.Add(time.Hour), true) // another account
	check(a.ID, "h", "x@remote.example", now.Add(week-time.Second), false)
	check(a.ID, "h", "x@remote.example", now.Add(week), true) // the period is over
	check(a.ID, "h", "x@remote.example", now.Add(week+time.Hour), false)
	if _, err := sv.VacationReply(ctx, 9999, "h", "x@remote.example", now, week); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("missing account: %v", err)
	}
}

func testVacationConcurrent(t *testing.T, f *fixture, sv store.Sieve) {
	a := f.account("ann@example.test")
	now := time.Now()
	var wg sync.WaitGroup
	var mu sync.Mutex
	replies := 0
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ok, err := sv.VacationReply(f.ctx, a.ID, "h", "x@remote.example", now, time.Hour)
			if err != nil {
				t.Error(err)
			}
			if ok {
				mu.Lock()
				replies++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if replies != 1 {
		t.Fatalf("%d concurrent deliveries replied, want 1", replies)
	}
}

func testDeliverSieveFields(t *testing.T, f *fixture, _ store.Sieve) {
	a := f.account("ann@example.test")
	f.s.CreateMailbox(f.ctx, a.ID, "Lists")
	d := delivery("Subject: x\r\n\r\nbody\r\n",
		store.Target{AccountID: a.ID, Mailbox: "INBOX"},
		store.Target{AccountID: a.ID, Mailbox: "Lists"})
	d.Flags = []string{store.FlagSeen}
	d.TargetFlags = [][]string{nil, {store.FlagFlagged, "$Label1"}}
	redirect := "Subject: x\r\n\r\nbody\r\n"
	reply := "Subject: Auto: x\r\n\r\naway\r\n"
	d.More = []*store.Outbound{
		{MailFrom: "sender@remote.example", Recipients: []store.OutboundRecipient{{Address: "fwd@far.example", Domain: "far.example"}},
			Body: strings.NewReader(redirect), Size: int64(len(redirect))},
		{MailFrom: "", Recipients: []store.OutboundRecipient{{Address: "sender@remote.example", Domain: "remote.example"}},
			Body: strings.NewReader(reply), Size: int64(len(reply))},
	}
	got, err := f.s.Deliver(f.ctx, d)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{store.FlagSeen}; !equalStrings(got.Messages[0].Flags, want) {
		t.Errorf("INBOX flags %v, want %v", got.Messages[0].Flags, want)
	}
	if want := []string{"$Label1", store.FlagFlagged}; !equalStrings(got.Messages[1].Flags, want) {
		t.Errorf("Lists flags %v, want %v", got.Messages[1].Flags, want)
	}
	if box := f.mailbox(a.ID, "Lists"); box.Unseen != 1 || len(box.Keywords) != 1 {
		t.Errorf("Lists counts: %+v", box)
	}
	entries, err := f.s.Entries(f.ctx)
	if err != nil || len(entries) != 2 {
		t.Fatalf("queue: %d entries, %v; want 2", len(entries), err)
	}
	if entries[0].MailFrom != "sender@remote.example" || entries[1].MailFrom != "" ||
		entries[0].Recipients[0].Address != "fwd@far.example" || entries[1].Recipients[0].Address != "sender@remote.example" {
		t.Errorf("queue entries: %+v", entries)
	}
	rc, err := f.s.OpenBlob(f.ctx, entries[1].BlobID)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	var b strings.Builder
	buf := make([]byte, 512)
	for {
		n, err := rc.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			break
		}
	}
	if b.String() != reply {
		t.Errorf("queued reply %q, want %q", b.String(), reply)
	}
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
