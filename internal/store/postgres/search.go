package postgres

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/jackc/pgx/v5/pgtype"
	"golang.org/x/text/runes"
	"golang.org/x/text/transform"
	"golang.org/x/text/unicode/norm"

	"petrel/internal/store"
)

// The full-text index (store.Index) is the search table: one row per body, one tsvector
// per field, all under one multi-column GIN index, so that a search on one field or on all
// of them (TEXT) is served by the same index.
//
// PostgreSQL's own parser knows e-mail addresses, URLs, hyphenated words and file paths,
// and would split "ann@example.net" differently from the words store.Index defines. So
// Petrel splits the text itself into words (runs of letters and digits), folds case and
// diacritics (NFD, combining marks removed), and hands PostgreSQL words separated by
// spaces under the 'simple' configuration, which keeps each as it is. A search text goes
// through the same folding and becomes a phrase query whose words must follow each other
// (<->) and whose last word is a prefix (:*), as the embedded store's FTS5 query does.
//
// Limits PostgreSQL sets: a tsvector holds positions up to 16383, so in a field of more
// words than that, a phrase beyond them is not found (single words still are); and a
// tsvector is at most 1 MB, so each field is indexed up to maxIndexed bytes of words.

// maxIndexed bounds the folded text indexed per field.
const maxIndexed = 256 << 10

// searchColumns maps a field to the columns it searches (several for TEXT).
var searchColumns = map[store.SearchField][]string{
	store.FieldText:    {"subject", "hfrom", "hto", "hcc", "hbcc", "header", "body"},
	store.FieldBody:    {"body"},
	store.FieldSubject: {"subject"},
	store.FieldFrom:    {"hfrom"},
	store.FieldTo:      {"hto"},
	store.FieldCc:      {"hcc"},
	store.FieldBcc:     {"hbcc"},
}

// foldWords returns the words of s, case and diacritics folded, separated by single
// spaces, at most max bytes.
func foldWords(s string, max int) string {
	if isASCII(s) {
		return foldASCII(s, max)
	}
	return foldUnicode(s, max)
}

// foldUnicode is foldWords for any text.
func foldUnicode(s string, max int) string {
	folded := strings.ToLower(s)
	if !isASCII(folded) {
		// ASCII has no diacritics to fold: most mail skips the Unicode passes (a tenth of
		// the CPU a delivery costs the node).
		folder := transform.Chain(norm.NFD, runes.Remove(runes.In(unicode.Mn)), norm.NFC)
		if f, _, err := transform.String(folder, folded); err == nil {
			folded = f
		}
	}
	var b strings.Builder
	b.Grow(min(len(folded), max)) // at most the text: growing it was a tenth of the node's indexing work
	for w := range strings.FieldsFuncSeq(folded, func(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsNumber(r) }) {
		if b.Len()+len(w)+1 > max {
			break
		}
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(w)
	}
	return b.String()
}

// foldASCII is foldWords for ASCII text (most mail), in one pass without the lower-cased
// copy: in ASCII the letters and digits are A-Z, a-z and 0-9, and only A-Z change case.
func foldASCII(s string, max int) string {
	var b strings.Builder
	b.Grow(min(len(s), max))
	alnum := func(c byte) bool { return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' }
	for i := 0; i < len(s); {
		for i < len(s) && !alnum(s[i]) {
			i++
		}
		j := i
		for j < len(s) && alnum(s[j]) {
			j++
		}
		if j == i || b.Len()+(j-i)+1 > max {
			break
		}
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		for ; i < j; i++ {
			c := s[i]
			if 'A' <= c && c <= 'Z' {
				c += 'a' - 'A'
			}
			b.WriteByte(c)
		}
	}
	return b.String()
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// insertSearch indexes a body inside the write that stores it.
func (t *tx) insertSearch(blobID int64, p *store.ParsedMessage) error {
	_, err := t.exec(`INSERT INTO search (blob_id, subject, hfrom, hto, hcc, hbcc, header, body) VALUES (?,
		?::tsvector, ?::tsvector, ?::tsvector, ?::tsvector, ?::tsvector, ?::tsvector, ?::tsvector)`,
		append([]any{blobID}, searchVectors(p)...)...)
	return err
}

// searchVectors returns the tsvectors of a message's indexed fields,
// in the order of the search table's columns: subject, hfrom, hto, hcc, hbcc, header, body.
func searchVectors(p *store.ParsedMessage) []any {
	text := store.SearchText{Subject: p.Subject, From: p.From}
	if p.Text != nil {
		text = *p.Text
	}
	var vectors []any
	for _, f := range []string{text.Subject, text.From, text.To, text.Cc, text.Bcc, text.Header, text.Body} {
		vectors = append(vectors, tsvector(foldWords(f, maxIndexed)))
	}
	return vectors
}

// sfloatPrefix is the length of the number in scientific notation that w starts with
// (digits, "e", digits), or 0. PostgreSQL's parser reads that much as one token, so a word
// such as "9e6km" is two lexemes to to_tsvector (and to to_tsquery): "9e6" and "km". It is
// the one way its parser splits a run of letters and digits (TestTSVectorParity).
func sfloatPrefix(w string) int {
	digits := func(i int) int {
		for i < len(w) && w[i] >= '0' && w[i] <= '9' {
			i++
		}
		return i
	}
	i := digits(0)
	if i == 0 || i == len(w) || w[i] != 'e' {
		return 0
	}
	j := digits(i + 1)
	if j == i+1 {
		return 0
	}
	return j
}

// What to_tsvector keeps (found by TestTSVectorParity, PostgreSQL 15): lexemes of at most
// maxLexeme bytes (longer words are dropped and take no position), positions up to maxPos
// (later words all get maxPos), at most maxPositions positions per lexeme (the first ones).
const (
	maxLexeme    = 2046
	maxPos       = 16383
	maxPositions = 255
)

// tsvector returns what to_tsvector('simple', words) makes of words separated by single
// spaces (foldWords): each word a lexeme with its positions (1, 2, ...). Building it here
// instead of in the database is the point: to_tsvector runs PostgreSQL's parser and
// dictionary over every word, which was the larger part of the database's CPU per
// delivery (docs/benchmarks.md). pgx sends it in tsvector's binary form, which the
// database reads without parsing text, lexemes already in its order (bytewise, as Go
// compares strings) so that it need not sort them. TestTSVectorParity holds the result to
// to_tsvector's. Folded words hold only letters and digits, so PostgreSQL's parser keeps
// each whole but for sfloatPrefix.
func tsvector(words string) pgtype.TSVector {
	v := pgtype.TSVector{Valid: true}
	if words == "" {
		return v
	}
	// Two passes: the first numbers the lexemes and notes each word's (lexeme, position),
	// the second gives every lexeme its positions in one shared array sized from the
	// counts. Appending to each lexeme's own slice as it came was most of the node's CPU
	// for building the vector (growing slices, docs/benchmarks.md).
	type occurrence struct {
		lexeme int32
		pos    uint16
	}
	occs := make([]occurrence, 0, strings.Count(words, " ")+1)
	index := map[string]int32{} // word → its place in v.Lexemes
	var counts []int32
	pos := 0
	add := func(w string) {
		if len(w) > maxLexeme {
			return // to_tsvector drops such words without counting a position
		}
		pos++
		i, seen := index[w]
		if !seen {
			i = int32(len(v.Lexemes))
			index[w] = i
			v.Lexemes = append(v.Lexemes, pgtype.TSVectorLexeme{Word: w})
			counts = append(counts, 0)
		}
		counts[i]++
		occs = append(occs, occurrence{i, uint16(min(pos, maxPos))})
	}
	for w := range strings.SplitSeq(words, " ") {
		if n := sfloatPrefix(w); n > 0 && n < len(w) {
			add(w[:n])
			w = w[n:]
		}
		add(w)
	}
	total := 0
	for _, c := range counts {
		total += min(int(c), maxPositions)
	}
	positions := make([]pgtype.TSVectorPosition, total)
	for i, c := range counts {
		c = min(c, maxPositions)
		v.Lexemes[i].Positions, positions = positions[:0:c], positions[c:]
	}
	for _, o := range occs {
		// Positions past maxPos all become maxPos, once.
		l := &v.Lexemes[o.lexeme].Positions
		if len(*l) < cap(*l) && (len(*l) == 0 || (*l)[len(*l)-1].Position != o.pos) {
			*l = append(*l, pgtype.TSVectorPosition{Position: o.pos})
		}
	}
	slices.SortFunc(v.Lexemes, func(a, b pgtype.TSVectorLexeme) int { return strings.Compare(a.Word, b.Word) })
	return v
}

// matchQuery turns a search text into a tsquery text (for to_tsquery('simple', ...)) and
// the condition on the field's columns. ok is false when text has no word at all, which
// matches every message.
func matchQuery(field store.SearchField, text string) (q, cond string, ok bool, err error) {
	cols, known := searchColumns[field]
	if !known {
		return "", "", false, fmt.Errorf("store: search field %d: %w", field, store.ErrInvalid)
	}
	words := strings.Fields(foldWords(text, maxIndexed))
	if len(words) == 0 {
		return "", "", false, nil
	}
	// Folded words hold only letters and digits, nothing tsquery would read as syntax.
	q = strings.Join(words, " <-> ") + ":*"
	conds := make([]string, len(cols))
	for i, c := range cols {
		conds[i] = "s." + c + " @@ q"
	}
	return q, strings.Join(conds, " OR "), true, nil
}

// Search implements store.Index.
func (s *Store) Search(ctx context.Context, mailboxID int64, field store.SearchField, text string) ([]uint32, error) {
	q, cond, ok, err := matchQuery(field, text)
	if err != nil {
		return nil, err
	}
	query, args := `SELECT uid FROM messages WHERE mailbox_id = ? ORDER BY uid`, []any{mailboxID}
	if ok {
		// The conditions are constants of searchColumns, so the query text is bounded.
		query = `SELECT m.uid FROM to_tsquery('simple', ?1) q, search s JOIN messages m ON m.blob_id = s.blob_id
			WHERE m.mailbox_id = ?2 AND (` + cond + `) ORDER BY m.uid`
		args = []any{q, mailboxID}
	}
	return s.mailboxUIDs(ctx, mailboxID, query, args...)
}

// Unindexed implements store.Index. Every body of this backend is indexed at delivery;
// search_pending serves bodies copied in from a store that had not indexed them yet.
func (s *Store) Unindexed(ctx context.Context, n int) ([]int64, error) {
	rows, err := s.query(ctx, `SELECT blob_id FROM search_pending ORDER BY blob_id LIMIT ?`, n)
	if err != nil {
		return nil, err
	}
	return scanColumn[int64](rows)
}

// IndexBlob implements store.Index.
func (s *Store) IndexBlob(ctx context.Context, blobID int64, text store.SearchText) error {
	return s.write(ctx, func(t *tx) error {
		// The body's row first, so that it is not freed before this commits: the index row
		// has no foreign key (migration 14), and freeBlobs deletes it under that row's lock.
		if _, err := t.exec(`SELECT id FROM blobs WHERE id = ? FOR KEY SHARE`, blobID); err != nil {
			return err
		}
		res, err := t.exec(`DELETE FROM search_pending WHERE blob_id = ?`, blobID)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil || n == 0 {
			return err // indexed already, or freed
		}
		return t.insertSearch(blobID, &store.ParsedMessage{Text: &text})
	})
}
