package webmail

import (
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"petrel/internal/store"
)

// apiError answers a JSON error: {"error": "..."}.
func apiError(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(map[string]string{"error": msg})
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(v)
}

// storeError answers a store failure: not found is 404, the rest 500 (logged).
func (wm *Webmail) storeError(w http.ResponseWriter, r *http.Request, err error) {
	switch {
	case errors.Is(err, store.ErrNotFound):
		apiError(w, http.StatusNotFound, "not found")
	case errors.Is(err, store.ErrOverQuota):
		apiError(w, http.StatusInsufficientStorage, "mailbox full")
	case errors.Is(err, store.ErrExists):
		apiError(w, http.StatusConflict, "already exists")
	default:
		wm.logFor(r).Error("webmail: store error", "path", r.URL.Path, "err", err)
		apiError(w, http.StatusInternalServerError, "internal error")
	}
}

// readJSON decodes a small JSON request body into v.
func readJSON(w http.ResponseWriter, r *http.Request, v any) bool {
	r.Body = http.MaxBytesReader(w, r.Body, 1<<20)
	if err := json.NewDecoder(r.Body).Decode(v); err != nil {
		apiError(w, http.StatusBadRequest, "bad JSON: "+err.Error())
		return false
	}
	return true
}

// mailbox is the mailbox named by the {mb} path value, if it belongs to the session's
// account; it answers the request itself otherwise.
func (wm *Webmail) mailbox(w http.ResponseWriter, r *http.Request, ses *session, id string) (store.Mailbox, bool) {
	n, err := strconv.ParseInt(id, 10, 64)
	if err != nil {
		apiError(w, http.StatusBadRequest, "bad mailbox id")
		return store.Mailbox{}, false
	}
	mb, err := wm.st.MailboxByID(r.Context(), n)
	if err == nil && mb.AccountID != ses.account.ID {
		err = store.ErrNotFound // someone else's: the same answer as a mailbox that is not there
	}
	if err != nil {
		wm.storeError(w, r, err)
		return store.Mailbox{}, false
	}
	return mb, true
}

type sessionJSON struct {
	Address string `json:"address"`
	CSRF    string `json:"csrf"`
}

func (wm *Webmail) apiSession(w http.ResponseWriter, r *http.Request, ses *session) {
	writeJSON(w, sessionJSON{Address: ses.account.Address, CSRF: ses.csrf})
}

type mailboxJSON struct {
	ID         int64  `json:"id"`
	Name       string `json:"name"`
	SpecialUse string `json:"special_use,omitempty"`
	Messages   int    `json:"messages"`
	Unseen     int    `json:"unseen"`
	ModSeq     uint64 `json:"modseq"`
}

func toMailboxJSON(m store.Mailbox) mailboxJSON {
	return mailboxJSON{ID: m.ID, Name: m.Name, SpecialUse: string(m.SpecialUse), Messages: m.Messages, Unseen: m.Unseen, ModSeq: m.HighestModSeq}
}

// apiMailboxes lists the account's mailboxes with their counts (kept by the store, not
// summed), INBOX and the special-use ones first.
func (wm *Webmail) apiMailboxes(w http.ResponseWriter, r *http.Request, ses *session) {
	mbs, err := wm.st.Mailboxes(r.Context(), ses.account.ID)
	if err != nil {
		wm.storeError(w, r, err)
		return
	}
	rank := func(m store.Mailbox) int {
		if i := slices.Index(store.DefaultMailboxes, m.Name); i >= 0 {
			return i
		}
		return len(store.DefaultMailboxes)
	}
	slices.SortStableFunc(mbs, func(a, b store.Mailbox) int {
		if ra, rb := rank(a), rank(b); ra != rb {
			return ra - rb
		}
		return strings.Compare(a.Name, b.Name)
	})
	out := make([]mailboxJSON, len(mbs))
	for i, m := range mbs {
		out[i] = toMailboxJSON(m)
	}
	writeJSON(w, map[string]any{"mailboxes": out})
}

func (wm *Webmail) apiCreateMailbox(w http.ResponseWriter, r *http.Request, ses *session) {
	var req struct {
		Name string `json:"name"`
	}
	if !readJSON(w, r, &req) {
		return
	}
	mb, err := wm.st.CreateMailbox(r.Context(), ses.account.ID, req.Name)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrExists) || errors.Is(err, store.ErrOverQuota) {
			wm.storeError(w, r, err)
		} else {
			apiError(w, http.StatusBadRequest, "cannot create that mailbox")
		}
		return
	}
	writeJSON(w, toMailboxJSON(mb))
}

// summaryJSON is a message in a list.
type summaryJSON struct {
	UID     uint32    `json:"uid"`
	Subject string    `json:"subject"`
	From    string    `json:"from"`
	Date    time.Time `json:"date"`
	Size    int64     `json:"size"`
	Flags   []string  `json:"flags"`
	// Thread is the conversation's key (thread.go): messages with the same key, on this
	// page or another, belong together.
	Thread string `json:"thread"`
}

type pageJSON struct {
	Mailbox  mailboxJSON   `json:"mailbox"`
	Messages []summaryJSON `json:"messages"`
	// Next is the cursor of the next (older) page: pass it as before=; 0 when this is the
	// last page.
	Next uint32 `json:"next"`
}

// cursor reads the before= parameter: list UIDs below it; 0 or absent is from the newest.
func cursor(r *http.Request) (uint32, bool) {
	s := r.URL.Query().Get("before")
	if s == "" {
		return 0, true
	}
	n, err := strconv.ParseUint(s, 10, 32)
	return uint32(n), err == nil
}

// apiMessages is one page of a mailbox, newest first. The page is found by asking the
// store for a UID range below the cursor, widening it while the range holds too few
// messages (UIDs have gaps where messages were expunged), so a page of a 100,000-message
// mailbox reads about a page of rows, never the mailbox.
func (wm *Webmail) apiMessages(w http.ResponseWriter, r *http.Request, ses *session) {
	mb, ok := wm.mailbox(w, r, ses, r.PathValue("mb"))
	if !ok {
		return
	}
	before, ok := cursor(r)
	if !ok {
		apiError(w, http.StatusBadRequest, "bad cursor")
		return
	}
	if before == 0 || before > mb.UIDNext {
		before = mb.UIDNext
	}
	n := wm.cfg.PageSize
	var page []store.Message
	hi := before - 1
	window := uint32(2 * n)
	for hi >= 1 && len(page) <= n {
		lo := uint32(1)
		if hi > window {
			lo = hi - window + 1
		}
		msgs, err := wm.st.Messages(r.Context(), mb.ID, store.Filter{UIDs: []store.UIDRange{{First: lo, Last: hi}}})
		if err != nil {
			wm.storeError(w, r, err)
			return
		}
		slices.SortFunc(msgs, func(a, b store.Message) int { return int(b.UID) - int(a.UID) })
		page = append(page, msgs...)
		hi = lo - 1
		window *= 4
	}
	wm.writePage(w, r, mb, page, n)
}

// writePage answers the first n messages of page (newest first) with their summaries; one
// more than n tells that an older page exists.
func (wm *Webmail) writePage(w http.ResponseWriter, r *http.Request, mb store.Mailbox, page []store.Message, n int) {
	out := pageJSON{Mailbox: toMailboxJSON(mb), Messages: []summaryJSON{}}
	var items []threadItem
	if len(page) > n {
		page = page[:n]
		out.Next = page[n-1].UID
	}
	for _, m := range page {
		p, err := wm.st.Parsed(r.Context(), m.BlobID)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			wm.storeError(w, r, err)
			return
		}
		d := p.Date
		if d.IsZero() {
			d = m.InternalDate
		}
		flags := m.Flags
		if flags == nil {
			flags = []string{}
		}
		out.Messages = append(out.Messages, summaryJSON{UID: m.UID, Subject: p.Subject, From: p.From, Date: d, Size: m.Size, Flags: flags})
		items = append(items, wm.threadItem(r, m, p))
	}
	for i, k := range threadKeys(items) {
		out.Messages[i].Thread = k
	}
	writeJSON(w, out)
}

// apiSearch finds messages of a mailbox by words, through the store's full-text index
// (the same one IMAP SEARCH TEXT uses), newest first, paged like apiMessages.
func (wm *Webmail) apiSearch(w http.ResponseWriter, r *http.Request, ses *session) {
	mb, ok := wm.mailbox(w, r, ses, r.PathValue("mb"))
	if !ok {
		return
	}
	q := strings.TrimSpace(r.URL.Query().Get("q"))
	if q == "" || len(q) > 1000 {
		apiError(w, http.StatusBadRequest, "q: one to 1000 characters")
		return
	}
	before, ok := cursor(r)
	if !ok {
		apiError(w, http.StatusBadRequest, "bad cursor")
		return
	}
	uids, err := wm.st.Search(r.Context(), mb.ID, store.FieldText, q)
	if err != nil {
		wm.storeError(w, r, err)
		return
	}
	slices.Sort(uids)
	if before != 0 {
		i, _ := slices.BinarySearch(uids, before)
		uids = uids[:i]
	}
	n := wm.cfg.PageSize
	if len(uids) > n+1 {
		uids = uids[len(uids)-n-1:]
	}
	ranges := make([]store.UIDRange, len(uids))
	for i, u := range uids {
		ranges[i] = store.UIDRange{First: u, Last: u}
	}
	var page []store.Message
	if len(ranges) > 0 {
		page, err = wm.st.Messages(r.Context(), mb.ID, store.Filter{UIDs: store.MergeUIDRanges(ranges)})
		if err != nil {
			wm.storeError(w, r, err)
			return
		}
	}
	slices.SortFunc(page, func(a, b store.Message) int { return int(b.UID) - int(a.UID) })
	wm.writePage(w, r, mb, page, n)
}

// message is the message {uid} of the mailbox {mb}, checked as mailbox() does.
func (wm *Webmail) message(w http.ResponseWriter, r *http.Request, ses *session) (store.Mailbox, store.Message, bool) {
	mb, ok := wm.mailbox(w, r, ses, r.PathValue("mb"))
	if !ok {
		return mb, store.Message{}, false
	}
	uid, err := strconv.ParseUint(r.PathValue("uid"), 10, 32)
	if err != nil || uid == 0 {
		apiError(w, http.StatusBadRequest, "bad uid")
		return mb, store.Message{}, false
	}
	msgs, err := wm.st.Messages(r.Context(), mb.ID, store.Filter{UIDs: []store.UIDRange{{First: uint32(uid), Last: uint32(uid)}}})
	if err == nil && len(msgs) == 0 {
		err = store.ErrNotFound
	}
	if err != nil {
		wm.storeError(w, r, err)
		return mb, store.Message{}, false
	}
	return mb, msgs[0], true
}

// uidsRequest is the body of the bulk actions.
type uidsRequest struct {
	UIDs   []uint32 `json:"uids"`
	Add    []string `json:"add,omitempty"`    // flags
	Remove []string `json:"remove,omitempty"` // flags
	To     int64    `json:"to,omitempty"`     // move: the destination mailbox id
}

const maxBulk = 10000

func (wm *Webmail) readUIDs(w http.ResponseWriter, r *http.Request) (uidsRequest, bool) {
	var req uidsRequest
	if !readJSON(w, r, &req) {
		return req, false
	}
	if len(req.UIDs) == 0 || len(req.UIDs) > maxBulk {
		apiError(w, http.StatusBadRequest, "uids: one to 10000 UIDs")
		return req, false
	}
	slices.Sort(req.UIDs)
	req.UIDs = slices.Compact(req.UIDs)
	return req, true
}

// apiFlags adds and removes flags on messages (mark read, unread, flagged, ...).
func (wm *Webmail) apiFlags(w http.ResponseWriter, r *http.Request, ses *session) {
	mb, ok := wm.mailbox(w, r, ses, r.PathValue("mb"))
	if !ok {
		return
	}
	req, ok := wm.readUIDs(w, r)
	if !ok {
		return
	}
	var changed []store.UIDFlags
	for _, c := range []struct {
		mode  store.FlagMode
		flags []string
	}{{store.FlagsAdd, req.Add}, {store.FlagsRemove, req.Remove}} {
		if len(c.flags) == 0 {
			continue
		}
		flags, err := store.NormalizeFlags(c.flags)
		if err != nil {
			apiError(w, http.StatusBadRequest, "bad flag")
			return
		}
		res, err := wm.st.SetFlags(r.Context(), mb.ID, req.UIDs, store.FlagChange{Mode: c.mode, Flags: flags})
		if err != nil {
			wm.storeError(w, r, err)
			return
		}
		changed = append(changed, res.Changed...)
	}
	writeJSON(w, map[string]any{"changed": len(changed)})
}

// apiMove moves messages to another mailbox of the account.
func (wm *Webmail) apiMove(w http.ResponseWriter, r *http.Request, ses *session) {
	mb, ok := wm.mailbox(w, r, ses, r.PathValue("mb"))
	if !ok {
		return
	}
	req, ok := wm.readUIDs(w, r)
	if !ok {
		return
	}
	to, ok := wm.mailbox(w, r, ses, strconv.FormatInt(req.To, 10))
	if !ok {
		return
	}
	if to.ID == mb.ID {
		apiError(w, http.StatusBadRequest, "the messages are in that mailbox already")
		return
	}
	res, err := wm.st.Move(r.Context(), mb.ID, req.UIDs, to.ID)
	if err != nil {
		wm.storeError(w, r, err)
		return
	}
	writeJSON(w, map[string]any{"moved": len(res.From)})
}

// apiDelete moves messages to Trash, or removes them for good when they are in Trash
// already (or the account has no Trash).
func (wm *Webmail) apiDelete(w http.ResponseWriter, r *http.Request, ses *session) {
	mb, ok := wm.mailbox(w, r, ses, r.PathValue("mb"))
	if !ok {
		return
	}
	req, ok := wm.readUIDs(w, r)
	if !ok {
		return
	}
	if mb.SpecialUse != store.UseTrash {
		if trash, err := wm.specialMailbox(r, ses, store.UseTrash); err == nil {
			res, err := wm.st.Move(r.Context(), mb.ID, req.UIDs, trash.ID)
			if err != nil {
				wm.storeError(w, r, err)
				return
			}
			writeJSON(w, map[string]any{"moved": len(res.From)})
			return
		}
	}
	if _, err := wm.st.SetFlags(r.Context(), mb.ID, req.UIDs, store.FlagChange{Mode: store.FlagsAdd, Flags: []string{store.FlagDeleted}}); err != nil {
		wm.storeError(w, r, err)
		return
	}
	res, err := wm.st.Expunge(r.Context(), mb.ID, req.UIDs)
	if err != nil {
		wm.storeError(w, r, err)
		return
	}
	writeJSON(w, map[string]any{"deleted": len(res.UIDs)})
}

// specialMailbox is the account's mailbox with a special use (the first, if several).
func (wm *Webmail) specialMailbox(r *http.Request, ses *session, use store.SpecialUse) (store.Mailbox, error) {
	mbs, err := wm.st.Mailboxes(r.Context(), ses.account.ID)
	if err != nil {
		return store.Mailbox{}, err
	}
	for _, m := range mbs {
		if m.SpecialUse == use {
			return m, nil
		}
	}
	return store.Mailbox{}, store.ErrNotFound
}

// threadItem is what threading needs of a message: the cached parse has the Message-ID,
// the subject and In-Reply-To (in the envelope); References is read from the stored
// header only for a reply (a message without In-Reply-To practically never has
// References), so a page of originals opens no blob.
func (wm *Webmail) threadItem(r *http.Request, m store.Message, p store.ParsedMessage) threadItem {
	it := threadItem{messageID: p.MessageID, subject: p.Subject}
	var env struct {
		InReplyTo string `json:"in_reply_to"`
	}
	if json.Unmarshal(p.Envelope, &env) == nil {
		it.inReplyTo = msgIDs(env.InReplyTo)
	}
	if len(it.inReplyTo) > 0 {
		if h, err := wm.header(r, m.BlobID); err == nil {
			it.references = msgIDs(h.Get("References"))
		}
	}
	return it
}
