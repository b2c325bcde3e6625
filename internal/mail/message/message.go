// Package message computes the cached parse of a stored message: the few header values the
// store indexes (Message-ID, Subject, From, Date), the IMAP ENVELOPE and the MIME structure
// (IMAP BODYSTRUCTURE), as JSON documents this package owns.
//
// Parsing is best effort and never fails a delivery: a malformed message yields whatever
// could be understood, and the structure always covers every byte of the input. Parsing
// streams the body once; memory is bounded by the header size limit, not the message size.
//
// Limits that bound the work on hostile input: MIME nesting deeper than MaxDepth and parts
// beyond MaxParts are not descended into (they become opaque leaves); header sections beyond
// maxHeaderBytes are counted but not parsed.
package message

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/mail"
	"strconv"
	"strings"
	"time"

	"github.com/emersion/go-message/charset"

	"petrel/internal/store"
)

// Bounds on the MIME tree of one message.
const (
	MaxDepth = 32   // nesting of multipart and message/rfc822 parts
	MaxParts = 1000 // parts in one message, all levels together
)

// maxHeaderBytes is the most of one header section kept for parsing; the rest of an
// over-long header is skipped (but counted in offsets and sizes).
const maxHeaderBytes = 1 << 20

// Envelope is the IMAP ENVELOPE of a message (RFC 9051 §7.5.2). Date, InReplyTo and
// MessageID are the raw header values (unfolded); Subject and address names are decoded
// from RFC 2047 to UTF-8, so the IMAP layer re-encodes non-ASCII text when it serves them.
// As RFC 9051 §7.5.2 requires, Sender and Reply-To default to From when absent.
type Envelope struct {
	Date      string    `json:"date,omitempty"`
	Subject   string    `json:"subject,omitempty"`
	From      []Address `json:"from,omitempty"`
	Sender    []Address `json:"sender,omitempty"`
	ReplyTo   []Address `json:"reply_to,omitempty"`
	To        []Address `json:"to,omitempty"`
	Cc        []Address `json:"cc,omitempty"`
	Bcc       []Address `json:"bcc,omitempty"`
	InReplyTo string    `json:"in_reply_to,omitempty"`
	MessageID string    `json:"message_id,omitempty"`
}

// Address is one mailbox of an envelope address list. Group syntax is flattened into its
// members.
type Address struct {
	Name    string `json:"name,omitempty"` // display name, decoded
	Mailbox string `json:"mailbox"`        // local part
	Host    string `json:"host"`           // domain
}

// Part is one node of the MIME tree (the data of an IMAP BODYSTRUCTURE, RFC 9051 §7.5.2).
// Offsets are byte positions in the stored message, so a section fetch (BODY[1.2]) can read
// the bytes without parsing again: the part's header is [Offset, Offset+HeaderSize) and its
// body the Size bytes that follow.
type Part struct {
	Type              string            `json:"type"`    // lower-case, e.g. "text"
	Subtype           string            `json:"subtype"` // lower-case, e.g. "plain"
	Params            map[string]string `json:"params,omitempty"`
	ID                string            `json:"id,omitempty"`
	Description       string            `json:"description,omitempty"`
	Encoding          string            `json:"encoding"` // Content-Transfer-Encoding, lower-case; default "7bit"
	Disposition       string            `json:"disposition,omitempty"`
	DispositionParams map[string]string `json:"disposition_params,omitempty"`
	Offset            int64             `json:"offset"`
	HeaderSize        int64             `json:"header_size"`
	Size              int64             `json:"size"`            // body octets
	Lines             int64             `json:"lines,omitempty"` // text/* and message/rfc822 only
	// Envelope is set for message/rfc822 parts: the envelope of the encapsulated message.
	Envelope *Envelope `json:"envelope,omitempty"`
	// Children are the parts of a multipart, or the one encapsulated message of a
	// message/rfc822 part.
	Children []Part `json:"children,omitempty"`
}

// Parse reads a whole message and returns its cached parse. It only returns an error when
// reading r fails; a malformed message is never an error.
func Parse(r io.Reader) (store.ParsedMessage, error) {
	pm, _, _, err := parseTree(r)
	return pm, err
}

// HeaderSize returns the size of a whole message's header as Parse records it (the root
// Part's HeaderSize): up to and including the first empty line ("\r\n" or "\n" at the start
// of a line), or the whole message when it has none. A reader that holds the bytes (IMAP
// FETCH of BODY[HEADER.FIELDS ...]) finds the header with it instead of loading and
// decoding the stored structure.
func HeaderSize(msg []byte) int64 {
	return store.HeaderSize(msg) // one rule for the parse and for the stores' header copies
}

// parseTree is Parse, also returning the MIME tree and the top-level header.
func parseTree(r io.Reader) (store.ParsedMessage, Part, header, error) {
	p := newParser(r)
	root, _ := p.parsePart(0, nil, "text/plain")
	p.release()
	if p.err != nil {
		return store.ParsedMessage{}, Part{}, nil, p.err
	}
	clamp(&root, 0, p.off)
	env := envelope(p.rootHeader)

	pm := store.ParsedMessage{
		MessageID: msgID(p.rootHeader.get("message-id")),
		Subject:   env.Subject,
		From:      formatFirst(env.From),
		Envelope:  mustJSON(env),
		Structure: mustJSON(root),
		Sort:      sortKeys(p.rootHeader, env),
	}
	if t, err := parseDate(p.rootHeader.get("date")); err == nil {
		pm.Date = t
	}
	return pm, root, p.rootHeader, nil
}

// parseDate is mail.ParseDate with a shortcut for the form nearly every mailer writes
// (RFC 5322 §3.3 with the day of the week and a numeric zone). mail.ParseDate tries the
// 24 layouts without a day of the week first, and each failed attempt allocates an error:
// that was a quarter of the parse of a small message.
func parseDate(s string) (time.Time, error) {
	if t, err := time.Parse(time.RFC1123Z, s); err == nil {
		return t, nil
	}
	return mail.ParseDate(s)
}

// mustJSON marshals values of this package's types, which cannot fail: every string is made
// valid UTF-8 by encoding/json itself.
func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic("message: marshal: " + err.Error())
	}
	return b
}

var wordDecoder = &mime.WordDecoder{CharsetReader: charset.Reader}

// decodeText decodes RFC 2047 encoded words; text that does not decode is kept as is.
func decodeText(s string) string {
	d, err := wordDecoder.DecodeHeader(s)
	if err != nil {
		return s
	}
	return d
}

// envelope builds the IMAP envelope from a parsed header.
func envelope(h header) Envelope {
	e := Envelope{
		Date:      h.get("date"),
		Subject:   decodeText(h.get("subject")),
		From:      addressList(h.get("from")),
		Sender:    addressList(h.get("sender")),
		ReplyTo:   addressList(h.get("reply-to")),
		To:        addressList(h.get("to")),
		Cc:        addressList(h.get("cc")),
		Bcc:       addressList(h.get("bcc")),
		InReplyTo: h.get("in-reply-to"),
		MessageID: h.get("message-id"),
	}
	if len(e.Sender) == 0 {
		e.Sender = e.From
	}
	if len(e.ReplyTo) == 0 {
		e.ReplyTo = e.From
	}
	return e
}

var addrParser = &mail.AddressParser{WordDecoder: wordDecoder}

// addressList parses an address list leniently: when the whole list does not parse, each
// comma-separated piece is tried on its own and the ones that fail are dropped.
func addressList(s string) []Address {
	if strings.TrimSpace(s) == "" {
		return nil
	}
	list, err := addrParser.ParseList(s)
	if err != nil {
		list = nil
		for piece := range strings.SplitSeq(s, ",") {
			if a, err := addrParser.Parse(piece); err == nil {
				list = append(list, a)
			}
		}
	}
	var out []Address
	for _, a := range list {
		local, host := a.Address, ""
		if i := strings.LastIndexByte(a.Address, '@'); i >= 0 {
			local, host = a.Address[:i], a.Address[i+1:]
		}
		out = append(out, Address{Name: a.Name, Mailbox: local, Host: host})
	}
	return out
}

// formatFirst renders the first address for the store's From column: `Name <a@b>` or `a@b`.
func formatFirst(l []Address) string {
	if len(l) == 0 {
		return ""
	}
	a := l[0]
	addr := a.Mailbox
	if a.Host != "" {
		addr += "@" + a.Host
	}
	if a.Name == "" {
		return addr
	}
	return a.Name + " <" + addr + ">"
}

// msgID returns the first <id> of a Message-ID header without the brackets, or the trimmed
// value when it has none.
func msgID(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '<'); i >= 0 {
		if j := strings.IndexByte(s[i:], '>'); j > 0 {
			return strings.TrimSpace(s[i+1 : i+j])
		}
	}
	return s
}

// header is a parsed header section: fields in order with lower-case names and unfolded
// values.
type header []field

type field struct {
	name  string
	value string
}

func (h header) get(name string) string {
	for _, f := range h {
		if f.name == name {
			return f.value
		}
	}
	return ""
}

// parseHeader splits a raw header section into fields (RFC 5322 §2.2). It is lenient: lines
// without a colon are skipped, and a continuation line before any field is ignored.
func parseHeader(raw []byte) header {
	var h header
	for len(raw) > 0 {
		line := raw
		if i := bytes.IndexByte(raw, '\n'); i >= 0 {
			line, raw = raw[:i+1], raw[i+1:]
		} else {
			raw = nil
		}
		text := strings.TrimRight(string(line), "\r\n")
		if text == "" {
			continue
		}
		if text[0] == ' ' || text[0] == '\t' {
			// Unfolding (RFC 5322 §2.2.3): the line break is removed, the whitespace kept.
			if len(h) > 0 {
				h[len(h)-1].value += text
			}
			continue
		}
		name, value, ok := strings.Cut(text, ":")
		if !ok {
			continue
		}
		h = append(h, field{
			name:  strings.ToLower(strings.TrimSpace(name)),
			value: value,
		})
	}
	for i := range h {
		h[i].value = strings.TrimSpace(h[i].value)
	}
	return h
}

// Prepended returns the parse of the message pm describes with n octets of header fields
// put into its top-level header (delivery adds its verdict fields after parsing, since it
// classifies what the parse decoded): the top-level header grows by n and every part
// below it starts n octets later. Only the structure holds offsets.
//
// The structure's JSON is rewritten as text rather than decoded and encoded again (which
// cost some 10 µs of every classified delivery): in it a number after the key "offset" or
// "header_size" can only be a Part's field, since the other objects with free keys (the
// parameter maps) hold strings; the root comes first, so the first "offset" is the root's
// (which stays 0) and the first "header_size" is the root's (which grows by n), and every
// later "offset" is a part below it. FuzzPrepended checks it against the round trip.
func Prepended(pm store.ParsedMessage, n int64) (store.ParsedMessage, error) {
	out := make([]byte, 0, len(pm.Structure)+32)
	rest := pm.Structure
	offsets, headers := 0, 0
	for {
		i, key := nextNumberKey(rest)
		if i < 0 {
			break
		}
		j := i + len(key)
		k := j
		for k < len(rest) && rest[k] >= '0' && rest[k] <= '9' {
			k++
		}
		v, err := strconv.ParseInt(string(rest[j:k]), 10, 64)
		if err != nil {
			return pm, fmt.Errorf("message: cached structure: %w", err)
		}
		switch key {
		case offsetKey:
			if offsets++; offsets > 1 {
				v += n
			}
		case headerSizeKey:
			if headers++; headers == 1 {
				v += n
			}
		}
		out = strconv.AppendInt(append(out, rest[:j]...), v, 10)
		rest = rest[k:]
	}
	if offsets == 0 || headers == 0 {
		return pm, errors.New("message: cached structure has no offsets")
	}
	pm.Structure = append(out, rest...)
	return pm, nil
}

const (
	offsetKey     = `"offset":`
	headerSizeKey = `"header_size":`
)

// nextNumberKey finds the first "offset" or "header_size" key in s that a number follows,
// and returns its index and the key; -1 when there is none.
func nextNumberKey(s []byte) (int, string) {
	at := 0
	for {
		i := bytes.Index(s[at:], []byte(`":`))
		if i < 0 {
			return -1, ""
		}
		end := at + i + 2
		if end < len(s) && s[end] >= '0' && s[end] <= '9' {
			for _, key := range []string{offsetKey, headerSizeKey} {
				if start := end - len(key); start >= 0 && string(s[start:end]) == key {
					return start, key
				}
			}
		}
		at = end
	}
}
