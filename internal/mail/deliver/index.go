package deliver

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"

	"petrel/internal/mail/message"
	"petrel/internal/store"
)

// IndexStore is what IndexBacklog needs of the store.
type IndexStore interface {
	Unindexed(ctx context.Context, n int) ([]int64, error)
	IndexBlob(ctx context.Context, blobID int64, text store.SearchText) error
	OpenBlob(ctx context.Context, blobID int64) (io.ReadCloser, error)
}

// indexBatch is how many bodies IndexBacklog asks the store for at a time.
const indexBatch = 256

// IndexBacklog indexes the bodies a store kept from before it had a full-text index (an
// upgrade), one at a time, until none is left or ctx ends; the server runs it in the
// background at start. Each body is parsed as at delivery (message.ParseAt) and indexed in
// a commit of its own, so an interruption loses nothing: the rest is indexed at the next
// start. Until then a text search does not find those messages. It returns how many bodies
// it indexed.
func IndexBacklog(ctx context.Context, st IndexStore, log *slog.Logger) (int, error) {
	done := 0
	var buf bytes.Buffer
	for {
		ids, err := st.Unindexed(ctx, indexBatch)
		if err != nil || len(ids) == 0 {
			if done > 0 {
				log.Info("full-text index: messages stored before the upgrade indexed", "bodies", done)
			}
			return done, err
		}
		if done == 0 {
			log.Info("full-text index: indexing messages stored before the upgrade")
		}
		for _, id := range ids {
			buf.Reset()
			rc, err := st.OpenBlob(ctx, id)
			if err == nil {
				_, err = buf.ReadFrom(rc)
				rc.Close()
			}
			if ctx.Err() != nil {
				return done, ctx.Err()
			}
			var text store.SearchText
			if err != nil {
				// Freed since it was listed, or unreadable: index nothing rather than try
				// again for ever (IndexBlob ignores a freed body).
				log.Warn("full-text index: cannot read a stored body", "blob", id, "err", err)
			} else {
				pm, err := message.ParseAt(bytes.NewReader(buf.Bytes()), int64(buf.Len()))
				if err != nil {
					return done, fmt.Errorf("deliver: index blob %d: %w", id, err)
				}
				text = *pm.Text
			}
			if err := st.IndexBlob(ctx, id, text); err != nil {
				return done, fmt.Errorf("deliver: index blob %d: %w", id, err)
			}
			done++
		}
	}
}
