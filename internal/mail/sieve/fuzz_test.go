package sieve

import (
	"errors"
	"strings"
	"testing"
)

// FuzzParse feeds arbitrary scripts to the parser and runs those that parse: neither may
// panic, a parse error must carry a line inside the script, and a run stays in its limits.
func FuzzParse(f *testing.F) {
	for _, seed := range []string{
		``, `keep;`, `require ["fileinto","variables","imap4flags","copy","vacation","body","envelope","regex","reject","ereject","subaddress","mailbox"];`,
		`if header :matches "subject" "*x?y" { fileinto :copy "${1}"; } elsif size :over 1K { discard; } else { stop; }`,
		"require \"vacation\";\nvacation :days 3 :subject \"s\" :from \"a@b\" :addresses [\"c@d\"] :mime :handle \"h\" text:\nhi\n.\n;",
		`require ["variables","imap4flags"]; set :upper "x" "${0}"; addflag "x" "\\Seen"; if hasflag "x" "\\seen" { keep :flags "a"; }`,
		`require "body"; if body :content ["text"] :contains "x" { redirect "a@b.example"; }`,
		`if anyof (not exists "x", address :domain "from" "example.org") { discard; }`,
		`/* c */ # d`,
	} {
		f.Add(seed)
	}
	lim := DefaultLimits()
	lim.MaxSteps = 1 << 16
	msg := testMessage(rfcMessage)
	f.Fuzz(func(t *testing.T, src string) {
		s, err := Parse(src, lim)
		if err != nil {
			var se *Error
			if !errors.As(err, &se) {
				t.Fatalf("error of type %T: %v", err, err)
			}
			if se.Line < 1 || se.Line > strings.Count(src, "\n")+1 {
				t.Fatalf("line %d outside a script of %d lines: %v", se.Line, strings.Count(src, "\n")+1, err)
			}
			return
		}
		res, err := s.Run(Envelope{From: "a@b.example", To: "c@d.example"}, msg, lim)
		if err == nil && (len(res.Redirects) > lim.MaxRedirects || len(res.Deliveries) > lim.MaxActions) {
			t.Fatalf("limits passed: %+v", res)
		}
	})
}
