package imapd

// FETCH (RFC 9051 §6.4.5, §7.5.2) from the store's cached parse: ENVELOPE and
// BODYSTRUCTURE come from the JSON stored at delivery, and a section (BODY[1.2],
// BODY[HEADER], BODY[TEXT], BODY[1.MIME]) is read from the stored body at the offsets that
// parse recorded, without parsing the message again. A client that asks for headers only
// never makes the server read a body beyond its header.

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"mime"
	"slices"
	"sort"
	"strconv"
	"strings"

	"petrel/internal/mail/message"
	"petrel/internal/store"
)

func utoa(n uint32) string { return strconv.FormatUint(uint64(n), 10) }

// maxHeaderRead bounds the header bytes read into memory for HEADER.FIELDS and for
// SEARCH's header keys; message.Parse parses no more of a header than this either.
const maxHeaderRead = 1 << 20

func (s *session) cmdFetch(c *Command) (done, error) {
	ranges, err := s.rangesOf(c.Seq, c.UID)
	if err != nil {
		return done{}, err
	}
	atts, err := s.fetchSync(c)
	if err != nil {
		return done{}, err
	}
	setSeen := false
	for _, a := range atts {
		switch {
		case a.Name == "BODY" && a.HasSection && !a.Peek, a.Name == "BINARY" && !a.Peek, a.Name == "RFC822", a.Name == "RFC822.TEXT":
			setSeen = true // RFC 9051 §6.4.5: BODY[...] sets \Seen; RFC 3501 RFC822 too
		}
	}
	msgs, err := s.messagesChanged(ranges, c.ChangedSince)
	if err != nil {
		return done{}, err
	}
	if err := s.binaryCheck(msgs, atts); err != nil { // binary.go
		return done{}, err
	}
	if c.Vanished {
		if err := s.vanishedEarlier(ranges, c.ChangedSince); err != nil {
			return done{}, err
		}
	}
	// Messages whose \Seen this FETCH sets get FLAGS in their response (RFC 9051 §6.4.5).
	var seenNow map[uint32]bool
	if setSeen && !s.sel.readOnly {
		var unseen []uint32
		for _, m := range msgs {
			if !slices.Contains(m.Flags, store.FlagSeen) {
				unseen = append(unseen, m.UID)
			}
		}
		if len(unseen) > 0 {
			res, err := s.srv.store.SetFlags(s.ctx, s.sel.mb.ID, unseen, store.FlagChange{Mode: store.FlagsAdd, Flags: []string{store.FlagSeen}})
			if err != nil {
				return done{}, err
			}
			s.sel.own[res.ModSeq] = true
			seenNow = make(map[uint32]bool, len(res.Changed))
			for _, ch := range res.Changed {
				seenNow[ch.UID] = true
				if i := slices.IndexFunc(msgs, func(m store.Message) bool { return m.UID == ch.UID }); i >= 0 {
					msgs[i].Flags, msgs[i].ModSeq = ch.Flags, res.ModSeq
				}
			}
		}
	}
	var bodies *bodyBatch
	if bb, ok := s.srv.store.(store.BlobBatch); ok && slices.ContainsFunc(atts, readsBody) {
		bodies = &bodyBatch{store: bb}
		// A header listing reads the stored header copies, not the bodies.
		if hb, ok := s.srv.store.(store.HeaderBatch); ok && !slices.ContainsFunc(atts, readsBeyondHeader) {
			bodies.headers = hb
		}
	}
	for i := 0; i < len(msgs); {
		end := len(msgs)
		if bodies != nil {
			var err error
			if end, err = bodies.load(s, msgs[i:]); err != nil {
				return done{}, err
			}
			end += i
		}
		for _, m := range msgs[i:end] {
			n := s.sel.seqOf(m.UID)
			if n == 0 {
				continue
			}
			fm := &fetchMsg{m: m}
			if bodies != nil && bodies.headers != nil {
				fm.header = bodies.body(m.BlobID)
			} else {
				fm.body = bodies.body(m.BlobID)
			}
			if err := s.fetchOne(n, fm, atts, c.UID, seenNow[m.UID]); err != nil {
				return done{}, err
			}
		}
		i = end
	}
	return done{}, nil
}

// readsBody reports whether a FETCH item reads octets of the stored body.
func readsBody(a FetchAtt) bool {
	switch a.Name {
	case "BODY", "BODYSTRUCTURE":
		return a.HasSection
	case "BINARY", "BINARY.SIZE", "RFC822", "RFC822.HEADER", "RFC822.TEXT":
		return true
	}
	return false
}

// readsBeyondHeader reports whether a FETCH item reads octets of the stored body other than
// the message's own header section (BODY[HEADER], BODY[HEADER.FIELDS (...)], RFC822.HEADER).
func readsBeyondHeader(a FetchAtt) bool {
	if a.Name == "RFC822.HEADER" {
		return false
	}
	if a.Name == "BODY" && a.HasSection && len(a.Section.Part) == 0 && strings.HasPrefix(a.Section.Specifier, "HEADER") {
		return false
	}
	return readsBody(a)
}

// Bounds of one batch of bodies read for a FETCH (bodyBatch): the messages and the octets
// held at once. A body larger than maxBatchBody is read alone with OpenBlob, as before.
const (
	maxBatchMessages = 256
	maxBatchOctets   = 1 << 20
	maxBatchBody     = 256 << 10
)

// bodyBatch holds the bodies of the next messages of a FETCH, read in one query
// (store.BlobBatch) instead of one OpenBlob per message: for a FETCH of many small messages
// the query, not the octets, was most of the server's CPU per message (docs/benchmarks.md).
// The bodies are copied into one buffer that the next batch reuses.
type bodyBatch struct {
	store store.BlobBatch
	// headers, when set, reads only the messages' header sections (a FETCH that reads
	// nothing else): the batch then holds headers, which fetchMsg keeps apart from bodies.
	headers store.HeaderBatch
	buf     []byte
	at      map[int64][2]int // blob ID -> start and end in buf
}

// load reads the bodies of the first messages of msgs, as many as the bounds allow (at
// least one), and returns how many messages the batch covers.
func (b *bodyBatch) load(s *session, msgs []store.Message) (int, error) {
	ids := make([]int64, 0, min(len(msgs), maxBatchMessages))
	n, octets := 0, int64(0)
	for _, m := range msgs {
		if n == maxBatchMessages || n > 0 && m.Size <= maxBatchBody && octets+m.Size > maxBatchOctets {
			break
		}
		n++
		if m.Size <= maxBatchBody {
			ids = append(ids, m.BlobID)
			octets += m.Size
		}
	}
	// Room for every body at once: grown by append, the buffer was copied over and over
	// (a tenth of a header listing's CPU, docs/benchmarks.md).
	b.buf = slices.Grow(b.buf[:0], int(octets))
	if b.at == nil {
		b.at = make(map[int64][2]int, len(ids))
	}
	clear(b.at)
	keep := func(id int64, body []byte) error {
		start := len(b.buf)
		b.buf = append(b.buf, body...)
		b.at[id] = [2]int{start, len(b.buf)}
		return nil
	}
	if b.headers != nil {
		return n, b.headers.ReadHeaders(s.ctx, ids, keep)
	}
	return n, b.store.ReadBlobs(s.ctx, ids, maxBatchBody, keep)
}

// body returns a body of the batch, or nil when it is not there (read it with OpenBlob).
// The slice is valid until the next load; nobody writes to it.
func (b *bodyBatch) body(blobID int64) []byte {
	if b == nil {
		return nil
	}
	if at, ok := b.at[blobID]; ok {
		return b.buf[at[0]:at[1]:at[1]]
	}
	return nil
}

// fetchMsg holds what has been loaded of one message while its response is written.
type fetchMsg struct {
	m      store.Message
	parsed *store.ParsedMessage
	root   *message.Part
	body   []byte // the whole stored body when a bodyBatch read it, else nil
	header []byte // the body's header section (HeaderSize octets) when a bodyBatch read only that, else nil
}

func (s *session) loadParsed(fm *fetchMsg) (*message.Part, error) {
	if fm.root != nil {
		return fm.root, nil
	}
	pm, err := s.srv.store.Parsed(s.ctx, fm.m.BlobID)
	if err != nil {
		return nil, err
	}
	fm.parsed = &pm
	fm.root = &message.Part{}
	if err := json.Unmarshal(pm.Structure, fm.root); err != nil {
		// A structure that does not decode is served as one opaque part covering the body.
		*fm.root = message.Part{Type: "application", Subtype: "octet-stream", Encoding: "7bit", Size: fm.m.Size}
	}
	return fm.root, nil
}

// fetchOne writes one "* n FETCH (...)" response.
func (s *session) fetchOne(n uint32, fm *fetchMsg, atts []FetchAtt, uid, flags bool) error {
	w := s.out()
	m := fm.m
	w.str("* ")
	w.num(n)
	w.str(" FETCH (")
	first := true
	item := func(name string) {
		if !first {
			w.sp()
		}
		first = false
		w.str(name)
		w.sp()
	}
	// RFC 7162 §3.1: under CONDSTORE a FETCH caused by a flag change (here, \Seen set by
	// this FETCH) carries UID and MODSEQ.
	syncFlags := flags && s.ext.condstore
	if uid || syncFlags { // RFC 9051 §6.4.9: UID FETCH responses carry the UID
		item("UID")
		w.num(m.UID)
	}
	if syncFlags && !slices.ContainsFunc(atts, func(a FetchAtt) bool { return a.Name == "MODSEQ" }) {
		if !first {
			w.sp()
		}
		w.modSeq(m.ModSeq)
	}
	if flags && !slices.ContainsFunc(atts, func(a FetchAtt) bool { return a.Name == "FLAGS" }) {
		item("FLAGS")
		w.flags(m.Flags)
	}
	for _, a := range atts {
		switch a.Name {
		case "UID":
			if uid || syncFlags {
				continue
			}
			item("UID")
			w.num(m.UID)
		case "FLAGS":
			item("FLAGS")
			w.flags(m.Flags)
		case "MODSEQ": // RFC 7162 §3.1.4.1
			if !first {
				w.sp()
			}
			first = false
			w.modSeq(m.ModSeq)
		case "INTERNALDATE":
			item("INTERNALDATE")
			w.dateTime(m.InternalDate)
		case "RFC822.SIZE":
			item("RFC822.SIZE")
			w.num64(m.Size)
		case "ENVELOPE":
			if _, err := s.loadParsed(fm); err != nil {
				return err
			}
			var env message.Envelope
			json.Unmarshal(fm.parsed.Envelope, &env) // a bad document gives an all-NIL envelope
			item("ENVELOPE")
			s.writeEnvelope(&env)
		case "BODYSTRUCTURE", "BODY":
			if a.HasSection {
				if err := s.fetchSection(fm, a, item); err != nil {
					return err
				}
				continue
			}
			root, err := s.loadParsed(fm)
			if err != nil {
				return err
			}
			item(a.Name)
			s.writeBodyStructure(root, a.Name == "BODYSTRUCTURE")
		case "BINARY", "BINARY.SIZE":
			if err := s.fetchBinary(fm, a, item); err != nil {
				return err
			}
		case "RFC822", "RFC822.HEADER", "RFC822.TEXT":
			// RFC 3501: BODY[], BODY.PEEK[HEADER] and BODY[TEXT] under their old names.
			b := FetchAtt{Name: "BODY", HasSection: true, Peek: a.Name == "RFC822.HEADER"}
			switch a.Name {
			case "RFC822.HEADER":
				b.Section.Specifier = "HEADER"
			case "RFC822.TEXT":
				b.Section.Specifier = "TEXT"
			}
			if err := s.fetchSection(fm, b, func(string) { item(a.Name) }); err != nil {
				return err
			}
		}
	}
	w.str(")\r\n")
	return nil
}

// sectionExtent finds the octets of a section in the stored message: start and length, or
// ok false when the message has no such part (RFC 9051 §6.4.5 then returns an empty string).
// For HEADER.FIELDS it returns the extent of the header they are picked from.
func sectionExtent(root *message.Part, size int64, sec Section) (start, length int64, ok bool) {
	p := findPart(root, sec.Part)
	if p == nil {
		return 0, 0, false
	}
	switch sec.Specifier {
	case "":
		if len(sec.Part) == 0 {
			return 0, size, true
		}
		return p.Offset + p.HeaderSize, p.Size, true
	case "MIME":
		return p.Offset, p.HeaderSize, true
	}
	// HEADER, HEADER.FIELDS(.NOT) and TEXT are of a message: the whole one, or the one a
	// message/rfc822 part encapsulates.
	if len(sec.Part) > 0 {
		if !isMessagePart(p) {
			return 0, 0, false
		}
		p = &p.Children[0]
	}
	if sec.Specifier == "TEXT" {
		return p.Offset + p.HeaderSize, p.Size, true
	}
	return p.Offset, p.HeaderSize, true
}

// findPart returns the part a section part number names ("1.2"; none: the message), or
// nil when the message has no such part.
func findPart(root *message.Part, part []uint32) *message.Part {
	p := root
	for i, num := range part {
		if i > 0 {
			if isMessagePart(p) {
				p = &p.Children[0]
			} else if p.Type != "multipart" {
				return nil
			}
		}
		if p.Type == "multipart" {
			if int(num) > len(p.Children) {
				return nil
			}
			p = &p.Children[num-1]
		} else if num != 1 {
			return nil
		}
	}
	return p
}

func isMessagePart(p *message.Part) bool {
	return p.Type == "message" && len(p.Children) == 1 && p.Envelope != nil
}

// fetchSection writes BODY[section]<partial> (RFC 9051 §7.5.2).
func (s *session) fetchSection(fm *fetchMsg, a FetchAtt, item func(string)) error {
	m := fm.m
	var start, length int64 = 0, m.Size
	ok := true
	switch {
	case fm.header != nil && len(a.Section.Part) == 0 && strings.HasPrefix(a.Section.Specifier, "HEADER"):
		start, length = 0, int64(len(fm.header)) // the store's copy of the header section
	case fm.body != nil && len(a.Section.Part) == 0 && strings.HasPrefix(a.Section.Specifier, "HEADER"):
		// The message's own header, of a body in memory: found in its bytes, without the
		// stored structure's query and decoding (a header listing asks this of every message).
		start, length = 0, message.HeaderSize(fm.body)
	case fm.body != nil && len(a.Section.Part) == 0 && a.Section.Specifier == "TEXT":
		start = message.HeaderSize(fm.body)
		length = int64(len(fm.body)) - start
	case len(a.Section.Part) > 0 || a.Section.Specifier != "":
		root, err := s.loadParsed(fm)
		if err != nil {
			return err
		}
		start, length, ok = sectionExtent(root, m.Size, a.Section)
	}
	// The response names the section as asked, and a partial by its origin only
	// (RFC 9051 §7.5.2: "BODY[]<0>").
	name := "BODY[" + a.Section.String() + "]"
	if a.Partial {
		name += "<" + utoa(a.Offset) + ">"
	}
	w := s.out()
	if !ok {
		item(name)
		w.str(`""`)
		return nil
	}
	var data []byte // set for HEADER.FIELDS, which is filtered in memory
	if strings.HasPrefix(a.Section.Specifier, "HEADER.FIELDS") {
		hdr, err := s.readRange(fm, start, min(length, maxHeaderRead))
		if err != nil {
			return err
		}
		data = filterHeader(hdr, a.Section.Fields, a.Section.Specifier == "HEADER.FIELDS.NOT")
		start, length = 0, int64(len(data))
	}
	if a.Partial {
		off := min(int64(a.Offset), length)
		start += off
		length = min(length-off, int64(a.Count))
	}
	item(name)
	if data != nil {
		w.literalString(string(data[start : start+length]))
		return nil
	}
	if length == 0 {
		w.str(`""`)
		return nil
	}
	if fm.header != nil && start+length <= int64(len(fm.header)) {
		w.literalBytes(fm.header[start : start+length])
		return nil
	}
	if fm.body != nil {
		if start+length > int64(len(fm.body)) {
			// The client counts octets: a body shorter than the store says ends the session.
			return io.ErrUnexpectedEOF
		}
		w.literalBytes(fm.body[start : start+length])
		return nil
	}
	rc, err := s.srv.store.OpenBlob(s.ctx, m.BlobID)
	if err != nil {
		return err
	}
	defer rc.Close()
	if _, err := io.CopyN(io.Discard, rc, start); err != nil {
		return err
	}
	// A body shorter than the store says would desynchronise the client: the error ends
	// the session.
	return w.literal(length, rc)
}

// readRange returns length octets at start of a message's stored body (fewer if it is
// shorter), from the body in memory when a bodyBatch read it. The caller does not write to
// the result.
func (s *session) readRange(fm *fetchMsg, start, length int64) ([]byte, error) {
	if fm.header != nil && start+length <= int64(len(fm.header)) {
		return fm.header[start : start+length], nil
	}
	if fm.body != nil {
		start = min(start, int64(len(fm.body)))
		return fm.body[start:min(start+length, int64(len(fm.body)))], nil
	}
	rc, err := s.srv.store.OpenBlob(s.ctx, fm.m.BlobID)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	if _, err := io.CopyN(io.Discard, rc, start); err != nil {
		return nil, err
	}
	b := make([]byte, length)
	n, err := io.ReadFull(rc, b)
	if err != nil && err != io.ErrUnexpectedEOF && err != io.EOF {
		return nil, err
	}
	return b[:n], nil
}

// filterHeader keeps (or with not, drops) the header fields named, matched without regard
// to case, and ends the result with the blank line (RFC 9051 §6.4.5 HEADER.FIELDS).
func filterHeader(hdr []byte, names []string, not bool) []byte {
	var out []byte
	keep := false
	sc := bufio.NewScanner(bytes.NewReader(hdr))
	sc.Buffer(make([]byte, 0, 4096), maxHeaderRead+2)
	sc.Split(scanLinesCRLF)
	for sc.Scan() {
		line := sc.Bytes()
		trimmed := bytes.TrimRight(line, "\r\n")
		if len(trimmed) == 0 {
			break
		}
		if line[0] != ' ' && line[0] != '\t' {
			name, _, _ := bytes.Cut(trimmed, []byte(":"))
			name = bytes.TrimRight(name, " \t")
			in := slices.ContainsFunc(names, func(n string) bool { return strings.EqualFold(n, string(name)) })
			keep = in != not
		}
		if keep {
			out = append(out, line...)
		}
	}
	return append(out, "\r\n"...)
}

// scanLinesCRLF splits after each LF, keeping the line ending.
func scanLinesCRLF(data []byte, atEOF bool) (int, []byte, error) {
	if i := bytes.IndexByte(data, '\n'); i >= 0 {
		return i + 1, data[:i+1], nil
	}
	if atEOF && len(data) > 0 {
		return len(data), data, nil
	}
	return 0, nil, nil
}

// text writes header text from the cached parse: decoded UTF-8 there, so non-ASCII is
// encoded again as RFC 2047 words for a client that has not enabled UTF-8 (RFC 9051
// §7.5.2 ENVELOPE carries header text as it would appear in the header).
func (s *session) text(t string) {
	if t == "" {
		s.w.str("NIL")
		return
	}
	if !s.w.utf8 && !isASCII(t) {
		t = mime.QEncoding.Encode("utf-8", t)
	}
	s.w.string(t)
}

func isASCII(t string) bool {
	for i := 0; i < len(t); i++ {
		if t[i] >= 0x80 {
			return false
		}
	}
	return true
}

// writeEnvelope writes an ENVELOPE (RFC 9051 §7.5.2): date, subject, from, sender, reply-to,
// to, cc, bcc, in-reply-to, message-id.
func (s *session) writeEnvelope(e *message.Envelope) {
	w := &s.w
	w.byte('(')
	s.text(e.Date)
	w.sp()
	s.text(e.Subject)
	for _, l := range [][]message.Address{e.From, e.Sender, e.ReplyTo, e.To, e.Cc, e.Bcc} {
		w.sp()
		s.writeAddresses(l)
	}
	w.sp()
	s.text(e.InReplyTo)
	w.sp()
	s.text(e.MessageID)
	w.byte(')')
}

// writeAddresses writes an address list: ((name adl mailbox host) ...) or NIL.
func (s *session) writeAddresses(l []message.Address) {
	w := &s.w
	if len(l) == 0 {
		w.str("NIL")
		return
	}
	w.byte('(')
	for _, a := range l {
		w.byte('(')
		s.text(a.Name)
		w.str(" NIL ")
		s.text(a.Mailbox)
		w.sp()
		s.text(a.Host)
		w.byte(')')
	}
	w.byte(')')
}

// writeParams writes a body parameter list ("name" "value" ...) or NIL, sorted by name so
// that the same message always gives the same answer.
func (s *session) writeParams(params map[string]string) {
	w := &s.w
	if len(params) == 0 {
		w.str("NIL")
		return
	}
	keys := make([]string, 0, len(params))
	for k := range params {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	w.byte('(')
	for i, k := range keys {
		if i > 0 {
			w.sp()
		}
		w.string(k)
		w.sp()
		s.text(params[k])
	}
	w.byte(')')
}

// writeBodyStructure writes BODY or, with ext, BODYSTRUCTURE (RFC 9051 §7.5.2 and body in
// §9): a multipart as its parts and subtype, a leaf as type, subtype, parameters, id,
// description, encoding and size, with lines for text and envelope, body and lines for
// message/rfc822.
func (s *session) writeBodyStructure(p *message.Part, ext bool) {
	w := &s.w
	w.byte('(')
	if p.Type == "multipart" {
		if len(p.Children) == 0 {
			// A multipart without parts (no boundary found) has no valid form; describe it
			// as an empty text/plain part rather than break the grammar.
			w.str(`"text" "plain" NIL NIL NIL "7bit" 0 0)`)
			return
		}
		for i := range p.Children {
			s.writeBodyStructure(&p.Children[i], ext)
		}
		w.sp()
		w.string(p.Subtype)
		if ext {
			w.sp()
			s.writeParams(p.Params)
			w.sp()
			s.writeDisposition(p)
			w.str(" NIL NIL") // language, location
		}
		w.byte(')')
		return
	}
	w.string(p.Type)
	w.sp()
	w.string(p.Subtype)
	w.sp()
	s.writeParams(p.Params)
	w.sp()
	s.text(p.ID)
	w.sp()
	s.text(p.Description)
	w.sp()
	w.string(p.Encoding)
	w.sp()
	w.num64(p.Size)
	switch {
	case isMessagePart(p):
		w.sp()
		s.writeEnvelope(p.Envelope)
		w.sp()
		s.writeBodyStructure(&p.Children[0], ext)
		w.sp()
		w.num64(p.Lines)
	case p.Type == "text":
		w.sp()
		w.num64(p.Lines)
	}
	if ext {
		w.str(" NIL ") // MD5
		s.writeDisposition(p)
		w.str(" NIL NIL") // language, location
	}
	w.byte(')')
}

func (s *session) writeDisposition(p *message.Part) {
	if p.Disposition == "" {
		s.w.str("NIL")
		return
	}
	s.w.byte('(')
	s.w.string(p.Disposition)
	s.w.sp()
	s.writeParams(p.DispositionParams)
	s.w.byte(')')
}
