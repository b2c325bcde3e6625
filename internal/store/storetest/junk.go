package storetest

import (
	"maps"
	"testing"

	"petrel/internal/store"
)

// JunkStore is a store with the junk classifier's counts.
type JunkStore interface {
	store.Store
	store.JunkStats
}

// RunJunk checks store.JunkStats: counts per account and token, the marker that keeps a
// message from being counted twice, corrections, the threshold, and missing accounts.
// open must return a new, empty store; RunJunk closes it.
func RunJunk(t *testing.T, open func(t *testing.T) JunkStore) {
	s, f := openSuite(t, open)
	ctx := f.ctx
	a := f.account("junk@example.org")
	b := f.account("other@example.org")

	state := func(id int64, tokens ...string) store.JunkState {
		t.Helper()
		st, err := s.JunkState(ctx, id, tokens)
		if err != nil {
			t.Fatalf("JunkState: %v", err)
		}
		return st
	}
	train := func(id int64, key string, junk bool, tokens ...string) bool {
		t.Helper()
		changed, err := s.TrainJunk(ctx, id, []byte(key), tokens, junk)
		if err != nil {
			t.Fatalf("TrainJunk(%s): %v", key, err)
		}
		return changed
	}
	wantTokens := func(what string, got store.JunkState, want map[string]store.JunkCount) {
		t.Helper()
		if len(got.Tokens) == 0 && len(want) == 0 {
			return
		}
		if !maps.Equal(got.Tokens, want) {
			t.Errorf("%s: tokens %v, want %v", what, got.Tokens, want)
		}
	}

	if st := state(a.ID, "cheap", "pills"); st.Trained != (store.JunkCount{}) || len(st.Tokens) != 0 || st.Threshold >= 0 {
		t.Errorf("new account: %+v, want nothing trained and the default threshold", st)
	}
	if !train(a.ID, "m1", true, "cheap", "pills", "now") || !train(a.ID, "m2", true, "cheap", "watches") ||
		!train(a.ID, "m3", false, "meeting", "now") {
		t.Fatal("TrainJunk of new messages reported no change")
	}
	st := state(a.ID, "cheap", "pills", "now", "meeting", "absent")
	version := st.Version
	if st.Trained != (store.JunkCount{Ham: 1, Spam: 2}) {
		t.Errorf("trained %+v, want 1 ham 2 spam", st.Trained)
	}
	wantTokens("after training", st, map[string]store.JunkCount{
		"cheap": {Spam: 2}, "pills": {Spam: 1}, "now": {Ham: 1, Spam: 1}, "meeting": {Ham: 1},
	})
	// Only the tokens asked for come back.
	wantTokens("one token", state(a.ID, "watches"), map[string]store.JunkCount{"watches": {Spam: 1}})

	// The same message again (a second move into Junk) counts nothing.
	if train(a.ID, "m1", true, "cheap", "pills", "now") {
		t.Error("training m1 as junk twice reported a change")
	}
	if v := state(a.ID).Version; v != version {
		t.Errorf("version %d after a training that changed nothing, was %d", v, version)
	}
	// A correction takes the first verdict back: m1 is now ham only.
	if !train(a.ID, "m1", false, "cheap", "pills", "now") {
		t.Error("correcting m1 reported no change")
	}
	st = state(a.ID, "cheap", "pills", "now")
	if st.Version == version {
		t.Errorf("version %d unchanged by a correction", version)
	}
	if st.Trained != (store.JunkCount{Ham: 2, Spam: 1}) {
		t.Errorf("after the correction trained %+v, want 2 ham 1 spam", st.Trained)
	}
	wantTokens("after the correction", st, map[string]store.JunkCount{
		"cheap": {Ham: 1, Spam: 1}, "pills": {Ham: 1}, "now": {Ham: 2},
	})
	// A token whose counts fall to zero is gone.
	if !train(a.ID, "m2", false, "cheap", "watches") {
		t.Error("correcting m2 reported no change")
	}
	wantTokens("after the second correction", state(a.ID, "watches", "cheap"), map[string]store.JunkCount{
		"watches": {Ham: 1}, "cheap": {Ham: 2},
	})

	// Accounts are separate, the same key included.
	if st := state(b.ID, "cheap"); st.Trained != (store.JunkCount{}) || len(st.Tokens) != 0 {
		t.Errorf("other account sees %+v", st)
	}
	if !train(b.ID, "m1", true, "cheap") {
		t.Error("the same key in another account reported no change")
	}
	if got := state(a.ID, "cheap").Tokens["cheap"]; got != (store.JunkCount{Ham: 2}) {
		t.Errorf("account a's cheap = %+v after b trained it", got)
	}

	// Threshold: own, then back to the default.
	if err := s.SetJunkThreshold(ctx, a.ID, 0.75); err != nil {
		t.Fatal(err)
	}
	if st := state(a.ID); st.Threshold != 0.75 || st.Trained != (store.JunkCount{Ham: 3}) {
		t.Errorf("after SetJunkThreshold: %+v", st)
	}
	if err := s.SetJunkThreshold(ctx, a.ID, -1); err != nil {
		t.Fatal(err)
	}
	if st := state(a.ID); st.Threshold >= 0 {
		t.Errorf("threshold %v after the reset, want the default (negative)", st.Threshold)
	}
	// A threshold alone is no training.
	if err := s.SetJunkThreshold(ctx, b.ID, 0.5); err != nil {
		t.Fatal(err)
	}
	if st := state(b.ID, "cheap"); st.Trained != (store.JunkCount{Spam: 1}) || st.Threshold != 0.5 {
		t.Errorf("account b: %+v", st)
	}

	missing := a.ID + b.ID + 1000
	_, err := s.JunkState(ctx, missing, []string{"x"})
	wantErr(t, "JunkState of a missing account", err, store.ErrNotFound)
	_, err = s.TrainJunk(ctx, missing, []byte("k"), []string{"x"}, true)
	wantErr(t, "TrainJunk of a missing account", err, store.ErrNotFound)
	wantErr(t, "SetJunkThreshold of a missing account", s.SetJunkThreshold(ctx, missing, 0.5), store.ErrNotFound)

	// Deleting an account takes its counts along.
	if err := s.DeleteAccount(ctx, b.Address); err != nil {
		t.Fatalf("DeleteAccount: %v", err)
	}
	_, err = s.JunkState(ctx, b.ID, []string{"cheap"})
	wantErr(t, "JunkState of a deleted account", err, store.ErrNotFound)
}
