package imapd

import (
	"context"
	"slices"
	"strings"

	"petrel/internal/store"
)

// Training the junk classifier from what the user does (issue 13 point 1): a message
// moved or copied into the account's \Junk mailbox (RFC 6154) teaches "junk", one moved
// or copied out of it teaches "not junk" (except into \Trash: deleting junk says nothing
// new), and so do the $Junk and $NotJunk keywords (RFC 5788's registry; Thunderbird and
// Apple Mail set them). COPY then EXPUNGE is COPY's lesson. The lesson is taught after the
// command's own change has committed, and a failure to learn never fails the command.

// JunkTrainer learns from the messages (by stored body) a user filed as junk or not;
// internal/app gives one backed by the classifier, nil learns nothing.
type JunkTrainer interface {
	TrainJunk(ctx context.Context, accountID int64, blobIDs []int64, junk bool) error
}

// copyLesson returns what copying or moving from the selected mailbox into dest teaches:
// teach is false when nothing.
func (s *session) copyLesson(dest store.Mailbox) (teach, junk bool) {
	if s.srv.cfg.Junk == nil || dest.ID == s.sel.mb.ID {
		return false, false
	}
	from, to := s.sel.mb.SpecialUse, dest.SpecialUse
	switch {
	case to == store.UseJunk:
		return from != store.UseJunk, true
	case from == store.UseJunk:
		return to != store.UseTrash, false
	}
	return false, false
}

// keywordLesson returns what storing flags teaches: $Junk or $NotJunk added (or set).
func keywordLesson(mode store.FlagMode, flags []string) (teach, junk bool) {
	if mode == store.FlagsRemove {
		return false, false
	}
	isJunk := slices.ContainsFunc(flags, func(f string) bool { return strings.EqualFold(f, "$Junk") })
	notJunk := slices.ContainsFunc(flags, func(f string) bool { return strings.EqualFold(f, "$NotJunk") })
	return isJunk != notJunk, isJunk
}

// blobsOf returns the stored bodies of the selected mailbox's messages with these UIDs.
func (s *session) blobsOf(uids []uint32) map[uint32]int64 {
	msgs, err := s.srv.store.Messages(s.ctx, s.sel.mb.ID, store.Filter{UIDs: uidRanges(uids)})
	if err != nil {
		s.log.Warn("junk training: listing messages failed", "err", err)
		return nil
	}
	out := make(map[uint32]int64, len(msgs))
	for _, m := range msgs {
		out[m.UID] = m.BlobID
	}
	return out
}

// teachJunk hands the bodies of uids (looked up in blobs) to the trainer.
func (s *session) teachJunk(blobs map[uint32]int64, uids []uint32, junk bool) {
	var ids []int64
	for _, u := range uids {
		if id, ok := blobs[u]; ok {
			ids = append(ids, id)
		}
	}
	if len(ids) == 0 {
		return
	}
	if err := s.srv.cfg.Junk.TrainJunk(s.ctx, s.account.ID, ids, junk); err != nil {
		s.log.Warn("junk training failed", "account", s.account.Address, "err", err)
	}
}
