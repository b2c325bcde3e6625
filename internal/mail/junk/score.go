package junk

import (
	"math"
	"slices"

	"petrel/internal/store"
)

// Robinson's parameters (Gary Robinson, "A Statistical Approach to the Spam Problem",
// Linux Journal 2003; the values SpamBayes settled on): a token seen in n trained
// messages gets the probability (s·x + n·p) / (s + n), so a token seen once or twice stays
// near x, the probability of a token never seen.
const (
	strength    = 0.45 // s
	unknownProb = 0.5  // x
	// maxClues is how many tokens, the furthest from 0.5 first, are combined.
	maxClues = 150
)

// Score is the junk score of a message with these tokens given an account's counts: 0 is
// surely not junk, 1 surely junk, 0.5 means the counts do not tell (every score of an
// untrained account). The token probabilities are combined with Fisher's chi-square
// method both ways (Robinson's chi-combining, as SpamBayes does): H is the evidence for
// not junk, S for junk, and the score is (1 + S - H) / 2.
//
// Unlike SpamBayes, tokens near 0.5 are not dropped before combining: with little
// training (one message moved to Junk and none out of it) every token of that message
// leans to junk, and only the many unknown tokens of an unrelated message keep its score
// near 0.5 instead of making a few shared common words decide.
func Score(st store.JunkState, tokens []string) float64 {
	return score(st.Trained, tokens, func(t string) store.JunkCount { return st.Tokens[t] })
}

// score is Score with a token's counts from count (Filter's whole counts need no map per
// message).
func score(trained store.JunkCount, tokens []string, count func(string) store.JunkCount) float64 {
	if trained == (store.JunkCount{}) || len(tokens) == 0 {
		return unknownProb
	}
	ham, spam := float64(trained.Ham), float64(trained.Spam)
	probs := make([]float64, 0, len(tokens))
	for _, tok := range tokens {
		c := count(tok)
		var hr, sr float64 // share of ham and of spam messages with the token
		if ham > 0 {
			hr = min(float64(c.Ham)/ham, 1)
		}
		if spam > 0 {
			sr = min(float64(c.Spam)/spam, 1)
		}
		n := float64(c.Ham + c.Spam)
		p := unknownProb
		if hr+sr > 0 {
			p = sr / (hr + sr)
		}
		f := (strength*unknownProb + n*p) / (strength + n)
		// Never exactly 0 or 1: one token must not decide alone, and logs stay finite.
		probs = append(probs, min(max(f, 0.01), 0.99))
	}
	if len(probs) > maxClues {
		slices.SortFunc(probs, func(a, b float64) int {
			da, db := math.Abs(a-0.5), math.Abs(b-0.5)
			switch {
			case da > db:
				return -1
			case da < db:
				return 1
			}
			return 0
		})
		probs = probs[:maxClues]
	}
	var lnH, lnS float64
	for _, p := range probs {
		lnS += math.Log(1 - p)
		lnH += math.Log(p)
	}
	n := len(probs)
	s := 1 - chi2Q(-2*lnS, 2*n)
	h := 1 - chi2Q(-2*lnH, 2*n)
	return (1 + s - h) / 2
}

// chi2Q is the probability that a chi-square variable with v (even) degrees of freedom is
// at least x2: the series of the Poisson sum, exact for even v.
func chi2Q(x2 float64, v int) float64 {
	m := x2 / 2
	term := math.Exp(-m)
	sum := term
	for i := 1; i < v/2; i++ {
		term *= m / float64(i)
		sum += term
	}
	return min(sum, 1)
}
