package imapd

// LIST and LSUB (RFC 9051 §6.3.9, RFC 3501 §6.3.9) with LIST-EXTENDED (RFC 5258): selection
// options SUBSCRIBED, REMOTE, RECURSIVEMATCH and SPECIAL-USE (RFC 6154 §3), return options
// SUBSCRIBED, CHILDREN, SPECIAL-USE and STATUS (LIST-STATUS, RFC 5819). Child attributes
// (RFC 3348) and special-use attributes are returned always, which RFC 5258 §4 and RFC 6154
// §2 allow.

import (
	"slices"
	"strings"

	"petrel/internal/store"
)

// statusItemsValid checks STATUS data items (RFC 9051 §6.3.11, RFC 8438 SIZE, RFC 7162
// HIGHESTMODSEQ, which turns CONDSTORE on).
func (s *session) statusItemsValid(items []string) error {
	for _, item := range items {
		switch item {
		case "MESSAGES", "UIDNEXT", "UIDVALIDITY", "UNSEEN", "DELETED", "RECENT", "SIZE":
		case "HIGHESTMODSEQ":
			s.ext.condstore = true // RFC 7162 §3.1
		default:
			return badf("Unknown STATUS item " + item)
		}
	}
	return nil
}

// listOptions are LIST's selection and return options, checked.
type listOptions struct {
	subscribed bool // select SUBSCRIBED
	specialUse bool // select SPECIAL-USE
	recursive  bool // RECURSIVEMATCH
	retSubs    bool // return SUBSCRIBED (implied by select SUBSCRIBED)
	status     []string
}

func (s *session) listOptions(c *Command) (listOptions, error) {
	var o listOptions
	for _, opt := range c.ListSelect {
		switch opt {
		case "SUBSCRIBED":
			o.subscribed, o.retSubs = true, true
		case "SPECIAL-USE":
			o.specialUse = true
		case "RECURSIVEMATCH":
			o.recursive = true
		case "REMOTE": // no remote mailboxes here (RFC 5258 §3.1)
		default:
			return o, badf("Unknown LIST selection option " + opt) // RFC 5258 §3
		}
	}
	if o.recursive && !o.subscribed && !o.specialUse {
		return o, badf("RECURSIVEMATCH needs another selection option") // RFC 5258 §3
	}
	for _, opt := range c.ListReturn {
		switch opt {
		case "SUBSCRIBED":
			o.retSubs = true
		case "CHILDREN", "SPECIAL-USE":
		case "STATUS":
			if err := s.statusItemsValid(c.StatusItems); err != nil {
				return o, err
			}
			o.status = c.StatusItems
		default:
			return o, badf("Unknown LIST return option " + opt)
		}
	}
	return o, nil
}

// cmdList answers LIST and LSUB.
func (s *session) cmdList(c *Command) (done, error) {
	o, err := s.listOptions(c)
	if err != nil {
		return done{}, err
	}
	w := s.out()
	resp := "* " + c.Name + " "
	ref := ""
	if c.Mailbox != "" {
		if ref, err = s.mailboxName(c.Mailbox); err != nil {
			return done{}, err
		}
	}
	if len(c.Patterns) == 1 && c.Patterns[0] == "" && c.ListSelect == nil {
		// RFC 9051 §6.3.9: an empty pattern asks for the hierarchy delimiter.
		w.str(resp)
		w.str(`(\Noselect) "/" ""` + "\r\n")
		return done{}, nil
	}
	var patterns []string
	for _, p := range c.Patterns {
		if strings.Contains(p, "&") && !s.ext.utf8 {
			dec, ok := DecodeMUTF7(p)
			if !ok {
				return done{}, badf("Invalid pattern (modified UTF-7)")
			}
			p = dec
		}
		p = ref + p
		if len(p) > maxPattern {
			return done{}, badf("Pattern too long")
		}
		patterns = append(patterns, p)
	}
	re, err := patternRegexp(patterns)
	if err != nil {
		return done{}, badf("Invalid pattern")
	}
	mbs, err := s.srv.store.Mailboxes(s.ctx, s.account.ID)
	if err != nil {
		return done{}, s.storeError(err)
	}
	subs, err := s.srv.store.Subscriptions(s.ctx, s.account.ID)
	if err != nil {
		return done{}, s.storeError(err)
	}
	byName := make(map[string]*store.Mailbox, len(mbs))
	for i := range mbs {
		byName[mbs[i].Name] = &mbs[i]
	}
	if c.Name == "LSUB" {
		for _, name := range subs {
			if !re.MatchString(name) {
				continue
			}
			var attrs []string
			if byName[name] == nil {
				attrs = append(attrs, `\Noselect`) // RFC 3501 §6.3.9
			}
			s.writeListLine(resp, name, attrs, "")
		}
		return done{}, nil
	}
	subscribed := make(map[string]bool, len(subs))
	for _, n := range subs {
		subscribed[n] = true
	}
	// The names LIST may return: every mailbox, then subscribed names that do not exist
	// and, for RECURSIVEMATCH, their superiors.
	names := make([]string, 0, len(mbs)+len(subs))
	for _, mb := range mbs {
		names = append(names, mb.Name)
	}
	var extra []string
	if o.subscribed {
		for _, n := range subs {
			extra = append(extra, n)
			if o.recursive {
				extra = append(extra, store.Superiors(n)...)
			}
		}
	}
	slices.Sort(extra)
	for _, n := range slices.Compact(extra) {
		if byName[n] == nil {
			names = append(names, n)
		}
	}
	meets := func(n string) bool { // the selection criteria
		if o.subscribed && !subscribed[n] {
			return false
		}
		return !o.specialUse || byName[n] != nil && byName[n].SpecialUse != ""
	}
	for _, name := range names {
		if !re.MatchString(name) {
			continue
		}
		childInfo := ""
		if !meets(name) {
			// RFC 5258 §3.5: with RECURSIVEMATCH a name whose inferior meets the criteria
			// is returned, saying why in CHILDINFO.
			if !o.recursive || !slices.ContainsFunc(names, func(n string) bool { return store.IsInferior(n, name) && meets(n) }) {
				continue
			}
			what := []string{}
			if o.subscribed {
				what = append(what, `"SUBSCRIBED"`)
			}
			if o.specialUse {
				what = append(what, `"SPECIAL-USE"`)
			}
			childInfo = ` ("CHILDINFO" (` + strings.Join(what, " ") + `))`
		}
		mb := byName[name]
		var attrs []string
		if mb == nil {
			attrs = append(attrs, `\NonExistent`) // RFC 5258 §3.4
		} else {
			attrs = append(attrs, `\HasNoChildren`)
			if slices.ContainsFunc(mbs, func(m store.Mailbox) bool { return store.IsInferior(m.Name, name) }) {
				attrs[0] = `\HasChildren`
			}
			if mb.SpecialUse != "" {
				attrs = append(attrs, string(mb.SpecialUse))
			}
		}
		if o.retSubs && subscribed[name] {
			attrs = append(attrs, `\Subscribed`)
		}
		s.writeListLine(resp, name, attrs, childInfo)
		if o.status != nil && mb != nil {
			s.writeStatus(*mb, o.status) // RFC 5819 §2: after the mailbox's LIST
		}
	}
	return done{}, nil
}

// writeListLine writes one LIST or LSUB response.
func (s *session) writeListLine(resp, name string, attrs []string, ext string) {
	w := s.out()
	w.str(resp)
	w.flags(attrs)
	w.str(` "/" `)
	w.mailbox(name)
	w.str(ext)
	w.crlf()
}
