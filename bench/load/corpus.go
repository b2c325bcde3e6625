package load

import (
	"fmt"
	"io"
	"math/rand"
	"strings"
	"time"
)

// The search corpus: messages of words, the same for every server and every run, so that two
// servers holding it answer a search with the same number of hits.
//
// The words follow a Zipf law over a vocabulary of made-up words, as words in mail do: a few
// are in nearly every message, most in few. Every word is eight letters of alternating
// consonants and vowels, so no word is a prefix or a substring of another (they all have the
// same length and are separated by spaces) and none is in the header fields the generator
// writes. That matters because servers match differently: RFC 3501's SEARCH TEXT is a
// substring match (Dovecot without a full-text index scans for the substring), Petrel's index
// matches words and prefixes; on this corpus both find the same messages.
//
// RareWord is in every rareEvery-th message and nowhere else.

const (
	corpusVocabulary = 20000
	corpusZipfS      = 1.07 // the exponent of the word frequencies, close to that of English
	corpusLine       = 76   // body lines are at most this long, CRLF excluded
	rareEvery        = 500
	// RareWord is the corpus's rare word: in one message of 500 (200 of 100,000).
	RareWord = "saxophonist"
)

var (
	corpusConsonants = []byte("bdfgklmnprstvz")
	corpusVowels     = []byte("aeiou")
)

// CorpusWord returns the vocabulary's word of frequency rank rank (1 is the most frequent).
// Ranks map to words through a fixed scramble, so frequent words do not all look alike.
func CorpusWord(rank int) string {
	const syllables = 14 * 5
	const space = syllables * syllables * syllables * syllables
	// 7919 is prime and coprime to space: the map from rank to word is one to one.
	n := (int64(rank) * 7919) % space
	var b [8]byte
	for i := 0; i < 4; i++ {
		s := n % syllables
		n /= syllables
		b[2*i] = corpusConsonants[s/5]
		b[2*i+1] = corpusVowels[s%5]
	}
	return string(b[:])
}

// corpusMessage writes message i of the corpus (i from 0) with about words words of text
// and returns its size. The same i always gives the same bytes.
func corpusMessage(w io.Writer, i, words int) (int64, error) {
	r := rand.New(rand.NewSource(int64(i)*2654435761 + 1))
	zipf := rand.NewZipf(r, corpusZipfS, 1, corpusVocabulary-1)
	word := func() string { return CorpusWord(int(zipf.Uint64()) + 1) }
	var b strings.Builder
	date := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(i) * time.Minute)
	fmt.Fprintf(&b, "Date: %s\r\n", date.Format(time.RFC1123Z))
	fmt.Fprintf(&b, "From: Sender %d <sender%d@corpus.invalid>\r\n", i%97, i%97)
	b.WriteString("To: <reader@corpus.invalid>\r\n")
	fmt.Fprintf(&b, "Subject: %s %s %s\r\n", word(), word(), word())
	fmt.Fprintf(&b, "Message-ID: <corpus-%d@corpus.invalid>\r\n", i)
	b.WriteString("MIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n")
	line := 0
	add := func(w string) {
		if line > 0 && line+1+len(w) > corpusLine {
			b.WriteString("\r\n")
			line = 0
		}
		if line > 0 {
			b.WriteByte(' ')
			line++
		}
		b.WriteString(w)
		line += len(w)
	}
	for k := range words {
		if k == words/2 && i%rareEvery == 0 {
			add(RareWord)
		}
		add(word())
	}
	b.WriteString("\r\n")
	n, err := io.WriteString(w, b.String())
	return int64(n), err
}
