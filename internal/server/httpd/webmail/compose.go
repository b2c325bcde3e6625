package webmail

import (
	"bytes"
	"errors"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"strconv"
	"strings"

	gomail "github.com/emersion/go-message/mail"

	"petrel/internal/mail/message"
	"petrel/internal/store"
)

// composed is one message written in the page.
type composed struct {
	to, cc, bcc []*gomail.Address
	subject     string
	text        string
	inReplyTo   string // Message-ID of the message answered, without brackets
	references  string // its References plus its Message-ID, as the page sent it
	files       []*multipart.FileHeader
	forward     *store.Message // a message attached whole (message/rfc822)
}

// sendResult is the answer of /api/send.
type sendResult struct {
	ID      string `json:"id,omitempty"` // the submission's queue id (sent)
	Mailbox int64  `json:"mailbox"`      // where the copy went: Sent, or Drafts
	UID     uint32 `json:"uid"`
}

// apiSend sends a message (or saves it as a draft with draft=1). The request is
// multipart/form-data (see docs/webmail-api.md), bounded by Config.MaxUpload as a whole.
// Sending goes through the Submitter, which is the submission listener's own path; the
// copy in Sent is appended only once it accepted the message.
func (wm *Webmail) apiSend(w http.ResponseWriter, r *http.Request, ses *session) {
	r.Body = http.MaxBytesReader(w, r.Body, wm.cfg.MaxUpload)
	if err := r.ParseMultipartForm(1 << 20); err != nil { // beyond 1 MiB, files go to disk
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			apiError(w, http.StatusRequestEntityTooLarge, "the message is larger than "+strconv.FormatInt(wm.cfg.MaxUpload>>20, 10)+" MiB")
			return
		}
		apiError(w, http.StatusBadRequest, "bad form: "+err.Error())
		return
	}
	defer r.MultipartForm.RemoveAll()
	f := r.MultipartForm.Value
	get := func(k string) string {
		if v := f[k]; len(v) > 0 {
			return v[0]
		}
		return ""
	}
	c := composed{subject: get("subject"), text: get("body"), inReplyTo: strings.Trim(get("in_reply_to"), "<> "),
		references: get("references"), files: r.MultipartForm.File["attachment"]}
	var err error
	for _, fld := range []struct {
		name string
		dst  *[]*gomail.Address
	}{{"to", &c.to}, {"cc", &c.cc}, {"bcc", &c.bcc}} {
		if *fld.dst, err = parseAddresses(get(fld.name)); err != nil {
			apiError(w, http.StatusBadRequest, fld.name+": "+err.Error())
			return
		}
	}
	if mbID := get("forward_mailbox"); mbID != "" {
		r.SetPathValue("mb", mbID)
		r.SetPathValue("uid", get("forward_uid"))
		_, m, ok := wm.message(w, r, ses)
		if !ok {
			return
		}
		c.forward = &m
	}
	draft := get("draft") == "1"
	raw, err := wm.build(r, ses, &c)
	if err != nil {
		apiError(w, http.StatusBadRequest, err.Error())
		return
	}

	var res sendResult
	if !draft {
		var rcpts []string
		for _, l := range [][]*gomail.Address{c.to, c.cc, c.bcc} {
			for _, a := range l {
				rcpts = append(rcpts, a.Address)
			}
		}
		if len(rcpts) == 0 {
			apiError(w, http.StatusBadRequest, "no recipient")
			return
		}
		id, err := wm.submit.Submit(ses.account, remoteAddr(r), "webmail", r.TLS != nil, ses.account.Address, rcpts, bytes.NewReader(raw))
		if err != nil {
			wm.logFor(r).Info("webmail: sending refused", "user", ses.account.Address, "err", err)
			apiError(w, http.StatusUnprocessableEntity, "not sent: "+err.Error())
			return
		}
		res.ID = id
		if rm, ru := get("reply_mailbox"), get("reply_uid"); rm != "" {
			wm.markAnswered(r, ses, rm, ru)
		}
	}
	// The copy: Sent (\Seen) or Drafts (\Draft \Seen). A Sent copy that fails is logged,
	// not an error: the message has gone, and saying otherwise would make the user send it
	// again.
	use, flags := store.UseSent, []string{store.FlagSeen}
	if draft {
		use, flags = store.UseDrafts, []string{store.FlagDraft, store.FlagSeen}
	}
	mb, err := wm.specialMailbox(r, ses, use)
	if err == nil {
		var ap store.Appended
		ap, err = wm.appendCopy(r, ses, mb, raw, flags)
		res.Mailbox, res.UID = mb.ID, ap.Message.UID
	}
	if err != nil {
		if draft {
			wm.storeError(w, r, err)
			return
		}
		wm.logFor(r).Warn("webmail: keeping the sent copy failed", "user", ses.account.Address, "err", err)
	}
	if draft {
		// The draft saved replaces the one it was edited from.
		if old, err := strconv.ParseUint(get("draft_uid"), 10, 32); err == nil && old > 0 && mb.ID != 0 {
			wm.st.SetFlags(r.Context(), mb.ID, []uint32{uint32(old)}, store.FlagChange{Mode: store.FlagsAdd, Flags: []string{store.FlagDeleted}})
			wm.st.Expunge(r.Context(), mb.ID, []uint32{uint32(old)})
		}
	}
	writeJSON(w, res)
}

func (wm *Webmail) appendCopy(r *http.Request, ses *session, mb store.Mailbox, raw []byte, flags []string) (store.Appended, error) {
	parsed, err := message.ParseAt(bytes.NewReader(raw), int64(len(raw)))
	if err != nil {
		return store.Appended{}, err
	}
	return wm.st.Append(r.Context(), ses.account.ID, mb.Name, &store.AppendMessage{Body: bytes.NewReader(raw),
		Size: int64(len(raw)), Parsed: parsed, Flags: flags})
}

func (wm *Webmail) markAnswered(r *http.Request, ses *session, mbID, uid string) {
	n, err1 := strconv.ParseInt(mbID, 10, 64)
	u, err2 := strconv.ParseUint(uid, 10, 32)
	if err1 != nil || err2 != nil {
		return
	}
	mb, err := wm.st.MailboxByID(r.Context(), n)
	if err != nil || mb.AccountID != ses.account.ID {
		return
	}
	wm.st.SetFlags(r.Context(), mb.ID, []uint32{uint32(u)}, store.FlagChange{Mode: store.FlagsAdd, Flags: []string{store.FlagAnswered}})
}

// parseAddresses reads a comma-separated list as a user types it ("Ann <ann@x>, bob@y").
func parseAddresses(s string) ([]*gomail.Address, error) {
	s = strings.TrimSpace(strings.Trim(strings.TrimSpace(s), ",;"))
	if s == "" {
		return nil, nil
	}
	l, err := gomail.ParseAddressList(strings.ReplaceAll(s, ";", ","))
	if err != nil {
		return nil, errors.New("not a list of addresses")
	}
	return l, nil
}

// build writes the message: headers, the text, then attachments (multipart/mixed when
// there is any). Lines end in CRLF, as the store and SMTP want them; go-message encodes
// header words (RFC 2047), the text as quoted-printable and files as base64.
func (wm *Webmail) build(r *http.Request, ses *session, c *composed) ([]byte, error) {
	var h gomail.Header
	h.SetDate(wm.cfg.Now())
	h.SetAddressList("From", []*gomail.Address{{Address: ses.account.Address}})
	if len(c.to) > 0 {
		h.SetAddressList("To", c.to)
	}
	if len(c.cc) > 0 {
		h.SetAddressList("Cc", c.cc)
	}
	h.SetSubject(c.subject)
	if err := h.GenerateMessageIDWithHostname(domainOf(ses.account.Address)); err != nil {
		return nil, err
	}
	if c.inReplyTo != "" {
		h.SetMsgIDList("In-Reply-To", []string{c.inReplyTo})
		var refs []string
		for _, f := range strings.Fields(c.references) {
			refs = append(refs, strings.Trim(f, "<>"))
		}
		h.SetMsgIDList("References", refs)
	}
	text := strings.ReplaceAll(strings.ReplaceAll(c.text, "\r\n", "\n"), "\n", "\r\n")
	var th gomail.InlineHeader
	th.SetContentType("text/plain", map[string]string{"charset": "utf-8"})
	th.Set("Content-Transfer-Encoding", "quoted-printable")

	var buf bytes.Buffer
	if len(c.files) == 0 && c.forward == nil {
		h.SetContentType("text/plain", map[string]string{"charset": "utf-8"})
		h.Set("Content-Transfer-Encoding", "quoted-printable")
		tw, err := gomail.CreateSingleInlineWriter(&buf, h)
		if err != nil {
			return nil, err
		}
		io.WriteString(tw, text)
		tw.Close()
		return buf.Bytes(), nil
	}
	mw, err := gomail.CreateWriter(&buf, h)
	if err != nil {
		return nil, err
	}
	tw, err := mw.CreateSingleInline(th)
	if err != nil {
		return nil, err
	}
	io.WriteString(tw, text)
	tw.Close()
	for _, fh := range c.files {
		var ah gomail.AttachmentHeader
		ct := fh.Header.Get("Content-Type")
		if t, _, err := mime.ParseMediaType(ct); err != nil || t == "" {
			ct = "application/octet-stream"
		} else {
			ct = t
		}
		ah.SetContentType(ct, nil)
		ah.SetFilename(fh.Filename)
		aw, err := mw.CreateAttachment(ah)
		if err != nil {
			return nil, err
		}
		f, err := fh.Open()
		if err != nil {
			return nil, err
		}
		_, err = io.Copy(aw, f)
		f.Close()
		aw.Close()
		if err != nil {
			return nil, err
		}
	}
	if c.forward != nil {
		var ah gomail.AttachmentHeader
		ah.SetContentType("message/rfc822", nil)
		ah.SetFilename("forwarded.eml")
		ah.Set("Content-Transfer-Encoding", "8bit")
		aw, err := mw.CreateAttachment(ah)
		if err != nil {
			return nil, err
		}
		body, err := wm.st.OpenBlob(r.Context(), c.forward.BlobID)
		if err != nil {
			return nil, err
		}
		_, err = io.Copy(aw, body)
		body.Close()
		aw.Close()
		if err != nil {
			return nil, err
		}
	}
	if err := mw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func domainOf(addr string) string {
	if i := strings.LastIndexByte(addr, '@'); i >= 0 {
		return addr[i+1:]
	}
	return "localhost"
}
