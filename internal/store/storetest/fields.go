package storetest

import (
	"errors"
	"strings"
	"testing"

	"petrel/internal/store"
)

// FieldsStore is a store that gives each account's copy its own header fields.
type FieldsStore interface {
	store.Store
	store.FieldDeliverer
}

// RunFields checks store.FieldDeliverer: one message to three accounts, two of them with
// fields of their own and one without, small and larger than a stored chunk. Each copy
// reads back as the body with its own fields, its size is the bytes it reads, its parse is
// its own, copies within the account share it, the counts agree, and the shared body
// stays until the last copy that needs it is expunged. open must return a new, empty
// store; RunFields closes it.
func RunFields(t *testing.T, open func(t *testing.T) FieldsStore) {
	s, f := openSuite(t, open)
	ctx := f.ctx
	a := f.account("fields-a@example.org")
	b := f.account("fields-b@example.org")
	c := f.account("fields-c@example.org")
	junkB := f.mailbox(b.ID, store.Junk)

	for _, tc := range []struct {
		name string
		body string
	}{
		{"small", "Return-Path: <s@remote.example>\r\nFrom: s@remote.example\r\nSubject: offer\r\n\r\nBuy now.\r\n"},
		{"large", "Return-Path: <s@remote.example>\r\nFrom: s@remote.example\r\nSubject: offer\r\n\r\n" +
			strings.Repeat("A long line of text that fills several chunks of the store.\r\n", 9000)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f.t = t
			at := int64(strings.Index(tc.body, "\r\n") + 2) // after Return-Path
			fa := "X-Spam-Status: No, score=0.10\r\n"
			fb := "X-Spam-Status: Yes, score=0.99\r\nX-Spam-Flag: YES\r\n"
			fields := []store.AccountFields{
				{AccountID: a.ID, Fields: fa, At: at, Parsed: store.ParsedMessage{MessageID: "m@remote.example", Subject: "offer for a"}},
				{AccountID: b.ID, Fields: fb, At: at, Parsed: store.ParsedMessage{MessageID: "m@remote.example", Subject: "offer for b"}},
			}
			d := delivery(tc.body, inbox(a.ID), store.Target{AccountID: b.ID, Mailbox: "Junk"}, inbox(c.ID), store.Target{AccountID: a.ID, Mailbox: "Junk"})
			got, err := s.DeliverFields(ctx, d, fields)
			if err != nil {
				t.Fatalf("DeliverFields: %v", err)
			}
			if len(got.Messages) != 4 {
				t.Fatalf("DeliverFields returned %d messages for 4 targets", len(got.Messages))
			}
			want := []string{
				tc.body[:at] + fa + tc.body[at:],
				tc.body[:at] + fb + tc.body[at:],
				tc.body,
				tc.body[:at] + fa + tc.body[at:],
			}
			subjects := []string{"offer for a", "offer for b", "hello", "offer for a"}
			for i, m := range got.Messages {
				f.checkCopy(m, want[i], subjects[i])
			}
			if got.Messages[0].BlobID != got.Messages[3].BlobID {
				t.Errorf("the two copies of account a have bodies %d and %d, want one", got.Messages[0].BlobID, got.Messages[3].BlobID)
			}
			if got.Messages[0].BlobID == got.Messages[1].BlobID || got.Messages[1].BlobID == got.Messages[2].BlobID {
				t.Errorf("accounts share bodies %d, %d, %d: each copy with fields needs its own", got.Messages[0].BlobID, got.Messages[1].BlobID, got.Messages[2].BlobID)
			}
			// What Messages lists is what DeliverFields returned.
			for i, m := range got.Messages {
				listed := f.messages(m.MailboxID)
				if l := listed[len(listed)-1]; l.UID != m.UID || l.BlobID != m.BlobID || l.Size != int64(len(want[i])) {
					t.Errorf("copy %d listed as %+v, want UID %d, body %d, size %d", i, l, m.UID, m.BlobID, len(want[i]))
				}
			}
			for _, id := range []int64{a.ID, b.ID, c.ID} {
				f.checkCounts(id)
			}
			if u, err := s.Usage(ctx, b.ID); err != nil || u.Size != int64(len(want[1])) {
				t.Errorf("usage of b: %+v, %v; want size %d", u, err, len(want[1]))
			}

			// A copy within the account shares the spliced body.
			arch := f.create(a.ID, "Archive-"+tc.name)
			if _, err := s.Copy(ctx, got.Messages[0].MailboxID, []uint32{got.Messages[0].UID}, arch.ID); err != nil {
				t.Fatalf("Copy: %v", err)
			}
			copied := f.messages(arch.ID)
			f.checkCopy(copied[0], want[0], subjects[0])

			// Expunging the copies one account after another leaves the others whole; the
			// shared body goes with the last of them.
			f.expunge(got.Messages[0].MailboxID, got.Messages[0].UID)
			f.expunge(got.Messages[3].MailboxID, got.Messages[3].UID)
			f.checkCopy(copied[0], want[0], subjects[0])
			f.expunge(arch.ID, copied[0].UID)
			f.checkCopy(got.Messages[1], want[1], subjects[1])
			f.checkCopy(got.Messages[2], want[2], subjects[2])
			f.expunge(junkB.ID, got.Messages[1].UID)
			f.checkCopy(got.Messages[2], want[2], subjects[2])
			f.expunge(got.Messages[2].MailboxID, got.Messages[2].UID)
			for _, m := range got.Messages {
				if _, err := s.OpenBlob(ctx, m.BlobID); !errors.Is(err, store.ErrNotFound) {
					t.Errorf("OpenBlob(%d) after every copy was expunged: %v, want ErrNotFound", m.BlobID, err)
				}
			}
			for _, id := range []int64{a.ID, b.ID, c.ID} {
				f.checkCounts(id)
			}
		})
	}

	// Fields outside the body are refused, and nothing is delivered.
	f.t = t
	before := len(f.messages(f.mailbox(a.ID, store.Inbox).ID))
	_, err := s.DeliverFields(ctx, delivery(body1, inbox(a.ID)), []store.AccountFields{{AccountID: a.ID, Fields: "X: y\r\n", At: int64(len(body1) + 1)}})
	if err == nil {
		t.Errorf("DeliverFields with fields past the end of the body: no error")
	}
	if n := len(f.messages(f.mailbox(a.ID, store.Inbox).ID)); n != before {
		t.Errorf("a refused DeliverFields left %d messages, want %d", n, before)
	}
}

// checkCopy reads one message's body and parse and compares them with what its copy holds.
func (f *fixture) checkCopy(m store.Message, want, subject string) {
	f.t.Helper()
	if m.Size != int64(len(want)) {
		f.t.Errorf("message %d (body %d): size %d, want %d", m.UID, m.BlobID, m.Size, len(want))
	}
	if got := f.blob(m.BlobID); got != want {
		f.t.Errorf("message %d (body %d): %d bytes %q..., want %d bytes %q...", m.UID, m.BlobID, len(got), got[:min(len(got), 120)], len(want), want[:min(len(want), 120)])
	}
	p, err := f.s.Parsed(f.ctx, m.BlobID)
	if err != nil || p.Subject != subject {
		f.t.Errorf("Parsed(%d): subject %q, %v; want %q", m.BlobID, p.Subject, err, subject)
	}
	// A batch read (IMAP FETCH's) gives the copy's bytes or leaves it to OpenBlob.
	if bb, ok := f.s.(store.BlobBatch); ok {
		err := bb.ReadBlobs(f.ctx, []int64{m.BlobID}, 1<<20, func(id int64, body []byte) error {
			if string(body) != want {
				f.t.Errorf("ReadBlobs(%d): %d bytes %q..., want %d bytes", id, len(body), body[:min(len(body), 120)], len(want))
			}
			return nil
		})
		if err != nil {
			f.t.Errorf("ReadBlobs(%d): %v", m.BlobID, err)
		}
	}
}
