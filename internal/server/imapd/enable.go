package imapd

// ENABLE (RFC 5161) and the extensions it turns on for the rest of the session.

import (
	"slices"
	"strings"
)

// extCapabilities are the capabilities of issue 10's sync and protocol extensions
// (enable.go, condstore.go, qresync.go, esearch.go, listext.go, binary.go, imap4rev2.go),
// listed after the base set (session.capabilities).
const extCapabilities = " IMAP4rev2 UTF8=ACCEPT CONDSTORE QRESYNC ESEARCH SEARCHRES LIST-EXTENDED LIST-STATUS STATUS=SIZE BINARY"

// extensions records what the client turned on. Each only ever goes from off to on: RFC
// 5161 has no DISABLE.
type extensions struct {
	// condstore: the client has used a CONDSTORE-enabling command (RFC 7162 §3.1): every
	// FETCH caused by a flag change then carries UID and MODSEQ.
	condstore bool
	// qresync: ENABLE QRESYNC (RFC 7162 §3.2.3): VANISHED replaces EXPUNGE, SELECT takes
	// the QRESYNC parameter, UID FETCH takes VANISHED. Implies condstore.
	qresync bool
	// rev2: ENABLE IMAP4rev2 (RFC 9051 §6.3.1): rev2's responses where they differ from
	// rev1's (imap4rev2.go). Implies UTF-8.
	rev2 bool
	// utf8: ENABLE UTF8=ACCEPT (RFC 6855 §3) or IMAP4rev2: mailbox names in UTF-8, never
	// modified UTF-7, and UTF-8 in quoted strings. respWriter.utf8 follows it.
	utf8 bool
}

// cmdEnable turns on the extensions the client names that we offer and lists those it
// newly turned on (RFC 5161 §3.1: unknown names are ignored, and a name already enabled is
// not listed again).
func (s *session) cmdEnable(c *Command) (done, error) {
	var enabled []string
	before := s.ext
	for _, a := range c.Atoms {
		var was bool
		switch a {
		case "CONDSTORE":
			was, s.ext.condstore = before.condstore, true
		case "QRESYNC":
			// RFC 7162 §3.2.3: QRESYNC implies CONDSTORE, which is listed only if named.
			was, s.ext.qresync, s.ext.condstore = before.qresync, true, true
		case "IMAP4REV2":
			a = "IMAP4rev2"
			was, s.ext.rev2, s.ext.utf8 = before.rev2, true, true
		case "UTF8=ACCEPT":
			was, s.ext.utf8 = before.utf8, true
		default:
			continue
		}
		s.w.utf8 = s.ext.utf8
		if !was && !slices.Contains(enabled, a) {
			enabled = append(enabled, a)
		}
	}
	w := s.out()
	w.str("* ENABLED")
	if len(enabled) > 0 {
		w.sp()
		w.str(strings.Join(enabled, " "))
	}
	w.crlf()
	return done{}, nil
}
