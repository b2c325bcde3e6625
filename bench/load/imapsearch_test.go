package load

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"
)

// The corpus is the same bytes on every call, its lines end with CRLF and stay short, and its
// words are distinct eight-letter words none of which the header fields hold.
func TestCorpus(t *testing.T) {
	var a, b bytes.Buffer
	for i := range 50 {
		a.Reset()
		b.Reset()
		n, err := corpusMessage(&a, i, 250)
		if err != nil || n != int64(a.Len()) {
			t.Fatalf("message %d: %d bytes written, %d reported, %v", i, a.Len(), n, err)
		}
		corpusMessage(&b, i, 250)
		if !bytes.Equal(a.Bytes(), b.Bytes()) {
			t.Fatalf("message %d differs between two calls", i)
		}
		if hasBareLF('\n', a.Bytes()) || !bytes.HasSuffix(a.Bytes(), []byte("\r\n")) {
			t.Fatalf("message %d has a line without CRLF", i)
		}
		for _, l := range strings.Split(a.String(), "\r\n") {
			if len(l) > corpusLine {
				t.Fatalf("message %d: line of %d bytes: %q", i, len(l), l)
			}
		}
		if got := bytes.Contains(a.Bytes(), []byte(RareWord)); got != (i%rareEvery == 0) {
			t.Errorf("message %d: rare word present %v", i, got)
		}
	}
	seen := map[string]int{}
	for r := 1; r <= corpusVocabulary; r++ {
		w := CorpusWord(r)
		if len(w) != 8 {
			t.Fatalf("rank %d: %q is not eight letters", r, w)
		}
		if o, dup := seen[w]; dup {
			t.Fatalf("ranks %d and %d are both %q", o, r, w)
		}
		seen[w] = r
	}
}

// imap-append fills a folder with the corpus and imap-search finds in it exactly the messages
// that hold the word (the memory server matches TEXT as a substring, as RFC 3501 says).
func TestIMAPAppendSearch(t *testing.T) {
	const n = 120
	srv := newFakeIMAP(t, fakeIMAPOptions{pass: "pw", literalPlus: true}, []string{"u@x"}, nil)
	target := Target{Addr: srv.addr, Timeout: 30 * time.Second}
	acc := Account{User: "u@x", Pass: "pw"}
	res, err := RunIMAPAppend(testCtx(t), IMAPAppendConfig{
		Target: target, Account: acc, Mailbox: "Large", Clients: 3, Messages: n, Words: 60, Batch: 7,
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Errors != 0 || res.Ops != n || res.Sessions != 3 {
		t.Fatalf("append: ops %d sessions %d errors %d %v", res.Ops, res.Sessions, res.Errors, res.FirstErrors)
	}
	checkJSON(t, res)

	want := map[string]int{}
	words := []string{RareWord, CorpusWord(1), CorpusWord(20), "nowhere"}
	var m bytes.Buffer
	for i := range n {
		m.Reset()
		corpusMessage(&m, i, 60)
		for _, w := range words {
			if bytes.Contains(m.Bytes(), []byte(w)) {
				want[w]++
			}
		}
	}
	if want[RareWord] == 0 || want[CorpusWord(1)] <= want[CorpusWord(20)] || want[CorpusWord(20)] == 0 {
		t.Fatalf("corpus word counts look wrong: %v", want)
	}
	res, err = RunIMAPSearch(testCtx(t), IMAPSearchConfig{
		Target: target, Account: acc, Mailbox: "Large", Words: words, Clients: 2, Searches: 12, Warmup: 1,
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Errors != 0 || res.Ops != 12 || res.Sessions != 2 {
		t.Fatalf("search: ops %d sessions %d errors %d %v", res.Ops, res.Sessions, res.Errors, res.FirstErrors)
	}
	if res.Search.Exists != n {
		t.Errorf("SELECT saw %d messages, want %d", res.Search.Exists, n)
	}
	for _, w := range words {
		if res.Search.Hits[w] != want[w] {
			t.Errorf("%s: %d hits, want %d", w, res.Search.Hits[w], want[w])
		}
	}
	checkJSON(t, res)
	var text bytes.Buffer
	if err := res.WriteText(&text); err != nil || !strings.Contains(text.String(), fmt.Sprintf("%s: %d", RareWord, want[RareWord])) {
		t.Errorf("text report: %v\n%s", err, text.String())
	}
}
