package storetest

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"petrel/internal/store"
)

// testQuota: limits are set and read back, and every write that adds messages (Deliver,
// Append, Copy) is refused with ErrOverQuota, committing nothing, once it would pass one;
// a move and an expunge are never refused, and an expunge makes room again.
func testQuota(t *testing.T, f *fixture) {
	a := f.account("a@example.org")
	b := f.account("b@example.org")
	q, err := f.s.Quota(f.ctx, a.ID)
	if err != nil || q.Setting != (store.QuotaLimits{Storage: store.QuotaDefault, Messages: store.QuotaDefault}) || q.Usage.Messages != 0 {
		t.Fatalf("new account's quota %+v, %v; want the defaults and no usage", q, err)
	}
	wantErr(t, "SetQuota(-2)", f.s.SetQuota(f.ctx, a.ID, store.QuotaLimits{Storage: -2}), store.ErrInvalid)
	wantErr(t, "SetQuota(unknown account)", f.s.SetQuota(f.ctx, a.ID+b.ID+100, store.QuotaLimits{}), store.ErrNotFound)
	_, err = f.s.Quota(f.ctx, a.ID+b.ID+100)
	wantErr(t, "Quota(unknown account)", err, store.ErrNotFound)

	msg := strings.Repeat("x", 100)
	limits := store.QuotaLimits{Storage: 250, Messages: store.QuotaDefault}
	if err := f.s.SetQuota(f.ctx, a.ID, limits); err != nil {
		t.Fatal(err)
	}
	if q, err := f.s.Quota(f.ctx, a.ID); err != nil || q.Setting != limits || q.Limits.Storage != 250 {
		t.Fatalf("quota %+v, %v; want the setting %+v", q, err, limits)
	}
	f.deliver(msg, inbox(a.ID))
	f.deliver(msg, inbox(a.ID)) // 200 of 250
	usageB := func() int64 {
		q, err := f.s.Quota(f.ctx, b.ID)
		if err != nil {
			t.Fatal(err)
		}
		return q.Usage.Messages
	}

	// Over quota: a's part of a delivery to both is refused, and with it the whole commit.
	_, err = f.s.Deliver(f.ctx, delivery(msg, inbox(a.ID), inbox(b.ID)))
	var qe *store.QuotaError
	if !errors.Is(err, store.ErrOverQuota) || !errors.As(err, &qe) || !slices.Equal(qe.Accounts, []int64{a.ID}) {
		t.Fatalf("Deliver over quota: %v, want a QuotaError naming account %d", err, a.ID)
	}
	if n := usageB(); n != 0 {
		t.Errorf("the refused delivery left %d messages with the other recipient", n)
	}
	// Both over: the error names both, ascending, whatever the order of the targets.
	if err := f.s.SetQuota(f.ctx, b.ID, store.QuotaLimits{Storage: 50, Messages: store.QuotaDefault}); err != nil {
		t.Fatal(err)
	}
	_, err = f.s.Deliver(f.ctx, delivery(msg, inbox(b.ID), inbox(a.ID)))
	if !errors.As(err, &qe) || !slices.Equal(qe.Accounts, []int64{min(a.ID, b.ID), max(a.ID, b.ID)}) {
		t.Fatalf("Deliver over both quotas: %v, want a QuotaError naming accounts %d and %d", err, a.ID, b.ID)
	}
	if err := f.s.SetQuota(f.ctx, b.ID, store.QuotaLimits{Storage: store.QuotaDefault, Messages: store.QuotaDefault}); err != nil {
		t.Fatal(err)
	}
	// Two targets in one account count twice: 200 + 2×30 > 250.
	_, err = f.s.Deliver(f.ctx, delivery(msg[:30], inbox(a.ID), store.Target{AccountID: a.ID, Mailbox: store.Archive}))
	wantErr(t, "Deliver two copies", err, store.ErrOverQuota)
	// Exactly up to the limit is allowed.
	f.deliver(msg[:50], inbox(a.ID)) // 250 of 250
	_, err = f.s.Append(f.ctx, a.ID, store.Drafts, appendMessage("y"))
	wantErr(t, "Append over quota", err, store.ErrOverQuota)

	src := f.mailbox(a.ID, store.Inbox)
	arch := f.mailbox(a.ID, store.Archive)
	_, err = f.s.Copy(f.ctx, src.ID, []uint32{1}, arch.ID)
	wantErr(t, "Copy over quota", err, store.ErrOverQuota)
	if got := f.messages(src.ID); len(got) != 3 {
		t.Fatalf("%d messages left in INBOX, want 3", len(got))
	}
	if _, err := f.s.Move(f.ctx, src.ID, []uint32{1}, arch.ID); err != nil {
		t.Fatalf("Move at the limit: %v", err)
	}
	// An account over a lowered limit can still delete, and then write again.
	if err := f.s.SetQuota(f.ctx, a.ID, store.QuotaLimits{Storage: 200, Messages: 3}); err != nil {
		t.Fatal(err)
	}
	f.expunge(arch.ID, 1)
	if _, err := f.s.Append(f.ctx, a.ID, store.Drafts, appendMessage(msg[:50])); err != nil {
		t.Fatalf("Append after an expunge made room: %v", err)
	}
	_, err = f.s.Append(f.ctx, a.ID, store.Drafts, appendMessage("z"))
	wantErr(t, "Append beyond the message limit", err, store.ErrOverQuota)
	if q, err := f.s.Quota(f.ctx, a.ID); err != nil || q.Usage.Messages != 3 || q.Usage.Size != 200 {
		t.Errorf("usage %+v, %v; want 3 messages, 200 octets", q.Usage, err)
	}
	// No limit: QuotaDefault follows the store's default, none in this suite.
	if err := f.s.SetQuota(f.ctx, a.ID, store.QuotaLimits{Storage: 0, Messages: store.QuotaDefault}); err != nil {
		t.Fatal(err)
	}
	f.deliver(strings.Repeat("x", 10000), inbox(a.ID))
	f.checkCounts(a.ID)
}

// testQuotaConcurrent: deliveries racing for the last room of a quota never pass it. The
// rule (store.Quota) is checked inside the commit: with room for exactly `room` messages,
// exactly that many of many concurrent deliveries succeed.
func testQuotaConcurrent(t *testing.T, f *fixture) {
	const room, writers = 7, 24
	a := f.account("a@example.org")
	msg := strings.Repeat("q", 64)
	if err := f.s.SetQuota(f.ctx, a.ID, store.QuotaLimits{Storage: room * 64, Messages: store.QuotaDefault}); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	ok, refused := 0, 0
	for range writers {
		wg.Go(func() {
			_, err := f.s.Deliver(f.ctx, delivery(msg, inbox(a.ID)))
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				ok++
			case errors.Is(err, store.ErrOverQuota):
				refused++
			default:
				t.Errorf("Deliver: %v", err)
			}
		})
	}
	wg.Wait()
	if ok != room || refused != writers-room {
		t.Errorf("%d deliveries succeeded and %d were refused; want %d and %d", ok, refused, room, writers-room)
	}
	if q, err := f.s.Quota(f.ctx, a.ID); err != nil || q.Usage.Size != room*64 {
		t.Errorf("usage %+v, %v; want exactly the limit", q.Usage, err)
	}
}

// searchDelivery is a delivery with the text the full-text index keeps.
func searchDelivery(text store.SearchText, targets ...store.Target) *store.Delivery {
	d := delivery(fmt.Sprintf("Subject: %s\r\n\r\n%s\r\n", text.Subject, text.Body), targets...)
	d.Parsed.Subject = text.Subject
	d.Parsed.Text = &text
	return d
}

// testSearch checks what the index matches (store.Index): words without case or
// diacritics, the last one a prefix, in order; per field; per mailbox; shared bodies in
// every mailbox that has them; expunged messages never.
func testSearch(t *testing.T, f *fixture) {
	a := f.account("a@example.org")
	b := f.account("b@example.org")
	texts := []store.SearchText{
		{Subject: "Quarterly report", From: "Ann Example <ann@example.net>", To: "a@example.org", Body: "The numbers are in. Café crème at noon."},
		{Subject: "Lunch", From: "bob@example.com", Cc: "ann@example.net", Body: "Noon at the café? Numbers later."},
		{Subject: "Grüße aus Köln", From: "Jürgen <j@example.de>", Bcc: "a@example.org", Header: "x-mailer: Petrel\n", Body: "Bis bald"},
	}
	for _, tx := range texts {
		if _, err := f.s.Deliver(f.ctx, searchDelivery(tx, inbox(a.ID))); err != nil {
			t.Fatal(err)
		}
	}
	// b gets the first text too: its mailbox is another one.
	if _, err := f.s.Deliver(f.ctx, searchDelivery(texts[0], inbox(b.ID))); err != nil {
		t.Fatal(err)
	}
	box := f.mailbox(a.ID, store.Inbox)
	search := func(field store.SearchField, text string, want ...uint32) {
		t.Helper()
		got, err := f.s.Search(f.ctx, box.ID, field, text)
		if err != nil || !slices.Equal(got, want) {
			t.Errorf("Search(%d, %q) = %v, %v; want %v", field, text, got, err, want)
		}
	}
	search(store.FieldText, "numbers", 1, 2)
	search(store.FieldText, "NUMBERS", 1, 2)
	search(store.FieldText, "num", 1, 2)     // the last word is a prefix
	search(store.FieldText, "umbers")        // not a substring inside a word
	search(store.FieldBody, "cafe creme", 1) // diacritics folded, words in order
	search(store.FieldBody, "crème café")    // not in this order
	search(store.FieldBody, "café", 1, 2)
	search(store.FieldBody, "quarterly") // the subject is not the body
	search(store.FieldText, "quarterly", 1)
	search(store.FieldText, "petrel", 3) // other header fields are part of TEXT
	search(store.FieldSubject, "GRÜSSE")
	search(store.FieldSubject, "grüße aus", 3)
	search(store.FieldSubject, "koln", 3)
	search(store.FieldFrom, "ann@example.net", 1)
	search(store.FieldFrom, "example", 1, 2, 3)
	search(store.FieldCc, "ann", 2)
	search(store.FieldTo, "a@example.org", 1)
	search(store.FieldBcc, "a@example", 3)
	search(store.FieldSubject, `"quarterly"`, 1) // quotes are not FTS syntax
	search(store.FieldSubject, "report OR lunch")
	search(store.FieldText, "...", 1, 2, 3) // no word: every message
	search(store.FieldText, "nowhere")

	// A copy shares the body and is found in its mailbox; an expunged message is not.
	arch := f.mailbox(a.ID, store.Archive)
	if _, err := f.s.Copy(f.ctx, box.ID, []uint32{1}, arch.ID); err != nil {
		t.Fatal(err)
	}
	f.expunge(box.ID, 1)
	search(store.FieldText, "numbers", 2)
	if got, err := f.s.Search(f.ctx, arch.ID, store.FieldSubject, "quarterly"); err != nil || !slices.Equal(got, []uint32{1}) {
		t.Errorf("Search in the copy's mailbox = %v, %v", got, err)
	}
	// Expunging every copy frees the body; the other account keeps its own.
	f.expunge(arch.ID, 1)
	if got, err := f.s.Search(f.ctx, f.mailbox(b.ID, store.Inbox).ID, store.FieldBody, "numbers"); err != nil || !slices.Equal(got, []uint32{1}) {
		t.Errorf("Search in the other account = %v, %v", got, err)
	}
	_, err := f.s.Search(f.ctx, box.ID+arch.ID+1000, store.FieldText, "x")
	wantErr(t, "Search(unknown mailbox)", err, store.ErrNotFound)
	_, err = f.s.Search(f.ctx, box.ID, store.SearchField(99), "x")
	wantErr(t, "Search(bad field)", err, store.ErrInvalid)

	// A new store has nothing to index after an upgrade, and indexing an indexed body is a
	// no-op.
	if ids, err := f.s.Unindexed(f.ctx, 10); err != nil || len(ids) != 0 {
		t.Errorf("Unindexed = %v, %v; want none", ids, err)
	}
	m := f.messages(box.ID)[0]
	if err := f.s.IndexBlob(f.ctx, m.BlobID, store.SearchText{Body: "replaced"}); err != nil {
		t.Fatal(err)
	}
	search(store.FieldBody, "replaced")
	search(store.FieldBody, "noon", 2)
}

// testSearchRightAfterCommit: a search finds a message as soon as the commit that stored it
// returned, whether it came by delivery, APPEND or COPY, however the backend defers the work
// of its index (the SQLite store indexes in the background); and while deliveries keep
// arriving, every one of them is found by the search that follows it.
func testSearchRightAfterCommit(t *testing.T, f *fixture) {
	a := f.account("a@example.org")
	box := f.mailbox(a.ID, store.Inbox)
	arch := f.mailbox(a.ID, store.Archive)
	search := func(mailboxID int64, word string, want ...uint32) {
		t.Helper()
		got, err := f.s.Search(f.ctx, mailboxID, store.FieldText, word)
		if err != nil || !slices.Equal(got, want) {
			t.Errorf("Search(%q) = %v, %v; want %v", word, got, err, want)
		}
	}

	if _, err := f.s.Deliver(f.ctx, searchDelivery(store.SearchText{Subject: "first", Body: "delivered aardvark"}, inbox(a.ID))); err != nil {
		t.Fatal(err)
	}
	search(box.ID, "aardvark", 1)

	text := store.SearchText{Subject: "draft", Body: "appended bandicoot"}
	body := "Subject: draft\r\n\r\nappended bandicoot\r\n"
	ap, err := f.s.Append(f.ctx, a.ID, store.Inbox, &store.AppendMessage{Body: strings.NewReader(body), Size: int64(len(body)),
		Parsed: store.ParsedMessage{Subject: "draft", Text: &text}})
	if err != nil {
		t.Fatal(err)
	}
	search(box.ID, "bandicoot", ap.Message.UID)

	// A body copied before anything searched its first mailbox is found in the copy's.
	if _, err := f.s.Deliver(f.ctx, searchDelivery(store.SearchText{Subject: "third", Body: "copied capybara"}, inbox(a.ID))); err != nil {
		t.Fatal(err)
	}
	if _, err := f.s.Copy(f.ctx, box.ID, []uint32{3}, arch.ID); err != nil {
		t.Fatal(err)
	}
	search(arch.ID, "capybara", 1)
	search(box.ID, "capybara", 3)

	// Searches between a stream of deliveries from another goroutine. The words have one
	// width: a text search matches substrings, so "dugong1" would also find a "dugong10"
	// delivered before the search runs.
	const n = 50
	delivered := make(chan uint32, n)
	go func() {
		defer close(delivered)
		for i := range n {
			d, err := f.s.Deliver(f.ctx, searchDelivery(store.SearchText{Subject: "stream", Body: fmt.Sprintf("stream dugong%02d", i)}, inbox(a.ID)))
			if err != nil {
				t.Error(err)
				return
			}
			delivered <- d.Messages[0].UID
		}
	}()
	i := 0
	for uid := range delivered {
		search(box.ID, fmt.Sprintf("dugong%02d", i), uid)
		i++
	}
}
