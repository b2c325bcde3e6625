package imapd

// ENABLE (RFC 5161) and the extensions it turns on for the rest of the session.

import (
	"slices"
	"strings"
)

// syncCapabilities are the capabilities of this file's extensions and their neighbours,
// listed after the base set (session.capabilities).
const syncCapabilities = " CONDSTORE QRESYNC ESEARCH SEARCHRES LIST-EXTENDED LIST-STATUS STATUS=SIZE"

// extensions records what the client turned on. Each only ever goes from off to on: RFC
// 5161 has no DISABLE.
type extensions struct {
	// condstore: the client has used a CONDSTORE-enabling command (RFC 7162 §3.1): every
	// FETCH caused by a flag change then carries UID and MODSEQ.
	condstore bool
	// qresync: ENABLE QRESYNC (RFC 7162 §3.2.3): VANISHED replaces EXPUNGE, SELECT takes
	// the QRESYNC parameter, UID FETCH takes VANISHED. Implies condstore.
	qresync bool
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
		default:
			continue
		}
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
