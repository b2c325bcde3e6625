package imapd

// The selected mailbox and its message sequence numbers.
//
// A session numbers the messages of its selected mailbox itself (RFC 9051 §2.3.1.2): uids
// holds the UID of message n at n-1, and only this session's EXISTS and EXPUNGE responses
// change it. What other sessions (and SMTP delivery, POP3, this session's own APPEND or
// COPY into the mailbox) changed is read from the store by MODSEQ at the end of each command
// (poll): the mailbox's HighestModSeq says whether anything changed, Messages and Vanished
// with ChangedSince say what. The idea is go-imap's imapserver/tracker.go and mox's
// per-session view; the store's MODSEQ makes it a query instead of a queue of events.

import (
	"errors"
	"math"
	"slices"

	"petrel/internal/store"
)

// selected is the state of the selected mailbox.
type selected struct {
	mb       store.Mailbox // as of the last poll
	readOnly bool          // EXAMINE (RFC 9051 §6.3.3)
	uids     []uint32      // message sequence number n is uids[n-1]; ascending
	modseq   uint64        // the mailbox's HighestModSeq as of the last poll

	// own holds the MODSEQs of this session's flag changes, already reported (or, with
	// .SILENT, not wanted: RFC 9051 §6.4.6), so that poll does not report them again.
	own map[uint64]bool
	// expunged holds UIDs gone from the store whose EXPUNGE has not been sent yet, because
	// the command running was FETCH, STORE or SEARCH (RFC 9051 §7.5.1).
	expunged []uint32
	// saved is the result of the last SEARCH RETURN (SAVE), as UIDs ascending (RFC 5182
	// SEARCHRES "$"); a new SELECT starts empty.
	saved []uint32
}

// seqOf returns the message sequence number of uid, or 0.
func (sel *selected) seqOf(uid uint32) uint32 {
	i, ok := slices.BinarySearch(sel.uids, uid)
	if !ok {
		return 0
	}
	return uint32(i + 1)
}

// poll announces what changed in the selected mailbox since the last poll: EXPUNGE (if
// allowed), EXISTS, and FETCH FLAGS of messages whose flags someone else changed.
func (s *session) poll(allowExpunge bool) error {
	sel := s.sel
	mb, err := s.srv.store.MailboxByID(s.ctx, sel.mb.ID)
	if errors.Is(err, store.ErrNotFound) {
		return errMailboxGone
	}
	if err != nil {
		return err
	}
	w := s.out()
	if mb.HighestModSeq != sel.modseq {
		f := store.Filter{ChangedSince: sel.modseq}
		vanished, err := s.srv.store.Vanished(s.ctx, mb.ID, f)
		if err != nil {
			return err
		}
		changed, err := s.srv.store.Messages(s.ctx, mb.ID, f)
		if err != nil {
			return err
		}
		for _, uid := range vanished {
			if sel.seqOf(uid) != 0 && !slices.Contains(sel.expunged, uid) {
				sel.expunged = append(sel.expunged, uid)
			}
		}
		last := uint32(0)
		if len(sel.uids) > 0 {
			last = sel.uids[len(sel.uids)-1]
		}
		var added []uint32
		for _, m := range changed {
			switch {
			case m.UID > last:
				sel.uids = append(sel.uids, m.UID)
				last = m.UID
				added = append(added, m.UID)
			case sel.own[m.ModSeq]:
			default:
				if n := sel.seqOf(m.UID); n != 0 && !slices.Contains(sel.expunged, m.UID) {
					s.writeFlagsFetch(n, m)
				}
			}
		}
		sel.mb, sel.modseq = mb, mb.HighestModSeq
		clear(sel.own)
		if len(added) > 0 {
			// EXISTS counts messages still pending EXPUNGE: they keep their numbers until
			// it is sent.
			w.str("* ")
			w.num(uint32(len(sel.uids)))
			w.str(" EXISTS\r\n")
			if err := s.notifyFetch(added); err != nil { // NOTIFY MessageNew (notify.go)
				return err
			}
		}
	}
	if allowExpunge && len(sel.expunged) > 0 {
		s.announceExpunged(slices.Clone(sel.expunged)) // it removes them from sel.expunged
	}
	return nil
}

// announceExpunged sends EXPUNGE for each UID still numbered and drops it from the map.
// Going from the highest number down means no number needs adjusting on the client's side
// while it reads them (RFC 9051 §7.5.1: each EXPUNGE renumbers the messages after it).
func (s *session) announceExpunged(uids []uint32) {
	if s.ext.qresync {
		s.announceVanished(uids)
		return
	}
	sel := s.sel
	w := s.out()
	seqs := make([]uint32, 0, len(uids))
	gone := make(map[uint32]bool, len(uids))
	for _, uid := range uids {
		gone[uid] = true
		if n := sel.seqOf(uid); n != 0 {
			seqs = append(seqs, n)
		}
	}
	slices.Sort(seqs)
	seqs = slices.Compact(seqs)
	for i := len(seqs) - 1; i >= 0; i-- {
		w.str("* ")
		w.num(seqs[i])
		w.str(" EXPUNGE\r\n")
	}
	// One pass over each list, so that expunging 100,000 messages stays linear.
	sel.uids = slices.DeleteFunc(sel.uids, func(u uint32) bool { return gone[u] })
	sel.expunged = slices.DeleteFunc(sel.expunged, func(u uint32) bool { return gone[u] })
}

// writeFlagsFetch writes an unsolicited "* n FETCH (UID u FLAGS (...))".
func (s *session) writeFlagsFetch(n uint32, m store.Message) {
	w := s.out()
	w.str("* ")
	w.num(n)
	w.str(" FETCH (UID ")
	w.num(m.UID)
	w.str(" FLAGS ")
	w.flags(m.Flags)
	if s.ext.condstore { // RFC 7162 §3.1
		w.sp()
		w.modSeq(m.ModSeq)
	}
	w.str(")\r\n")
}

// uidsOf resolves a sequence set of the command (message numbers, or UIDs for the UID
// commands) to UIDs of messages this session has numbered, ascending. UIDs the client names
// that the session does not know are left out (RFC 9051 §6.4.8: a UID range may name none).
func (s *session) uidsOf(set SeqSet, uid bool) ([]uint32, error) {
	sel := s.sel
	if set.SearchRes {
		return s.savedUIDs(), nil
	}
	n := uint32(len(sel.uids))
	var out []uint32
	if !uid {
		for _, r := range set.Ranges {
			if n == 0 {
				// RFC 9051 §6.4.5 via the errata: "*" in an empty mailbox names nothing, and
				// a number does not exist.
				return nil, badf("No messages")
			}
			lo, hi := r.Bounds(n)
			if hi > n || lo == 0 {
				return nil, badf("Invalid message sequence number") // RFC 9051 §9 seq-number
			}
			out = append(out, sel.uids[lo-1:hi]...)
		}
	} else {
		max := uint32(0)
		if n > 0 {
			max = sel.uids[n-1]
		}
		for _, r := range set.Ranges {
			lo, hi := r.Bounds(max)
			i, _ := slices.BinarySearch(sel.uids, lo)
			for ; i < len(sel.uids) && sel.uids[i] <= hi; i++ {
				out = append(out, sel.uids[i])
			}
		}
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

// rangesOf turns a sequence set into UID ranges for a store Filter, without listing every
// UID: a range of message numbers is the range of UIDs between its ends' UIDs, since the
// session numbers messages in UID order. There are at most Limits.MaxSeqRanges ranges, so a
// query stays small however sparse the mailbox. The result may cover messages the session
// has not numbered yet (new arrivals): callers skip those (seqOf is 0).
func (s *session) rangesOf(set SeqSet, uid bool) ([]store.UIDRange, error) {
	sel := s.sel
	if set.SearchRes {
		if rs := s.savedRanges(); len(rs) > 0 {
			return rs, nil
		}
		// No ranges would select every UID: this one selects none (UIDs stop below it).
		return []store.UIDRange{{First: math.MaxUint32, Last: math.MaxUint32}}, nil
	}
	n := uint32(len(sel.uids))
	var rs []store.UIDRange
	for _, r := range set.Ranges {
		if uid {
			max := uint32(0)
			if n > 0 {
				max = sel.uids[n-1]
			}
			lo, hi := r.Bounds(max)
			rs = append(rs, store.UIDRange{First: lo, Last: hi})
			continue
		}
		if n == 0 {
			return nil, badf("No messages")
		}
		lo, hi := r.Bounds(n)
		if hi > n || lo == 0 {
			return nil, badf("Invalid message sequence number")
		}
		rs = append(rs, store.UIDRange{First: sel.uids[lo-1], Last: sel.uids[hi-1]})
	}
	return store.MergeUIDRanges(rs), nil
}

// messagesIn returns the stored messages in the ranges (all for nil) that this session has
// numbered, in UID order.
func (s *session) messagesIn(ranges []store.UIDRange) ([]store.Message, error) {
	return s.messagesChanged(ranges, 0)
}

// messagesChanged is messagesIn with only the messages changed after a MODSEQ (0: all).
func (s *session) messagesChanged(ranges []store.UIDRange, since uint64) ([]store.Message, error) {
	msgs, err := s.srv.store.Messages(s.ctx, s.sel.mb.ID, store.Filter{UIDs: ranges, ChangedSince: since})
	if err != nil {
		return nil, err
	}
	return slices.DeleteFunc(msgs, func(m store.Message) bool { return s.sel.seqOf(m.UID) == 0 }), nil
}

// cmdSelect selects a mailbox (SELECT, EXAMINE: RFC 9051 §6.3.2, §6.3.3). A failed SELECT
// leaves no mailbox selected.
func (s *session) cmdSelect(c *Command) (done, error) {
	if err := s.selectSync(c); err != nil {
		return done{}, err
	}
	prev := s.sel
	s.sel, s.state = nil, stateAuth
	name, err := s.mailboxName(c.Mailbox)
	if err != nil {
		return done{}, err
	}
	mb, err := s.srv.store.Mailbox(s.ctx, s.account.ID, name)
	if err != nil {
		return done{}, s.storeError(err)
	}
	sel := &selected{mb: mb, readOnly: c.Name == "EXAMINE", modseq: mb.HighestModSeq, own: map[uint64]bool{}}
	var msgs []store.Message // read only for QRESYNC, which needs each message's MODSEQ
	firstUnseen := uint32(0)
	if fs := s.flagSearch(); fs != nil && c.QResync == nil {
		if uids, ok := unchangedView(prev, mb); ok {
			sel.uids = uids
		} else if sel.uids, err = fs.UIDsByFlag(s.ctx, mb.ID, nil, "", false); err != nil {
			return done{}, s.storeError(err)
		}
		if !s.ext.rev2 && len(sel.uids) > 0 && mb.Unseen > 0 {
			uid, err := s.firstUnseen(fs, mb.ID)
			if err != nil {
				return done{}, s.storeError(err)
			}
			if uid != 0 {
				firstUnseen = sel.seqOf(uid)
			}
		}
	} else {
		if msgs, err = s.srv.store.Messages(s.ctx, mb.ID, store.Filter{}); err != nil {
			return done{}, err
		}
		sel.uids = make([]uint32, len(msgs))
		for i, m := range msgs {
			sel.uids[i] = m.UID
			if firstUnseen == 0 && !slices.Contains(m.Flags, store.FlagSeen) {
				firstUnseen = uint32(i + 1)
			}
		}
	}
	w := s.out()
	flags := append([]string{store.FlagAnswered, store.FlagFlagged, store.FlagDeleted, store.FlagSeen, store.FlagDraft}, mb.Keywords...)
	w.str("* FLAGS ")
	w.flags(flags)
	w.crlf()
	if sel.readOnly {
		w.status("*", "OK", "PERMANENTFLAGS ()", "Read-only mailbox")
	} else {
		w.str("* OK [PERMANENTFLAGS ")
		w.flags(append(flags, `\*`))
		w.str("] Flags permitted\r\n")
	}
	w.str("* ")
	w.num(uint32(len(sel.uids)))
	w.str(" EXISTS\r\n")
	if !s.ext.rev2 { // RFC 9051 removed RECENT and the UNSEEN code (Appendix E)
		w.str("* 0 RECENT\r\n") // RFC 3501 §6.3.1 requires it; \Recent is not kept (store package)
	}
	if firstUnseen != 0 && !s.ext.rev2 {
		w.str("* OK [UNSEEN ")
		w.num(firstUnseen)
		w.str("] First unseen\r\n")
	}
	w.str("* OK [UIDVALIDITY ")
	w.num(mb.UIDValidity)
	w.str("] UIDs valid\r\n* OK [UIDNEXT ")
	w.num(mb.UIDNext)
	w.str("] Predicted next UID\r\n")
	s.writeHighestModSeq(mb)
	s.selectRev2(mb)
	s.sel, s.state = sel, stateSelected
	if err := s.selectQResync(c, msgs); err != nil {
		return done{}, err
	}
	if sel.readOnly {
		return done{code: "READ-ONLY", text: c.Name + " completed"}, nil
	}
	return done{code: "READ-WRITE", text: c.Name + " completed"}, nil
}

// unchangedView returns the UIDs of the session's previous selection when SELECT names the
// same mailbox again and nothing has changed in it since the session last looked (the
// poll after each command brings its view up to the mailbox's HIGHESTMODSEQ): then the
// view is the mailbox's list, and reading it again from the store (every UID of the
// mailbox) would only repeat it. Clients re-SELECT the mailbox they are in to refresh it.
// Not when an expunge is still to be announced: the view still numbers that message.
func unchangedView(prev *selected, mb store.Mailbox) ([]uint32, bool) {
	if prev == nil || prev.mb.ID != mb.ID || prev.mb.UIDValidity != mb.UIDValidity ||
		prev.modseq != mb.HighestModSeq || len(prev.expunged) > 0 {
		return nil, false
	}
	return slices.Clone(prev.uids), true
}

// firstUnseen is the UID of the mailbox's first message without \Seen, 0 for none: found
// by the store's FlagFirst when it has one, else the head of the listing of every unseen
// message.
func (s *session) firstUnseen(fs store.FlagSearch, mailboxID int64) (uint32, error) {
	if ff, ok := s.srv.store.(store.FlagFirst); ok {
		return ff.FirstUIDByFlag(s.ctx, mailboxID, store.FlagSeen, false)
	}
	unseen, err := fs.UIDsByFlag(s.ctx, mailboxID, nil, store.FlagSeen, false)
	if err != nil || len(unseen) == 0 {
		return 0, err
	}
	return unseen[0], nil
}

// flagSearch is the store's FlagSearch, or nil when it has none.
func (s *session) flagSearch() store.FlagSearch {
	fs, _ := s.srv.store.(store.FlagSearch)
	return fs
}

// cmdClose ends the selected state; CLOSE first removes the messages marked \Deleted,
// silently, unless the mailbox is read-only (RFC 9051 §6.4.1); UNSELECT does not (RFC 3691).
func (s *session) cmdClose(c *Command) (done, error) {
	if c.Name == "CLOSE" && !s.sel.readOnly {
		uids, err := s.deletedUIDs(nil)
		if err == nil && len(uids) > 0 {
			_, err = s.srv.store.Expunge(s.ctx, s.sel.mb.ID, uids)
		}
		if err != nil {
			return done{}, err
		}
	}
	s.sel, s.state = nil, stateAuth
	return done{}, nil
}

// deletedUIDs lists the messages of the selected mailbox flagged \Deleted, within the
// ranges (all for nil).
func (s *session) deletedUIDs(ranges []store.UIDRange) ([]uint32, error) {
	if fs := s.flagSearch(); fs != nil {
		uids, err := fs.UIDsByFlag(s.ctx, s.sel.mb.ID, ranges, store.FlagDeleted, true)
		if err != nil {
			return nil, err
		}
		return slices.DeleteFunc(uids, func(u uint32) bool { return s.sel.seqOf(u) == 0 }), nil
	}
	msgs, err := s.messagesIn(ranges)
	if err != nil {
		return nil, err
	}
	var uids []uint32
	for _, m := range msgs {
		if slices.Contains(m.Flags, store.FlagDeleted) {
			uids = append(uids, m.UID)
		}
	}
	return uids, nil
}

// cmdExpunge removes the messages marked \Deleted (RFC 9051 §6.4.3), or only those of a
// UID set (UID EXPUNGE, RFC 4315 §2.1).
func (s *session) cmdExpunge(c *Command) (done, error) {
	if s.sel.readOnly {
		return done{}, &Error{Kind: NO, Code: "READ-ONLY", Text: "Mailbox is read-only"}
	}
	var only []store.UIDRange
	if c.UID {
		var err error
		if only, err = s.rangesOf(c.Seq, true); err != nil {
			return done{}, err
		}
	}
	uids, err := s.deletedUIDs(only)
	if err != nil || len(uids) == 0 {
		return done{}, err
	}
	ex, err := s.srv.store.Expunge(s.ctx, s.sel.mb.ID, uids)
	if err != nil {
		return done{}, err
	}
	s.announceExpunged(ex.UIDs)
	return done{}, nil
}
