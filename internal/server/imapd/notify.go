package imapd

// NOTIFY (RFC 5465) on the store's change feed.
//
// A session that gave NOTIFY SET subscribes to its account's changes (Server.watchAll, the
// same shared subscription IDLE uses) and keeps a small record of what changed and was not
// yet reported (notifyState's fields under session.mu): the set of watched mailboxes with
// changes, and flags saying that the mailbox list, the subscriptions or the selected
// mailbox changed. The feed's goroutine only marks that record (notice); the session itself
// reads the store and writes the responses (deliver), so a notification always says what
// the store holds at that moment, and several changes to one mailbox become one STATUS.
//
// When the session sends them (RFC 5465 §3, §5):
//   - between commands: a change wakes a session waiting for a command the way a change
//     wakes IDLE (the read deadline expires; notice only does so while the session waits
//     for the first byte of a command, never inside one), and the session answers it and
//     waits again;
//   - in IDLE, with IDLE's own announcements;
//   - at the end of a command, before its tagged reply, except after LIST, LSUB and
//     STATUS, whose own LIST and STATUS responses would be mixed up with the notifications
//     (those wait until the command is answered).
//
// The selected mailbox keeps RFC 9051's rules: its changes are announced by poll
// (selected.go), with EXPUNGE only where §7.5.1 allows it. A SELECTED or SELECTED-DELAYED
// group adds the announcement between commands (SELECTED-DELAYED without EXPUNGE, which
// waits for a command that allows it) and MessageNew's FETCH of the new messages. Other
// mailboxes get STATUS (MESSAGES UIDNEXT UIDVALIDITY UNSEEN, and HIGHESTMODSEQ once
// CONDSTORE is on); MailboxName and SubscriptionChange get LIST responses (§5.4, §5.5).
//
// Bounds: the record holds at most Config.MaxNotifyPending mailboxes; a change to one more
// before the session has reported the others is an overflow, answered with
// "* OK [NOTIFICATIONOVERFLOW]" and NOTIFY NONE (§5.8). When the store cuts the
// subscription off (the session's feed fell behind), the session rereads every watched
// mailbox instead and watches again.

import (
	"errors"
	"slices"
	"strings"
	"time"

	"petrel/internal/store"
)

// NotifySet is the argument of NOTIFY (RFC 5465 §3, §8): NONE, or SET with event groups.
type NotifySet struct {
	None   bool
	Status bool // SET STATUS: STATUS of every watched mailbox at once
	Groups []NotifyGroup
}

// NotifyGroup is one event group.
type NotifyGroup struct {
	Filter    string     // SELECTED SELECTED-DELAYED INBOXES PERSONAL SUBSCRIBED SUBTREE MAILBOXES
	Mailboxes []string   // SUBTREE, MAILBOXES: names as sent
	Events    []string   // as sent; nil for NONE
	Fetch     []FetchAtt // MessageNew's fetch attributes
}

// parseNotify reads "NONE" / "SET" [SP "STATUS"] 1*(SP event-group).
func parseNotify(r *reader, c *Command) error {
	n := &NotifySet{}
	c.Notify = n
	switch r.keyword() {
	case "NONE":
		n.None = true
		return nil
	case "SET":
	default:
		return badf("Expected NOTIFY SET or NOTIFY NONE")
	}
	if err := r.sp(); err != nil {
		return err
	}
	if r.peek() != '(' {
		if r.keyword() != "STATUS" {
			return badf("Expected STATUS or an event group")
		}
		n.Status = true
		if err := r.sp(); err != nil {
			return err
		}
	}
	for {
		if len(n.Groups) >= r.lim.MaxListItems {
			return badf("Too many event groups")
		}
		g, err := r.notifyGroup()
		if err != nil {
			return err
		}
		n.Groups = append(n.Groups, g)
		if !r.maybeSP() {
			return nil
		}
	}
}

// notifyGroup reads "(" filter-mailboxes SP events ")".
func (r *reader) notifyGroup() (g NotifyGroup, err error) {
	if err := r.enter(); err != nil {
		return g, err
	}
	defer r.leave()
	if err := r.expect('('); err != nil {
		return g, err
	}
	g.Filter = r.keyword()
	switch g.Filter {
	case "SELECTED", "SELECTED-DELAYED", "INBOXES", "PERSONAL", "SUBSCRIBED":
	case "SUBTREE", "MAILBOXES":
		if err := r.sp(); err != nil {
			return g, err
		}
		name := func() error {
			m, err := r.mailbox()
			g.Mailboxes = append(g.Mailboxes, m)
			return err
		}
		if r.peek() == '(' {
			err = r.list(false, name)
		} else {
			err = name()
		}
		if err != nil {
			return g, err
		}
	default:
		return g, badf("Unknown NOTIFY mailbox filter")
	}
	if err := r.sp(); err != nil {
		return g, err
	}
	if r.peek() != '(' {
		if r.keyword() != "NONE" {
			return g, badf("Expected an event list or NONE")
		}
		return g, r.expect(')')
	}
	g.Events = []string{}
	err = r.list(false, func() error {
		ev, err := r.atom()
		if err != nil {
			return err
		}
		g.Events = append(g.Events, ev)
		if strings.EqualFold(ev, "MessageNew") && r.peek() == ' ' && r.pos+1 < len(r.line) && r.line[r.pos+1] == '(' {
			r.pos++
			if g.Fetch != nil {
				return badf("MessageNew given twice")
			}
			g.Fetch = []FetchAtt{}
			return r.list(false, func() error {
				a, err := r.fetchAtt()
				g.Fetch = append(g.Fetch, a)
				return err
			})
		}
		return nil
	})
	if err != nil {
		return g, err
	}
	return g, r.expect(')')
}

// notifyEvent is a set of the events of RFC 5465 §5 that a session can be told of.
type notifyEvent uint8

const (
	evMessage notifyEvent = 1 << iota // MessageNew and MessageExpunge, always together (§5)
	evFlags                           // FlagChange
	evName                            // MailboxName
	evSubs                            // SubscriptionChange
)

type eventName struct {
	name string
	ev   notifyEvent
}

// notifyEventNames maps the supported events to their bits; their names in this order go in
// BADEVENT (§3.1). AnnotationChange (§5.1) and the METADATA events (§5.6, §5.7) are not
// here: Petrel has neither ANNOTATE nor METADATA, which they need.
var notifyEventNames = []eventName{
	{"MessageNew", evMessage}, {"MessageExpunge", evMessage}, {"FlagChange", evFlags},
	{"MailboxName", evName}, {"SubscriptionChange", evSubs},
}

// notifyFilter is an event group other than SELECTED, ready to match names.
type notifyFilter struct {
	kind   string   // INBOXES PERSONAL SUBSCRIBED SUBTREE MAILBOXES
	names  []string // SUBTREE, MAILBOXES: store names
	events notifyEvent
}

// filterOrder puts the most specific filters first: a mailbox gets the events of the first
// group that matches it (RFC 5465 leaves overlapping groups to the server).
var filterOrder = map[string]int{"MAILBOXES": 0, "SUBTREE": 1, "INBOXES": 2, "SUBSCRIBED": 3, "PERSONAL": 4}

// notifyState is a session's NOTIFY: what it asked for, set by NOTIFY SET and read by the
// session only, and (under session.mu) the record the change feed marks.
type notifyState struct {
	filters    []notifyFilter   // in filterOrder
	selEvents  notifyEvent      // the SELECTED or SELECTED-DELAYED group's; 0 if none
	delayed    bool             // SELECTED-DELAYED (§5.1): no EXPUNGE between commands
	fetch      []FetchAtt       // MessageNew's attributes for the selected mailbox
	known      map[int64]string // mailbox ID → name, as last reported (MailboxName)
	subscribed map[string]bool  // as last reported (SubscriptionChange, SUBSCRIBED)
	stop       func()           // ends the watch
	// autologout is when the session ends if no command comes (Config.IdleTimeout after
	// the last one): notifications keep the connection busy, not the client present.
	autologout time.Time

	// Guarded by session.mu; notice marks them, deliver takes them.
	watched    map[int64]notifyEvent // mailboxes other than the selected one, with their events
	selID      int64                 // the selected mailbox (0: none)
	max        int                   // Config.MaxNotifyPending
	pending    map[int64]notifyEvent // watched mailboxes changed and not yet reported
	selChanged bool                  // the selected mailbox changed
	names      bool                  // a mailbox was created, renamed or deleted
	subs       bool                  // the subscriptions changed
	resync     bool                  // the feed was cut off: reread everything
	overflow   bool                  // more than max mailboxes pending
	waiting    bool                  // the session waits for a command (or in IDLE): notice may wake it
	woken      bool                  // notice expired the read deadline; see setReadDeadline
}

// errNotified is not an end: a change woke a session waiting for a command, and run waits
// again once it has been reported.
var errNotified = errors.New("notify: woken by a change")

// cmdNotify sets or ends the session's notifications (RFC 5465 §3).
func (s *session) cmdNotify(c *Command) (done, error) {
	if c.Notify.None {
		s.notifyOff()
		return done{}, nil
	}
	n, err := s.notifyFrom(c.Notify)
	if err != nil {
		return done{}, err
	}
	n.max = s.srv.cfg.MaxNotifyPending
	n.selID = s.selectedID()
	s.notifyOff() // a new NOTIFY replaces the last one (§3)
	// Watch first, then read: a mailbox created in between is then seen by the diff.
	s.mu.Lock()
	s.notify = n
	s.mu.Unlock()
	n.stop = s.srv.watchAll(s.account.ID, s.notice)
	if n.known, err = s.mailboxIDs(); err != nil {
		return done{}, err
	}
	if n.subscribed, err = s.subscriptionSet(); err != nil {
		return done{}, err
	}
	watched := n.watch()
	s.mu.Lock()
	n.watched = watched
	s.mu.Unlock()
	if c.Notify.Status { // §3: STATUS of each watched mailbox, at once
		for _, id := range sortedIDs(n.watched) {
			if n.watched[id]&(evMessage|evFlags) == 0 {
				continue
			}
			if err := s.notifyStatus(id, evMessage|evFlags, true); err != nil {
				return done{}, err
			}
		}
	}
	return done{}, nil
}

// notifyFrom checks a NOTIFY SET (RFC 5465 §3, §5, §6) and builds the session's state: BAD
// for what the grammar's prose forbids, NO [BADEVENT] for events not supported.
func (s *session) notifyFrom(set *NotifySet) (*notifyState, error) {
	n := &notifyState{}
	haveSelected := false
	_, subsOK := s.srv.store.(store.SubscriptionChanges)
	for _, g := range set.Groups {
		var ev notifyEvent
		newSeen, expungeSeen := false, false
		for _, name := range g.Events {
			i := slices.IndexFunc(notifyEventNames, func(e eventName) bool { return strings.EqualFold(e.name, name) })
			if i < 0 || notifyEventNames[i].ev == evSubs && !subsOK {
				return nil, s.badEvent()
			}
			ev |= notifyEventNames[i].ev
			newSeen = newSeen || strings.EqualFold(name, "MessageNew")
			expungeSeen = expungeSeen || strings.EqualFold(name, "MessageExpunge")
		}
		if newSeen != expungeSeen {
			return nil, badf("MessageNew and MessageExpunge go together") // §5
		}
		if ev&evFlags != 0 && !newSeen {
			return nil, badf("FlagChange needs MessageNew and MessageExpunge") // §5
		}
		if g.Filter == "SELECTED" || g.Filter == "SELECTED-DELAYED" {
			if haveSelected {
				return nil, badf("Only one SELECTED or SELECTED-DELAYED group") // §6.1
			}
			haveSelected = true
			if ev&(evName|evSubs) != 0 {
				return nil, badf("Only message events for the selected mailbox") // §6.1
			}
			n.selEvents, n.delayed, n.fetch = ev, g.Filter == "SELECTED-DELAYED", g.Fetch
			continue
		}
		if g.Fetch != nil {
			return nil, badf("FETCH attributes only for the selected mailbox") // §5.2
		}
		f := notifyFilter{kind: g.Filter, events: ev}
		for _, m := range g.Mailboxes {
			name, err := s.mailboxName(m)
			if err != nil {
				return nil, err
			}
			f.names = append(f.names, name)
		}
		n.filters = append(n.filters, f)
	}
	if slices.ContainsFunc(n.fetch, func(a FetchAtt) bool { return a.Name == "MODSEQ" }) {
		s.ext.condstore = true // RFC 7162 §3.1: FETCH MODSEQ enables CONDSTORE
	}
	slices.SortStableFunc(n.filters, func(a, b notifyFilter) int { return filterOrder[a.kind] - filterOrder[b.kind] })
	return n, nil
}

// badEvent is NO [BADEVENT (supported events)] (RFC 5465 §3.1).
func (s *session) badEvent() error {
	var names []string
	for _, e := range notifyEventNames {
		if _, ok := s.srv.store.(store.SubscriptionChanges); e.ev == evSubs && !ok {
			continue
		}
		names = append(names, e.name)
	}
	return &Error{Kind: NO, Code: "BADEVENT (" + strings.Join(names, " ") + ")", Text: "Unsupported event"}
}

// eventsFor returns the events a mailbox of that name gets: the first matching filter's.
func (n *notifyState) eventsFor(name string) notifyEvent { return n.eventsIn(name, n.subscribed) }

// eventsIn is eventsFor with the given subscriptions.
func (n *notifyState) eventsIn(name string, subscribed map[string]bool) notifyEvent {
	for _, f := range n.filters {
		match := false
		switch f.kind {
		case "PERSONAL":
			match = true // one namespace, the account's own (NAMESPACE)
		case "INBOXES":
			match = name == store.Inbox // the only mailbox delivery fills without a rule
		case "SUBSCRIBED":
			match = subscribed[name]
		case "MAILBOXES":
			match = slices.Contains(f.names, name)
		case "SUBTREE":
			match = slices.ContainsFunc(f.names, func(p string) bool { return name == p || store.IsInferior(name, p) })
		}
		if match {
			return f.events
		}
	}
	return 0
}

// watch computes the watched mailboxes from known and subscribed.
func (n *notifyState) watch() map[int64]notifyEvent {
	w := make(map[int64]notifyEvent, len(n.known))
	for id, name := range n.known {
		if ev := n.eventsFor(name); ev != 0 {
			w[id] = ev
		}
	}
	return w
}

// notice marks a change for the session (see the file comment). It runs on the change
// feed's goroutine, under Server.mu, and must not block; ok false means the feed was cut off.
func (s *session) notice(c store.Change, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := s.notify
	if n == nil {
		return
	}
	switch {
	case !ok:
		n.resync = true
	case c.Kind == store.ChangeMailbox || c.Kind == store.ChangeSubscription:
		if len(n.filters) == 0 {
			return // only SELECTED: names and subscriptions do not matter
		}
		n.names = n.names || c.Kind == store.ChangeMailbox
		n.subs = n.subs || c.Kind == store.ChangeSubscription
	case c.MailboxID == n.selID:
		if n.selEvents == 0 {
			return // announced at the next command, as without NOTIFY
		}
		n.selChanged = true
	default:
		need := evMessage
		if c.Kind == store.ChangeFlags {
			need = evFlags
		}
		if n.watched[c.MailboxID]&need == 0 {
			return
		}
		if _, ok := n.pending[c.MailboxID]; !ok && len(n.pending) >= n.max {
			n.overflow = true
		} else {
			if n.pending == nil {
				n.pending = map[int64]notifyEvent{}
			}
			n.pending[c.MailboxID] |= need
		}
	}
	if n.waiting && !n.woken {
		n.woken = true
		s.raw.SetReadDeadline(time.Unix(1, 0))
	}
}

// notifyArm lets notice wake the session while it waits for input; it reports false if
// something is pending already, and the session should report it instead of waiting.
func (s *session) notifyArm() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := s.notify
	if n == nil {
		return true
	}
	if n.somethingPending() {
		return false
	}
	n.waiting = true
	return true
}

// notifyDisarm ends the wait notifyArm began and reports whether notice woke it.
func (s *session) notifyDisarm() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := s.notify
	if n == nil {
		return false
	}
	woken := n.woken
	n.waiting, n.woken = false, false
	return woken
}

// somethingPending: under session.mu.
func (n *notifyState) somethingPending() bool {
	return len(n.pending) > 0 || n.selChanged || n.names || n.subs || n.resync || n.overflow
}

// notifyOff ends NOTIFY (NOTIFY NONE, an overflow, the end of the session).
func (s *session) notifyOff() {
	s.mu.Lock()
	n := s.notify
	s.notify = nil
	s.mu.Unlock()
	if n != nil && n.stop != nil {
		n.stop() // takes Server.mu: never under session.mu (lock order)
	}
}

// deliver reports what notice marked. between is true when the session is between
// commands or in IDLE, false before a command's tagged reply, where command has just polled
// the selected mailbox. cmd is the command being answered.
func (s *session) deliver(between bool, cmd string) error {
	n := s.notify
	if n == nil || !between && (cmd == "LIST" || cmd == "LSUB" || cmd == "STATUS") {
		return nil
	}
	s.mu.Lock()
	n.selID = s.selectedID()
	pending, selChanged, names, subs, resync, overflow := n.pending, n.selChanged, n.names, n.subs, n.resync, n.overflow
	n.pending, n.selChanged, n.names, n.subs, n.resync, n.overflow = nil, false, false, false, false, false
	s.mu.Unlock()
	if overflow {
		s.out().status("*", "OK", "NOTIFICATIONOVERFLOW", "Too many changes; NOTIFY is off") // §5.8
		s.notifyOff()
		return nil
	}
	if resync {
		// The feed was cut off: watch again, and report every watched mailbox.
		n.stop()
		n.stop = s.srv.watchAll(s.account.ID, s.notice)
		names, subs, selChanged = true, true, n.selEvents != 0
		pending = map[int64]notifyEvent{}
		for id, ev := range n.watched {
			pending[id] = ev & (evMessage | evFlags)
		}
	}
	if names || subs {
		if err := s.deliverNames(names, subs); err != nil {
			return err
		}
	}
	for _, id := range sortedIDs(pending) {
		if id == s.selectedID() || pending[id] == 0 {
			continue
		}
		if err := s.notifyStatus(id, pending[id], false); err != nil {
			return err
		}
	}
	if between && selChanged && s.sel != nil {
		return s.poll(!n.delayed)
	}
	return nil
}

// deliverNames reports created, renamed and deleted mailboxes (MailboxName, RFC 5465 §5.4)
// and subscription changes (SubscriptionChange, §5.5) as LIST responses, and updates the
// watched set, which depends on both.
func (s *session) deliverNames(names, subs bool) error {
	n := s.notify
	w := s.out()
	if names {
		now, err := s.mailboxIDs()
		if err != nil {
			return err
		}
		for _, id := range sortedIDs(n.known) {
			old := n.known[id]
			name, ok := now[id]
			switch {
			case !ok && n.eventsFor(old)&evName != 0:
				s.writeListLine("* LIST ", old, []string{`\NonExistent`}, "")
			case ok && name != old && (n.eventsFor(old)|n.eventsFor(name))&evName != 0:
				w.str(`* LIST () "/" `)
				w.mailbox(name)
				w.str(` ("OLDNAME" (`) // RFC 5465 §5.4, RFC 5258 §3.5
				w.mailbox(old)
				w.str("))\r\n")
			}
		}
		for _, id := range sortedIDs(now) {
			if _, ok := n.known[id]; !ok && n.eventsFor(now[id])&evName != 0 {
				s.writeListLine("* LIST ", now[id], nil, "")
			}
		}
		n.known = now
	}
	if subs {
		now, err := s.subscriptionSet()
		if err != nil {
			return err
		}
		changed := map[string]bool{}
		for name := range now {
			if !n.subscribed[name] {
				changed[name] = true
			}
		}
		for name := range n.subscribed {
			if !now[name] {
				changed[name] = true
			}
		}
		names := make([]string, 0, len(changed))
		for name := range changed {
			names = append(names, name)
		}
		slices.Sort(names)
		for _, name := range names {
			// Under the old subscriptions or the new: SUBSCRIBED matches either way.
			if (n.eventsIn(name, n.subscribed)|n.eventsIn(name, now))&evSubs == 0 {
				continue
			}
			var attrs []string
			if now[name] {
				attrs = []string{`\Subscribed`}
			}
			s.writeListLine("* LIST ", name, attrs, "")
		}
		n.subscribed = now
	}
	watched := n.watch()
	s.mu.Lock()
	n.watched = watched
	s.mu.Unlock()
	return nil
}

// notifyStatus writes the STATUS of a mailbox that is not selected (RFC 5465 §5.2-§5.4):
// MESSAGES UIDNEXT UNSEEN for new and expunged messages, UNSEEN for flag changes, with
// UIDVALIDITY too for NOTIFY SET STATUS (initial), and HIGHESTMODSEQ once CONDSTORE is on
// (RFC 7162 §3.1). A mailbox gone meanwhile is left to MailboxName.
func (s *session) notifyStatus(id int64, ev notifyEvent, initial bool) error {
	mb, err := s.srv.store.MailboxByID(s.ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	var items []string
	switch {
	case initial:
		items = []string{"MESSAGES", "UIDNEXT", "UIDVALIDITY", "UNSEEN"}
	case ev&evMessage != 0:
		items = []string{"MESSAGES", "UIDNEXT", "UNSEEN"}
	default:
		items = []string{"UNSEEN"}
	}
	if s.ext.condstore {
		items = append(items, "HIGHESTMODSEQ")
	}
	return s.writeStatus(mb, items)
}

// notifyFetch sends MessageNew's FETCH for messages new in the selected mailbox (RFC 5465
// §5.2), after their EXISTS. It never sets \Seen.
func (s *session) notifyFetch(uids []uint32) error {
	n := s.notify
	if n == nil || len(n.fetch) == 0 || len(uids) == 0 {
		return nil
	}
	msgs, err := s.messagesIn([]store.UIDRange{{First: uids[0], Last: uids[len(uids)-1]}})
	if err != nil {
		return err
	}
	for _, m := range msgs {
		if seq := s.sel.seqOf(m.UID); seq != 0 && slices.Contains(uids, m.UID) {
			if err := s.fetchOne(seq, &fetchMsg{m: m}, n.fetch, false, false); err != nil {
				return err
			}
		}
	}
	return nil
}

// mailboxIDs maps the account's mailboxes' IDs to their names.
func (s *session) mailboxIDs() (map[int64]string, error) {
	mbs, err := s.srv.store.Mailboxes(s.ctx, s.account.ID)
	if err != nil {
		return nil, err
	}
	m := make(map[int64]string, len(mbs))
	for _, mb := range mbs {
		m[mb.ID] = mb.Name
	}
	return m, nil
}

func (s *session) subscriptionSet() (map[string]bool, error) {
	names, err := s.srv.store.Subscriptions(s.ctx, s.account.ID)
	if err != nil {
		return nil, err
	}
	m := make(map[string]bool, len(names))
	for _, name := range names {
		m[name] = true
	}
	return m, nil
}

func sortedIDs[V any](m map[int64]V) []int64 {
	ids := make([]int64, 0, len(m))
	for id := range m {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}
