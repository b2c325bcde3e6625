package imapd

// Search keys (RFC 9051 §6.4.4 and search-key in §9; RFC 3501 §6.4.4 adds NEW, OLD, RECENT
// and UNKEYWORD's twins that IMAP4rev1 clients still send), with any nesting of "(...)",
// NOT and OR, bounded by Limits.MaxDepth and Limits.MaxListItems.

import (
	"strings"
	"time"
)

// SearchOp names a search key. Keys without argument use their RFC name.
type SearchOp string

// The search keys that are not flag tests (those are SearchOp(name) with no argument).
const (
	SearchAnd    SearchOp = "AND" // "(" key *(SP key) ")", and the top-level list
	SearchOr     SearchOp = "OR"
	SearchNot    SearchOp = "NOT"
	SearchSeqSet SearchOp = "SEQSET" // a bare sequence set: message numbers
	SearchUID    SearchOp = "UID"
)

// SearchKey is one node of a search program.
type SearchKey struct {
	Op SearchOp
	// String arguments: BCC BODY CC FROM SUBJECT TEXT TO (Text), KEYWORD/UNKEYWORD (Text, a
	// flag), HEADER (Field and Text).
	Field  string
	Text   string
	Date   time.Time // BEFORE ON SINCE SENTBEFORE SENTON SENTSINCE: a day, midnight UTC
	Size   int64     // LARGER SMALLER
	ModSeq uint64    // MODSEQ (RFC 7162 §3.1.5)
	Seq    SeqSet    // SEQSET UID
	Keys   []SearchKey
}

// Search keys by their argument.
var (
	searchNoArg = map[string]bool{
		"ALL": true, "ANSWERED": true, "DELETED": true, "DRAFT": true, "FLAGGED": true,
		"NEW": true, "OLD": true, "RECENT": true, "SEEN": true, "UNANSWERED": true,
		"UNDELETED": true, "UNDRAFT": true, "UNFLAGGED": true, "UNSEEN": true,
	}
	searchString = map[string]bool{
		"BCC": true, "BODY": true, "CC": true, "FROM": true, "SUBJECT": true, "TEXT": true, "TO": true,
	}
	searchDate = map[string]bool{
		"BEFORE": true, "ON": true, "SINCE": true, "SENTBEFORE": true, "SENTON": true, "SENTSINCE": true,
	}
)

// searchKeys reads search-key *(SP search-key) up to the end of the command.
func (r *reader) searchKeys() (SearchKey, error) {
	and := SearchKey{Op: SearchAnd}
	for {
		if len(and.Keys) >= r.lim.MaxListItems {
			return SearchKey{}, badf("Too many search keys")
		}
		k, err := r.searchKey()
		if err != nil {
			return SearchKey{}, err
		}
		and.Keys = append(and.Keys, k)
		if !r.maybeSP() {
			break
		}
	}
	if len(and.Keys) == 1 {
		return and.Keys[0], nil
	}
	return and, nil
}

func (r *reader) searchKey() (SearchKey, error) {
	if err := r.enter(); err != nil {
		return SearchKey{}, err
	}
	defer r.leave()
	switch c := r.peek(); {
	case c == '(':
		and := SearchKey{Op: SearchAnd}
		err := r.listItems(false, func() error {
			k, err := r.searchKey()
			and.Keys = append(and.Keys, k)
			return err
		})
		return and, err
	case c == '*' || c == '$' || '0' <= c && c <= '9':
		s, err := r.seqSet()
		return SearchKey{Op: SearchSeqSet, Seq: s}, err
	}
	name := r.keyword()
	k := SearchKey{Op: SearchOp(name)}
	switch {
	case name == "":
		return k, badf("Expected a search key")
	case searchNoArg[name]:
		return k, nil
	}
	if err := r.sp(); err != nil {
		return k, err
	}
	var err error
	switch {
	case searchString[name]:
		k.Text, err = r.astring()
	case searchDate[name]:
		k.Date, err = r.date()
	case name == "KEYWORD" || name == "UNKEYWORD":
		k.Text, err = r.atom()
	case name == "HEADER":
		if k.Field, err = r.astring(); err == nil {
			if err = r.sp(); err == nil {
				k.Text, err = r.astring()
			}
		}
	case name == "LARGER" || name == "SMALLER":
		k.Size, err = r.number64()
	case name == "UID":
		k.Seq, err = r.seqSet()
	case name == "MODSEQ":
		k.ModSeq, err = r.searchModSeq()
	case name == "NOT":
		var sub SearchKey
		sub, err = r.searchKey()
		k.Keys = []SearchKey{sub}
	case name == "OR":
		var a, b SearchKey
		if a, err = r.searchKey(); err == nil {
			if err = r.sp(); err == nil {
				b, err = r.searchKey()
			}
		}
		k.Keys = []SearchKey{a, b}
	default:
		return k, badf("Unknown search key " + strings.ToUpper(name))
	}
	return k, err
}
