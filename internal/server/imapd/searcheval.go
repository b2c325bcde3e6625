package imapd

// SEARCH (RFC 9051 §6.4.4) evaluated message by message over the selected mailbox.
//
// The text keys (TEXT, BODY, SUBJECT, FROM, TO, CC, BCC) are answered by the store's
// full-text index (store.Index, which documents what matches: word prefixes, without case
// or diacritics, in the decoded text), one query per key before the evaluation; a message
// then matches such a key when its UID is among the hits, so the keys combine with every
// other key, NOT, OR and nesting as before. When the program is an AND with text keys at
// its top level, only their common hits are listed and evaluated, so "SEARCH TEXT word"
// in a large mailbox costs what the index finds, not the mailbox's size. HEADER and the
// SENT* dates read each candidate's header; flags, dates, sizes and sets come from the
// message rows.

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
	text   textHits // the index's answers to the program's text keys
}

// textFields are the search keys the full-text index answers.
var textFields = map[SearchOp]store.SearchField{
	"TEXT": store.FieldText, "BODY": store.FieldBody, "SUBJECT": store.FieldSubject,
	"FROM": store.FieldFrom, "TO": store.FieldTo, "CC": store.FieldCc, "BCC": store.FieldBcc,
}

// textHits holds, for each text key of a program, the UIDs the index found, ascending.
type textHits map[*SearchKey][]uint32

// searchIndex asks the index about every text key of k.
func (s *session) searchIndex(k *SearchKey, hits textHits) error {
	if f, ok := textFields[k.Op]; ok {
		uids, err := s.srv.store.Search(s.ctx, s.sel.mb.ID, f, k.Text)
		if err != nil {
			return err
		}
		hits[k] = uids
	}
	for i := range k.Keys {
		if err := s.searchIndex(&k.Keys[i], hits); err != nil {
			return err
		}
	}
	return nil
}

// candidates returns the UIDs a program can match at all, ascending: the common hits of
// the text keys at its top level (all of them must match). restricted is false when there
// is no such key and every message may match.
func candidates(k *SearchKey, hits textHits) (common []uint32, restricted bool) {
	top := []*SearchKey{k}
	if k.Op == SearchAnd {
		top = top[:0]
		for i := range k.Keys {
			top = append(top, &k.Keys[i])
		}
	}
	for _, key := range top {
		h, ok := hits[key]
		switch {
		case !ok:
		case !restricted:
			common, restricted = h, true
		default:
			common = intersect(common, h)
		}
	}
	return common, restricted
}

// uidRanges turns ascending UIDs into ranges.
func uidRanges(uids []uint32) []store.UIDRange {
	var ranges []store.UIDRange
	for _, u := range uids {
		if n := len(ranges); n > 0 && ranges[n-1].Last+1 == u {
			ranges[n-1].Last = u
		} else {
			ranges = append(ranges, store.UIDRange{First: u, Last: u})
		}
	}
	return ranges
}

// needsRows reports whether evaluating k needs the messages' rows (flags, dates, sizes,
// headers) rather than their UIDs and the index's answers alone.
func needsRows(k *SearchKey) bool {
	switch k.Op {
	case SearchAnd, SearchOr, SearchNot:
		return slices.ContainsFunc(k.Keys, func(k SearchKey) bool { return needsRows(&k) })
	case SearchSeqSet, SearchUID, "ALL", "OLD", "NEW", "RECENT":
		return false
	}
	_, text := textFields[k.Op]
	return !text
}

// systemFlagKey reports whether k is one key on a system flag (SEEN, UNSEEN, FLAGGED...,
// alone or as an AND of one key), and which flag it wants present or absent.
func systemFlagKey(k *SearchKey) (flag string, has, ok bool) {
	for k.Op == SearchAnd && len(k.Keys) == 1 {
		k = &k.Keys[0]
	}
	switch k.Op {
	case "ANSWERED", "DELETED", "DRAFT", "FLAGGED", "SEEN":
		return `\` + string(k.Op), true, true
	case "UNANSWERED", "UNDELETED", "UNDRAFT", "UNFLAGGED", "UNSEEN":
		return `\` + string(k.Op[2:]), false, true
	}
	return "", false, false
}

// onlyText reports whether k is a text key or an AND of text keys only: then the common
// hits of candidates are exactly the messages it matches.
func onlyText(k *SearchKey) bool {
	if k.Op != SearchAnd {
		_, ok := textFields[k.Op]
		return ok
	}
	for i := range k.Keys {
		if _, ok := textFields[k.Keys[i].Op]; !ok {
			return false
		}
	}
	return len(k.Keys) > 0
}

// intersect returns the UIDs in both ascending lists.
func intersect(a, b []uint32) []uint32 {
	var out []uint32
	for i, j := 0, 0; i < len(a) && j < len(b); {
		switch {
		case a[i] < b[j]:
			i++
		case a[i] > b[j]:
			j++
		default:
			out = append(out, a[i])
			i, j = i+1, j+1
		}
	}
	return out
}

func (s *session) cmdSearch(c *Command) (done, error) {
	if err := s.searchPrepare(c); err != nil { // esearch.go
		return done{}, err
	}
	hits, modseqs, err := s.searchMatches(c)
	if err != nil {
		return done{}, err
	}
	if !c.UID {
		for i, u := range hits {
			hits[i] = s.sel.seqOf(u) // ascending UIDs have ascending numbers
		}
	}
	s.searchResult(c, hits, modseqs) // esearch.go
	return done{}, nil
}

// checkCharset refuses a search charset other than UTF-8 and its subset US-ASCII ("": none
// given), the two every server must know (RFC 9051 §6.4.4, RFC 5256 §3).
func checkCharset(cs string) error {
	switch cs {
	case "", "UTF-8", "US-ASCII":
		return nil
	}
	return &Error{Kind: NO, Code: "BADCHARSET (UTF-8 US-ASCII)", Text: "Unsupported charset"}
}

// searchMatches evaluates c's search program (SEARCH, and SORT and THREAD, which search
// first) over the messages this session numbers, and returns the UIDs that match,
// ascending, with the MODSEQ of each.
func (s *session) searchMatches(c *Command) (hits []uint32, modseqs []uint64, err error) {
	if err := checkCharset(c.Charset); err != nil {
		return nil, nil, err
	}
	text := textHits{}
	if err := s.searchIndex(&c.Search, text); err != nil {
		return nil, nil, s.storeError(err)
	}
	sel := s.sel
	maxSeq, maxUID := uint32(len(sel.uids)), uint32(0)
	if maxSeq > 0 {
		maxUID = sel.uids[maxSeq-1]
	}
	eval := func(m store.Message) error {
		sm := &searchMsg{seq: sel.seqOf(m.UID), m: m, text: text}
		if sm.seq == 0 {
			return nil
		}
		ok, err := s.match(&c.Search, sm, maxSeq, maxUID)
		if ok {
			hits, modseqs = append(hits, m.UID), append(modseqs, m.ModSeq)
		}
		return err
	}
	common, restricted := candidates(&c.Search, text)
	if flag, has, ok := systemFlagKey(&c.Search); ok && s.flagSearch() != nil {
		// One system flag (UNSEEN, FLAGGED, DELETED...): the store lists the UIDs, and no
		// message row is read. No MODSEQ key, so the MODSEQs are not used (esearch.go).
		uids, err := s.flagSearch().UIDsByFlag(s.ctx, sel.mb.ID, nil, flag, has)
		if err != nil {
			return nil, nil, err
		}
		for _, u := range uids {
			if sel.seqOf(u) != 0 {
				hits, modseqs = append(hits, u), append(modseqs, 0)
			}
		}
	} else if restricted && onlyText(&c.Search) {
		// Every candidate matches: keep those in the session's view in one walk along its
		// UIDs instead of an evaluation per hit (a common word has tens of thousands).
		j := 0
		for _, u := range common {
			for j < len(sel.uids) && sel.uids[j] < u {
				j++
			}
			if j == len(sel.uids) {
				break
			}
			if sel.uids[j] != u {
				continue // not in this session's view yet
			}
			hits = append(hits, u)       // UIDs: the caller numbers them
			modseqs = append(modseqs, 0) // as eval does without message rows
		}
	} else if !needsRows(&c.Search) {
		// Text keys, sets and logic only: the UIDs are all there is to look at, and no
		// message row is read (SEARCH TEXT of a common word in a large mailbox).
		uids := sel.uids
		if restricted {
			uids = common
		}
		for _, u := range uids {
			if err := eval(store.Message{UID: u}); err != nil {
				return nil, nil, err
			}
		}
	} else if !restricted || len(common) > 0 {
		var ranges []store.UIDRange // nil: every message
		if restricted {
			ranges = uidRanges(common)
		}
		msgs, err := s.messagesIn(ranges)
		if err != nil {
			return nil, nil, err
		}
		for _, m := range msgs {
			if err := eval(m); err != nil {
				return nil, nil, err
			}
		}
	}
	return hits, modseqs, nil
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
	case "TEXT", "BODY", "SUBJECT", "FROM", "TO", "CC", "BCC":
		_, found := slices.BinarySearch(sm.text[k], m.UID)
		return found, nil
	case "HEADER":
		field := k.Field
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
	}
	return false, badf("Unsupported search key " + string(k.Op))
}

var headerDecoder = &mime.WordDecoder{}

// searchHeaderBytes returns the message's header, read once.
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
