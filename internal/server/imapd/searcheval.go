package imapd

// SEARCH (RFC 9051 §6.4.4) evaluated message by message over the selected mailbox.
//
// INTERIM: the text keys (BODY, TEXT) scan the stored bodies, and the header keys read each
// message's header, because the full-text index of issue 10 does not exist yet. The scan is
// bounded in memory (a streaming search) but not in time: a mailbox of 100,000 messages
// takes as long as reading them. It matches raw octets, ASCII case-insensitively, so text in
// base64 or quoted-printable parts is not found. The index will replace searchText and
// searchHeader; the rest (flags, dates, sizes, sets) stays as it is.

import (
	"bytes"
	"io"
	"mime"
	"net/mail"
	"slices"
	"strings"
	"time"

	"petrel/internal/store"
)

// searchMsg is one message under evaluation, with what has been loaded of it.
type searchMsg struct {
	seq    uint32
	m      store.Message
	hdr    []byte // the header, read on first need
	hdrErr error
}

func (s *session) cmdSearch(c *Command) (done, error) {
	if err := s.searchPrepare(c); err != nil { // esearch.go
		return done{}, err
	}
	switch c.Charset {
	case "", "UTF-8", "US-ASCII":
	default:
		return done{}, &Error{Kind: NO, Code: "BADCHARSET (UTF-8 US-ASCII)", Text: "Unsupported charset"} // RFC 9051 §6.4.4
	}
	msgs, err := s.messagesIn(nil)
	if err != nil {
		return done{}, err
	}
	sel := s.sel
	maxSeq, maxUID := uint32(len(sel.uids)), uint32(0)
	if maxSeq > 0 {
		maxUID = sel.uids[maxSeq-1]
	}
	var hits []uint32
	var modseqs []uint64 // of each hit, for CONDSTORE's MODSEQ in the result
	for _, m := range msgs {
		sm := &searchMsg{seq: sel.seqOf(m.UID), m: m}
		if sm.seq == 0 {
			continue
		}
		ok, err := s.match(&c.Search, sm, maxSeq, maxUID)
		if err != nil {
			return done{}, err
		}
		if ok {
			if c.UID {
				hits = append(hits, m.UID)
			} else {
				hits = append(hits, sm.seq)
			}
			modseqs = append(modseqs, m.ModSeq)
		}
	}
	s.searchResult(c, hits, modseqs) // esearch.go
	return done{}, nil
}

// day is the calendar day of t in its own zone, as midnight UTC: RFC 9051 §6.4.4 compares
// dates "disregarding time and timezone".
func day(t time.Time) time.Time {
	return time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
}

func hasFlag(m store.Message, f string) bool {
	return slices.ContainsFunc(m.Flags, func(g string) bool { return strings.EqualFold(f, g) })
}

// match evaluates one key against one message.
func (s *session) match(k *SearchKey, sm *searchMsg, maxSeq, maxUID uint32) (bool, error) {
	m := sm.m
	switch k.Op {
	case SearchAnd:
		for i := range k.Keys {
			if ok, err := s.match(&k.Keys[i], sm, maxSeq, maxUID); !ok || err != nil {
				return false, err
			}
		}
		return true, nil
	case SearchOr:
		for i := range k.Keys {
			if ok, err := s.match(&k.Keys[i], sm, maxSeq, maxUID); ok || err != nil {
				return ok, err
			}
		}
		return false, nil
	case SearchNot:
		ok, err := s.match(&k.Keys[0], sm, maxSeq, maxUID)
		return !ok, err
	case SearchSeqSet:
		return k.Seq.Contains(sm.seq, maxSeq), nil
	case SearchUID:
		return k.Seq.Contains(m.UID, maxUID), nil
	case "MODSEQ":
		return m.ModSeq >= k.ModSeq, nil // RFC 7162 §3.1.5
	case "ALL", "OLD":
		return true, nil // OLD: not \Recent, and nothing is (store package)
	case "NEW", "RECENT":
		return false, nil
	case "ANSWERED", "DELETED", "DRAFT", "FLAGGED", "SEEN":
		return hasFlag(m, `\`+string(k.Op)), nil
	case "UNANSWERED", "UNDELETED", "UNDRAFT", "UNFLAGGED", "UNSEEN":
		return !hasFlag(m, `\`+string(k.Op[2:])), nil
	case "KEYWORD":
		return hasFlag(m, k.Text), nil
	case "UNKEYWORD":
		return !hasFlag(m, k.Text), nil
	case "LARGER":
		return m.Size > k.Size, nil
	case "SMALLER":
		return m.Size < k.Size, nil
	case "BEFORE":
		return day(m.InternalDate).Before(k.Date), nil
	case "ON":
		return day(m.InternalDate).Equal(k.Date), nil
	case "SINCE":
		return !day(m.InternalDate).Before(k.Date), nil
	case "SENTBEFORE", "SENTON", "SENTSINCE":
		hdr, err := s.searchHeaderBytes(sm)
		if err != nil {
			return false, err
		}
		vals := headerValues(hdr, "Date")
		if len(vals) == 0 {
			return false, nil
		}
		t, err := mail.ParseDate(vals[0])
		if err != nil {
			return false, nil
		}
		d := day(t)
		switch k.Op {
		case "SENTBEFORE":
			return d.Before(k.Date), nil
		case "SENTON":
			return d.Equal(k.Date), nil
		}
		return !d.Before(k.Date), nil
	case "FROM", "TO", "CC", "BCC", "SUBJECT", "HEADER":
		field := string(k.Op)
		if k.Op == "HEADER" {
			field = k.Field
		}
		hdr, err := s.searchHeaderBytes(sm)
		if err != nil {
			return false, err
		}
		needle := strings.ToLower(k.Text)
		for _, v := range headerValues(hdr, field) {
			if dec, err := headerDecoder.DecodeHeader(v); err == nil {
				v = dec
			}
			if strings.Contains(strings.ToLower(v), needle) {
				return true, nil
			}
		}
		return false, nil
	case "BODY", "TEXT":
		return s.searchBody(sm, k.Text, k.Op == "TEXT")
	}
	return false, badf("Unsupported search key " + string(k.Op))
}

var headerDecoder = &mime.WordDecoder{}

// searchHeaderBytes returns the message's header, read once (INTERIM, see the file comment).
func (s *session) searchHeaderBytes(sm *searchMsg) ([]byte, error) {
	if sm.hdr != nil || sm.hdrErr != nil {
		return sm.hdr, sm.hdrErr
	}
	rc, err := s.srv.store.OpenBlob(s.ctx, sm.m.BlobID)
	if err != nil {
		sm.hdrErr = err
		return nil, err
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, min(sm.m.Size, maxHeaderRead)))
	if err != nil {
		sm.hdrErr = err
		return nil, err
	}
	if i := bytes.Index(b, []byte("\r\n\r\n")); i >= 0 {
		b = b[:i+2]
	} else if i := bytes.Index(b, []byte("\n\n")); i >= 0 {
		b = b[:i+1]
	}
	sm.hdr = b
	return b, nil
}

// headerValues returns the unfolded values of the fields named name.
func headerValues(hdr []byte, name string) []string {
	var vals []string
	lines := bytes.SplitAfter(hdr, []byte("\n"))
	for i := 0; i < len(lines); i++ {
		line := lines[i]
		k, v, ok := bytes.Cut(line, []byte(":"))
		if !ok || len(line) == 0 || line[0] == ' ' || line[0] == '\t' || !strings.EqualFold(string(bytes.TrimRight(k, " \t")), name) {
			continue
		}
		val := strings.TrimSpace(string(v))
		for i+1 < len(lines) && len(lines[i+1]) > 0 && (lines[i+1][0] == ' ' || lines[i+1][0] == '\t') {
			i++
			val += " " + strings.TrimSpace(string(lines[i]))
		}
		vals = append(vals, val)
	}
	return vals
}

// searchBody looks for text in the body (or with all, the whole message) by streaming the
// stored octets (INTERIM, see the file comment).
func (s *session) searchBody(sm *searchMsg, text string, all bool) (bool, error) {
	if text == "" {
		return true, nil
	}
	rc, err := s.srv.store.OpenBlob(s.ctx, sm.m.BlobID)
	if err != nil {
		return false, err
	}
	defer rc.Close()
	if !all {
		hdr, err := s.searchHeaderBytes(sm)
		if err != nil {
			return false, err
		}
		if _, err := io.CopyN(io.Discard, rc, int64(len(hdr))+2); err != nil && err != io.EOF {
			return false, err
		}
	}
	return containsFold(rc, []byte(text))
}

// containsFold reports whether r holds needle, ASCII letters compared without case, reading
// r in chunks and keeping len(needle)-1 octets of overlap.
func containsFold(r io.Reader, needle []byte) (bool, error) {
	needle = lowerASCII(bytes.Clone(needle))
	buf := make([]byte, 32<<10+len(needle))
	keep := 0
	for {
		n, err := r.Read(buf[keep:])
		if n > 0 {
			window := lowerASCII(buf[:keep+n])
			if bytes.Contains(window, needle) {
				return true, nil
			}
			keep = min(len(needle)-1, len(window))
			copy(buf, window[len(window)-keep:])
		}
		if err == io.EOF {
			return false, nil
		}
		if err != nil {
			return false, err
		}
	}
}

func lowerASCII(b []byte) []byte {
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return b
}
