package webmail

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"net/mail"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	gomessage "github.com/emersion/go-message"
	_ "github.com/emersion/go-message/charset" // bodies in any charset become UTF-8

	"petrel/internal/mail/message"
)

// Bounds on what a message view reads into memory.
const (
	maxTextBody = 2 << 20 // the plain text shown
	maxHTMLBody = 4 << 20 // the HTML sanitised
)

// attachmentJSON is a part the page offers as a download.
type attachmentJSON struct {
	Part int    `json:"part"` // its number in the walk of the MIME tree, for parts/{part}
	Name string `json:"name"`
	Type string `json:"type"`
	Size int64  `json:"size"` // decoded octets
}

// messageJSON is one message opened.
type messageJSON struct {
	UID         uint32           `json:"uid"`
	Flags       []string         `json:"flags"`
	Date        time.Time        `json:"date"`
	Subject     string           `json:"subject"`
	From        []string         `json:"from"`
	To          []string         `json:"to"`
	Cc          []string         `json:"cc"`
	ReplyTo     []string         `json:"reply_to"`
	MessageID   string           `json:"message_id"`
	References  string           `json:"references"`
	Text        string           `json:"text"`          // the plain-text part, or the HTML reduced to text
	HasHTML     bool             `json:"has_html"`      // an HTML part is shown at .../html
	RemoteImage bool             `json:"remote_images"` // the HTML names images elsewhere (blocked until allowed)
	Attachments []attachmentJSON `json:"attachments"`
}

// mimeLeaf is one leaf part met by walkParts.
type mimeLeaf struct {
	index       int
	contentType string
	params      map[string]string
	disposition string
	filename    string
	body        io.Reader // decoded from its transfer encoding and charset (text)
}

// walkParts calls fn for each leaf of the MIME tree of r, numbered from 1 in order;
// fn returning errStopWalk ends the walk.
func walkParts(r io.Reader, fn func(p *mimeLeaf) error) error {
	ent, err := gomessage.Read(r)
	if ent == nil {
		return err
	}
	i := 0
	err = ent.Walk(func(_ []int, e *gomessage.Entity, err error) error {
		if e == nil {
			return nil // a part that could not be parsed is left out
		}
		ct, params, _ := e.Header.ContentType()
		if ct == "" {
			ct = "text/plain"
		}
		if strings.HasPrefix(ct, "multipart/") {
			return nil
		}
		i++
		disp, dparams, _ := e.Header.ContentDisposition()
		name := dparams["filename"]
		if name == "" {
			name = params["name"]
		}
		return fn(&mimeLeaf{index: i, contentType: ct, params: params, disposition: disp, filename: name, body: e.Body})
	})
	if errors.Is(err, errStopWalk) {
		return nil
	}
	return err
}

var errStopWalk = errors.New("stop")

func addrList(as []message.Address) []string {
	out := []string{}
	for _, a := range as {
		addr := a.Mailbox + "@" + a.Host
		if a.Name != "" {
			out = append(out, (&mail.Address{Name: a.Name, Address: addr}).String())
		} else {
			out = append(out, addr)
		}
	}
	return out
}

// apiMessage opens a message: its header, its text, and its attachments. Opening does
// not mark it read: the page asks for that (a GET changes nothing).
func (wm *Webmail) apiMessage(w http.ResponseWriter, r *http.Request, ses *session) {
	_, m, ok := wm.message(w, r, ses)
	if !ok {
		return
	}
	p, err := wm.st.Parsed(r.Context(), m.BlobID)
	if err != nil {
		wm.storeError(w, r, err)
		return
	}
	var env message.Envelope
	json.Unmarshal(p.Envelope, &env) // the store's own cached parse
	out := messageJSON{UID: m.UID, Flags: m.Flags, Date: p.Date, Subject: p.Subject, From: addrList(env.From),
		To: addrList(env.To), Cc: addrList(env.Cc), ReplyTo: addrList(env.ReplyTo), MessageID: p.MessageID,
		Attachments: []attachmentJSON{}}
	if out.Flags == nil {
		out.Flags = []string{}
	}
	if out.Date.IsZero() {
		out.Date = m.InternalDate
	}
	body, err := wm.st.OpenBlob(r.Context(), m.BlobID)
	if err != nil {
		wm.storeError(w, r, err)
		return
	}
	defer body.Close()
	var htmlText string
	err = walkParts(body, func(p *mimeLeaf) error {
		inline := p.disposition != "attachment"
		switch {
		case inline && p.contentType == "text/plain" && out.Text == "" && p.filename == "":
			b, _ := io.ReadAll(io.LimitReader(p.body, maxTextBody))
			out.Text = strings.ReplaceAll(string(b), "\r\n", "\n")
			return nil
		case inline && p.contentType == "text/html" && !out.HasHTML && p.filename == "":
			b, _ := io.ReadAll(io.LimitReader(p.body, maxHTMLBody))
			out.HasHTML = true
			clean := sanitize(b)
			out.RemoteImage = remoteImage().MatchString(clean)
			htmlText = htmlToText(clean)
			return nil
		}
		n, _ := io.Copy(io.Discard, p.body)
		name := p.filename
		if name == "" {
			name = "part-" + strconv.Itoa(p.index) + extension(p.contentType)
		}
		out.Attachments = append(out.Attachments, attachmentJSON{Part: p.index, Name: name, Type: p.contentType, Size: n})
		return nil
	})
	if err != nil {
		wm.logFor(r).Warn("webmail: reading a message", "uid", m.UID, "err", err)
	}
	if out.Text == "" {
		out.Text = htmlText
	}
	if hdr, err := wm.header(r, m.BlobID); err == nil {
		out.References = hdr.Get("References")
	}
	writeJSON(w, out)
}

// header reads the top-level header of a stored message.
func (wm *Webmail) header(r *http.Request, blobID int64) (gomessage.Header, error) {
	body, err := wm.st.OpenBlob(r.Context(), blobID)
	if err != nil {
		return gomessage.Header{}, err
	}
	defer body.Close()
	ent, err := gomessage.Read(body)
	if ent == nil {
		return gomessage.Header{}, err
	}
	return ent.Header, nil
}

func extension(ct string) string {
	if exts, _ := mime.ExtensionsByType(ct); len(exts) > 0 {
		return exts[0]
	}
	return ".bin"
}

func sanitize(b []byte) string {
	return sanitizeHTML(bytes.ToValidUTF8(b, []byte("\uFFFD")))
}

// remoteImage is built at first use, not at start, like the page templates: a run of the
// binary that shows no mail (petrel fetch --idle) should not keep it.
var remoteImage = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`(?i)<img[^>]+src="(https?:)?//`) })

// htmlToText is the text of sanitised HTML, for a message with no plain-text part (reply
// quoting, and the text view).
func htmlToText(clean string) string {
	return textOfHTML([]byte(clean))
}

// HTMLFrameCSP is the policy of a message's HTML document: nothing loads, no script runs
// (the sandbox directive also gives the document an opaque origin, so it could not reach
// the session even if a script slipped through), only data: images; with remote images
// allowed, http(s) images too. Only our page may frame it.
func HTMLFrameCSP(remoteImages bool) string {
	img := "img-src data:"
	if remoteImages {
		img += " https: http:"
	}
	return "default-src 'none'; " + img + "; frame-ancestors 'self'; base-uri 'none'; form-action 'none'; " +
		"sandbox allow-popups allow-popups-to-escape-sandbox"
}

// apiMessageHTML serves the sanitised HTML part of a message as a document for the page's
// sandboxed iframe; ?images=1 allows remote images.
func (wm *Webmail) apiMessageHTML(w http.ResponseWriter, r *http.Request, ses *session) {
	_, m, ok := wm.message(w, r, ses)
	if !ok {
		return
	}
	body, err := wm.st.OpenBlob(r.Context(), m.BlobID)
	if err != nil {
		wm.storeError(w, r, err)
		return
	}
	defer body.Close()
	var clean string
	walkParts(body, func(p *mimeLeaf) error {
		if p.contentType == "text/html" && p.disposition != "attachment" && p.filename == "" {
			b, _ := io.ReadAll(io.LimitReader(p.body, maxHTMLBody))
			clean = sanitize(b)
			return errStopWalk
		}
		return nil
	})
	h := w.Header()
	h.Set("Content-Security-Policy", HTMLFrameCSP(r.URL.Query().Get("images") == "1"))
	h.Set("X-Frame-Options", "SAMEORIGIN")
	h.Set("Content-Type", "text/html; charset=utf-8")
	io.WriteString(w, `<!doctype html><html><head><meta charset="utf-8"><meta name="referrer" content="no-referrer"></head><body>`)
	io.WriteString(w, clean)
	io.WriteString(w, "</body></html>")
}

// apiAttachment downloads one part: its declared type and name, always as an attachment
// (never shown inline, whatever its type), with a policy that lets nothing run should a
// browser show it anyway.
func (wm *Webmail) apiAttachment(w http.ResponseWriter, r *http.Request, ses *session) {
	_, m, ok := wm.message(w, r, ses)
	if !ok {
		return
	}
	want, err := strconv.Atoi(r.PathValue("part"))
	if err != nil || want < 1 {
		apiError(w, http.StatusBadRequest, "bad part")
		return
	}
	body, err := wm.st.OpenBlob(r.Context(), m.BlobID)
	if err != nil {
		wm.storeError(w, r, err)
		return
	}
	defer body.Close()
	found := false
	walkParts(body, func(p *mimeLeaf) error {
		if p.index != want {
			return nil
		}
		found = true
		name := p.filename
		if name == "" {
			name = "part-" + strconv.Itoa(p.index) + extension(p.contentType)
		}
		ct := mime.FormatMediaType(p.contentType, nil)
		if ct == "" {
			ct = "application/octet-stream"
		}
		h := w.Header()
		h.Set("Content-Type", ct)
		h.Set("Content-Disposition", mime.FormatMediaType("attachment", map[string]string{"filename": name}))
		h.Set("Content-Security-Policy", "default-src 'none'; sandbox")
		io.Copy(w, p.body)
		return errStopWalk
	})
	if !found {
		apiError(w, http.StatusNotFound, "no such part")
	}
}

// apiRaw downloads the whole message as stored (.eml).
func (wm *Webmail) apiRaw(w http.ResponseWriter, r *http.Request, ses *session) {
	_, m, ok := wm.message(w, r, ses)
	if !ok {
		return
	}
	body, err := wm.st.OpenBlob(r.Context(), m.BlobID)
	if err != nil {
		wm.storeError(w, r, err)
		return
	}
	defer body.Close()
	h := w.Header()
	h.Set("Content-Type", "message/rfc822")
	h.Set("Content-Disposition", mime.FormatMediaType("attachment", map[string]string{"filename": "message-" + strconv.FormatUint(uint64(m.UID), 10) + ".eml"}))
	h.Set("Content-Security-Policy", "default-src 'none'; sandbox")
	io.Copy(w, body)
}
