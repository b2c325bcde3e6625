package webmail

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"time"

	"petrel/internal/store"
)

// keepAlive is how often an idle event stream sends a comment, so that proxies and the
// browser see a live connection; each write also moves the write deadline.
const keepAlive = 25 * time.Second

// changeJSON is one event of /api/events.
type changeJSON struct {
	Kind    string   `json:"kind"` // "add", "flags", "expunge", "mailbox", "subscription"
	Mailbox int64    `json:"mailbox"`
	UIDs    []uint32 `json:"uids,omitempty"`
	ModSeq  uint64   `json:"modseq"`
}

var kinds = map[store.ChangeKind]string{store.ChangeAdd: "add", store.ChangeFlags: "flags",
	store.ChangeExpunge: "expunge", store.ChangeMailbox: "mailbox", store.ChangeSubscription: "subscription"}

// apiEvents streams the account's store changes as server-sent events, so that a flag set
// over IMAP, a delivery or a move shows in an open page without a reload. The events are
// wake-ups, as store.Changes are: the page reads the state again. If the store cuts the
// subscription (we fell behind), the stream says "resync" and subscribes again.
//
// Over HTTP/2 (browsers over HTTPS) a stream holds one subscription, this handler's
// goroutine and the HTTP/2 stream's buffers. Over HTTP/1.1 the connection is taken over
// (hijackStream), which costs a third as much.
func (wm *Webmail) apiEvents(w http.ResponseWriter, r *http.Request, ses *session) {
	rc := http.NewResponseController(w)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	if r.ProtoMajor == 1 && wm.hijackStream(w, r, rc, ses) {
		return
	}
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

// hijackStream serves an HTTP/1.1 event stream outside net/http: it writes the response
// header itself, takes the connection over, and leaves one small goroutine writing events
// to it. A stream that stays in its handler keeps net/http's per-connection goroutine
// (whose stack grew while serving the request), its background-read goroutine and its
// 4 KiB read, 4 KiB write and 2 KiB chunking buffers for as long as the page is open:
// about 43 KB a stream, against about 10 KB taken over (docs/benchmarks.md). The body is
// delimited by the connection's end (RFC 9112 §6.3), which EventSource expects.
//
// What is given up: a client that goes away is noticed at the next write (the keep-alive,
// at most keepAlive later) rather than at once, and net/http's Shutdown does not see the
// connection, so CloseStreams ends these streams (httpd.Server.OnShutdown). It reports
// false, having written nothing, when the connection cannot be taken over.
func (wm *Webmail) hijackStream(w http.ResponseWriter, r *http.Request, rc *http.ResponseController, ses *session) bool {
	wm.streamsMu.Lock()
	if wm.streamsStop == nil {
		wm.streamsStop = make(chan struct{})
	}
	stop := wm.streamsStop
	wm.streamsMu.Unlock()
	select {
	case <-stop:
		return false // shutting down: the handler's own loop ends with the server
	default:
	}
	conn, brw, err := rc.Hijack()
	if err != nil {
		return false
	}
	var head bytes.Buffer
	head.WriteString("HTTP/1.1 200 OK\r\n")
	w.Header().Set("Connection", "close")
	w.Header().Write(&head)
	head.WriteString("\r\nevent: hello\ndata: {}\n\n")
	brw.Reader.Reset(nil) // neither buffer is used again: let them go
	brw.Writer.Reset(nil)
	conn.SetReadDeadline(time.Time{})
	conn.SetWriteDeadline(time.Now().Add(2 * keepAlive))
	if _, err := conn.Write(head.Bytes()); err != nil {
		conn.Close()
		return true
	}
	tok := sessionToken(r)
	changes, cancel := wm.st.Subscribe(ses.account.ID)
	go wm.stream(conn, stop, changes, cancel, tok, ses.account.ID)
	return true
}

// stream writes the events of one taken-over connection until the session ends, a write
// fails or CloseStreams.
func (wm *Webmail) stream(conn net.Conn, stop <-chan struct{}, changes <-chan store.Change, cancel func(), tok string, account int64) {
	defer func() { cancel(); conn.Close() }()
	write := func(b []byte) bool {
		conn.SetWriteDeadline(time.Now().Add(2 * keepAlive))
		_, err := conn.Write(b)
		return err == nil
	}
	tick := time.NewTicker(keepAlive)
	defer tick.Stop()
	for {
		select {
		case <-stop:
			return
		case <-tick.C:
			if wm.Sessions.get(tok) == nil || !write([]byte(": keep-alive\n\n")) {
				return
			}
		case c, ok := <-changes:
			if !ok {
				cancel()
				changes, cancel = wm.st.Subscribe(account)
				if !write([]byte("event: resync\ndata: {}\n\n")) {
					return
				}
				continue
			}
			b, _ := json.Marshal(changeJSON{Kind: kinds[c.Kind], Mailbox: c.MailboxID, UIDs: c.UIDs, ModSeq: c.ModSeq})
			if !write(append(append([]byte("event: change\ndata: "), b...), "\n\n"...)) {
				return
			}
		}
	}
}

// CloseStreams ends every taken-over event stream (the server is stopping; browsers
// reconnect to the next one by themselves). Later streams stay in their handlers, which
// end with the server.
func (wm *Webmail) CloseStreams() {
	wm.streamsMu.Lock()
	defer wm.streamsMu.Unlock()
	if wm.streamsStop == nil {
		wm.streamsStop = make(chan struct{})
	}
	select {
	case <-wm.streamsStop:
	default:
		close(wm.streamsStop)
	}
}
