package imapd

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"petrel/internal/mail/message"
	"petrel/internal/mailtest/dialog"
	"petrel/internal/store"
)

// sortCorpus is delivered to INBOX after one message that is expunged, so that message
// number n has UID n+1. Threads by References: 1 <- 2 <- 4, 1 <- 5; 6 refers to a message
// that is not there and has 3's subject as a reply; 7 has no Message-ID and no Date.
var sortCorpus = []string{
	"From: Zoe Z <zoe@example.net>\r\nTo: bob@example.org\r\nDate: Thu, 1 Jan 2026 10:00:00 +0000\r\n" +
		"Subject: Project\r\nMessage-ID: <1@x>\r\n\r\nfirst\r\n",
	"From: Adam <adam@example.net>\r\nTo: Alice <alice@example.org>\r\nCc: zed@example.org\r\nDate: Sat, 3 Jan 2026 10:00:00 +0000\r\n" +
		"Subject: Re: Project\r\nMessage-ID: <2@x>\r\nReferences: <1@x>\r\n\r\nsecond\r\n",
	"From: Mallory <bob@example.net>\r\nTo: carl@example.org\r\nDate: Fri, 2 Jan 2026 10:00:00 +0000\r\n" +
		"Subject: Lunch\r\nMessage-ID: <3@x>\r\n\r\nthird, a little longer than the others\r\n",
	"From: zoe@example.net\r\nDate: Sun, 4 Jan 2026 10:00:00 +0000\r\n" +
		"Subject: RE: [team] Project\r\nMessage-ID: <4@x>\r\nReferences: <1@x> <2@x>\r\n\r\nfourth\r\n",
	"From: Carl <carl@example.net>\r\nTo: alice@example.org\r\nCc: Amy <amy@example.org>\r\nDate: Mon, 5 Jan 2026 09:00:00 -0100\r\n" +
		"Subject: Fwd: Project\r\nMessage-ID: <5@x>\r\nIn-Reply-To: <1@x>\r\n\r\nfifth\r\n",
	"To: zed@example.org\r\nDate: Tue, 6 Jan 2026 10:00:00 +0000\r\n" +
		"Subject: Re: Lunch\r\nMessage-ID: <6@x>\r\nReferences: <99@x>\r\n\r\nsixth\r\n",
	"From: Bea <bea@example.net>\r\nTo: Yann <yann@example.org>\r\nSubject: Other\r\n\r\nseventh\r\n",
}

// sortEnv delivers sortCorpus and returns a session with INBOX selected.
func sortEnv(t *testing.T, st Store) (*testEnv, *dialog.Dialog) {
	e := newEnv(t, Config{})
	if st != nil {
		e.srv.store = st
	}
	e.deliver(t, "INBOX", "Subject: gone\r\n\r\ngone\r\n")
	if _, err := e.st.Expunge(context.Background(), e.inbox(t).ID, []uint32{1}); err != nil {
		t.Fatal(err)
	}
	for _, m := range sortCorpus {
		e.deliver(t, "INBOX", m)
	}
	d := e.login(t)
	d.Send("s SELECT INBOX")
	for !strings.HasPrefix(d.Line(), "s OK") {
	}
	return e, d
}

func (e *testEnv) inbox(t testing.TB) store.Mailbox {
	t.Helper()
	mb, err := e.st.Mailbox(context.Background(), e.alice.ID, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	return mb
}

func TestSort(t *testing.T) {
	e, d := sortEnv(t, nil)
	d.Send("c CAPABILITY")
	if l := d.Line(); !strings.Contains(l, " SORT SORT=DISPLAY ESORT THREAD=ORDEREDSUBJECT THREAD=REFERENCES") {
		t.Errorf("CAPABILITY %q: no SORT and THREAD", l)
	}
	d.Line()
	// Sizes ascending; equal sizes keep mailbox order.
	var bySize []string
	for size := 0; len(bySize) < len(sortCorpus); size++ {
		for i, m := range sortCorpus {
			if len(m) == size {
				bySize = append(bySize, fmt.Sprint(i+1))
			}
		}
	}
	e.run(t, d, `
		C: a SORT (SUBJECT) UTF-8 ALL
		S: * SORT 3 6 7 1 2 4 5
		S: a OK SORT completed
		C: b SORT (DATE) US-ASCII ALL
		S: * SORT 1 3 2 4 5 6 7
		S: b OK SORT completed
		C: c SORT (REVERSE DATE) utf-8 ALL
		S: * SORT 7 6 5 4 2 3 1
		S: c OK SORT completed
		C: d SORT (REVERSE ARRIVAL) UTF-8 ALL
		S: * SORT 1 2 3 4 5 6 7
		S: d OK SORT completed
		C: e SORT (FROM) UTF-8 ALL
		S: * SORT 6 2 7 3 5 1 4
		S: e OK SORT completed
		C: f SORT (DISPLAYFROM) UTF-8 ALL
		S: * SORT 6 2 7 5 3 1 4
		S: f OK SORT completed
		C: g SORT (TO REVERSE SUBJECT) UTF-8 ALL
		S: * SORT 4 2 5 1 3 7 6
		S: g OK SORT completed
		C: h SORT (DISPLAYTO) UTF-8 ALL
		S: * SORT 4 2 5 1 3 7 6
		S: h OK SORT completed
		C: i SORT (CC DATE) UTF-8 ALL
		S: * SORT 1 3 4 6 7 5 2
		S: i OK SORT completed
		C: j SORT (SIZE) UTF-8 ALL
		S: * SORT `+strings.Join(bySize, " ")+`
		S: j OK SORT completed
		C: k UID SORT (DATE) UTF-8 SUBJECT project
		S: * SORT 2 3 5 6
		S: k OK UID SORT completed
		C: l SORT (SUBJECT DATE) UTF-8 OR FROM zoe TO zed NOT 2
		S: * SORT 6 1 4
		S: l OK SORT completed
		C: m SORT (DATE) UTF-8 UNSEEN LARGER 1000000
		S: * SORT
		S: m OK SORT completed
	`)
}

func TestESort(t *testing.T) {
	e, d := sortEnv(t, nil)
	e.run(t, d, `
		C: a SORT RETURN (MIN MAX COUNT) (DATE) UTF-8 ALL
		S: * ESEARCH (TAG "a") MIN 1 MAX 7 COUNT 7
		S: a OK SORT completed
		C: b SORT RETURN (ALL) (REVERSE DATE) UTF-8 ALL
		S: * ESEARCH (TAG "b") ALL 7,6,5,4,2:3,1
		S: b OK SORT completed
		C: c UID SORT RETURN () (DATE) UTF-8 ALL
		S: * ESEARCH (TAG "c") UID ALL 2,4,3,5:8
		S: c OK UID SORT completed
		C: d SORT RETURN (MIN MAX) (SUBJECT) UTF-8 SUBJECT project
		S: * ESEARCH (TAG "d") MIN 1 MAX 5
		S: d OK SORT completed
		C: e SORT RETURN (COUNT) (SUBJECT) UTF-8 SUBJECT nothing
		S: * ESEARCH (TAG "e") COUNT 0
		S: e OK SORT completed
		C: f SORT RETURN (SAVE) (REVERSE DATE) UTF-8 SUBJECT lunch
		S: f OK SORT completed
		C: g SEARCH $
		S: * SEARCH 3 6
		S: g OK SEARCH completed
		C: h SORT (REVERSE DATE) UTF-8 $
		S: * SORT 6 3
		S: h OK SORT completed
		C: i THREAD REFERENCES UTF-8 $
		S: * THREAD (3 6)
		S: i OK THREAD completed
	`)
	// CONDSTORE: the highest MODSEQ of the hits, with a MODSEQ search key (RFC 7162 §3.1.5).
	d.Send("j SORT (DATE) UTF-8 MODSEQ 1")
	if l := d.Line(); !strings.HasPrefix(l, "* SORT 1 3 2 4 5 6 7 (MODSEQ ") {
		t.Errorf("SORT MODSEQ: %q", l)
	}
	d.Line()
}

func TestThread(t *testing.T) {
	e, d := sortEnv(t, nil)
	e.run(t, d, `
		C: a THREAD REFERENCES UTF-8 ALL
		S: * THREAD (1 (2 4)(5))(3 6)(7)
		S: a OK THREAD completed
		C: b UID THREAD REFERENCES UTF-8 ALL
		S: * THREAD (2 (3 5)(6))(4 7)(8)
		S: b OK UID THREAD completed
		C: c THREAD ORDEREDSUBJECT UTF-8 ALL
		S: * THREAD (1 (2)(4)(5))(3 6)(7)
		S: c OK THREAD completed
		C: d THREAD ORDEREDSUBJECT US-ASCII NOT SUBJECT lunch
		S: * THREAD (1 (2)(4)(5))(7)
		S: d OK THREAD completed
		C: e THREAD REFERENCES UTF-8 NOT 1
		S: * THREAD (3 6)((2 4)(5))(7)
		S: e OK THREAD completed
		C: f THREAD REFERENCES UTF-8 SUBJECT nothing
		S: * THREAD
		S: f OK THREAD completed
	`)
}

func TestSortRefusals(t *testing.T) {
	e, d := sortEnv(t, nil)
	e.run(t, d, `
		C: a SORT (DATE) KOI8-R ALL
		S: a NO [BADCHARSET (UTF-8 US-ASCII)] Unsupported charset
		C: b THREAD REFERENCES KOI8-R ALL
		S: b NO [BADCHARSET (UTF-8 US-ASCII)] Unsupported charset
		C: c SORT (NAME) UTF-8 ALL
		S: c BAD Unknown sort key
		C: d SORT DATE UTF-8 ALL
		S: d BAD Expected '('
		C: e SORT (DATE) UTF-8
		S: e BAD Expected a space
		C: f SORT () UTF-8 ALL
		S: f BAD Empty list
		C: g THREAD NOSUCH UTF-8 ALL
		S: g BAD Unknown threading algorithm
		C: h THREAD REFERENCES UTF-8
		S: h BAD Expected a space
		C: i SORT RETURN (PARTIAL 1:10) (DATE) UTF-8 ALL
		S: i BAD Expected a space
		C: j SORT (REVERSE) UTF-8 ALL
		S: j BAD Expected a space
		C: k SORT (DATE DATE DATE DATE DATE DATE DATE DATE DATE DATE) UTF-8 ALL
		S: k BAD Too many sort keys
		C: l SORT (DATE) UTF-8 NOSUCH
		S: l BAD Expected a space
		C: m SORT (DATE) UTF-8 ALL
		S: * SORT 1 3 2 4 5 6 7
		S: m OK SORT completed
	`)
	// Not before a mailbox is selected.
	d2 := e.login(t)
	e.run(t, d2, `
		C: a SORT (DATE) UTF-8 ALL
		S: a BAD Command not valid in this state
		C: b THREAD REFERENCES UTF-8 ALL
		S: b BAD Command not valid in this state
	`)
}

// noSorter hides the store's Sorter.
type noSorter struct{ Store }

func TestSortNeedsSorter(t *testing.T) {
	e, d := sortEnv(t, nil)
	e.srv.store = noSorter{e.st}
	d.Send("c CAPABILITY")
	if l := d.Line(); strings.Contains(l, "SORT") || strings.Contains(l, "THREAD") {
		t.Errorf("CAPABILITY without a Sorter: %q", l)
	}
	e.run(t, d, `
		S: c OK CAPABILITY completed
		C: a SORT (DATE) UTF-8 ALL
		S: a BAD Unknown command
		C: b THREAD REFERENCES UTF-8 ALL
		S: b BAD Unknown command
	`)
}

// Bodies stored without sort keys (before the store kept them) get theirs from their header
// at the first SORT, and the store keeps them.
func TestSortComputesMissingKeys(t *testing.T) {
	e := newEnv(t, Config{})
	for _, m := range sortCorpus {
		parsed, err := message.Parse(strings.NewReader(m))
		if err != nil {
			t.Fatal(err)
		}
		parsed.Sort = nil
		if _, err := e.st.Deliver(context.Background(), &store.Delivery{
			Targets: []store.Target{{AccountID: e.alice.ID, Mailbox: "INBOX"}},
			Body:    strings.NewReader(m), Size: int64(len(m)), Parsed: parsed,
		}); err != nil {
			t.Fatal(err)
		}
	}
	rows, err := e.st.SortRows(context.Background(), e.inbox(t).ID, nil)
	if err != nil || len(rows) != len(sortCorpus) || rows[0].Keys != nil {
		t.Fatalf("before: %+v, %v; want rows without keys", rows, err)
	}
	d := e.login(t)
	d.Send("s SELECT INBOX")
	for !strings.HasPrefix(d.Line(), "s OK") {
	}
	e.run(t, d, `
		C: a THREAD REFERENCES UTF-8 ALL
		S: * THREAD (1 (2 4)(5))(3 6)(7)
		S: a OK THREAD completed
	`)
	rows, err = e.st.SortRows(context.Background(), e.inbox(t).ID, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rows {
		want, _ := message.Parse(strings.NewReader(sortCorpus[r.UID-1]))
		if r.Keys == nil || r.Keys.Subject != want.Sort.Subject || r.Keys.MessageID != want.Sort.MessageID {
			t.Errorf("UID %d after SORT: keys %+v, want %+v", r.UID, r.Keys, want.Sort)
		}
	}
	e.run(t, d, `
		C: b SORT (SUBJECT) UTF-8 ALL
		S: * SORT 3 6 7 1 2 4 5
		S: b OK SORT completed
	`)
}
