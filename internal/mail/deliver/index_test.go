package deliver

import (
	"context"
	"encoding/base64"
	"io"
	"log/slog"
	"slices"
	"strings"
	"testing"

	"petrel/internal/store"
)

// fakeIndex is an IndexStore whose pending list shrinks as IndexBlob is called.
type fakeIndex struct {
	bodies  map[int64]string
	pending []int64
	indexed map[int64]store.SearchText
}

func (f *fakeIndex) Unindexed(_ context.Context, n int) ([]int64, error) {
	return slices.Clone(f.pending[:min(n, len(f.pending))]), nil
}

func (f *fakeIndex) IndexBlob(_ context.Context, id int64, text store.SearchText) error {
	f.pending = slices.DeleteFunc(f.pending, func(p int64) bool { return p == id })
	f.indexed[id] = text
	return nil
}

func (f *fakeIndex) OpenBlob(_ context.Context, id int64) (io.ReadCloser, error) {
	b, ok := f.bodies[id]
	if !ok {
		return nil, store.ErrNotFound
	}
	return io.NopCloser(strings.NewReader(b)), nil
}

// TestIndexBacklog: every listed body is indexed with its decoded text, across several
// batches; a body that can no longer be read is indexed empty rather than retried for ever.
func TestIndexBacklog(t *testing.T) {
	f := &fakeIndex{bodies: map[int64]string{}, indexed: map[int64]store.SearchText{}}
	for id := int64(1); id <= indexBatch+10; id++ {
		f.pending = append(f.pending, id)
		if id == 7 {
			continue // freed meanwhile
		}
		f.bodies[id] = "Subject: =?utf-8?q?n=C2=B0?= " + strings.Repeat("x", int(id%5)) + "\r\n" +
			"Content-Transfer-Encoding: base64\r\n\r\n" + base64.StdEncoding.EncodeToString([]byte("decoded text")) + "\r\n"
	}
	n, err := IndexBacklog(context.Background(), f, slog.New(slog.DiscardHandler))
	if err != nil || n != indexBatch+10 || len(f.pending) != 0 {
		t.Fatalf("IndexBacklog = %d, %v; %d left", n, err, len(f.pending))
	}
	if got := f.indexed[3]; !strings.Contains(got.Body, "decoded text") || !strings.HasPrefix(got.Subject, "n°") {
		t.Errorf("indexed text %+v", got)
	}
	if got, ok := f.indexed[7]; !ok || got != (store.SearchText{}) {
		t.Errorf("unreadable body: %+v, %v", got, ok)
	}
}
