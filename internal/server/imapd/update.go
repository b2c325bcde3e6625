package imapd

// STORE, COPY and MOVE.

import (
	"errors"
	"slices"
	"strings"

	"petrel/internal/store"
)

// cmdStore changes flags (RFC 9051 §6.4.6). Without .SILENT each message of the set gets a
// FETCH with its flags, changed or not.
func (s *session) cmdStore(c *Command) (done, error) {
	if s.sel.readOnly {
		return done{}, &Error{Kind: NO, Code: "READ-ONLY", Text: "Mailbox is read-only"}
	}
	uids, err := s.uidsOf(c.Seq, c.UID)
	if err != nil {
		return done{}, err
	}
	flags, err := store.NormalizeFlags(c.Flags)
	if err != nil {
		// \Recent and unknown system flags cannot be stored (RFC 9051 §2.3.2).
		return done{}, badf("Invalid flag")
	}
	if len(uids) == 0 {
		return done{}, nil
	}
	mode := store.FlagsReplace
	switch c.StoreMode {
	case 1:
		mode = store.FlagsAdd
	case -1:
		mode = store.FlagsRemove
	}
	res, modified, err := s.storeSync(c, uids, store.FlagChange{Mode: mode, Flags: flags})
	if err != nil {
		return done{}, s.storeError(err)
	}
	if teach, junk := keywordLesson(mode, flags); teach && s.srv.cfg.Junk != nil { // junk.go
		stored := slices.DeleteFunc(slices.Clone(uids), func(u uint32) bool { return slices.Contains(res.Failed, u) })
		s.teachJunk(s.blobsOf(stored), stored, junk)
	}
	if res.ModSeq != 0 {
		s.sel.own[res.ModSeq] = true
	}
	if c.StoreSilent {
		s.storeSilentSync(res)
		return done{code: modified}, nil
	}
	ranges, err := s.rangesOf(c.Seq, c.UID)
	if err != nil {
		return done{}, err
	}
	msgs, err := s.messagesIn(ranges)
	if err != nil {
		return done{}, err
	}
	for _, m := range msgs {
		if n := s.sel.seqOf(m.UID); n != 0 && !slices.Contains(res.Failed, m.UID) {
			s.writeFlagsFetch(n, m)
		}
	}
	return done{code: modified}, nil
}

// cmdCopy copies or moves messages to another mailbox of the account (RFC 9051 §6.4.7,
// RFC 6851) and reports the new UIDs (COPYUID, RFC 4315 §3).
func (s *session) cmdCopy(c *Command) (done, error) {
	if c.Name == "MOVE" && s.sel.readOnly {
		return done{}, &Error{Kind: NO, Code: "READ-ONLY", Text: "Mailbox is read-only"}
	}
	uids, err := s.uidsOf(c.Seq, c.UID)
	if err != nil {
		return done{}, err
	}
	name, err := s.mailboxName(c.Mailbox)
	if err != nil {
		return done{}, err
	}
	dest, err := s.srv.store.Mailbox(s.ctx, s.account.ID, name)
	if errors.Is(err, store.ErrNotFound) {
		return done{}, &Error{Kind: NO, Code: "TRYCREATE", Text: "No such mailbox"} // RFC 9051 §6.4.7
	}
	if err != nil {
		return done{}, s.storeError(err)
	}
	if len(uids) == 0 {
		return done{}, nil
	}
	teach, junk := s.copyLesson(dest) // junk.go
	var blobs map[uint32]int64
	if teach {
		// Before a MOVE, which takes them from this mailbox.
		blobs = s.blobsOf(uids)
	}
	var res store.Copied
	if c.Name == "MOVE" {
		res, err = s.srv.store.Move(s.ctx, s.sel.mb.ID, uids, dest.ID)
	} else {
		res, err = s.srv.store.Copy(s.ctx, s.sel.mb.ID, uids, dest.ID)
	}
	if err != nil {
		return done{}, s.storeError(err)
	}
	if len(res.From) == 0 {
		return done{}, nil
	}
	if teach {
		s.teachJunk(blobs, res.From, junk)
	}
	code := "COPYUID " + utoa(res.UIDValidity) + " " + uidSet(res.From) + " " + uidSet(res.To)
	if c.Name == "MOVE" {
		// RFC 6851 §4.3: COPYUID goes in an untagged OK before the EXPUNGEs.
		s.out().status("*", "OK", code, "Moved")
		s.announceExpunged(res.From)
		return done{}, nil
	}
	return done{code: code}, nil
}

// uidSet formats ascending UIDs as a compact set ("1:3,7").
func uidSet(uids []uint32) string {
	var b strings.Builder
	for i := 0; i < len(uids); {
		j := i
		for j+1 < len(uids) && uids[j+1] == uids[j]+1 {
			j++
		}
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		b.WriteString(utoa(uids[i]))
		if j > i {
			b.WriteByte(':')
			b.WriteString(utoa(uids[j]))
		}
		i = j + 1
	}
	return b.String()
}
