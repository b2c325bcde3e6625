package sqlite

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"petrel/internal/store"
)

// TestQueueBodies: a queued body is served from memory until its entry is done, then
// neither from memory nor from the store; the memory held stays bounded.
func TestQueueBodies(t *testing.T) {
	s := openTemp(t, Options{})
	defer s.Close()
	ctx := context.Background()
	body := "Subject: x\r\n\r\nbody\r\n"
	id, err := s.Enqueue(ctx, &store.Outbound{MailFrom: "a@example.test",
		Recipients: []store.OutboundRecipient{{Address: "u@far.test", Domain: "far.test"}},
		Body:       strings.NewReader(body), Size: int64(len(body))})
	if err != nil {
		t.Fatal(err)
	}
	e, err := s.Claim(ctx, store.QueueGroup{EntryID: id, Domain: "far.test"}, time.Now().Add(time.Second), time.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := s.queueBodies.get(e.BlobID); !ok {
		t.Fatal("the queued body is not held after its commit")
	}
	read := func() (string, error) {
		rc, err := s.OpenBlob(ctx, e.BlobID)
		if err != nil {
			return "", err
		}
		defer rc.Close()
		b, err := io.ReadAll(rc)
		return string(b), err
	}
	if got, err := read(); err != nil || got != body {
		t.Fatalf("body %q, %v", got, err)
	}
	if err := s.Record(ctx, id, []store.QueueUpdate{{RecipientID: e.Recipients[0].ID, Done: true}}); err != nil {
		t.Fatal(err)
	}
	if _, ok := s.queueBodies.get(e.BlobID); ok {
		t.Error("the body of a finished entry is still held")
	}
	if _, err := read(); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("reading the body of a finished entry: %v, want ErrNotFound", err)
	}

	var q queueBodies
	big := make([]byte, maxQueueBody)
	for i := range 3 * maxQueueBodyBytes / maxQueueBody {
		q.add([]queuedBody{{id: int64(i + 1), body: big}})
	}
	if q.bytes > maxQueueBodyBytes || len(q.byID)*maxQueueBody != q.bytes {
		t.Errorf("holding %d bytes in %d bodies, limit %d", q.bytes, len(q.byID), maxQueueBodyBytes)
	}
	q.add([]queuedBody{{id: 1 << 40, body: make([]byte, maxQueueBody+1)}})
	if _, ok := q.get(1 << 40); ok {
		t.Error("a body over maxQueueBody is held")
	}
}
