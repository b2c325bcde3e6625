package message

import (
	"bufio"
	"bytes"
	"io"
	"strings"

	"petrel/internal/store"
)

// sortKeys computes the keys of IMAP SORT and THREAD (store.SortKeys) from a message's
// top-level header and the envelope made of it.
func sortKeys(h header, env Envelope) *store.SortKeys {
	k := &store.SortKeys{
		From:        fold(firstMailbox(env.From)),
		To:          fold(firstMailbox(env.To)),
		Cc:          fold(firstMailbox(env.Cc)),
		DisplayFrom: fold(display(env.From)),
		DisplayTo:   fold(display(env.To)),
		MessageID:   firstID(h.get("message-id")),
		References:  msgIDs(h.get("references")),
	}
	k.Subject, k.Reply = BaseSubject(env.Subject)
	if t, err := parseDate(h.get("date")); err == nil {
		k.Date = t
	}
	if len(k.References) == 0 {
		// RFC 5256 §2.2 step 1: the first message ID of In-Reply-To stands in.
		if id := firstID(h.get("in-reply-to")); id != "" {
			k.References = []string{id}
		}
	}
	return k
}

// SortKeysOf computes the sort keys of a stored message from its header alone, for bodies
// stored before the keys were kept (store.Sorter SetSortKeys). It reads no further than the
// end of the header (at most maxHeaderBytes of it).
func SortKeysOf(r io.Reader) (*store.SortKeys, error) {
	br := bufio.NewReader(io.LimitReader(r, maxHeaderBytes))
	var raw []byte
	for {
		line, err := br.ReadSlice('\n')
		if len(bytes.TrimRight(line, "\r\n")) == 0 && len(line) > 0 && line[len(line)-1] == '\n' {
			break // the empty line that ends the header
		}
		raw = append(raw, line...)
		if err == bufio.ErrBufferFull {
			continue
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
	}
	h := parseHeader(raw)
	return sortKeys(h, envelope(h)), nil
}

func firstMailbox(l []Address) string {
	if len(l) == 0 {
		return ""
	}
	return l[0].Mailbox
}

// display is the RFC 5957 §3 display value of the first address: its name, or its
// addr-spec when it has none.
func display(l []Address) string {
	if len(l) == 0 {
		return ""
	}
	if name := strings.TrimSpace(l[0].Name); name != "" {
		return name
	}
	if l[0].Host == "" {
		return l[0].Mailbox
	}
	return l[0].Mailbox + "@" + l[0].Host
}

// fold maps a string to its i;ascii-casemap form (RFC 4790 §9.2): ASCII letters upper case,
// every other byte as it is.
func fold(s string) string {
	i := strings.IndexFunc(s, func(r rune) bool { return 'a' <= r && r <= 'z' })
	if i < 0 {
		return s
	}
	b := []byte(s)
	for j := i; j < len(b); j++ {
		if 'a' <= b[j] && b[j] <= 'z' {
			b[j] -= 'a' - 'A'
		}
	}
	return string(b)
}

// msgIDs returns the bracketed message IDs of a field, without brackets, in order. Text
// outside brackets (comments, phrases of broken mailers) is skipped.
func msgIDs(s string) []string {
	var ids []string
	for {
		i := strings.IndexByte(s, '<')
		if i < 0 {
			return ids
		}
		j := strings.IndexByte(s[i:], '>')
		if j < 0 {
			return ids
		}
		if id := strings.TrimSpace(s[i+1 : i+j]); id != "" && !strings.ContainsAny(id, " \t<") {
			ids = append(ids, id)
		}
		s = s[i+j+1:]
	}
}

// firstID is the first bracketed message ID of a field, "" when it has none (a Message-ID
// without brackets is not valid, RFC 5322 §3.6.4, and threads as a message without one).
func firstID(s string) string {
	if ids := msgIDs(s); len(ids) > 0 {
		return ids[0]
	}
	return ""
}

// BaseSubject extracts the base subject of a decoded subject (RFC 5256 §2.1), folded for
// i;ascii-casemap, and reports whether the subject was a reply or forward (something of
// "Re:", "Fw:", "Fwd:", "(fwd)" or "[fwd: ...]" was removed).
func BaseSubject(subject string) (base string, reply bool) {
	// Step 1: tabs and line breaks become spaces, runs of spaces one space.
	s := strings.Join(strings.FieldsFunc(fold(subject), func(r rune) bool {
		return r == ' ' || r == '\t' || r == '\r' || r == '\n'
	}), " ")
	for {
		// Step 2: subj-trailer, "(fwd)" or WSP at the end, as often as it occurs.
		for {
			if t, ok := strings.CutSuffix(s, "(FWD)"); ok {
				s, reply = t, true
			} else if t, ok := strings.CutSuffix(s, " "); ok {
				s = t
			} else {
				break
			}
		}
		// Steps 3 to 5: subj-leader and subj-blob prefixes until neither matches.
		for {
			if n, refwd := leaderLen(s); n > 0 {
				s, reply = s[n:], reply || refwd
				continue
			}
			if n := blobLen(s); n > 0 && strings.TrimSpace(s[n:]) != "" {
				s = s[n:]
				continue
			}
			break
		}
		// Step 6: "[fwd:" ... "]" around everything is a forward; take it off and go again.
		if strings.HasPrefix(s, "[FWD:") && strings.HasSuffix(s, "]") {
			s, reply = s[len("[FWD:"):len(s)-1], true
			continue
		}
		return s, reply
	}
}

// leaderLen is the length of a subj-leader at the start of s (RFC 5256 §5: WSP, or
// *subj-blob subj-refwd), 0 when there is none; refwd says it held a subj-refwd.
func leaderLen(s string) (n int, refwd bool) {
	if strings.HasPrefix(s, " ") {
		return 1, false
	}
	i := 0
	for {
		b := blobLen(s[i:])
		if b <= 0 {
			break
		}
		i += b
	}
	if m := refwdLen(s[i:]); m > 0 {
		return i + m, true
	}
	return 0, false
}

// refwdLen matches subj-refwd: ("RE" / ("FW" ["D"])) *WSP [subj-blob] ":" (s is folded).
func refwdLen(s string) int {
	i := 0
	switch {
	case strings.HasPrefix(s, "RE"):
		i = 2
	case strings.HasPrefix(s, "FWD"):
		i = 3
	case strings.HasPrefix(s, "FW"):
		i = 2
	default:
		return 0
	}
	for i < len(s) && s[i] == ' ' {
		i++
	}
	if b := blobLen(s[i:]); b > 0 {
		i += b
	}
	if i < len(s) && s[i] == ':' {
		return i + 1
	}
	return 0
}

// blobLen matches subj-blob: "[" *BLOBCHAR "]" *WSP, where BLOBCHAR is anything but the
// brackets.
func blobLen(s string) int {
	if !strings.HasPrefix(s, "[") {
		return 0
	}
	j := strings.IndexAny(s[1:], "[]")
	if j < 0 || s[1+j] != ']' {
		return 0
	}
	i := j + 2
	for i < len(s) && s[i] == ' ' {
		i++
	}
	return i
}
