package imapd

// emersion/go-imap v2's client as a second, independent implementation of the protocol:
// its decoder is strict about the grammar of every response it parses (ENVELOPE,
// BODYSTRUCTURE, literals, response codes).

import (
	"bytes"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

func TestGoIMAPClient(t *testing.T) {
	e := newEnv(t, Config{})
	e.deliver(t, "INBOX", msgA)
	e.deliver(t, "INBOX", msgB)

	exists := make(chan uint32, 16)
	c, err := imapclient.DialStartTLS(e.addr, &imapclient.Options{
		TLSConfig: e.tls,
		UnilateralDataHandler: &imapclient.UnilateralDataHandler{
			Mailbox: func(d *imapclient.UnilateralDataMailbox) {
				if d.NumMessages != nil {
					exists <- *d.NumMessages
				}
			},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Login("alice@example.org", alicePass).Wait(); err != nil {
		t.Fatal(err)
	}
	sel, err := c.Select("INBOX", nil).Wait()
	if err != nil || sel.NumMessages != 2 || sel.UIDNext != 3 {
		t.Fatalf("select: %+v, %v", sel, err)
	}

	header := &imap.FetchItemBodySection{Specifier: imap.PartSpecifierHeader, Peek: true}
	part2 := &imap.FetchItemBodySection{Part: []int{2}, Peek: true}
	msgs, err := c.Fetch(imap.SeqSetNum(1, 2), &imap.FetchOptions{
		UID: true, Flags: true, Envelope: true, BodyStructure: &imap.FetchItemBodyStructure{Extended: true},
		RFC822Size: true, InternalDate: true, BodySection: []*imap.FetchItemBodySection{header, part2},
	}).Collect()
	if err != nil || len(msgs) != 2 {
		t.Fatalf("fetch: %d messages, %v", len(msgs), err)
	}
	a, b := msgs[0], msgs[1]
	if a.UID != 1 || a.Envelope.Subject != "hello" || len(a.Envelope.From) != 1 || a.Envelope.From[0].Addr() != "bob@example.net" ||
		a.Envelope.MessageID != "a@example.net" || a.RFC822Size != int64(len(msgA)) {
		t.Errorf("message 1: %+v envelope %+v", a, a.Envelope)
	}
	if got := string(a.FindBodySection(header)); got != msgA[:len(msgA)-len("first body\r\n")] {
		t.Errorf("BODY[HEADER] = %q", got)
	}
	if b.Envelope.Subject != "café" {
		t.Errorf("RFC 2047 subject decoded as %q", b.Envelope.Subject)
	}
	mp, ok := b.BodyStructure.(*imap.BodyStructureMultiPart)
	if !ok || mp.Subtype != "mixed" || len(mp.Children) != 2 {
		t.Fatalf("bodystructure %#v", b.BodyStructure)
	}
	if sp, ok := mp.Children[1].(*imap.BodyStructureSinglePart); !ok || sp.Type != "text" || sp.Subtype != "html" || sp.Size != 10 {
		t.Errorf("part 2 %#v", mp.Children[1])
	}
	if got := string(b.FindBodySection(part2)); got != "<p>two</p>" {
		t.Errorf("BODY[2] = %q", got)
	}

	if err := c.Store(imap.UIDSetNum(2), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{imap.FlagFlagged}, Silent: true}, nil).Close(); err != nil {
		t.Fatal(err)
	}
	res, err := c.UIDSearch(&imap.SearchCriteria{Flag: []imap.Flag{imap.FlagFlagged}}, nil).Wait()
	if err != nil || len(res.AllUIDs()) != 1 || res.AllUIDs()[0] != 2 {
		t.Errorf("search flagged: %v, %v", res, err)
	}

	body := []byte("Subject: appended\r\n\r\nhi\r\n")
	ac := c.Append("Drafts", int64(len(body)), &imap.AppendOptions{Flags: []imap.Flag{imap.FlagDraft}, Time: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)})
	ac.Write(body)
	ac.Close()
	app, err := ac.Wait()
	if err != nil || app.UID != 1 || app.UIDValidity == 0 {
		t.Errorf("append: %+v, %v", app, err)
	}
	mv, err := c.Move(imap.UIDSetNum(1), "Archive").Wait()
	if err != nil || mv.UIDValidity == 0 {
		t.Errorf("move: %+v, %v", mv, err)
	}

	// IDLE: a delivery wakes the session with EXISTS.
	idle, err := c.Idle()
	if err != nil {
		t.Fatal(err)
	}
	e.deliver(t, "INBOX", msgA)
	select {
	case n := <-exists:
		if n != 2 {
			t.Errorf("EXISTS %d during IDLE, want 2", n)
		}
	case <-time.After(time.Minute):
		t.Error("no EXISTS during IDLE")
	}
	if err := idle.Close(); err != nil {
		t.Fatal(err)
	}
	if err := idle.Wait(); err != nil {
		t.Fatal(err)
	}
	full := &imap.FetchItemBodySection{}
	msgs, err = c.Fetch(imap.SeqSetNum(2), &imap.FetchOptions{BodySection: []*imap.FetchItemBodySection{full}}).Collect()
	if err != nil || len(msgs) != 1 || !bytes.Equal(msgs[0].FindBodySection(full), []byte(msgA)) {
		t.Errorf("fetch after IDLE: %v, %v", msgs, err)
	}
	if err := c.Logout().Wait(); err != nil {
		t.Error(err)
	}
}

// The same client exercises CONDSTORE, ESEARCH, LIST-STATUS, IMAP4rev2 and
// BINARY, parsing our responses with its own grammar.
func TestGoIMAPClientExtensions(t *testing.T) {
	e := newEnv(t, Config{})
	e.deliver(t, "INBOX", msgA)
	e.deliver(t, "INBOX", msgBinary)
	c, err := imapclient.DialStartTLS(e.addr, &imapclient.Options{TLSConfig: e.tls})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Login("alice@example.org", alicePass).Wait(); err != nil {
		t.Fatal(err)
	}
	for _, cp := range []imap.Cap{imap.CapIMAP4rev2, imap.CapCondStore, imap.CapESearch, imap.CapListStatus, imap.CapBinary} {
		if !c.Caps().Has(cp) {
			t.Errorf("capability %s not seen", cp)
		}
	}
	sel, err := c.Select("INBOX", &imap.SelectOptions{CondStore: true}).Wait()
	if err != nil || sel.HighestModSeq == 0 || sel.HighestModSeq != e.mailboxNow(t, "INBOX").HighestModSeq {
		t.Fatalf("select: %+v, %v", sel, err)
	}
	if err := c.Store(imap.UIDSetNum(2), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{imap.FlagFlagged}, Silent: true}, nil).Close(); err != nil {
		t.Fatal(err)
	}
	msgs, err := c.Fetch(imap.UIDSetNum(1, 2), &imap.FetchOptions{UID: true, Flags: true, ModSeq: true, ChangedSince: sel.HighestModSeq}).Collect()
	if err != nil || len(msgs) != 1 || msgs[0].UID != 2 || msgs[0].ModSeq != e.modSeqOf(t, "INBOX", 2) {
		t.Fatalf("fetch CHANGEDSINCE: %+v, %v", msgs, err)
	}
	res, err := c.UIDSearch(&imap.SearchCriteria{ModSeq: &imap.SearchCriteriaModSeq{ModSeq: 1}},
		&imap.SearchOptions{ReturnMin: true, ReturnMax: true, ReturnCount: true, ReturnAll: true}).Wait()
	if err != nil || res.Min != 1 || res.Max != 2 || res.Count != 2 || res.ModSeq != msgs[0].ModSeq {
		t.Errorf("ESEARCH: %+v, %v", res, err)
	}
	// SEARCHRES is left to our own tests: this client (beta.8) does not send SAVE.
	part := &imap.FetchItemBinarySection{Part: []int{1}, Peek: true}
	msgs, err = c.Fetch(imap.UIDSetNum(2), &imap.FetchOptions{UID: true, BinarySection: []*imap.FetchItemBinarySection{part}}).Collect()
	if err != nil || len(msgs) != 1 || msgs[0].UID != 2 || string(msgs[0].FindBinarySection(part)) != "café" {
		t.Errorf("FETCH BINARY[1]: %+v, %v", msgs, err)
	}
	list, err := c.List("", "*", &imap.ListOptions{SelectSpecialUse: true, ReturnStatus: &imap.StatusOptions{NumMessages: true, Size: true}}).Collect()
	if err != nil || len(list) != 5 || list[0].Status == nil || list[0].Status.NumMessages == nil {
		t.Errorf("LIST-STATUS: %+v, %v", list, err)
	}
	if err := c.Logout().Wait(); err != nil {
		t.Error(err)
	}
}
