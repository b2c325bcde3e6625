package sieve

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
)

// testMessage is a message for the tests: header text, a body, and the envelope.
func testMessage(raw string) Message {
	head, body, _ := strings.Cut(strings.ReplaceAll(raw, "\n", "\r\n"), "\r\n\r\n")
	m := NewHeaderMessage([]byte(head+"\r\n\r\n"), int64(len(raw)))
	m.BodyFunc = func(string, []string) string { return body }
	return m
}

const rfcMessage = `Date: Tue, 1 Apr 1997 09:06:31 -0800 (PST)
From: coyote@desert.example.org
To: roadrunner@acme.example.com
Subject: I have a present for you
X-Caffeine: C8H10N4O2

Look, I'm sorry about the whole anvil thing, and I really
didn't mean to try and drop it on you from the top of the
cliff.  I want to try to make it up to you.
`

func run1(t *testing.T, script, msg string, env Envelope) (Result, error) {
	t.Helper()
	s, err := Parse(script, DefaultLimits())
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	return s.Run(env, testMessage(msg), DefaultLimits())
}

// describeResult is a compact, comparable form of a result.
func describeResult(r Result) string {
	var parts []string
	for _, d := range r.Deliveries {
		p := "file:" + d.Mailbox
		if len(d.Flags) > 0 {
			p += fmt.Sprint(d.Flags)
		}
		parts = append(parts, p)
	}
	for _, a := range r.Redirects {
		parts = append(parts, "redirect:"+a)
	}
	if r.Reject {
		kind := "reject:"
		if r.Extended {
			kind = "ereject:"
		}
		parts = append(parts, kind+r.Reason)
	}
	if r.Vacation != nil {
		parts = append(parts, fmt.Sprintf("vacation:%d:%s", r.Vacation.Days, r.Vacation.Reason))
	}
	if len(parts) == 0 {
		return "discard"
	}
	return strings.Join(parts, " ")
}

func TestRFCExamples(t *testing.T) {
	env := Envelope{From: "coyote@desert.example.org", To: "roadrunner@acme.example.com"}
	tests := []struct {
		name, script, want string
	}{
		{"empty script keeps", ``, "file:INBOX"},
		{"keep", `keep;`, "file:INBOX"},
		{"discard", `discard;`, "discard"},
		// RFC 5228 §2.10.2 example: a test of size and header.
		{"5228 2.10.2", `if size :over 500K { discard; }`, "file:INBOX"},
		// RFC 5228 §3.1
		{"5228 3.1 if/elsif/else", `require "fileinto";
			if header :contains "from" "coyote" {
				discard;
			} elsif header :contains ["subject"] ["$$$"] {
				discard;
			} else {
				fileinto "INBOX";
			}`, "discard"},
		// RFC 5228 §3.3
		{"5228 3.3 stop", `if header :contains "from" "coyote" { keep; stop; } discard;`, "file:INBOX"},
		// RFC 5228 §4.1
		{"5228 4.1 fileinto", `require "fileinto"; if header :contains ["from"] "coyote" { fileinto "INBOX.harassment"; }`, "file:INBOX.harassment"},
		// RFC 5228 §4.2
		{"5228 4.2 redirect", `redirect "bart@example.com";`, "redirect:bart@example.com"},
		// RFC 5228 §5.1 address
		{"5228 5.1 address", `if address :is :all "from" "coyote@desert.example.org" { discard; }`, "discard"},
		{"address domain", `if address :domain :is "from" "DESERT.example.org" { discard; }`, "discard"},
		{"address localpart", `if address :localpart :matches "to" "road*" { discard; }`, "discard"},
		// RFC 5228 §5.3
		{"5228 5.3 anyof", `if anyof (false, header :is "x-caffeine" "C8H10N4O2") { discard; }`, "discard"},
		{"allof", `if allof (true, header :is "x-caffeine" "C8H10N4O2", false) { discard; }`, "file:INBOX"},
		// RFC 5228 §5.4 envelope
		{"5228 5.4 envelope", `require "envelope"; if envelope :all :is "from" "coyote@desert.example.org" { discard; }`, "discard"},
		{"envelope to domain", `require "envelope"; if envelope :domain :is "to" "acme.example.com" { discard; }`, "discard"},
		// RFC 5228 §5.5 exists
		{"5228 5.5 exists", `if exists ["From","Date"] { discard; }`, "discard"},
		{"exists missing", `if exists ["From","X-None"] { discard; }`, "file:INBOX"},
		{"5228 5.7 header", `if header :contains ["From", "To"] "roadrunner" { discard; }`, "discard"},
		{"not", `if not header :contains "Subject" "present" { discard; }`, "file:INBOX"},
		{"size under", `if size :under 1M { discard; }`, "discard"},
		{"size over", `if size :over 100 { discard; }`, "discard"},
		// Comparators (RFC 4790).
		{"octet is case-sensitive", `if header :is :comparator "i;octet" "Subject" "i have a present for you" { discard; }`, "file:INBOX"},
		{"casemap is not", `if header :is :comparator "i;ascii-casemap" "Subject" "i have a present for you" { discard; }`, "discard"},
		{"matches ?", `if header :matches "subject" "I have ? present*" { discard; }`, "discard"},
		{"matches escape", `if header :matches "subject" "I have a present for you\\*" { discard; }`, "file:INBOX"},
		// RFC 5429
		{"5429 reject", `require "reject"; if header :contains "from" "coyote" { reject "I don't want to read your mail"; }`, "reject:I don't want to read your mail"},
		{"5429 ereject", `require "ereject"; ereject "No thanks";`, "ereject:No thanks"},
		// RFC 3894 copy
		{"3894 redirect :copy", `require "copy"; redirect :copy "b@example.com";`, "file:INBOX redirect:b@example.com"},
		{"3894 fileinto :copy", `require ["copy","fileinto"]; fileinto :copy "Archive";`, "file:Archive file:INBOX"},
		// RFC 5173 body
		{"5173 body contains", `require "body"; if body :contains "anvil" { discard; }`, "discard"},
		{"5173 body raw", `require "body"; if body :raw :contains "MAKE IT UP" { discard; }`, "discard"},
		// RFC 5232 imap4flags
		{"5232 flags", `require ["imap4flags","fileinto"]; addflag "\\flagged"; fileinto "Important";`, `file:Important[\Flagged]`},
		{"5232 keep :flags", `require "imap4flags"; keep :flags ["\\Seen", "$Label1"];`, `file:INBOX[\Seen $Label1]`},
		{"5232 implicit keep flags", `require "imap4flags"; setflag "\\Seen \\Answered"; removeflag "\\Answered";`, `file:INBOX[\Seen]`},
		{"5232 hasflag", `require "imap4flags"; addflag "Junk"; if hasflag :is "junk" { discard; }`, "discard"},
		// RFC 5229 variables
		{"5229 matches variables", `require ["variables","fileinto"];
			if header :matches "From" "*@*.example.org" { fileinto "from-${2}-${1}"; }`, "file:from-desert-coyote"},
		{"5229 set modifiers", `require ["variables","fileinto"]; set :upper :lowerfirst "a" "hello"; set :length "n" "${a}"; fileinto "${a}-${n}";`, "file:hELLO-5"},
		{"5229 string test", `require "variables"; set "x" "abc"; if string :is "${x}" "abc" { discard; }`, "discard"},
		{"5229 unknown var", `require ["variables","fileinto"]; fileinto "a${nope}b";`, "file:ab"},
		{"5229 no variables ext", `require "fileinto"; fileinto "a${x}";`, "file:a${x}"},
		// RFC 5230 vacation
		{"5230 vacation", `require "vacation"; vacation :days 23 "I'm away";`, "file:INBOX vacation:23:I'm away"},
		{"5230 vacation default days", `require "vacation"; vacation "Out";`, "file:INBOX vacation:7:Out"},
		{"5230 vacation days 0", `require "vacation"; vacation :days 0 "Out";`, "file:INBOX vacation:1:Out"},
		// regex
		{"regex", `require ["regex","variables","fileinto"]; if header :regex "subject" "^I have (a|an) (pre[a-z]+)" { fileinto "${2}"; }`, "file:present"},
		// subaddress
		{"subaddress", `require ["subaddress","envelope","fileinto"]; if envelope :detail "to" "" { fileinto "nodetail"; }`, "file:nodetail"},
		// mailbox :create
		{"5490 create", `require ["mailbox","fileinto"]; fileinto :create "New/Box";`, "file:New/Box"},
		// duplicate fileinto files once
		{"fileinto twice", `require "fileinto"; fileinto "A"; fileinto "a";`, "file:a"},
		{"multiline", "require \"vacation\";\nvacation text:\nline one\n..dot\n.\n;", "file:INBOX vacation:7:line one\r\n.dot\r\n"},
		{"comments", "# hash\n/* block\ncomment */ discard;", "discard"},
		{"encoded subject", `if header :contains "subject" "café" { discard; }`, "file:INBOX"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res, err := run1(t, tc.script, rfcMessage, env)
			if err != nil {
				t.Fatalf("run: %v", err)
			}
			if got := describeResult(res); got != tc.want {
				t.Errorf("got  %s\nwant %s", got, tc.want)
			}
		})
	}
}

func TestEncodedHeader(t *testing.T) {
	msg := "Subject: =?utf-8?q?caf=C3=A9_time?=\nFrom: a@b.example\n\nbody\n"
	res, err := run1(t, `if header :contains "subject" "café" { discard; }`, msg, Envelope{})
	if err != nil || describeResult(res) != "discard" {
		t.Fatalf("encoded word not decoded: %v %v", describeResult(res), err)
	}
}

func TestNullSenderEnvelope(t *testing.T) {
	res, err := run1(t, `require "envelope"; if envelope :is "from" "" { discard; }`, rfcMessage, Envelope{From: ""})
	if err != nil || describeResult(res) != "discard" {
		t.Fatalf("null reverse-path does not match \"\": %v %v", describeResult(res), err)
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		script string
		line   int
		reason string
	}{
		{"keep", 1, `expected ";" or "{"`},
		{"\n\nfileinto \"x\";", 3, `needs require "fileinto"`},
		{"require \"nosuch\";", 1, "unsupported extension"},
		{"keep;\nrequire \"fileinto\";", 2, "require must come before"},
		{"if true {\n keep;\n", 3, "block not closed"},
		{"\"x", 1, "string not closed"},
		{"else { keep; }", 1, "else without if"},
		{"if header :is :contains \"a\" \"b\" { keep; }", 1, "both a match type"},
		{"if header \"a\" { keep; }", 1, "needs 2 arguments after its tags, found 1"},
		{"if size 3 { keep; }", 1, ":over or :under"},
		{"frobnicate;", 1, "unknown command"},
		{"if bogus { keep; }", 1, "unknown test"},
		{"require \"regex\";\nif header :regex \"a\" \"(\" { keep; }", 2, "bad regular expression"},
		{"if header :comparator \"i;nope\" \"a\" \"b\" { keep; }", 1, "unsupported comparator"},
		{"redirect :copy \"a@b\";", 1, "does not take :copy"},
		{"/* open", 1, "comment not closed"},
		{"if true keep;", 1, "needs a block"},
		{"require \"vacation\";\nvacation :days \"x\" \"r\";", 2, ":days needs a number"},
		{"keep 99999999999999999999;", 1, "number too large"},
	}
	for _, tc := range tests {
		_, err := Parse(tc.script, DefaultLimits())
		var se *Error
		if !errors.As(err, &se) {
			t.Errorf("%q: error %v, want a *Error", tc.script, err)
			continue
		}
		if se.Line != tc.line || !strings.Contains(se.Reason, tc.reason) {
			t.Errorf("%q: got line %d %q, want line %d containing %q", tc.script, se.Line, se.Reason, tc.line, tc.reason)
		}
	}
}

func TestLimits(t *testing.T) {
	lim := DefaultLimits()
	t.Run("1000 redirects are stopped", func(t *testing.T) {
		var b strings.Builder
		for i := 0; i < 1000; i++ {
			fmt.Fprintf(&b, "redirect \"u%d@example.com\";\n", i)
		}
		s, err := Parse(b.String(), lim)
		if err != nil {
			t.Fatal(err)
		}
		res, err := s.Run(Envelope{}, testMessage(rfcMessage), lim)
		var se *Error
		if !errors.As(err, &se) || !strings.Contains(se.Reason, "limit") {
			t.Fatalf("err = %v, want a limit error", err)
		}
		if len(res.Redirects) != 0 || len(res.Deliveries) != 0 {
			t.Fatalf("a failed run returned actions: %+v", res)
		}
	})
	t.Run("redirect limit exactly", func(t *testing.T) {
		var b strings.Builder
		for i := 0; i < lim.MaxRedirects; i++ {
			fmt.Fprintf(&b, "redirect \"u%d@example.com\";\n", i)
		}
		res, err := run1(t, b.String(), rfcMessage, Envelope{})
		if err != nil || len(res.Redirects) != lim.MaxRedirects {
			t.Fatalf("%d redirects refused: %v", lim.MaxRedirects, err)
		}
	})
	t.Run("nesting depth", func(t *testing.T) {
		deep := strings.Repeat("if true {", lim.MaxDepth+1) + strings.Repeat("}", lim.MaxDepth+1)
		if _, err := Parse(deep, lim); err == nil || !strings.Contains(err.Error(), "nested deeper") {
			t.Fatalf("err = %v", err)
		}
		deepTest := "if " + strings.Repeat("not ", lim.MaxDepth+1) + "true { keep; }"
		if _, err := Parse(deepTest, lim); err == nil || !strings.Contains(err.Error(), "nested deeper") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("script size", func(t *testing.T) {
		small := lim
		small.MaxScriptSize = 10
		if _, err := Parse("keep; keep; keep;", small); err == nil {
			t.Fatal("oversized script parsed")
		}
	})
	t.Run("steps", func(t *testing.T) {
		// Each test compares a long header many times: the step budget stops it.
		msg := "Subject: " + strings.Repeat("a", 50000) + "\n\nx\n"
		script := strings.Repeat(`if header :matches "subject" "*`+strings.Repeat("a", 100)+`b" { keep; }`+"\n", 200)
		_, err := run1(t, script, msg, Envelope{})
		if err == nil || !strings.Contains(err.Error(), "steps") {
			t.Fatalf("err = %v, want the step limit", err)
		}
	})
	t.Run("actions", func(t *testing.T) {
		script := `require "fileinto";` + strings.Repeat(`keep;`, lim.MaxActions+1)
		if _, err := run1(t, script, rfcMessage, Envelope{}); err == nil {
			t.Fatal("too many actions allowed")
		}
	})
	t.Run("reject with fileinto", func(t *testing.T) {
		if _, err := run1(t, `require ["reject","fileinto"]; fileinto "x"; reject "no";`, rfcMessage, Envelope{}); err == nil {
			t.Fatal("reject with fileinto accepted")
		}
	})
}

func TestGlob(t *testing.T) {
	tests := []struct {
		value, pattern string
		ok             bool
		caps           []string
	}{
		{"hello", "hello", true, []string{"hello"}},
		{"hello", "h*o", true, []string{"hello", "ell"}},
		{"hello", "h?llo", true, []string{"hello", "e"}},
		{"", "*", true, []string{"", ""}},
		{"abc", "a*b*c", true, []string{"abc", "", ""}},
		{"a.b.c", "*.*", true, []string{"a.b.c", "a", "b.c"}},
		{"abc", "ab", false, nil},
		{"ab", "abc", false, nil},
		{"a*b", `a\*b`, true, []string{"a*b"}},
		{"axb", `a\*b`, false, nil},
		{"héllo", "h?llo", true, []string{"héllo", "é"}},
		{"HELLO", "h*", true, []string{"HELLO", "ELLO"}},
	}
	for _, tc := range tests {
		ok, caps, _ := glob(tc.value, tc.pattern, true, true)
		if ok != tc.ok || tc.ok && !reflect.DeepEqual(caps, tc.caps) {
			t.Errorf("glob(%q, %q) = %v %q, want %v %q", tc.value, tc.pattern, ok, caps, tc.ok, tc.caps)
		}
	}
}

func TestVacationCheck(t *testing.T) {
	own := []string{"roadrunner@acme.example.com"}
	base := "From: coyote@desert.example.org\nTo: roadrunner@acme.example.com\nSubject: hi\n"
	tests := []struct {
		name, from, extra string
		to                string
		allowed           bool
	}{
		{"plain", "coyote@desert.example.org", "", "", true},
		{"null sender", "", "", "", false},
		{"list-id", "coyote@desert.example.org", "List-Id: <x.example.org>\n", "", false},
		{"list-unsubscribe", "coyote@desert.example.org", "List-Unsubscribe: <mailto:u@x>\n", "", false},
		{"precedence bulk", "coyote@desert.example.org", "Precedence: bulk\n", "", false},
		{"precedence junk", "coyote@desert.example.org", "Precedence: junk\n", "", false},
		{"auto-submitted", "coyote@desert.example.org", "Auto-Submitted: auto-replied\n", "", false},
		{"auto-submitted no", "coyote@desert.example.org", "Auto-Submitted: no\n", "", true},
		{"ourselves", "roadrunner@acme.example.com", "", "", false},
		{"owner-", "owner-list@x.example", "", "", false},
		{"-request", "list-request@x.example", "", "", false},
		{"mailer-daemon", "MAILER-DAEMON@x.example", "", "", false},
		{"not addressed to us", "coyote@desert.example.org", "", "To: someone@else.example\n", false},
	}
	for _, tc := range tests {
		hdr := base
		if tc.to != "" {
			hdr = strings.Replace(hdr, "To: roadrunner@acme.example.com\n", tc.to, 1)
		}
		msg := testMessage(hdr + tc.extra + "\nbody\n")
		reason := VacationCheck(Envelope{From: tc.from, To: own[0]}, msg, own)
		if (reason == "") != tc.allowed {
			t.Errorf("%s: reason %q, want allowed=%v", tc.name, reason, tc.allowed)
		}
	}
}

func TestVacationReply(t *testing.T) {
	msg := testMessage("From: a@x.example\nSubject: Lunch?\nMessage-ID: <m1@x.example>\n\nhi\n")
	v := &Vacation{Reason: "Away until Monday.\nBack soon.", Days: 7}
	reply := VacationReply(v, msg, "me@example.test", "a@x.example", fixedTime)
	for _, want := range []string{
		"From: me@example.test\r\n", "To: <a@x.example>\r\n", "Subject: Auto: Lunch?\r\n",
		"In-Reply-To: <m1@x.example>\r\n", "References: <m1@x.example>\r\n",
		"Auto-Submitted: auto-replied (vacation)\r\n", "\r\n\r\nAway until Monday.\r\nBack soon.\r\n",
	} {
		if !strings.Contains(reply, want) {
			t.Errorf("reply lacks %q:\n%s", want, reply)
		}
	}
	if strings.Contains(strings.ReplaceAll(reply, "\r\n", ""), "\n") {
		t.Error("bare LF in reply")
	}
}
