// Package junk is the built-in junk classifier (issue 13 point 1): per account, trained by
// the account's own actions, with its counts in the store.
//
// The classifier is pure: Tokens turns a decoded message (the text the message package
// extracts for the full-text index, so there is one decoder) into at most MaxTokens
// features, and Score combines an account's counts of those tokens into a score from 0
// (not junk) to 1 (junk). Filter adds the store around them: Classify reads the counts of
// the message's own tokens (one read, no write), Train counts a message once per verdict.
//
// An account that has trained nothing scores every message 0.5 ("unsure") and gets its
// mail in the Inbox; a message moved to Junk is enough to start filing its like there.
package junk

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"strconv"
	"sync"
	"time"

	"petrel/internal/mail/message"
	"petrel/internal/store"
)

// DefaultThreshold is the score from which a message is junk when neither the config nor
// the account says otherwise: SpamBayes's spam cut-off. The chi-square score is mostly
// near 0 or near 1; what lies between is "unsure" and stays in the Inbox.
const DefaultThreshold = 0.9

// Store is what the filter needs of the store: the counts, and the stored bodies to train
// on messages the user moved.
type Store interface {
	store.JunkStats
	OpenBlob(ctx context.Context, blobID int64) (io.ReadCloser, error)
}

// Filter classifies and trains against the counts in a store. It is safe for concurrent
// use, and must not be copied once used.
type Filter struct {
	Store Store
	// Threshold is the score from which a message is junk for accounts without their own;
	// 0 means DefaultThreshold.
	Threshold float64
	// CacheTokens bounds the token counts kept in memory (cache.go); 0 means
	// DefaultCacheTokens.
	CacheTokens int
	// Recheck is how long kept counts are used without asking the store whether the
	// account trained meanwhile (cache.go); 0 means DefaultRecheck, negative asks at
	// every message.
	Recheck time.Duration
	// WholeTokens is how many token rows an account may have to be held whole (cache.go);
	// 0 means DefaultWholeTokens.
	WholeTokens int

	cache tokenCache
	seen  sync.Pool // of empty map[string]bool, the tokenizer's sets (Filter.tokens)
}

// Verdict is the outcome of classifying one message for one account.
type Verdict struct {
	Score     float64
	Threshold float64 // the account's
	Junk      bool    // Score >= Threshold
	Tokens    int     // how many tokens the message had
}

// Header returns the fields that carry the verdict in the stored message, in the form
// SpamAssassin made common (clients and Sieve scripts test X-Spam-Status and
// X-Spam-Flag): "X-Spam-Status: Yes, score=0.98 required=0.90 tokens=120".
func (v Verdict) Header() string {
	yes := "No"
	flag := ""
	if v.Junk {
		yes = "Yes"
		flag = "X-Spam-Flag: YES\r\n"
	}
	return flag + "X-Spam-Status: " + yes + ", score=" + strconv.FormatFloat(v.Score, 'f', 2, 64) +
		" required=" + strconv.FormatFloat(v.Threshold, 'f', 2, 64) +
		" tokens=" + strconv.Itoa(v.Tokens) + " engine=petrel-bayes\r\n" +
		"X-Spam-Score: " + strconv.FormatFloat(v.Score, 'f', 3, 64) + "\r\n"
}

// Classify scores a decoded message for an account.
func (f *Filter) Classify(ctx context.Context, accountID int64, text *store.SearchText) (Verdict, error) {
	tokens := f.tokens(text)
	st, count, err := f.counts(ctx, accountID, tokens)
	if err != nil {
		return Verdict{}, fmt.Errorf("junk: %w", err)
	}
	v := Verdict{Score: score(st.Trained, tokens, count), Threshold: f.threshold(st), Tokens: len(tokens)}
	v.Junk = v.Score >= v.Threshold
	return v, nil
}

// tokens is Tokens with a set from the filter's pool.
func (f *Filter) tokens(text *store.SearchText) []string {
	seen, _ := f.seen.Get().(map[string]bool)
	if seen == nil {
		seen = make(map[string]bool, tokenHint(text))
	}
	out := tokens(text, seen)
	clear(seen)
	f.seen.Put(seen)
	return out
}

func (f *Filter) threshold(st store.JunkState) float64 {
	switch {
	case st.Threshold >= 0:
		return st.Threshold
	case f.Threshold > 0:
		return f.Threshold
	}
	return DefaultThreshold
}

// Train counts a decoded message as junk or not for the account; the same message (the
// same tokens) trained the same way again changes nothing, and trained the other way is
// moved from one count to the other. It reports whether the counts changed.
func (f *Filter) Train(ctx context.Context, accountID int64, text *store.SearchText, junk bool) (bool, error) {
	tokens := Tokens(text)
	changed, err := f.Store.TrainJunk(ctx, accountID, Key(tokens), tokens, junk)
	if changed {
		f.cache.forget(accountID)
	}
	if err != nil {
		return false, fmt.Errorf("junk: %w", err)
	}
	return changed, nil
}

// Key identifies a message for training by its tokens: a copy of a message, or the same
// message delivered to another mailbox, is the same message to the classifier.
func Key(tokens []string) []byte {
	h := sha256.New()
	for _, t := range tokens {
		h.Write([]byte(t))
		h.Write([]byte{0})
	}
	return h.Sum(nil)
}

// TrainMessage parses a raw message as delivery does and trains on it.
func (f *Filter) TrainMessage(ctx context.Context, accountID int64, raw []byte, junk bool) (bool, error) {
	pm, err := message.ParseAt(bytes.NewReader(raw), int64(len(raw)))
	if err != nil {
		return false, fmt.Errorf("junk: %w", err)
	}
	return f.Train(ctx, accountID, pm.Text, junk)
}

// TrainBlobs trains on stored messages: what IMAP calls when the user moves messages into
// or out of Junk. It returns how many changed the counts; a body freed meanwhile is skipped.
func (f *Filter) TrainBlobs(ctx context.Context, accountID int64, blobIDs []int64, junk bool) (int, error) {
	n := 0
	var buf bytes.Buffer
	for _, id := range blobIDs {
		buf.Reset()
		rc, err := f.Store.OpenBlob(ctx, id)
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return n, fmt.Errorf("junk: reading body %d: %w", id, err)
		}
		_, err = buf.ReadFrom(rc)
		rc.Close()
		if err != nil {
			return n, fmt.Errorf("junk: reading body %d: %w", id, err)
		}
		changed, err := f.TrainMessage(ctx, accountID, buf.Bytes(), junk)
		if err != nil {
			return n, err
		}
		if changed {
			n++
		}
	}
	return n, nil
}
