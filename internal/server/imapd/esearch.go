package imapd

// SEARCH results: the plain "* SEARCH" response, ESEARCH's RETURN options (RFC 4731: MIN,
// MAX, ALL, COUNT), SEARCHRES's SAVE and "$" (RFC 5182), and CONDSTORE's MODSEQ in both
// (RFC 7162 §3.1.5). searcheval.go finds the messages; this file says what goes back.

import (
	"math"
	"slices"

	"petrel/internal/store"
)

// searchPrepare checks SEARCH's RETURN options and replaces "$" in its keys with the saved
// result. With SAVE the saved result is emptied at once: a SEARCH that then fails leaves it
// empty (RFC 5182 §2.1), and one that succeeds sets it in searchResult.
func (s *session) searchPrepare(c *Command) error {
	for _, o := range c.SearchReturn {
		switch o {
		case "MIN", "MAX", "ALL", "COUNT", "SAVE":
		default:
			return badf("Unknown SEARCH RETURN option " + o)
		}
	}
	s.resolveSearchRes(&c.Search)
	if usesModSeq(c.Search) {
		s.ext.condstore = true // RFC 7162 §3.1
	}
	if slices.Contains(c.SearchReturn, "SAVE") {
		s.sel.saved = nil
	}
	return nil
}

// resolveSearchRes turns each "$" of a search program into the UIDs it stands for.
func (s *session) resolveSearchRes(k *SearchKey) {
	if (k.Op == SearchSeqSet || k.Op == SearchUID) && k.Seq.SearchRes {
		k.Op, k.Seq = SearchUID, s.savedSet()
	}
	for i := range k.Keys {
		s.resolveSearchRes(&k.Keys[i])
	}
}

// savedSet is the saved search result as a UID set; it matches nothing when empty. Messages
// expunged since leave it (RFC 5182 §2.1) because only numbered UIDs are kept.
func (s *session) savedSet() SeqSet {
	var set SeqSet
	for _, r := range s.savedRanges() {
		set.Ranges = append(set.Ranges, SeqRange{Start: r.First, Stop: r.Last})
	}
	if len(set.Ranges) == 0 {
		// UID 4294967295 is never given (UIDNEXT would overflow): the empty result.
		set.Ranges = []SeqRange{{Start: math.MaxUint32, Stop: math.MaxUint32}}
	}
	return set
}

// savedRanges is the saved search result as merged UID ranges, of messages still numbered.
func (s *session) savedRanges() []store.UIDRange {
	var rs []store.UIDRange
	for _, uid := range s.sel.saved {
		if s.sel.seqOf(uid) == 0 {
			continue
		}
		if n := len(rs); n > 0 && rs[n-1].Last+1 == uid {
			rs[n-1].Last = uid
			continue
		}
		rs = append(rs, store.UIDRange{First: uid, Last: uid})
	}
	return rs
}

func usesModSeq(k SearchKey) bool {
	return k.Op == "MODSEQ" || slices.ContainsFunc(k.Keys, usesModSeq)
}

// searchResult answers a SEARCH that found hits (message numbers, or UIDs for UID SEARCH,
// ascending) whose MODSEQs are modseqs, or a SORT with its hits in the sort order (RFC
// 5256 §4.1 SORT; RFC 5267 §3.2 ESORT, whose MIN and MAX are the first and last in that
// order, and ALL lists them in it).
func (s *session) searchResult(c *Command, hits []uint32, modseqs []uint64) {
	w := s.out()
	withModSeq := usesModSeq(c.Search)
	opts := c.SearchReturn
	if opts == nil && s.ext.rev2 && c.Name == "SEARCH" {
		opts = []string{} // RFC 9051 §6.4.4: IMAP4rev2 answers SEARCH with ESEARCH
	}
	if opts == nil {
		w.str("* ")
		w.str(c.Name) // SEARCH or SORT

		for _, h := range hits {
			w.sp()
			w.num(h)
		}
		if withModSeq && len(hits) > 0 {
			w.str(" (MODSEQ ")
			w.num64u(slices.Max(modseqs))
			w.byte(')')
		}
		w.crlf()
		return
	}
	if len(opts) == 0 {
		opts = []string{"ALL"} // RFC 4731 §3.1: RETURN () is RETURN (ALL)
	}
	has := func(o string) bool { return slices.Contains(opts, o) }
	// What is returned, and with SAVE saved: with MIN or MAX alone, only those messages
	// (RFC 5182 §2.4).
	picked := hits
	pickedMods := modseqs
	if (has("MIN") || has("MAX")) && !has("ALL") && !has("COUNT") && len(hits) > 0 {
		picked, pickedMods = nil, nil
		if has("MIN") {
			picked, pickedMods = append(picked, hits[0]), append(pickedMods, modseqs[0])
		}
		if has("MAX") && (len(picked) == 0 || hits[len(hits)-1] != picked[0]) {
			picked, pickedMods = append(picked, hits[len(hits)-1]), append(pickedMods, modseqs[len(hits)-1])
		}
	}
	if has("SAVE") {
		s.sel.saved = make([]uint32, 0, len(picked))
		for _, h := range picked {
			if !c.UID {
				h = s.sel.uids[h-1]
			}
			s.sel.saved = append(s.sel.saved, h)
		}
		slices.Sort(s.sel.saved) // a SORT's hits come in its order; "$" is a set
		if len(opts) == 1 {
			return // RFC 5182 §2.4: SAVE alone answers nothing but the tagged OK
		}
	}
	w.str("* ESEARCH (TAG ")
	w.string(c.Tag)
	w.byte(')')
	if c.UID {
		w.str(" UID")
	}
	if len(hits) > 0 {
		if has("MIN") {
			w.str(" MIN ")
			w.num(hits[0])
		}
		if has("MAX") {
			w.str(" MAX ")
			w.num(hits[len(hits)-1])
		}
		if has("ALL") {
			w.str(" ALL ")
			w.str(uidSet(hits))
		}
	}
	if has("COUNT") {
		w.str(" COUNT ")
		w.num(uint32(len(hits)))
	}
	if withModSeq && len(pickedMods) > 0 {
		w.str(" MODSEQ ")
		w.num64u(slices.Max(pickedMods))
	}
	w.crlf()
}

// savedUIDs is the saved search result, of messages still numbered.
func (s *session) savedUIDs() []uint32 {
	return slices.DeleteFunc(slices.Clone(s.sel.saved), func(u uint32) bool { return s.sel.seqOf(u) == 0 })
}
