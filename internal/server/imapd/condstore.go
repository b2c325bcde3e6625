package imapd

// CONDSTORE (RFC 7162 §3.1) on the session side: MODSEQ in FETCH, CHANGEDSINCE, STORE
// UNCHANGEDSINCE with MODIFIED, HIGHESTMODSEQ. The store keeps a MODSEQ per message and per
// mailbox and never loses one, so NOMODSEQ (§3.1.2.2) is never sent.

import (
	"slices"
	"strconv"

	"petrel/internal/store"
)

// modSeq writes the FETCH item "MODSEQ (n)".
func (w *respWriter) modSeq(n uint64) {
	w.str("MODSEQ (")
	w.bw.Write(strconv.AppendUint(w.scratch[:0], n, 10))
	w.byte(')')
}

// num64u writes an unsigned 64-bit number (mod-sequence values).
func (w *respWriter) num64u(n uint64) { w.bw.Write(strconv.AppendUint(w.scratch[:0], n, 10)) }

// fetchSync checks FETCH's CONDSTORE/QRESYNC modifiers, turns CONDSTORE on if the command
// enables it (RFC 7162 §3.1), and returns the items with MODSEQ added when CHANGEDSINCE
// asks for it (§3.1.4.1).
func (s *session) fetchSync(c *Command) ([]FetchAtt, error) {
	atts := c.Fetch
	hasModSeq := slices.ContainsFunc(atts, func(a FetchAtt) bool { return a.Name == "MODSEQ" })
	if c.Vanished && (!c.UID || !s.ext.qresync || !c.HasChangedSince) {
		// RFC 7162 §3.2.6: VANISHED needs UID FETCH, QRESYNC enabled and CHANGEDSINCE.
		return nil, badf("VANISHED needs UID FETCH with CHANGEDSINCE, and QRESYNC enabled")
	}
	if hasModSeq || c.HasChangedSince {
		s.ext.condstore = true
	}
	if c.HasChangedSince && !hasModSeq {
		atts = append(slices.Clip(atts), FetchAtt{Name: "MODSEQ"})
	}
	return atts, nil
}

// storeSync runs a STORE's SetFlags with its UNCHANGEDSINCE condition, and returns the
// result and the MODIFIED response code for the messages the condition refused (RFC 7162
// §3.1.3): message numbers, or UIDs for UID STORE.
func (s *session) storeSync(c *Command, uids []uint32, fc store.FlagChange) (store.FlagsUpdated, string, error) {
	if c.HasUnchangedSince {
		s.ext.condstore = true
		fc.Conditional, fc.UnchangedSince = true, c.UnchangedSince
	}
	res, err := s.srv.store.SetFlags(s.ctx, s.sel.mb.ID, uids, fc)
	if err != nil || len(res.Failed) == 0 {
		return res, "", err
	}
	failed := res.Failed
	if !c.UID {
		failed = make([]uint32, 0, len(res.Failed))
		for _, uid := range res.Failed {
			if n := s.sel.seqOf(uid); n != 0 {
				failed = append(failed, n)
			}
		}
	}
	return res, "MODIFIED " + uidSet(failed), nil
}

// storeSilentSync answers a STORE .SILENT under CONDSTORE: each changed message still gets
// a FETCH with its new MODSEQ, without FLAGS (RFC 7162 §3.1.3).
func (s *session) storeSilentSync(res store.FlagsUpdated) {
	if !s.ext.condstore {
		return
	}
	w := s.out()
	for _, ch := range res.Changed {
		n := s.sel.seqOf(ch.UID)
		if n == 0 {
			continue
		}
		w.str("* ")
		w.num(n)
		w.str(" FETCH (UID ")
		w.num(ch.UID)
		w.sp()
		w.modSeq(res.ModSeq)
		w.str(")\r\n")
	}
}

// writeHighestModSeq writes SELECT's HIGHESTMODSEQ response (RFC 7162 §3.1.2.1), which a
// server with persistent mod-sequences sends with every SELECT and EXAMINE.
func (s *session) writeHighestModSeq(mb store.Mailbox) {
	w := s.out()
	w.str("* OK [HIGHESTMODSEQ ")
	w.num64u(mb.HighestModSeq)
	w.str("] Highest\r\n")
}
