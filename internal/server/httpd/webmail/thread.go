package webmail

import (
	"strings"
)

// Conversations. Each message of a page gets a thread key, and the page groups messages by
// it. The key is computed from the page alone, so that threading costs a page's work on a
// folder of any size (no pass over the folder, nothing added to the store):
//
//   - within the page, messages are joined (union-find) when one names another in
//     In-Reply-To or References, when both name the same message there, or when their
//     base subjects (RFC 5256 §2.1, simplified: "Re:", "Fwd:", "[list]" prefixes and
//     "(fwd)" trailers removed) are equal and one of them is a reply that names no
//     message (see below);
//   - a group's key is the root its oldest member names: the first of its References
//     (RFC 5322 §3.6.4: the thread's first message), else its In-Reply-To, else its own
//     Message-ID. A later page holding other messages of the same conversation usually
//     reaches the same root, so the page joins groups across pages by key.
//
// What this gives up against a full JWZ or REFERENCES thread (RFC 5256, which IMAP THREAD
// answers): a conversation whose messages name no common root and whose subjects differ
// is split at a page border. The webmail lists newest first, so a conversation's recent
// messages, the ones a reader wants together, are usually on one page.

// threadItem is what threading needs of a message.
type threadItem struct {
	messageID  string   // without angle brackets
	inReplyTo  []string // ids, without angle brackets
	references []string
	subject    string
}

// threadKeys returns the thread key of each item (items newest first, as a page is).
func threadKeys(items []threadItem) []string {
	parent := make([]int, len(items))
	for i := range parent {
		parent[i] = i
	}
	var find func(int) int
	find = func(i int) int {
		for parent[i] != i {
			parent[i] = parent[parent[i]]
			i = parent[i]
		}
		return i
	}
	union := func(a, b int) {
		if ra, rb := find(a), find(b); ra != rb {
			parent[ra] = rb
		}
	}
	byID := map[string]int{}      // message id -> the first item that is or names it
	bySubject := map[string]int{} // base subject -> first item with it
	reply := make([]bool, len(items))
	base := make([]string, len(items))
	for i, it := range items {
		for _, id := range append(append([]string{it.messageID}, it.inReplyTo...), it.references...) {
			if id == "" {
				continue
			}
			if j, ok := byID[id]; ok {
				union(i, j)
			} else {
				byID[id] = i
			}
		}
		base[i], reply[i] = baseSubject(it.subject)
	}
	// Subjects, for replies that name no message (a client that drops In-Reply-To): such a
	// reply joins the oldest original of its base subject on the page, or else the other
	// such replies. Originals are never joined by subject alone: two messages called
	// "Lunch" are two conversations.
	for i := range items {
		if base[i] == "" || reply[i] {
			continue
		}
		bySubject[base[i]] = i // the last seen is the oldest
	}
	for i, it := range items {
		if base[i] == "" || !reply[i] || len(it.inReplyTo) > 0 || len(it.references) > 0 {
			continue
		}
		if j, ok := bySubject[base[i]]; ok {
			union(i, j)
		} else {
			bySubject[base[i]] = i
		}
	}
	// The oldest member (last in the page) names the group's root.
	oldest := map[int]int{}
	for i := range items {
		oldest[find(i)] = i
	}
	keys := make([]string, len(items))
	for i := range items {
		keys[i] = rootID(items[oldest[find(i)]])
		if keys[i] == "" {
			keys[i] = "subject:" + base[i]
		}
	}
	return keys
}

// rootID is the thread root a message names.
func rootID(it threadItem) string {
	switch {
	case len(it.references) > 0:
		return it.references[0]
	case len(it.inReplyTo) > 0:
		return it.inReplyTo[0]
	}
	return it.messageID
}

// baseSubject strips reply and forward markers (and list tags) from a subject, lower-cased
// with white space folded; reply says whether there were any.
func baseSubject(s string) (base string, reply bool) {
	s = strings.ToLower(strings.Join(strings.Fields(s), " "))
	for {
		before := s
		s = strings.TrimSpace(s)
		if strings.HasPrefix(s, "[") {
			if i := strings.IndexByte(s, ']'); i > 0 {
				s = s[i+1:]
				continue
			}
		}
		for _, p := range []string{"re:", "fwd:", "fw:", "aw:", "sv:", "re :", "fwd :"} {
			if strings.HasPrefix(s, p) {
				s, reply = s[len(p):], true
			}
		}
		if strings.HasSuffix(s, "(fwd)") {
			s, reply = strings.TrimSuffix(s, "(fwd)"), true
		}
		if s == before {
			return strings.TrimSpace(s), reply
		}
	}
}

// msgIDs reads the message ids of an In-Reply-To or References field (RFC 5322 §3.6.4),
// without angle brackets; text outside them (old mailers' comments) is skipped.
func msgIDs(v string) []string {
	var out []string
	for {
		i := strings.IndexByte(v, '<')
		if i < 0 {
			return out
		}
		j := strings.IndexByte(v[i:], '>')
		if j < 0 {
			return out
		}
		if id := strings.TrimSpace(v[i+1 : i+j]); id != "" && len(out) < 100 {
			out = append(out, id)
		}
		v = v[i+j+1:]
	}
}
