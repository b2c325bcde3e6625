package message

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"petrel/internal/store"
)

func TestBaseSubject(t *testing.T) {
	for _, tc := range []struct {
		in    string
		base  string
		reply bool
	}{
		{"", "", false},
		{"Hello", "HELLO", false},
		{"  Hello \t  world  ", "HELLO WORLD", false},
		{"Re: Hello", "HELLO", true},
		{"RE: re: Re:Hello", "HELLO", true},
		{"Fwd: Hello", "HELLO", true},
		{"Fw: Hello", "HELLO", true},
		{"Hello (fwd)", "HELLO", true},
		{"Hello (fwd) (FWD)  ", "HELLO", true},
		{"[Petrel-dev] Re: Hello", "HELLO", true},
		{"Re: [Petrel-dev] Hello", "HELLO", true},
		{"Re [2]: Hello", "HELLO", true},
		{"Re  : Hello", "HELLO", true},
		{"[list] Hello", "HELLO", false},
		{"[list]", "[LIST]", false},     // removing the blob would leave nothing (step 4)
		{"[a] [b]", "[B]", false},       // the first blob goes, the last stays
		{"[Fwd: Hello]", "HELLO", true}, // step 6
		{"[Fwd: Re: Hello]", "HELLO", true},
		{"Re: [Fwd: [list] Hello (fwd)]", "HELLO", true},
		{"Reply to all", "REPLY TO ALL", false},
		{"Fwdx: Hello", "FWDX: HELLO", false},
		{"Re:", "", true},
		{"Grüße aus Köln", "GRüßE AUS KöLN", false}, // i;ascii-casemap folds ASCII only
		{"[unclosed Re: x", "[UNCLOSED RE: X", false},
	} {
		base, reply := BaseSubject(tc.in)
		if base != tc.base || reply != tc.reply {
			t.Errorf("BaseSubject(%q) = %q, %v; want %q, %v", tc.in, base, reply, tc.base, tc.reply)
		}
	}
}

func TestSortKeys(t *testing.T) {
	msg := "Date: Mon, 7 Dec 2026 10:00:00 +0100\r\n" +
		"From: \"Bob B.\" <bob@example.net>, carol@example.net\r\n" +
		"To: alice@example.org\r\n" +
		"Cc: =?utf-8?q?D=C3=B6rte?= <doerte@example.com>\r\n" +
		"Subject: Re: [team] Plans\r\n" +
		"Message-ID: <3@example.net>\r\n" +
		"References: <1@example.net>\r\n <2@example.net> junk <>\r\n" +
		"In-Reply-To: <2@example.net>\r\n" +
		"\r\n" +
		"Body: not a header\r\n"
	want := &store.SortKeys{
		Date:    time.Date(2026, 12, 7, 9, 0, 0, 0, time.UTC),
		Subject: "PLANS", Reply: true,
		From: "BOB", To: "ALICE", Cc: "DOERTE",
		DisplayFrom: "BOB B.", DisplayTo: "ALICE@EXAMPLE.ORG",
		MessageID: "3@example.net", References: []string{"1@example.net", "2@example.net"},
	}
	pm, err := Parse(strings.NewReader(msg))
	if err != nil {
		t.Fatal(err)
	}
	fromHeader, err := SortKeysOf(strings.NewReader(msg))
	if err != nil {
		t.Fatal(err)
	}
	for name, got := range map[string]*store.SortKeys{"Parse": pm.Sort, "SortKeysOf": fromHeader} {
		if !got.Date.Equal(want.Date) {
			t.Errorf("%s: Date %v, want %v", name, got.Date, want.Date)
		}
		g := *got
		g.Date = want.Date
		if !reflect.DeepEqual(&g, want) {
			t.Errorf("%s: %+v\nwant %+v", name, g, *want)
		}
	}

	// In-Reply-To stands in for missing References; a Message-ID without brackets is none.
	k, err := SortKeysOf(strings.NewReader("Message-ID: bare@id\r\nIn-Reply-To: <a@x> <b@x>\r\nSubject: x\r\n\r\n"))
	if err != nil || k.MessageID != "" || !reflect.DeepEqual(k.References, []string{"a@x"}) || !k.Date.IsZero() {
		t.Errorf("SortKeysOf(In-Reply-To) = %+v, %v", k, err)
	}
	// A message that is all header, and an empty one.
	if k, err := SortKeysOf(strings.NewReader("Subject: only\r\nFrom: a@b")); err != nil || k.Subject != "ONLY" || k.From != "A" {
		t.Errorf("SortKeysOf(no body) = %+v, %v", k, err)
	}
	if k, err := SortKeysOf(strings.NewReader("")); err != nil || !reflect.DeepEqual(k, &store.SortKeys{}) {
		t.Errorf("SortKeysOf(empty) = %+v, %v", k, err)
	}
}
