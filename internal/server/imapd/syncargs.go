package imapd

// The command syntax of CONDSTORE and QRESYNC (RFC 7162 §7): SELECT/EXAMINE parameters,
// FETCH modifiers, the STORE modifier and the mod-sequence numbers they carry. The session
// side is in condstore.go and qresync.go.

// SyncArgs holds what a command said in CONDSTORE/QRESYNC syntax. Command embeds it.
type SyncArgs struct {
	SelectCondStore bool         // SELECT/EXAMINE (CONDSTORE)
	QResync         *QResyncArgs // SELECT/EXAMINE (QRESYNC (...)); nil if absent

	ChangedSince    uint64 // FETCH (CHANGEDSINCE n)
	HasChangedSince bool
	Vanished        bool // UID FETCH (... VANISHED)

	UnchangedSince    uint64 // STORE (UNCHANGEDSINCE n)
	HasUnchangedSince bool
}

// QResyncArgs is the QRESYNC select parameter: what the client knew of the mailbox.
type QResyncArgs struct {
	UIDValidity uint32
	ModSeq      uint64
	KnownUIDs   SeqSet // empty: not given
	// KnownSeqs and KnownSeqUIDs are seq-match-data. The store keeps every tombstone for as
	// long as its mailbox lives, so the answer never needs them; they are only checked.
	KnownSeqs, KnownSeqUIDs SeqSet
}

// modSeq reads mod-sequence-value (1*DIGIT, 1 to 2^63-1), or with zero allowed
// mod-sequence-valzer.
func (r *reader) modSeq(zero bool) (uint64, error) {
	n, err := r.number64()
	if err != nil {
		return 0, err
	}
	if n == 0 && !zero {
		return 0, badf("Expected a non-zero mod-sequence")
	}
	return uint64(n), nil
}

// selectParams reads [SP "(" select-param *(SP select-param) ")"] after SELECT's mailbox.
func (r *reader) selectParams(c *Command) error {
	if !r.maybeSP() {
		return nil
	}
	return r.list(false, func() error {
		switch r.keyword() {
		case "CONDSTORE":
			c.SelectCondStore = true
			return nil
		case "QRESYNC":
			if c.QResync != nil {
				return badf("QRESYNC given twice")
			}
			if err := r.sp(); err != nil {
				return err
			}
			q := &QResyncArgs{}
			c.QResync = q
			return r.qresyncParam(q)
		}
		return badf("Unknown SELECT parameter")
	})
}

// qresyncParam reads "(" uidvalidity SP mod-sequence-value [SP known-uids]
// [SP seq-match-data] ")" (RFC 7162 §3.2.5).
func (r *reader) qresyncParam(q *QResyncArgs) error {
	if err := r.expect('('); err != nil {
		return err
	}
	var err error
	if q.UIDValidity, err = r.nzNumber(); err != nil {
		return err
	}
	if err = r.sp(); err != nil {
		return err
	}
	if q.ModSeq, err = r.modSeq(false); err != nil {
		return err
	}
	if r.maybeSP() && r.peek() != '(' {
		if q.KnownUIDs, err = r.seqSet(); err != nil {
			return err
		}
		if q.KnownUIDs.SearchRes {
			return badf("$ is not a set of known UIDs")
		}
		r.maybeSP()
	}
	if r.peek() == '(' {
		r.pos++
		if q.KnownSeqs, err = r.seqSet(); err != nil {
			return err
		}
		if err = r.sp(); err != nil {
			return err
		}
		if q.KnownSeqUIDs, err = r.seqSet(); err != nil {
			return err
		}
		if q.KnownSeqs.SearchRes || q.KnownSeqUIDs.SearchRes {
			return badf("$ is not a known sequence set")
		}
		if err = r.expect(')'); err != nil {
			return err
		}
	}
	return r.expect(')')
}

// fetchModifiers reads [SP "(" fetch-modifier *(SP fetch-modifier) ")"] after FETCH's items.
func (r *reader) fetchModifiers(c *Command) error {
	if !r.maybeSP() {
		return nil
	}
	return r.list(false, func() error {
		switch r.keyword() {
		case "CHANGEDSINCE":
			if err := r.sp(); err != nil {
				return err
			}
			var err error
			c.ChangedSince, err = r.modSeq(true)
			c.HasChangedSince = true
			return err
		case "VANISHED":
			c.Vanished = true
			return nil
		}
		return badf("Unknown FETCH modifier")
	})
}

// storeModifiers reads [SP "(" store-modifier ")"] after STORE's sequence set; the caller
// has read the SP and seen "(".
func (r *reader) storeModifiers(c *Command) error {
	err := r.list(false, func() error {
		if r.keyword() != "UNCHANGEDSINCE" {
			return badf("Unknown STORE modifier")
		}
		if err := r.sp(); err != nil {
			return err
		}
		var err error
		c.UnchangedSince, err = r.modSeq(true)
		c.HasUnchangedSince = true
		return err
	})
	if err != nil {
		return err
	}
	return r.sp()
}

// searchModSeq reads the argument of the MODSEQ search key: [entry-name SP entry-type-req
// SP] mod-sequence-valzer (RFC 7162 §3.1.5). The store keeps one MODSEQ per message, not
// one per flag, so the entry is checked and then ignored, as §3.1.5 allows.
func (r *reader) searchModSeq() (uint64, error) {
	if r.peek() == '"' {
		if _, err := r.quoted(); err != nil {
			return 0, err
		}
		if err := r.sp(); err != nil {
			return 0, err
		}
		switch r.keyword() {
		case "PRIV", "SHARED", "ALL":
		default:
			return 0, badf("Expected priv, shared or all")
		}
		if err := r.sp(); err != nil {
			return 0, err
		}
	}
	return r.modSeq(true)
}
