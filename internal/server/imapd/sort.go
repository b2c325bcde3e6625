package imapd

// SORT and THREAD (RFC 5256), with ESORT's RETURN options (RFC 5267 §3.2) and the
// DISPLAYFROM/DISPLAYTO keys of SORT=DISPLAY (RFC 5957).
//
// Both commands search first (searcheval.go, so every search key, the full-text index and
// "$" work as in SEARCH), then order or link the hits by keys the store keeps per body
// (store.Sorter): one read of the mailbox's rows with their keys, no body and no cached
// parse. A body stored before the keys were kept has none; its keys are computed here from
// its header, once, and handed back to the store. The threading itself is thread.go.
//
// Strings compare as i;ascii-casemap (RFC 4790 §9.2), the collation RFC 5256 §3 makes the
// default: the store's keys are already folded, so a comparison is a byte comparison.
// Messages equal under every criterion keep mailbox order (RFC 5256 §3), REVERSE or not.

import (
	"cmp"
	"errors"
	"slices"
	"strings"

	"petrel/internal/mail/message"
	"petrel/internal/store"
)

// SortCriterion is one sort-criterion of SORT: a key, maybe reversed.
type SortCriterion struct {
	Key     string // ARRIVAL CC DATE FROM SIZE SUBJECT TO DISPLAYFROM DISPLAYTO
	Reverse bool
}

// sortKeys are the keys SORT knows (RFC 5256 §3, RFC 5957 §4).
var sortKeyNames = map[string]bool{
	"ARRIVAL": true, "CC": true, "DATE": true, "FROM": true, "SIZE": true, "SUBJECT": true, "TO": true,
	"DISPLAYFROM": true, "DISPLAYTO": true,
}

// threadAlgorithms are the THREAD algorithms offered (RFC 5256 §3).
var threadAlgorithms = map[string]bool{"ORDEREDSUBJECT": true, "REFERENCES": true}

// sortCapabilities are advertised with a store that keeps sort keys.
const sortCapabilities = " SORT SORT=DISPLAY ESORT THREAD=ORDEREDSUBJECT THREAD=REFERENCES"

// parseSort reads SORT [SP "RETURN" SP "(" options ")"] SP "(" sort-criterion *(SP
// sort-criterion) ")" SP charset 1*(SP search-key) (RFC 5256 §5, RFC 5267 §5).
func parseSort(r *reader, c *Command) error {
	if err := r.searchReturn(c); err != nil {
		return err
	}
	if err := r.list(false, func() error {
		crit := SortCriterion{Key: r.keyword()}
		if crit.Key == "REVERSE" {
			if err := r.sp(); err != nil {
				return err
			}
			crit.Reverse, crit.Key = true, r.keyword()
		}
		if !sortKeyNames[crit.Key] {
			return badf("Unknown sort key")
		}
		if len(c.Sort) >= len(sortKeyNames) {
			return badf("Too many sort keys")
		}
		c.Sort = append(c.Sort, crit)
		return nil
	}); err != nil {
		return err
	}
	return r.charsetAndKeys(c)
}

// parseThread reads THREAD SP thread-alg SP search-charset 1*(SP search-key) (RFC 5256 §5).
func parseThread(r *reader, c *Command) error {
	c.Thread = r.keyword()
	if c.Thread == "" {
		return badf("Expected a threading algorithm")
	}
	return r.charsetAndKeys(c)
}

// charsetAndKeys reads SP charset 1*(SP search-key): SORT and THREAD name the charset
// without the CHARSET keyword, and always.
func (r *reader) charsetAndKeys(c *Command) error {
	if err := r.sp(); err != nil {
		return err
	}
	cs, err := r.astring()
	if err != nil {
		return err
	}
	c.Charset = strings.ToUpper(cs)
	if err := r.sp(); err != nil {
		return err
	}
	c.Search, err = r.searchKeys()
	return err
}

// sortMsg is one message of a SORT or THREAD with its keys.
type sortMsg struct {
	seq, uid uint32
	size     int64
	arrival  int64 // INTERNALDATE, unix nanoseconds
	date     int64 // the sent date: the Date header, or INTERNALDATE without one (RFC 5256 §3)
	modseq   uint64
	k        *store.SortKeys
}

// sorter is the store's Sorter, or nil when it has none (SORT and THREAD are then neither
// advertised nor accepted).
func (s *session) sorter() store.Sorter {
	so, _ := s.srv.store.(store.Sorter)
	return so
}

func (s *session) cmdSort(c *Command) (done, error) {
	msgs, err := s.sortSearch(c)
	if err != nil {
		return done{}, err
	}
	sortMessages(msgs, c.Sort)
	ordered := make([]uint32, len(msgs))
	modseqs := make([]uint64, len(msgs))
	for i, m := range msgs {
		ordered[i], modseqs[i] = m.seq, m.modseq
		if c.UID {
			ordered[i] = m.uid
		}
	}
	s.searchResult(c, ordered, modseqs) // esearch.go
	return done{}, nil
}

func (s *session) cmdThread(c *Command) (done, error) {
	if s.sorter() != nil && !threadAlgorithms[c.Thread] {
		return done{}, badf("Unknown threading algorithm")
	}
	msgs, err := s.sortSearch(c)
	if err != nil {
		return done{}, err
	}
	var roots []*node
	if c.Thread == "REFERENCES" {
		roots = threadReferences(msgs)
	} else {
		roots = threadOrderedSubject(msgs)
	}
	w := s.out()
	w.str("* THREAD")
	if len(roots) > 0 {
		w.sp()
	}
	writeThreads(w, roots, c.UID)
	w.crlf()
	return done{}, nil
}

// sortSearch runs the search of a SORT or THREAD and returns the messages it found with
// their keys, in mailbox order.
func (s *session) sortSearch(c *Command) ([]sortMsg, error) {
	so := s.sorter()
	if so == nil {
		return nil, badf("Unknown command")
	}
	if err := s.searchPrepare(c); err != nil { // esearch.go: RETURN options, "$"
		return nil, err
	}
	hits, modseqs, err := s.searchMatches(c)
	if err != nil || len(hits) == 0 {
		return nil, err
	}
	msgs, err := s.sortMsgs(so, hits)
	for i := range msgs {
		msgs[i].modseq = modseqs[i]
	}
	return msgs, err
}

// sortMsgs returns the messages of hits (UIDs, ascending) with their keys, in that order.
// Keys the store lacks are computed from the header and stored.
func (s *session) sortMsgs(so store.Sorter, hits []uint32) ([]sortMsg, error) {
	rows, err := so.SortRows(s.ctx, s.sel.mb.ID, uidRanges(hits))
	if err != nil {
		return nil, s.storeError(err)
	}
	msgs := make([]sortMsg, 0, len(hits))
	var missing []int // indexes in msgs of messages without keys
	var blobOf []int64
	j := 0
	for _, uid := range hits {
		for j < len(rows) && rows[j].UID < uid {
			j++
		}
		m := sortMsg{seq: s.sel.seqOf(uid), uid: uid}
		if j < len(rows) && rows[j].UID == uid {
			r := &rows[j]
			m.size, m.arrival, m.k = r.Size, r.InternalDate.UnixNano(), r.Keys
			if m.k == nil {
				missing, blobOf = append(missing, len(msgs)), append(blobOf, r.BlobID)
			}
		} else {
			// Expunged by another session, still numbered here until this session is told:
			// it sorts with empty keys.
			m.k = &store.SortKeys{}
		}
		msgs = append(msgs, m)
	}
	if len(missing) > 0 {
		computed := make(map[int64]*store.SortKeys, len(missing))
		for i, idx := range missing {
			k, ok := computed[blobOf[i]]
			if !ok {
				if k, err = s.headerSortKeys(blobOf[i]); err != nil {
					return nil, err
				}
				computed[blobOf[i]] = k
			}
			msgs[idx].k = k
		}
		// Stored for the next command; a failure costs only the recomputation then.
		if err := so.SetSortKeys(s.ctx, computed); err != nil {
			s.srv.log.Warn("imap: storing sort keys", "remote", s.remote, "err", err)
		}
	}
	for i := range msgs {
		m := &msgs[i]
		m.date = m.arrival
		if !m.k.Date.IsZero() {
			m.date = m.k.Date.UnixNano()
		}
	}
	return msgs, nil
}

// headerSortKeys computes a stored body's sort keys from its header; a body freed
// meanwhile has empty keys.
func (s *session) headerSortKeys(blobID int64) (*store.SortKeys, error) {
	r, err := s.srv.store.OpenBlob(s.ctx, blobID)
	if errors.Is(err, store.ErrNotFound) {
		return &store.SortKeys{}, nil
	}
	if err != nil {
		return nil, s.storeError(err)
	}
	defer r.Close()
	k, err := message.SortKeysOf(r)
	if err != nil {
		return nil, s.storeError(err)
	}
	return k, nil
}

// sortMessages orders msgs by the criteria, then by message number (RFC 5256 §3).
func sortMessages(msgs []sortMsg, crits []SortCriterion) {
	slices.SortFunc(msgs, func(a, b sortMsg) int {
		for _, c := range crits {
			var d int
			switch c.Key {
			case "ARRIVAL":
				d = cmp.Compare(a.arrival, b.arrival)
			case "DATE":
				d = cmp.Compare(a.date, b.date)
			case "SIZE":
				d = cmp.Compare(a.size, b.size)
			case "SUBJECT":
				d = strings.Compare(a.k.Subject, b.k.Subject)
			case "FROM":
				d = strings.Compare(a.k.From, b.k.From)
			case "TO":
				d = strings.Compare(a.k.To, b.k.To)
			case "CC":
				d = strings.Compare(a.k.Cc, b.k.Cc)
			case "DISPLAYFROM":
				d = strings.Compare(a.k.DisplayFrom, b.k.DisplayFrom)
			case "DISPLAYTO":
				d = strings.Compare(a.k.DisplayTo, b.k.DisplayTo)
			}
			if c.Reverse {
				d = -d
			}
			if d != 0 {
				return d
			}
		}
		return cmp.Compare(a.seq, b.seq)
	})
}
