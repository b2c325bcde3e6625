package imapd

// QRESYNC (RFC 7162 §3.2) on the session side: SELECT (QRESYNC ...), UID FETCH ...
// (CHANGEDSINCE n VANISHED), and VANISHED in place of EXPUNGE once enabled. The store keeps
// a tombstone for every expunged UID for as long as its mailbox lives (store package), so
// the answers are exact: the seq-match data a client sends is never needed.

import (
	"math"
	"slices"

	"petrel/internal/store"
)

// selectSync handles the CONDSTORE and QRESYNC parts of SELECT/EXAMINE before the mailbox
// changes.
func (s *session) selectSync(c *Command) error {
	if c.QResync != nil && !s.ext.qresync {
		return badf("QRESYNC is not enabled") // RFC 7162 §3.2.5
	}
	if c.SelectCondStore {
		s.ext.condstore = true // RFC 7162 §3.1.8
	}
	if s.sel != nil && (s.ext.qresync || s.ext.rev2) {
		// RFC 7162 §3.2.11, RFC 9051 §6.3.2: the client learns where the old mailbox's
		// responses end.
		s.out().status("*", "OK", "CLOSED", "Previous mailbox closed")
	}
	return nil
}

// selectQResync sends, after SELECT's other responses, what changed since the state the
// client knew (RFC 7162 §3.2.5.2): the known UIDs expunged since its MODSEQ as VANISHED
// (EARLIER), and the messages changed or added since as FETCH (UID FLAGS MODSEQ). A
// UIDVALIDITY other than the mailbox's means the client must start over, and gets nothing.
func (s *session) selectQResync(c *Command, msgs []store.Message) error {
	q := c.QResync
	if q == nil || q.UIDValidity != s.sel.mb.UIDValidity {
		return nil
	}
	var known []store.UIDRange
	for _, r := range q.KnownUIDs.Ranges {
		lo, hi := r.Bounds(math.MaxUint32)
		known = append(known, store.UIDRange{First: lo, Last: hi})
	}
	if err := s.writeVanishedSince(known, q.ModSeq); err != nil {
		return err
	}
	for i, m := range msgs {
		if m.ModSeq > q.ModSeq {
			s.writeFlagsFetch(uint32(i+1), m)
		}
	}
	return nil
}

// vanishedEarlier answers UID FETCH's VANISHED modifier: the UIDs of the set expunged
// since the CHANGEDSINCE MODSEQ, before the FETCH responses (RFC 7162 §3.2.6).
func (s *session) vanishedEarlier(ranges []store.UIDRange, since uint64) error {
	return s.writeVanishedSince(ranges, since)
}

// writeVanishedSince writes "* VANISHED (EARLIER) uids" for the tombstones in the ranges
// (all for none) newer than since, if there are any.
func (s *session) writeVanishedSince(ranges []store.UIDRange, since uint64) error {
	gone, err := s.srv.store.Vanished(s.ctx, s.sel.mb.ID, store.Filter{UIDs: ranges, ChangedSince: since})
	if err != nil || len(gone) == 0 {
		return err
	}
	w := s.out()
	w.str("* VANISHED (EARLIER) ")
	w.str(uidSet(gone))
	w.crlf()
	return nil
}

// announceVanished is announceExpunged under QRESYNC: one "* VANISHED uids" for the
// messages still numbered (RFC 7162 §3.2.10), which the client removes without renumbering
// them one by one.
func (s *session) announceVanished(uids []uint32) {
	sel := s.sel
	gone := make(map[uint32]bool, len(uids))
	for _, uid := range uids {
		gone[uid] = true
	}
	// One pass over each list, so that expunging 100,000 messages stays linear.
	var vanished []uint32
	sel.uids = slices.DeleteFunc(sel.uids, func(u uint32) bool {
		if gone[u] {
			vanished = append(vanished, u)
			return true
		}
		return false
	})
	sel.expunged = slices.DeleteFunc(sel.expunged, func(u uint32) bool { return gone[u] })
	if len(vanished) == 0 {
		return
	}
	w := s.out()
	w.str("* VANISHED ")
	w.str(uidSet(vanished)) // ascending, as sel.uids is
	w.crlf()
}
