package junk

import (
	"testing"
	"unicode/utf8"

	"petrel/internal/store"
)

// FuzzTokens: any decoded text gives at most MaxTokens distinct tokens of at most
// maxTokenBytes, valid UTF-8 when the text is, and never a crash.
func FuzzTokens(f *testing.F) {
	f.Add("WIN a Prize", `"Dept" <x@win.example>`, "x-mailer: PHPMailer 5\nreply-to: <a@b.c>\nmessage-id: <x@y>\nauthentication-results: a; spf=pass\n", "Visit https://claim.example/x now!!! é ü 中文")
	f.Add("", "broken <<", "content-type: text/html;\n: \nlist-id\n", "http://")
	f.Fuzz(func(t *testing.T, subject, from, header, body string) {
		toks := Tokens(&store.SearchText{Subject: subject, From: from, Header: header, Body: body})
		if len(toks) > MaxTokens {
			t.Fatalf("%d tokens", len(toks))
		}
		valid := utf8.ValidString(subject + from + header + body)
		seen := map[string]bool{}
		for _, tok := range toks {
			if tok == "" || len(tok) > maxTokenBytes || seen[tok] || valid && !utf8.ValidString(tok) {
				t.Fatalf("bad token %q", tok)
			}
			seen[tok] = true
		}
	})
}
