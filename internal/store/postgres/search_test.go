package postgres

import (
	"context"
	"math/rand/v2"
	"strings"
	"testing"

	"petrel/internal/mailtest"
)

// TestTSVectorParity: the tsvector built in Go for the search index is exactly what
// to_tsvector('simple', ...) makes of the same folded words, lexemes and positions, at
// PostgreSQL's limits too (positions past 16383, more than 256 positions of one word,
// words of 2048 bytes and more), so that rows indexed before and after agree and a
// search finds the same messages.
func TestTSVectorParity(t *testing.T) {
	ctx := context.Background()
	s := openDSN(t, mailtest.PostgresDSN(t), Options{})
	defer s.Close()

	rng := rand.New(rand.NewPCG(1, 2))
	alphabet := []rune("abcxyzeeeéüßøłžяжωλאב日本語한국0123456789²½ǅİ")
	randomText := func(words int) string {
		var b strings.Builder
		for range words {
			for range 1 + rng.IntN(8) {
				b.WriteRune(alphabet[rng.IntN(len(alphabet))])
			}
			b.WriteString([]string{" ", ", ", "-", ".", "@", "\r\n", "'", `\`}[rng.IntN(8)])
		}
		return b.String()
	}
	texts := []string{
		"",
		"   ",
		"The quick brown fox jumps over the lazy dog, 0123456789, in a petrel-load body.",
		"Café NAÏVE straße İstanbul ǅemal 日本語のテキスト 한국어 x² ½ 1e10 123abc abc123 0x1F 3.14",
		"9e6km 12e5e 65e2e3b½ 4e6½e115 1e 1e5 e5 x1e5y 007e07 9E6KM",
		"ann@example.net http://example.com/a/b?c=d foo-bar's \"quoted\" back\\slash it's",
		strings.Repeat("again ", 300) + "end",
		strings.Repeat("w", 2047) + " mid " + strings.Repeat("v", 2048) + " " + strings.Repeat("u", 3000) + " last",
		strings.Repeat("t", 2046) + " " + strings.Repeat("é", 1023) + "a " + strings.Repeat("é", 1023) + " end",
		randomText(200),
		randomText(3000),
	}
	var long strings.Builder
	for i := range 17000 {
		long.WriteString([]string{"alpha ", "beta ", "gamma "}[i%3])
		if i%97 == 0 {
			long.WriteString("rare ")
		}
	}
	texts = append(texts, long.String())

	for i, text := range texts {
		words := foldWords(text, maxIndexed)
		var same bool
		var mine, theirs string
		err := s.pool.QueryRow(ctx, `SELECT $1::tsvector = to_tsvector('simple', $2), $1::tsvector::text, to_tsvector('simple', $2)::text`,
			tsvector(words), words).Scan(&same, &mine, &theirs)
		if err != nil {
			t.Fatalf("text %d: %v", i, err)
		}
		if !same || mine != theirs {
			t.Errorf("text %d (%.60q...): tsvector differs from to_tsvector's\n ours:   %.300s\n theirs: %.300s", i, text, mine, theirs)
		}
	}
}

// TestFoldASCII: the ASCII path of foldWords gives what the general one gives, at any
// bound.
func TestFoldASCII(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	texts := []string{"", " ", "a", "A1b2-C3", "  Hello,   WORLD!\r\n9e6km x@y.z  ", "ZZ" + strings.Repeat(" word", 50)}
	for range 200 {
		b := make([]byte, rng.IntN(300))
		for i := range b {
			b[i] = byte(rng.IntN(128))
		}
		texts = append(texts, string(b))
	}
	for _, text := range texts {
		for _, max := range []int{0, 1, 5, 17, 64, maxIndexed} {
			if got, want := foldASCII(text, max), foldUnicode(text, max); got != want {
				t.Fatalf("foldASCII(%q, %d) = %q, the general path gives %q", text, max, got, want)
			}
		}
	}
}
