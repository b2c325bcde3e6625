package message

import (
	"bufio"
	"bytes"
	"io"
	"mime"
	"strings"
	"sync"
)

// parser walks a message once, line by line, building the MIME tree with byte offsets.
//
// The input is read with bufio.Reader.ReadSlice, so a line longer than the buffer comes in
// several segments; only a segment that begins a line can be a boundary delimiter or the
// blank line that ends a header. One line can be pushed back (unread): the delimiter that
// ends a part is left for the enclosing multipart to see.
type parser struct {
	br *bufio.Reader
	// off is the offset of the next byte next returns.
	off int64
	// back is a segment pushed back by unread, returned again by the next call to next.
	back      []byte
	backStart bool
	haveBack  bool
	// lineStart reports whether the next segment read from br begins a line.
	lineStart bool
	// lines counts the segments returned so far that begin a line.
	lines int64
	// eol is the length of the line ending (0, 1 or 2) of the last segment returned;
	// prevEOL the one before it, restored by unread.
	eol, prevEOL int
	parts        int
	// err is the first read error other than EOF; parsing stops at it.
	err        error
	rootHeader header
}

func newParser(r io.Reader) *parser {
	br := readers.Get().(*bufio.Reader)
	br.Reset(r)
	return &parser{br: br, lineStart: true}
}

// release returns the parser's buffer for reuse: a fresh 64 KiB buffer per message was a
// tenth of the CPU of receiving a small message (allocation and zeroing).
func (p *parser) release() {
	p.br.Reset(nil)
	readers.Put(p.br)
	p.br = nil
}

var readers = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 64<<10) }}

// next returns the next line or segment of an over-long line; ok is false at the end of the
// input. b is only valid until the next call.
func (p *parser) next() (b []byte, start, ok bool) {
	if p.haveBack {
		p.haveBack = false
		b, start = p.back, p.backStart
	} else {
		if p.err != nil {
			return nil, false, false
		}
		var err error
		b, err = p.br.ReadSlice('\n')
		if err != nil && err != bufio.ErrBufferFull {
			if err != io.EOF {
				p.err = err
			}
			if len(b) == 0 {
				return nil, false, false
			}
		}
		start = p.lineStart
		p.lineStart = len(b) > 0 && b[len(b)-1] == '\n'
	}
	p.off += int64(len(b))
	if start {
		p.lines++
	}
	p.prevEOL, p.eol = p.eol, eolLen(b)
	return b, start, true
}

// unread pushes back the segment returned by the last call to next.
func (p *parser) unread(b []byte, start bool) {
	p.back = append(p.back[:0], b...)
	p.backStart = start
	p.haveBack = true
	p.off -= int64(len(b))
	if start {
		p.lines--
	}
	p.eol = p.prevEOL
}

func eolLen(b []byte) int {
	switch {
	case bytes.HasSuffix(b, []byte("\r\n")):
		return 2
	case bytes.HasSuffix(b, []byte("\n")):
		return 1
	}
	return 0
}

// delimiter reports whether b is a boundary delimiter line (RFC 2046 §5.1.1) of one of
// bounds: the index of the innermost matching boundary, and whether it is the close
// delimiter ("--boundary--"); index -1 when it is none.
func delimiter(b []byte, start bool, bounds []string) (index int, closing bool) {
	if !start || len(bounds) == 0 || !bytes.HasPrefix(b, []byte("--")) {
		return -1, false
	}
	// Transport padding (linear whitespace) may follow the delimiter.
	t := string(bytes.TrimRight(b[2:], " \t\r\n"))
	for i := len(bounds) - 1; i >= 0; i-- {
		rest, ok := strings.CutPrefix(t, bounds[i])
		if ok && (rest == "" || rest == "--") {
			return i, rest == "--"
		}
	}
	return -1, false
}

// skipUntil consumes lines up to (not including) a delimiter of bounds, or to the end.
func (p *parser) skipUntil(bounds []string) {
	for {
		b, start, ok := p.next()
		if !ok {
			return
		}
		if i, _ := delimiter(b, start, bounds); i >= 0 {
			p.unread(b, start)
			return
		}
	}
}

// parsePart parses one entity, header and body, from the current position. It stops at the
// end of input or before a delimiter line of one of bounds (the enclosing multiparts).
// defType is the content type that applies when the part has none (RFC 2046 §5.1.5: digest
// parts default to message/rfc822).
func (p *parser) parsePart(depth int, bounds []string, defType string) (Part, header) {
	p.parts++
	part := Part{Offset: p.off}

	var raw []byte
	cut := false // the part ended inside its header
	for {
		b, start, ok := p.next()
		if !ok {
			break
		}
		if i, _ := delimiter(b, start, bounds); i >= 0 {
			p.unread(b, start)
			cut = true
			break
		}
		if len(raw)+len(b) <= maxHeaderBytes {
			raw = append(raw, b...)
		}
		if start && (string(b) == "\r\n" || string(b) == "\n") {
			break
		}
	}
	part.HeaderSize = p.off - part.Offset
	h := parseHeader(raw)
	if depth == 0 {
		p.rootHeader = h
	}
	p.describe(&part, h, defType)
	if cut {
		// No body; the line break before the delimiter is not part of the header either.
		part.HeaderSize = max(part.HeaderSize-int64(p.eol), 0)
		return part, h
	}

	bodyStart, linesStart := p.off, p.lines
	boundary := part.Params["boundary"]
	descend := depth < MaxDepth && p.parts < MaxParts
	switch {
	case part.Type == "multipart" && boundary != "" && descend:
		p.multipart(&part, depth, bounds, boundary)
	case part.Type == "message" && (part.Subtype == "rfc822" || part.Subtype == "global") && descend:
		child, ch := p.parsePart(depth+1, bounds, "text/plain")
		env := envelope(ch)
		part.Envelope = &env
		part.Children = []Part{child}
	default:
		p.skipUntil(bounds)
	}

	end := p.off
	if p.haveBack {
		// Ended before a delimiter: the line break before it belongs to the delimiter
		// (RFC 2046 §5.1.1), not to this body.
		end -= int64(p.eol)
	}
	if end >= bodyStart {
		part.Size = end - bodyStart
	} else {
		// An empty body right before a delimiter: the blank line that ended the header is
		// also the line break of the delimiter, which wins.
		part.HeaderSize = max(end-part.Offset, 0)
	}
	if part.Type == "text" || part.Envelope != nil {
		part.Lines = p.lines - linesStart
	}
	return part, h
}

// multipart parses the body of a multipart entity: preamble, parts, close delimiter and
// epilogue. A missing close delimiter simply ends the multipart where its input ends.
func (p *parser) multipart(part *Part, depth int, bounds []string, boundary string) {
	inner := append(bounds[:len(bounds):len(bounds)], boundary)
	own := len(inner) - 1
	childType := "text/plain"
	if part.Subtype == "digest" {
		childType = "message/rfc822"
	}

	// The preamble runs up to the first delimiter.
	for {
		b, start, ok := p.next()
		if !ok {
			return
		}
		i, closing := delimiter(b, start, inner)
		if i < 0 {
			continue
		}
		if i != own {
			p.unread(b, start)
			return
		}
		if closing {
			p.skipUntil(bounds)
			return
		}
		break
	}
	for {
		if p.parts >= MaxParts {
			// Too many parts: the rest of this multipart is not described.
			p.skipUntil(bounds)
			return
		}
		child, _ := p.parsePart(depth+1, inner, childType)
		part.Children = append(part.Children, child)

		b, start, ok := p.next()
		if !ok {
			return
		}
		i, closing := delimiter(b, start, inner)
		if i != own {
			p.unread(b, start)
			return
		}
		if closing {
			// The epilogue runs up to the enclosing delimiter or the end.
			p.skipUntil(bounds)
			return
		}
	}
}

// describe fills the MIME header fields of part (RFC 2045, RFC 2183).
func (p *parser) describe(part *Part, h header, defType string) {
	mt, params, err := mime.ParseMediaType(h.get("content-type"))
	if (err != nil && err != mime.ErrInvalidMediaParameter) || !strings.Contains(mt, "/") {
		// RFC 2045 §5.2: a missing or invalid Content-Type means text/plain; us-ascii
		// (or the multipart's default for its parts).
		mt, params = defType, nil
		if defType == "text/plain" {
			params = map[string]string{"charset": "us-ascii"}
		}
	}
	part.Type, part.Subtype, _ = strings.Cut(mt, "/")
	if len(params) > 0 {
		part.Params = params
	}
	part.ID = h.get("content-id")
	part.Description = decodeText(h.get("content-description"))
	part.Encoding = strings.ToLower(h.get("content-transfer-encoding"))
	if part.Encoding == "" {
		part.Encoding = "7bit" // RFC 2045 §6.1
	}
	if d := h.get("content-disposition"); d != "" {
		disp, dparams, err := mime.ParseMediaType(d)
		if err == nil || err == mime.ErrInvalidMediaParameter {
			part.Disposition = disp
			if len(dparams) > 0 {
				part.DispositionParams = dparams
			}
		}
	}
}

// clamp makes the extents of p and its descendants nest: each part inside [lo, hi), each
// child inside its parent's body. Degenerate input (an empty part right before a delimiter)
// can otherwise leave a child's offsets a line break past its parent's end, since that line
// break belongs to the delimiter (RFC 2046 §5.1.1).
func clamp(p *Part, lo, hi int64) {
	p.Offset = min(max(p.Offset, lo), hi)
	p.HeaderSize = min(p.HeaderSize, hi-p.Offset)
	p.Size = min(p.Size, hi-p.Offset-p.HeaderSize)
	for i := range p.Children {
		clamp(&p.Children[i], p.Offset+p.HeaderSize, p.Offset+p.HeaderSize+p.Size)
	}
}
