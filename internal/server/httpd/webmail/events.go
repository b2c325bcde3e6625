package webmail

import (
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"petrel/internal/store"
)

// keepAlive is how often an idle event stream sends a comment, so that proxies and the
// browser see a live connection; each write also moves the write deadline.
const keepAlive = 25 * time.Second

// changeJSON is one event of /api/events.
type changeJSON struct {
	Kind    string   `json:"kind"` // "add", "flags", "expunge", "mailbox"
	Mailbox int64    `json:"mailbox"`
	UIDs    []uint32 `json:"uids,omitempty"`
	ModSeq  uint64   `json:"modseq"`
}

var kinds = map[store.ChangeKind]string{store.ChangeAdd: "add", store.ChangeFlags: "flags",
	store.ChangeExpunge: "expunge", store.ChangeMailbox: "mailbox"}

// apiEvents streams the account's store changes as server-sent events, so that a flag set
// over IMAP, a delivery or a move shows in an open page without a reload. The events are
// wake-ups, as store.Changes are: the page reads the state again. If the store cuts the
// subscription (we fell behind), the stream says "resync" and subscribes again.
//
// A connection holds one subscription, this handler's goroutine and net/http's buffers;
// nothing is queued here beyond the store's channel.
func (wm *Webmail) apiEvents(w http.ResponseWriter, r *http.Request, ses *session) {
	rc := http.NewResponseController(w)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	changes, cancel := wm.st.Subscribe(ses.account.ID)
	defer func() { cancel() }()
	send := func(event, data string) bool {
		rc.SetWriteDeadline(time.Now().Add(2 * keepAlive))
		if _, err := fmt.Fprintf(w, "event: %s\ndata: %s\n\n", event, data); err != nil {
			return false
		}
		return rc.Flush() == nil
	}
	if !send("hello", "{}") {
		return
	}
	tick := time.NewTicker(keepAlive)
	defer tick.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case <-tick.C:
			if wm.Sessions.get(sessionToken(r)) == nil {
				return // logged out or revoked: the stream ends with the session
			}
			rc.SetWriteDeadline(time.Now().Add(2 * keepAlive))
			if _, err := fmt.Fprint(w, ": keep-alive\n\n"); err != nil || rc.Flush() != nil {
				return
			}
		case c, ok := <-changes:
			if !ok {
				cancel()
				changes, cancel = wm.st.Subscribe(ses.account.ID)
				if !send("resync", "{}") {
					return
				}
				continue
			}
			b, _ := json.Marshal(changeJSON{Kind: kinds[c.Kind], Mailbox: c.MailboxID, UIDs: c.UIDs, ModSeq: c.ModSeq})
			if !send("change", string(b)) {
				return
			}
		}
	}
}

func sessionToken(r *http.Request) string {
	c, err := r.Cookie(sessionCookieName(r))
	if err != nil {
		return ""
	}
	return c.Value
}
