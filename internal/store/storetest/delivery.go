package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"petrel/internal/store"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

func testDeliver(t *testing.T, f *fixture) {
	ctx := f.ctx
	a := f.account("a@example.org")
	box := f.mailbox(a.ID, store.Inbox)

	d := delivery(body1, inbox(a.ID))
	d.Flags = []string{`\seen`, "$Label", `\Seen`}
	got, err := f.s.Deliver(ctx, d)
	if err != nil {
		t.Fatal(err)
	}
	m := got.Messages[0]
	if m.MailboxID != box.ID || m.UID != 1 || m.BlobID != got.BlobID || m.Size != int64(len(body1)) ||
		!m.InternalDate.Equal(d.ReceivedAt) || !slices.Equal(m.Flags, []string{"$Label", `\Seen`}) || m.ModSeq <= box.HighestModSeq {
		t.Errorf("delivered %+v", m)
	}
	second := f.deliver("Subject: two\r\n\r\n2\r\n", inbox(a.ID))
	if second.Messages[0].UID != 2 || second.Messages[0].ModSeq <= m.ModSeq || second.BlobID == got.BlobID {
		t.Errorf("second delivery %+v after %+v", second.Messages[0], m)
	}

	ms := f.messages(box.ID)
	if len(ms) != 2 || ms[0].ID != m.ID || ms[0].UID != 1 || ms[1].UID != 2 {
		t.Fatalf("Messages = %+v", ms)
	}
	if !ms[0].InternalDate.Equal(m.InternalDate) || !slices.Equal(ms[0].Flags, m.Flags) || ms[0].ModSeq != m.ModSeq || ms[0].Size != m.Size {
		t.Errorf("listed %+v, delivered %+v", ms[0], m)
	}
	if len(ms[1].Flags) != 0 {
		t.Errorf("flags of a delivery without flags: %q", ms[1].Flags)
	}
	if b := f.blob(got.BlobID); b != body1 {
		t.Errorf("blob = %q", b)
	}
	after := f.mailbox(a.ID, store.Inbox)
	if after.UIDNext != 3 || after.Messages != 2 || after.UIDValidity != box.UIDValidity || after.HighestModSeq != second.Messages[0].ModSeq {
		t.Errorf("mailbox after deliveries %+v", after)
	}
	_, err = f.s.OpenBlob(ctx, second.BlobID+1000)
	wantErr(t, "OpenBlob missing", err, store.ErrNotFound)

	// Empty body: legal, if odd.
	empty := f.deliver("", inbox(a.ID))
	if b := f.blob(empty.BlobID); b != "" {
		t.Errorf("empty blob = %q", b)
	}
	if _, err := f.s.Deliver(ctx, delivery(body1)); err == nil {
		t.Error("Deliver without targets succeeded")
	}
}

func testDeliverSharedBlob(t *testing.T, f *fixture) {
	a := f.account("a@example.org")
	b := f.account("b@example.org")
	d := f.deliver(body1, inbox(a.ID), store.Target{AccountID: a.ID, Mailbox: store.Archive}, inbox(b.ID))
	seenIDs := map[int64]bool{}
	for i, want := range []int64{f.mailbox(a.ID, store.Inbox).ID, f.mailbox(a.ID, store.Archive).ID, f.mailbox(b.ID, store.Inbox).ID} {
		m := d.Messages[i]
		if m.MailboxID != want || m.BlobID != d.BlobID || m.UID != 1 || seenIDs[m.ID] {
			t.Errorf("target %d: %+v", i, m)
		}
		seenIDs[m.ID] = true
		if ms := f.messages(want); len(ms) != 1 || ms[0].BlobID != d.BlobID {
			t.Errorf("mailbox %d holds %+v", want, ms)
		}
	}
	// Expunging one copy keeps the body for the others.
	f.expunge(d.Messages[0].MailboxID, 1)
	if got := f.blob(d.BlobID); got != body1 {
		t.Errorf("shared blob after one expunge = %q", got)
	}
}

// testDeliverInboxFallback: a target mailbox that does not exist is INBOX only when the
// delivery asks for it (SMTP); otherwise the delivery fails whole.
func testDeliverInboxFallback(t *testing.T, f *fixture) {
	ctx := f.ctx
	a := f.account("a@example.org")
	box := f.mailbox(a.ID, store.Inbox)
	strict := delivery(body1, inbox(a.ID), store.Target{AccountID: a.ID, Mailbox: "No/Such/Box"})
	_, err := f.s.Deliver(ctx, strict)
	wantErr(t, "Deliver to a missing mailbox without fallback", err, store.ErrNotFound)
	if got := f.mailbox(a.ID, store.Inbox); !sameMailbox(got, box) {
		t.Errorf("refused delivery changed INBOX: %+v -> %+v", box, got)
	}

	d := delivery(body1, store.Target{AccountID: a.ID, Mailbox: "No/Such/Box"}, store.Target{AccountID: a.ID},
		store.Target{AccountID: a.ID, Mailbox: "inbox"}, store.Target{AccountID: a.ID, Mailbox: store.Junk})
	d.InboxFallback = true
	got, err := f.s.Deliver(ctx, d)
	if err != nil {
		t.Fatal(err)
	}
	junk := f.mailbox(a.ID, store.Junk)
	for i, want := range []int64{box.ID, box.ID, box.ID, junk.ID} {
		if m := got.Messages[i]; m.MailboxID != want {
			t.Errorf("target %d went to mailbox %d, want %d", i, m.MailboxID, want)
		}
	}
	if got := uids(f.messages(box.ID)); !slices.Equal(got, []uint32{1, 2, 3}) {
		t.Errorf("INBOX UIDs %v", got)
	}
	// The fallback does not hide a missing account.
	d = delivery(body1, store.Target{AccountID: a.ID + 1000, Mailbox: "X"})
	d.InboxFallback = true
	_, err = f.s.Deliver(ctx, d)
	wantErr(t, "Deliver with fallback to a missing account", err, store.ErrNotFound)
	f.checkCounts(a.ID)
}

func appendMessage(body string) *store.AppendMessage {
	return &store.AppendMessage{
		Body:         strings.NewReader(body),
		Size:         int64(len(body)),
		Parsed:       store.ParsedMessage{MessageID: "draft@example.org", Subject: "draft"},
		InternalDate: time.Date(2024, 2, 29, 23, 59, 58, 0, time.UTC),
	}
}

// testAppend: APPEND puts one message into a named mailbox with the given flags and date,
// reports UIDVALIDITY and UID (APPENDUID), and never falls back to INBOX (TRYCREATE).
func testAppend(t *testing.T, f *fixture) {
	ctx := f.ctx
	a := f.account("a@example.org")
	drafts := f.mailbox(a.ID, store.Drafts)
	inboxBefore := f.mailbox(a.ID, store.Inbox)
	ch, cancel := f.s.Subscribe(a.ID)
	defer cancel()

	m := appendMessage(body1)
	m.Flags = []string{`\draft`, store.FlagSeen, "$Pending"}
	got, err := f.s.Append(ctx, a.ID, store.Drafts, m)
	if err != nil {
		t.Fatal(err)
	}
	msg := got.Message
	if got.UIDValidity != drafts.UIDValidity || msg.UID != 1 || msg.MailboxID != drafts.ID || msg.Size != int64(len(body1)) ||
		!msg.InternalDate.Equal(m.InternalDate) || !slices.Equal(msg.Flags, []string{"$Pending", store.FlagDraft, store.FlagSeen}) ||
		msg.ModSeq <= drafts.HighestModSeq {
		t.Errorf("Append = %+v", got)
	}
	expectChange(t, ch, store.Change{Kind: store.ChangeAdd, AccountID: a.ID, MailboxID: drafts.ID, UIDs: []uint32{1}, ModSeq: msg.ModSeq})
	if ms := f.messages(drafts.ID); len(ms) != 1 || ms[0].ID != msg.ID || !slices.Equal(ms[0].Flags, msg.Flags) ||
		!ms[0].InternalDate.Equal(m.InternalDate) {
		t.Errorf("Drafts holds %+v", ms)
	}
	if b := f.blob(msg.BlobID); b != body1 {
		t.Errorf("appended body %q", b)
	}
	if p, err := f.s.Parsed(ctx, msg.BlobID); err != nil || p.MessageID != "draft@example.org" {
		t.Errorf("Parsed of the appended message = %+v, %v", p, err)
	}
	after := f.mailbox(a.ID, store.Drafts)
	if after.UIDNext != 2 || after.Unseen != 0 || !slices.Equal(after.Keywords, []string{"$Pending"}) {
		t.Errorf("Drafts after Append: %+v", after)
	}

	// A second one, by another spelling of the name, with the date of now.
	m = appendMessage("x\r\n")
	m.InternalDate = time.Time{}
	start := time.Now().Add(-time.Second)
	got, err = f.s.Append(ctx, a.ID, "inbox", m)
	if err != nil {
		t.Fatal(err)
	}
	if got.UIDValidity != inboxBefore.UIDValidity || got.Message.MailboxID != inboxBefore.ID ||
		got.Message.InternalDate.Before(start) || got.Message.InternalDate.After(time.Now().Add(time.Second)) {
		t.Errorf("Append to inbox = %+v", got)
	}

	usage, err := f.s.Usage(ctx, a.ID)
	if err != nil {
		t.Fatal(err)
	}
	_, err = f.s.Append(ctx, a.ID, "No Such Folder", appendMessage(body1))
	wantErr(t, "Append to a missing mailbox", err, store.ErrNotFound)
	_, err = f.s.Append(ctx, a.ID+1000, store.Inbox, appendMessage(body1))
	wantErr(t, "Append to a missing account", err, store.ErrNotFound)
	bad := appendMessage(body1)
	bad.Flags = []string{`\Recent`}
	_, err = f.s.Append(ctx, a.ID, store.Drafts, bad)
	wantErr(t, "Append with \\Recent", err, store.ErrInvalid)
	short := appendMessage(body1)
	short.Size++
	if _, err := f.s.Append(ctx, a.ID, store.Drafts, short); err == nil {
		t.Error("Append of a short body succeeded")
	}
	if got, err := f.s.Usage(ctx, a.ID); err != nil || got != usage {
		t.Errorf("failed appends changed the usage: %+v -> %+v, %v", usage, got, err)
	}
	if got := f.mailbox(a.ID, store.Inbox); got.Messages != 1 {
		t.Errorf("a failed Append fell back to INBOX: %+v", got)
	}
	f.checkCounts(a.ID)
}

func testDeliverAtomic(t *testing.T, f *fixture) {
	ctx := f.ctx
	a := f.account("a@example.org")
	before := f.mailbox(a.ID, store.Inbox)
	_, err := f.s.Deliver(ctx, delivery(body1, inbox(a.ID), inbox(a.ID+1000)))
	wantErr(t, "Deliver to a missing account", err, store.ErrNotFound)
	after := f.mailbox(a.ID, store.Inbox)
	if !sameMailbox(after, before) {
		t.Errorf("failed delivery changed INBOX: %+v -> %+v", before, after)
	}
	if ms := f.messages(before.ID); len(ms) != 0 {
		t.Errorf("failed delivery left messages: %+v", ms)
	}
	// The store is still usable, and the failed delivery used no UID.
	d := f.deliver(body1, inbox(a.ID))
	if d.Messages[0].UID != 1 {
		t.Errorf("UID after failed delivery = %d, want 1", d.Messages[0].UID)
	}
}

type failingReader struct{}

func (failingReader) Read([]byte) (int, error) { return 0, errors.New("connection reset") }

func testDeliverBadBody(t *testing.T, f *fixture) {
	ctx := f.ctx
	a := f.account("a@example.org")
	short := delivery(body1, inbox(a.ID))
	short.Size++
	long := delivery(body1, inbox(a.ID))
	long.Size--
	broken := delivery(body1, inbox(a.ID))
	broken.Body = io.MultiReader(strings.NewReader("From: x\r\n"), failingReader{})
	for name, d := range map[string]*store.Delivery{"short": short, "long": long, "broken": broken} {
		if _, err := f.s.Deliver(ctx, d); err == nil {
			t.Errorf("%s body: Deliver succeeded", name)
		}
	}
	if box := f.mailbox(a.ID, store.Inbox); box.Messages != 0 || box.UIDNext != 1 {
		t.Errorf("bad bodies left %+v", box)
	}
}

func testDeliverCancelled(t *testing.T, f *fixture) {
	a := f.account("a@example.org")
	ctx, cancel := context.WithCancel(f.ctx)
	cancel()
	_, err := f.s.Deliver(ctx, delivery(body1, inbox(a.ID)))
	wantErr(t, "Deliver with a cancelled context", err, context.Canceled)
	if box := f.mailbox(a.ID, store.Inbox); box.Messages != 0 {
		t.Errorf("cancelled delivery stored: %+v", box)
	}
}

func testLargeBody(t *testing.T, f *fixture) {
	a := f.account("a@example.org")
	var buf bytes.Buffer
	for i := 0; buf.Len() < 3<<20; i++ {
		fmt.Fprintf(&buf, "line %d of a large message, padded to look like base64 text ABCDEFGHIJKLMNOP\r\n", i)
	}
	d := f.deliver(buf.String(), inbox(a.ID))
	if d.Messages[0].Size != int64(buf.Len()) {
		t.Errorf("size %d, want %d", d.Messages[0].Size, buf.Len())
	}
	r, err := f.s.OpenBlob(f.ctx, d.BlobID)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	// Read in odd-sized pieces to cross internal boundaries anywhere.
	var got bytes.Buffer
	p := make([]byte, 7777)
	for {
		n, err := r.Read(p)
		got.Write(p[:n])
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if !bytes.Equal(got.Bytes(), buf.Bytes()) {
		t.Errorf("large blob differs: got %d bytes, want %d", got.Len(), buf.Len())
	}
}

func testParsed(t *testing.T, f *fixture) {
	a := f.account("a@example.org")
	in := store.Target{AccountID: a.ID, Mailbox: store.Inbox}
	date := time.Date(2024, 5, 6, 7, 8, 9, 0, time.FixedZone("x", 3600))
	d := delivery("Subject: x\r\n\r\n", in)
	d.Parsed = store.ParsedMessage{MessageID: "m@x", Subject: "x", From: "Ann <ann@x>", Date: date,
		Envelope: []byte(`{"subject":"x"}`), Structure: []byte(`{"type":"text"}`)}
	got, err := f.s.Deliver(f.ctx, d)
	if err != nil {
		t.Fatal(err)
	}
	p, err := f.s.Parsed(f.ctx, got.BlobID)
	if err != nil {
		t.Fatal(err)
	}
	if p.MessageID != "m@x" || p.Subject != "x" || p.From != "Ann <ann@x>" || !p.Date.Equal(date) ||
		string(p.Envelope) != `{"subject":"x"}` || string(p.Structure) != `{"type":"text"}` {
		t.Errorf("Parsed = %+v", p)
	}
	bare := delivery("x\r\n", in)
	bare.Parsed = store.ParsedMessage{}
	noDate, err := f.s.Deliver(f.ctx, bare)
	if err != nil {
		t.Fatal(err)
	}
	if p, err := f.s.Parsed(f.ctx, noDate.BlobID); err != nil || !p.Date.IsZero() || p.Envelope != nil {
		t.Errorf("Parsed without data = %+v, %v", p, err)
	}
	if _, err := f.s.Parsed(f.ctx, noDate.BlobID+100); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Parsed of a missing blob: %v", err)
	}
}

// testConcurrentDeliveries: many writers into one mailbox get distinct UIDs 1..N and every
// message reads back.
func testConcurrentDeliveries(t *testing.T, f *fixture) {
	const writers, each = 16, 50
	a := f.account("a@example.org")
	b := f.account("b@example.org")
	var wg sync.WaitGroup
	errs := make(chan error, writers*each)
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				body := fmt.Sprintf("Subject: %d-%d\r\n\r\nbody\r\n", w, i)
				targets := []store.Target{inbox(a.ID)}
				if i%5 == 0 {
					targets = append(targets, inbox(b.ID))
				}
				if _, err := f.s.Deliver(f.ctx, delivery(body, targets...)); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	box := f.mailbox(a.ID, store.Inbox)
	ms := f.messages(box.ID)
	if len(ms) != writers*each || box.Messages != writers*each || box.UIDNext != writers*each+1 {
		t.Fatalf("%d messages, mailbox %+v; want %d", len(ms), box, writers*each)
	}
	bodies := map[string]bool{}
	var last uint64
	for i, m := range ms {
		if m.UID != uint32(i+1) {
			t.Fatalf("message %d has UID %d", i, m.UID)
		}
		// Writes to one account are ordered, so MODSEQ grows with UID.
		if m.ModSeq <= last {
			t.Fatalf("UID %d has MODSEQ %d, not above the previous %d", m.UID, m.ModSeq, last)
		}
		last = m.ModSeq
		bodies[f.blob(m.BlobID)] = true
	}
	if len(bodies) != writers*each {
		t.Errorf("%d distinct bodies, want %d", len(bodies), writers*each)
	}
	if box.HighestModSeq != last {
		t.Errorf("mailbox MODSEQ %d, highest message MODSEQ %d", box.HighestModSeq, last)
	}
	if n := len(f.messages(f.mailbox(b.ID, store.Inbox).ID)); n != writers*each/5 {
		t.Errorf("second account has %d messages, want %d", n, writers*each/5)
	}
}
