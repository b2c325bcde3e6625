package storetest

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"petrel/internal/store"
)

// RunMultiAppend tests a store's MultiAppender (IMAP MULTIAPPEND, RFC 3502): open returns
// a new, empty store, which the test closes.
func RunMultiAppend(t *testing.T, open func(t *testing.T) store.Store) {
	s := open(t)
	defer s.Close()
	ma, ok := s.(store.MultiAppender)
	if !ok {
		t.Fatalf("%T is not a store.MultiAppender", s)
	}
	f := &fixture{t: t, s: s, ctx: context.Background()}
	a := f.account("a@example.org")
	msg := func(text string, flags ...string) *store.AppendMessage {
		body := "Subject: " + text + "\r\n\r\n" + text + "\r\n"
		return &store.AppendMessage{Body: strings.NewReader(body), Size: int64(len(body)),
			Parsed: store.ParsedMessage{Subject: text, Text: &store.SearchText{Subject: text, Body: text}}, Flags: flags}
	}

	// Three messages: consecutive UIDs, in order, with their flags, and one change.
	box := f.mailbox(a.ID, "Drafts")
	res, err := ma.AppendMany(f.ctx, a.ID, "Drafts", []*store.AppendMessage{msg("one", store.FlagSeen), msg("two"), msg("three", "$Label1")})
	if err != nil {
		t.Fatal(err)
	}
	if res.UIDValidity != box.UIDValidity || len(res.Messages) != 3 {
		t.Fatalf("AppendMany = %+v; want 3 messages in UIDVALIDITY %d", res, box.UIDValidity)
	}
	for i, m := range res.Messages {
		if m.UID != box.UIDNext+uint32(i) || m.MailboxID != box.ID {
			t.Errorf("message %d: UID %d in mailbox %d, want %d in %d", i, m.UID, m.MailboxID, box.UIDNext+uint32(i), box.ID)
		}
	}
	got := f.messages(box.ID)
	if len(got) != 3 || !slices.Equal(got[0].Flags, []string{store.FlagSeen}) || !slices.Equal(got[2].Flags, []string{"$Label1"}) {
		t.Errorf("mailbox after AppendMany: %+v", got)
	}
	if uids, err := s.Search(f.ctx, box.ID, store.FieldText, "two"); err != nil || !slices.Equal(uids, []uint32{res.Messages[1].UID}) {
		t.Errorf("Search(two) = %v, %v", uids, err)
	}

	// All or nothing: over quota at the third, none is added; a missing mailbox adds none.
	if err := s.SetQuota(f.ctx, a.ID, store.QuotaLimits{Messages: 5}); err != nil {
		t.Fatal(err)
	}
	_, err = ma.AppendMany(f.ctx, a.ID, store.Inbox, []*store.AppendMessage{msg("a"), msg("b"), msg("c")})
	if !errors.Is(err, store.ErrOverQuota) {
		t.Errorf("AppendMany over quota: %v, want ErrOverQuota", err)
	}
	inbox := f.mailbox(a.ID, store.Inbox)
	if inbox.Messages != 0 || inbox.UIDNext != 1 {
		t.Errorf("INBOX after a refused AppendMany: %+v; want nothing added", inbox)
	}
	if _, err := ma.AppendMany(f.ctx, a.ID, "Nowhere", []*store.AppendMessage{msg("x")}); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("AppendMany to a missing mailbox: %v, want ErrNotFound", err)
	}
	if _, err := ma.AppendMany(f.ctx, a.ID, store.Inbox, nil); !errors.Is(err, store.ErrInvalid) {
		t.Errorf("AppendMany of nothing: %v, want ErrInvalid", err)
	}
	// Within the quota it goes through.
	if res, err := ma.AppendMany(f.ctx, a.ID, store.Inbox, []*store.AppendMessage{msg("a"), msg("b")}); err != nil || len(res.Messages) != 2 || res.Messages[1].UID != 2 {
		t.Errorf("AppendMany within the quota = %+v, %v", res, err)
	}
}
