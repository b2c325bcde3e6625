package storetest

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"petrel/internal/store"
)

// PullStore is what RunPulls tests: the pull sources and the store they deliver into.
type PullStore interface {
	store.Store
	store.Pulls
}

// RunPulls tests a store.Pulls: sources per account, claims that never give one source to
// two pollers while the lease runs, the unique-id state, and Delivery.Pulled recording the
// unique-id in the commit of the delivery (a second delivery of it is refused).
func RunPulls(t *testing.T, open func(t *testing.T) PullStore) {
	st := open(t)
	ctx := context.Background()
	f := &fixture{t: t, s: st, ctx: ctx}
	a := f.account("a@pull.test")
	b := f.account("b@pull.test")
	t0 := time.Unix(1_800_000_000, 0)

	src := store.PullSource{AccountID: a.ID, Protocol: "pop3", Addr: "pop.example:995", TLS: "tls", User: "u",
		Secret: []byte{0, 1, 2, 255}, Every: 5 * time.Minute, NextPoll: t0}
	id1, err := st.AddPullSource(ctx, src)
	if err != nil {
		t.Fatal(err)
	}
	src.Protocol, src.Addr, src.Folder, src.Keep, src.CAFile = "imap", "imap.example:143", "Lists/go", true, "/etc/ca.pem"
	src.NextPoll = t0.Add(time.Hour)
	id2, err := st.AddPullSource(ctx, src)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.AddPullSource(ctx, store.PullSource{AccountID: 1 << 40, Protocol: "pop3", Secret: []byte{1}}); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("AddPullSource for a missing account: %v", err)
	}
	list, err := st.PullSources(ctx, a.ID)
	if err != nil || len(list) != 2 {
		t.Fatalf("PullSources = %v, %v", list, err)
	}
	if p := list[1]; p.ID != id2 || p.Protocol != "imap" || p.Addr != "imap.example:143" || p.Folder != "Lists/go" || !p.Keep ||
		p.CAFile != "/etc/ca.pem" || p.User != "u" || !slices.Equal(p.Secret, []byte{0, 1, 2, 255}) || p.Every != 5*time.Minute ||
		!p.NextPoll.Equal(t0.Add(time.Hour)) || !p.LastPoll.IsZero() || !p.Lease.IsZero() {
		t.Errorf("second source %+v", p)
	}
	if other, err := st.PullSources(ctx, b.ID); err != nil || len(other) != 0 {
		t.Errorf("b's sources %v, %v", other, err)
	}

	// Only the first is due at t0; claimed, it is not claimed again while its lease runs.
	got, err := st.ClaimPull(ctx, t0, time.Minute)
	if err != nil || got.ID != id1 || got.Lease.IsZero() {
		t.Fatalf("ClaimPull = %+v, %v", got, err)
	}
	if _, err := st.ClaimPull(ctx, t0.Add(30*time.Second), time.Minute); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("second claim during the lease: %v", err)
	}
	// The lease ran out (the poller died): another takes it, and the first cannot finish.
	again, err := st.ClaimPull(ctx, t0.Add(2*time.Minute), time.Minute)
	if err != nil || again.ID != id1 {
		t.Fatalf("claim after the lease: %+v, %v", again, err)
	}
	if err := st.FinishPull(ctx, got, store.PullOutcome{Polled: t0, NextPoll: t0.Add(time.Hour)}); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("FinishPull with a lost lease: %v", err)
	}
	if err := st.FinishPull(ctx, again, store.PullOutcome{Polled: t0.Add(2 * time.Minute), NextPoll: t0.Add(10 * time.Minute),
		LastError: "connection refused", Failures: 3}); err != nil {
		t.Fatal(err)
	}
	list, _ = st.PullSources(ctx, a.ID)
	if p := list[0]; p.LastError != "connection refused" || p.Failures != 3 || !p.NextPoll.Equal(t0.Add(10*time.Minute)) ||
		!p.LastPoll.Equal(t0.Add(2*time.Minute)) || !p.Lease.IsZero() {
		t.Errorf("after FinishPull %+v", p)
	}
	if _, err := st.ClaimPull(ctx, t0.Add(5*time.Minute), time.Minute); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("claim before the next poll: %v", err)
	}
	// A lease left by a crash ends with ReleasePullLeases.
	if err := st.PullNow(ctx, a.ID, id2); err != nil {
		t.Fatal(err)
	}
	if got, err := st.ClaimPull(ctx, t0, time.Hour); err != nil || got.ID != id2 {
		t.Fatalf("claim of the second source: %+v, %v", got, err)
	}
	if err := st.ReleasePullLeases(ctx); err != nil {
		t.Fatal(err)
	}
	if got, err := st.ClaimPull(ctx, t0, time.Hour); err != nil || got.ID != id2 {
		t.Fatalf("claim after ReleasePullLeases: %+v, %v", got, err)
	} else if err := st.FinishPull(ctx, got, store.PullOutcome{Polled: t0, NextPoll: t0.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	// PullNow makes it due; another account cannot.
	wantErr(t, "PullNow of another account's source", st.PullNow(ctx, b.ID, id1), store.ErrNotFound)
	if err := st.PullNow(ctx, a.ID, id1); err != nil {
		t.Fatal(err)
	}
	now, err := st.ClaimPull(ctx, t0.Add(5*time.Minute), time.Minute)
	if err != nil || now.ID != id1 {
		t.Fatalf("claim after PullNow: %+v, %v", now, err)
	}
	if err := st.FinishPull(ctx, now, store.PullOutcome{Polled: t0, NextPoll: t0.Add(24 * time.Hour)}); err != nil {
		t.Fatal(err)
	}

	// The unique-id state.
	if err := st.MarkPulled(ctx, id1, []string{"u1", "u2"}, t0); err != nil {
		t.Fatal(err)
	}
	if err := st.MarkPulled(ctx, id1, []string{"u2", "u3"}, t0.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	seen, err := st.PulledUIDs(ctx, id1)
	if err != nil || len(seen) != 3 || !seen["u2"].Equal(t0) || !seen["u3"].Equal(t0.Add(time.Hour)) {
		t.Fatalf("PulledUIDs = %v, %v", seen, err)
	}
	if err := st.ForgetPulled(ctx, id1, []string{"u1", "nope"}); err != nil {
		t.Fatal(err)
	}
	if seen, _ := st.PulledUIDs(ctx, id1); len(seen) != 2 || !seen["u3"].Equal(t0.Add(time.Hour)) {
		t.Errorf("after ForgetPulled %v", seen)
	}
	if other, _ := st.PulledUIDs(ctx, id2); len(other) != 0 {
		t.Errorf("the other source's state %v", other)
	}

	// A delivery records its unique-id in its commit; the same unique-id again delivers
	// nothing, also when several deliver it at once.
	d := delivery("Subject: pulled\r\n\r\nbody\r\n", inbox(a.ID))
	d.Pulled = &store.PulledMessage{SourceID: id1, UID: "m1"}
	if _, err := st.Deliver(ctx, d); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Go(func() {
			d := delivery("Subject: pulled\r\n\r\nbody\r\n", inbox(a.ID))
			d.Pulled = &store.PulledMessage{SourceID: id1, UID: "m1"}
			_, errs[i] = st.Deliver(ctx, d)
		})
	}
	wg.Wait()
	for i, err := range errs {
		wantErr(t, "second delivery of a pulled message "+string(rune('0'+i)), err, store.ErrExists)
	}
	if n := len(f.messages(f.mailbox(a.ID, store.Inbox).ID)); n != 1 {
		t.Errorf("%d messages in the inbox, want 1", n)
	}
	if seen, _ := st.PulledUIDs(ctx, id1); seen["m1"].IsZero() {
		t.Errorf("the delivery did not record its unique-id: %v", seen)
	}

	// Removing a source removes its state; another account's source is not removed.
	wantErr(t, "RemovePullSource of another account", st.RemovePullSource(ctx, b.ID, id1), store.ErrNotFound)
	if err := st.RemovePullSource(ctx, a.ID, id1); err != nil {
		t.Fatal(err)
	}
	if seen, _ := st.PulledUIDs(ctx, id1); len(seen) != 0 {
		t.Errorf("state of a removed source %v", seen)
	}
	if list, _ := st.PullSources(ctx, a.ID); len(list) != 1 || list[0].ID != id2 {
		t.Errorf("after RemovePullSource %v", list)
	}
}

// RunPullClaims has several pollers claim one due source at once: exactly one gets it.
func RunPullClaims(t *testing.T, stores ...PullStore) {
	ctx := context.Background()
	f := &fixture{t: t, s: stores[0], ctx: ctx}
	a := f.account("claims@pull.test")
	now := time.Now()
	if _, err := stores[0].AddPullSource(ctx, store.PullSource{AccountID: a.ID, Protocol: "pop3", Addr: "x:1", TLS: "tls",
		Secret: []byte{1}, Every: time.Minute, NextPoll: now}); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	won := 0
	for i := range 8 {
		st := stores[i%len(stores)]
		wg.Go(func() {
			_, err := st.ClaimPull(ctx, now, time.Minute)
			if err == nil {
				mu.Lock()
				won++
				mu.Unlock()
			} else if !errors.Is(err, store.ErrNotFound) {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if won != 1 {
		t.Errorf("%d claims won, want 1", won)
	}
}

// PullStateStore is what RunPullState tests.
type PullStateStore interface {
	PullStore
	store.PullState
}

// RunPullState tests a store.PullState: editing a source keeps its state, fingerprints are
// recorded by deliveries and MarkPulledWith, a unique-id is renamed in one commit, retired
// ones keep their fingerprints, and FinishPull keeps or replaces the notice.
func RunPullState(t *testing.T, open func(t *testing.T) PullStateStore) {
	st := open(t)
	ctx := context.Background()
	f := &fixture{t: t, s: st, ctx: ctx}
	a := f.account("a@pullstate.test")
	b := f.account("b@pullstate.test")
	t0 := time.Unix(1_800_000_000, 0)
	id, err := st.AddPullSource(ctx, store.PullSource{AccountID: a.ID, Protocol: "imap", Addr: "old.example:993", TLS: "tls", User: "u",
		Secret: []byte{1}, Every: time.Hour, NextPoll: t0.Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	d := delivery("Subject: pulled\r\n\r\nbody\r\n", inbox(a.ID))
	d.Pulled = &store.PulledMessage{SourceID: id, UID: "7/1", Fingerprint: "fp1"}
	if _, err := st.Deliver(ctx, d); err != nil {
		t.Fatal(err)
	}
	if err := st.MarkPulled(ctx, id, []string{"7/2"}, t0); err != nil {
		t.Fatal(err)
	}
	// A discarded message is recorded afterwards, and gains the fingerprint it lacked; one
	// recorded with a fingerprint keeps it.
	if err := st.MarkPulledWith(ctx, []store.PulledMessage{{SourceID: id, UID: "7/2", Fingerprint: "fp2"},
		{SourceID: id, UID: "7/1", Fingerprint: "other"}, {SourceID: id, UID: "7/3", Fingerprint: "fp3"}}, t0.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	fps, err := st.PulledFingerprints(ctx, id)
	if err != nil || len(fps) != 3 || fps["7/1"] != "fp1" || fps["7/2"] != "fp2" || fps["7/3"] != "fp3" {
		t.Fatalf("PulledFingerprints = %v, %v", fps, err)
	}
	if seen, _ := st.PulledUIDs(ctx, id); !seen["7/2"].Equal(t0) || !seen["7/3"].Equal(t0.Add(time.Minute)) {
		t.Errorf("times after MarkPulledWith %v", seen)
	}

	// Rekeying moves the record with its time and fingerprint.
	if err := st.RekeyPulled(ctx, id, "7/2", "9/5"); err != nil {
		t.Fatal(err)
	}
	wantErr(t, "RekeyPulled of a missing unique-id", st.RekeyPulled(ctx, id, "7/2", "9/6"), store.ErrNotFound)
	wantErr(t, "RekeyPulled onto a recorded unique-id", st.RekeyPulled(ctx, id, "7/3", "9/5"), store.ErrExists)
	fps, _ = st.PulledFingerprints(ctx, id)
	if _, ok := fps["7/2"]; ok || fps["9/5"] != "fp2" || fps["7/3"] != "fp3" {
		t.Errorf("after RekeyPulled %v", fps)
	}
	if seen, _ := st.PulledUIDs(ctx, id); !seen["9/5"].Equal(t0) {
		t.Errorf("time after RekeyPulled %v", seen)
	}
	// A delivery under a renamed unique-id is refused as any recorded one.
	d = delivery("Subject: pulled\r\n\r\nbody\r\n", inbox(a.ID))
	d.Pulled = &store.PulledMessage{SourceID: id, UID: "9/5", Fingerprint: "fp2"}
	_, err = st.Deliver(ctx, d)
	wantErr(t, "delivery under a rekeyed unique-id", err, store.ErrExists)

	// Retiring prefixes every unique-id once, fingerprints kept.
	for range 2 {
		if err := st.RetirePulled(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	fps, _ = st.PulledFingerprints(ctx, id)
	want := map[string]string{store.RetiredPrefix + "7/1": "fp1", store.RetiredPrefix + "9/5": "fp2", store.RetiredPrefix + "7/3": "fp3"}
	if len(fps) != len(want) {
		t.Errorf("after RetirePulled %v", fps)
	}
	for k, v := range want {
		if fps[k] != v {
			t.Errorf("after RetirePulled %v, want %v", fps, want)
		}
	}

	// Editing changes the connection and policy, makes it due, keeps the rest.
	claimed, err := st.ClaimPull(ctx, t0.Add(time.Hour), time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.FinishPull(ctx, claimed, store.PullOutcome{Polled: t0, NextPoll: t0.Add(2 * time.Hour), LastError: "refused", Failures: 2,
		Notice: "UIDVALIDITY changed"}); err != nil {
		t.Fatal(err)
	}
	edit := store.PullSource{ID: id, AccountID: a.ID, Protocol: "pop3", Addr: "new.example:143", TLS: "starttls", CAFile: "/ca.pem",
		User: "v", Secret: []byte{2, 3}, Keep: true, Every: 5 * time.Minute, Folder: "Lists"}
	wantErr(t, "EditPullSource of another account's source", st.EditPullSource(ctx, store.PullSource{ID: id, AccountID: b.ID}), store.ErrNotFound)
	if err := st.EditPullSource(ctx, edit); err != nil {
		t.Fatal(err)
	}
	list, _ := st.PullSources(ctx, a.ID)
	if len(list) != 1 {
		t.Fatalf("sources %v", list)
	}
	p := list[0]
	if p.Protocol != "imap" || p.Addr != "new.example:143" || p.TLS != "starttls" || p.CAFile != "/ca.pem" || p.User != "v" ||
		!slices.Equal(p.Secret, []byte{2, 3}) || !p.Keep || p.Every != 5*time.Minute || p.Folder != "Lists" || p.NextPoll.After(t0) ||
		p.Failures != 2 || p.LastError != "refused" || p.Notice != "UIDVALIDITY changed" {
		t.Errorf("after EditPullSource %+v", p)
	}
	if fps, _ := st.PulledFingerprints(ctx, id); len(fps) != 3 {
		t.Errorf("state after EditPullSource %v", fps)
	}
	// An outcome without a notice keeps the last one.
	claimed, err = st.ClaimPull(ctx, t0, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.FinishPull(ctx, claimed, store.PullOutcome{Polled: t0, NextPoll: t0.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if list, _ := st.PullSources(ctx, a.ID); list[0].Notice != "UIDVALIDITY changed" || list[0].Failures != 0 {
		t.Errorf("after a plain FinishPull %+v", list[0])
	}
}

// PulledCopiesStore is what RunPulledCopies tests.
type PulledCopiesStore interface {
	PullStore
	store.PulledCopies
}

// RunPulledCopies tests a store.PulledCopies: a record leads to the messages its delivery
// stored, wherever the account moved them, and to nothing once they are expunged, nor to
// another account's messages of the same time, nor to a record made without a delivery.
func RunPulledCopies(t *testing.T, open func(t *testing.T) PulledCopiesStore) {
	st := open(t)
	ctx := context.Background()
	f := &fixture{t: t, s: st, ctx: ctx}
	a := f.account("a@copies.test")
	b := f.account("b@copies.test")
	id, err := st.AddPullSource(ctx, store.PullSource{AccountID: a.ID, Protocol: "pop3", Addr: "pop.example:995", TLS: "tls", User: "u",
		Secret: []byte{1}, Every: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Unix(1_800_000_000, 123456789) // nanoseconds, as a delivery's time has
	pulled := func(uid string, at time.Time, body string, targets ...store.Target) store.Delivered {
		t.Helper()
		d := delivery(body, targets...)
		d.ReceivedAt = at
		if uid != "" {
			d.Pulled = &store.PulledMessage{SourceID: id, UID: uid}
		}
		out, err := st.Deliver(ctx, d)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	d1 := pulled("u1", t0, "Subject: one\r\n\r\n1\r\n", inbox(a.ID))
	d2 := pulled("u2", t0.Add(time.Second), "Subject: two\r\n\r\n2\r\n", inbox(a.ID))
	d3 := pulled("u3", t0.Add(2*time.Second), "Subject: three\r\n\r\n3\r\n", inbox(a.ID))
	// Another account's message of u1's time, and one of a's a nanosecond later.
	pulled("", t0, "Subject: b's\r\n\r\nb\r\n", inbox(b.ID))
	pulled("", t0.Add(time.Nanosecond), "Subject: later\r\n\r\nl\r\n", inbox(a.ID))
	// A record without a delivery (a Sieve discard).
	if err := st.MarkPulled(ctx, id, []string{"u4"}, t0.Add(3*time.Second)); err != nil {
		t.Fatal(err)
	}
	// u2 moved to another folder, u3 expunged.
	in := f.mailbox(a.ID, store.Inbox)
	arch := f.create(a.ID, "Kept")
	if _, err := st.Move(ctx, in.ID, []uint32{d2.Messages[0].UID}, arch.ID); err != nil {
		t.Fatal(err)
	}
	f.expunge(in.ID, d3.Messages[0].UID)

	got, err := st.PulledBlobs(ctx, id, []string{"u1", "u2", "u3", "u4", "never"})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]int64{"u1": {d1.BlobID}, "u2": {d2.BlobID}}
	if len(got) != len(want) || !slices.Equal(got["u1"], want["u1"]) || !slices.Equal(got["u2"], want["u2"]) {
		t.Fatalf("PulledBlobs = %v, want %v", got, want)
	}
	if b := f.blob(got["u2"][0]); b != "Subject: two\r\n\r\n2\r\n" {
		t.Errorf("u2's copy %q", b)
	}
	// Only the unique-ids asked for.
	if got, err := st.PulledBlobs(ctx, id, []string{"u2"}); err != nil || len(got) != 1 || !slices.Equal(got["u2"], want["u2"]) {
		t.Errorf("PulledBlobs(u2) = %v, %v", got, err)
	}
	if got, err := st.PulledBlobs(ctx, id+1000, []string{"u1"}); err != nil || len(got) != 0 {
		t.Errorf("PulledBlobs of a missing source = %v, %v", got, err)
	}
}
