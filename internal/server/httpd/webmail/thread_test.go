package webmail

import (
	"fmt"
	"testing"
)

func TestThreadKeys(t *testing.T) {
	// Newest first, as a page is.
	items := []threadItem{
		{messageID: "c3@x", inReplyTo: []string{"c2@x"}, references: []string{"c1@x", "c2@x"}, subject: "Re: Lunch"}, // 0
		{messageID: "o2@x", subject: "Lunch"},                                      // 1: another "Lunch", no reply: alone
		{messageID: "s2@x", subject: "RE: [team] Fwd: Plans"},                      // 2: joins 4 by subject
		{messageID: "c2@x", inReplyTo: []string{"c1@x"}, subject: "Re: Lunch"},     // 3
		{messageID: "s1@x", subject: "plans"},                                      // 4
		{messageID: "far@x", inReplyTo: []string{"gone@x"}, subject: "Re: Budget"}, // 5: its parent is on another page
		{messageID: "c1@x", subject: "Lunch"},                                      // 6
	}
	k := threadKeys(items)
	same := func(i, j int) bool { return k[i] == k[j] }
	if !same(0, 3) || !same(3, 6) || k[0] != "c1@x" {
		t.Errorf("the Lunch conversation: keys %q %q %q, want c1@x", k[0], k[3], k[6])
	}
	if same(1, 0) || k[1] != "o2@x" {
		t.Errorf("an unrelated original with the same subject: key %q", k[1])
	}
	if !same(2, 4) || k[2] != "s1@x" {
		t.Errorf("joined by subject: keys %q %q, want s1@x", k[2], k[4])
	}
	// Alone on this page, but keyed by its root, as its parent's page will key it.
	if k[5] != "gone@x" {
		t.Errorf("a reply whose parent is elsewhere: key %q, want gone@x", k[5])
	}
	// The same conversation on two pages reaches one key.
	p1 := threadKeys([]threadItem{{messageID: "c3@x", inReplyTo: []string{"c2@x"}, references: []string{"c1@x", "c2@x"}, subject: "Re: Lunch"}})
	p2 := threadKeys([]threadItem{{messageID: "c2@x", inReplyTo: []string{"c1@x"}, references: []string{"c1@x"}}, {messageID: "c1@x", subject: "Lunch"}})
	if p1[0] != p2[0] || p2[0] != p2[1] {
		t.Errorf("across pages: %q and %q", p1, p2)
	}
	// No ids at all: the subject names the group.
	if k := threadKeys([]threadItem{{subject: "Re: x"}, {subject: "x"}}); k[0] != k[1] || k[0] != "subject:x" {
		t.Errorf("without ids: %q", k)
	}
}

func TestBaseSubject(t *testing.T) {
	for in, want := range map[string]struct {
		base  string
		reply bool
	}{
		"Lunch":                    {"lunch", false},
		"Re: Lunch":                {"lunch", true},
		"RE: re:  Lunch  today":    {"lunch today", true},
		"[list] Fwd: Re: Plans":    {"plans", true},
		"Plans (fwd)":              {"plans", true},
		"":                         {"", false},
		"[unclosed Re: x":          {"[unclosed re: x", false},
		"Aw: Sv: Fw: Re : Subject": {"subject", true},
	} {
		base, reply := baseSubject(in)
		if base != want.base || reply != want.reply {
			t.Errorf("baseSubject(%q) = %q, %v; want %q, %v", in, base, reply, want.base, want.reply)
		}
	}
}

func TestMsgIDs(t *testing.T) {
	got := fmt.Sprint(msgIDs(" <a@x> (comment) <b@y>\r\n\t<c@z> <> <unclosed"))
	if got != "[a@x b@y c@z]" {
		t.Errorf("msgIDs = %s", got)
	}
}

// TestThreadsInPage: the message list gives a conversation's messages one key, from the
// References of the stored header.
func TestThreadsInPage(t *testing.T) {
	e := newEnv(t)
	e.deliver(e.alice, "INBOX", "Message-ID: <root@example.org>\nFrom: a@example.org\nSubject: Walk\n\nshall we?\n")
	e.deliver(e.alice, "INBOX", "Message-ID: <other@example.org>\nFrom: b@example.org\nSubject: Something else\n\nhi\n")
	e.deliver(e.alice, "INBOX", "Message-ID: <r1@example.org>\nIn-Reply-To: <root@example.org>\nReferences: <root@example.org>\nFrom: c@example.org\nSubject: Re: Walk\n\nyes\n")
	e.deliver(e.alice, "INBOX", "Message-ID: <r2@example.org>\nIn-Reply-To: <r1@example.org>\nReferences: <root@example.org> <r1@example.org>\nFrom: a@example.org\nSubject: Re: Walk\n\ngood\n")
	b, _ := e.login("alice@example.test", "secret-alice@example.test")
	var page pageJSON
	b.getJSON(fmt.Sprintf("/api/mailboxes/%d/messages", e.mailboxID(e.alice, "INBOX")), &page)
	if len(page.Messages) != 4 {
		t.Fatalf("%d messages", len(page.Messages))
	}
	keys := map[string]string{}
	for _, m := range page.Messages {
		keys[m.Subject] = m.Thread
	}
	if keys["Walk"] != "root@example.org" || keys["Re: Walk"] != "root@example.org" || keys["Something else"] != "other@example.org" {
		t.Errorf("thread keys %v", keys)
	}
}

// FuzzThreadKeys: header values from the network never crash the threading, and every
// message gets a key.
func FuzzThreadKeys(f *testing.F) {
	f.Add("<a@x>", "<a@x> <b@y>", "Re: [list] Fwd: hello (fwd)", "hello")
	f.Add("", "<", "[", "re:re:")
	f.Fuzz(func(t *testing.T, inReplyTo, references, subject1, subject2 string) {
		items := []threadItem{
			{messageID: "m1", inReplyTo: msgIDs(inReplyTo), references: msgIDs(references), subject: subject1},
			{messageID: "m2", subject: subject2},
			{subject: subject1},
		}
		keys := threadKeys(items)
		if len(keys) != len(items) {
			t.Fatalf("%d keys for %d items", len(keys), len(items))
		}
		for i, k := range keys {
			if k == "" {
				t.Errorf("item %d without a key", i)
			}
		}
	})
}
