package imapd

// IMAP4rev2 (RFC 9051) where it answers differently from IMAP4rev1 once the client has
// enabled it. The rest of rev2's changes are in the code they concern, each marked with
// s.ext.rev2: no RECENT and no UNSEEN code in SELECT (selected.go), [CLOSED] on a SELECT that
// closes a mailbox (qresync.go), ESEARCH for SEARCH (esearch.go), UTF-8 names (enable.go).
// Expunges stay EXPUNGE responses unless QRESYNC is enabled too (RFC 9051 §7.5.1).

import "petrel/internal/store"

// selectRev2 writes the LIST response RFC 9051 §6.3.2 requires among SELECT's responses,
// which gives the client the mailbox's name as the server spells it.
func (s *session) selectRev2(mb store.Mailbox) {
	if !s.ext.rev2 {
		return
	}
	var attrs []string
	if mb.SpecialUse != "" {
		attrs = append(attrs, string(mb.SpecialUse))
	}
	s.writeListLine("* LIST ", mb.Name, attrs, "")
}
