package storetest

import (
	"errors"
	"maps"
	"testing"

	"petrel/internal/store"
)

// JunkVocabularyStore is a store whose junk counts can be read whole.
type JunkVocabularyStore interface {
	JunkStore
	store.JunkVocabulary
}

// RunJunkVocabulary checks store.JunkVocabulary: an untrained account is complete and
// empty; a trained one gives every token's counts by store.JunkTokenID, and the same row
// (totals, threshold, version) as JunkState; over max it says incomplete; a missing
// account is ErrNotFound. open must return a new, empty store; RunJunkVocabulary closes it.
func RunJunkVocabulary(t *testing.T, open func(t *testing.T) JunkVocabularyStore) {
	s, f := openSuite(t, open)
	ctx := f.ctx
	a := f.account("vocab@example.org")
	b := f.account("vocab-other@example.org")

	st, counts, complete, err := s.JunkTokens(ctx, a.ID, 10)
	if err != nil || !complete || len(counts) != 0 || st.Trained != (store.JunkCount{}) || st.Threshold >= 0 {
		t.Errorf("untrained account: %+v, %v, complete %v, %v; want nothing, complete", st, counts, complete, err)
	}
	train := func(id int64, key string, junk bool, tokens ...string) {
		t.Helper()
		if _, err := s.TrainJunk(ctx, id, []byte(key), tokens, junk); err != nil {
			t.Fatalf("TrainJunk: %v", err)
		}
	}
	train(a.ID, "m1", true, "cheap", "pills", "now")
	train(a.ID, "m2", false, "lunch", "now")
	train(b.ID, "m3", true, "other", "account")
	if err := s.SetJunkThreshold(ctx, a.ID, 0.8); err != nil {
		t.Fatal(err)
	}
	want := map[int64]store.JunkCount{
		store.JunkTokenID(a.ID, "cheap"): {Spam: 1},
		store.JunkTokenID(a.ID, "pills"): {Spam: 1},
		store.JunkTokenID(a.ID, "now"):   {Ham: 1, Spam: 1},
		store.JunkTokenID(a.ID, "lunch"): {Ham: 1},
	}
	st, counts, complete, err = s.JunkTokens(ctx, a.ID, 4)
	if err != nil || !complete || !maps.Equal(counts, want) {
		t.Errorf("trained account: %v, complete %v, %v; want %v", counts, complete, err, want)
	}
	row, err := s.JunkState(ctx, a.ID, nil)
	if err != nil {
		t.Fatal(err)
	}
	if st.Trained != row.Trained || st.Threshold != row.Threshold || st.Version != row.Version || st.Trained != (store.JunkCount{Ham: 1, Spam: 1}) {
		t.Errorf("row %+v, JunkState says %+v", st, row)
	}
	if _, counts, complete, err := s.JunkTokens(ctx, a.ID, 3); err != nil || complete || counts != nil {
		t.Errorf("over max: %v, complete %v, %v; want incomplete", counts, complete, err)
	}
	if _, _, _, err := s.JunkTokens(ctx, 1<<40, 10); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("missing account: %v, want ErrNotFound", err)
	}
}
