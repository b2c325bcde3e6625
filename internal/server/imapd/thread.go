package imapd

// The THREAD algorithms of RFC 5256 §3 over messages with their sort keys (sort.go):
// ORDEREDSUBJECT (threads of equal base subject) and REFERENCES (Jamie Zawinski's
// algorithm as the RFC restates it: link by Message-ID and References, prune empty
// containers, gather roots of equal base subject, order by sent date).

import (
	"cmp"
	"slices"

	"petrel/internal/store"
)

// node is a container of the thread tree: a message, or a dummy (m nil) standing for a
// message that is referred to but not present.
type node struct {
	m        *sortMsg
	parent   *node
	children []*node
}

// keys are a node's sort keys: its message's, or a dummy's first child's.
func (n *node) keys() *store.SortKeys {
	for n.m == nil {
		if len(n.children) == 0 {
			return &store.SortKeys{}
		}
		n = n.children[0]
	}
	return n.m.k
}

// order is what siblings are sorted by: the sent date, then the message number; a dummy
// takes its first child's (RFC 5256 §3 REFERENCES step 6).
func (n *node) order() (int64, uint32) {
	for n.m == nil {
		if len(n.children) == 0 {
			return 0, 0
		}
		n = n.children[0]
	}
	return n.m.date, n.m.seq
}

func (n *node) adopt(child *node) {
	child.parent = n
	n.children = append(n.children, child)
}

func (n *node) unlink() {
	if p := n.parent; p != nil {
		p.children = slices.DeleteFunc(p.children, func(c *node) bool { return c == n })
		n.parent = nil
	}
}

// under reports whether n is a descendant of a (or a itself). A node without children
// has no descendants: that answer costs no walk, which keeps a long chain of replies
// linear (each message arrives as a leaf).
func (n *node) under(a *node) bool {
	if len(a.children) == 0 {
		return n == a
	}
	for p := n; p != nil; p = p.parent {
		if p == a {
			return true
		}
	}
	return false
}

// sortNodes sorts siblings and, first, their children, by sent date and message number.
func sortNodes(nodes []*node) {
	for _, n := range nodes {
		sortNodes(n.children)
	}
	slices.SortFunc(nodes, func(a, b *node) int {
		ad, as := a.order()
		bd, bs := b.order()
		if c := cmp.Compare(ad, bd); c != 0 {
			return c
		}
		return cmp.Compare(as, bs)
	})
}

// threadOrderedSubject: messages sorted by base subject and sent date; each run of one
// base subject is a thread whose first message is the parent of all the others; threads
// in the order of their first messages' sent dates (RFC 5256 §3 ORDEREDSUBJECT).
func threadOrderedSubject(msgs []sortMsg) []*node {
	order := make([]*sortMsg, len(msgs))
	for i := range msgs {
		order[i] = &msgs[i]
	}
	slices.SortFunc(order, func(a, b *sortMsg) int {
		if c := cmp.Compare(a.k.Subject, b.k.Subject); c != 0 {
			return c
		}
		if c := cmp.Compare(a.date, b.date); c != 0 {
			return c
		}
		return cmp.Compare(a.seq, b.seq)
	})
	var roots []*node
	var cur *node
	for _, m := range order {
		if cur != nil && cur.m.k.Subject == m.k.Subject {
			cur.adopt(&node{m: m})
			continue
		}
		cur = &node{m: m}
		roots = append(roots, cur)
	}
	sortNodes(roots)
	return roots
}

// threadReferences is RFC 5256 §3 REFERENCES, step by step.
func threadReferences(msgs []sortMsg) []*node {
	byID := map[string]*node{}
	var all []*node // every container, in creation order: the roots' order before sorting
	get := func(id string) *node {
		n := byID[id]
		if n == nil {
			n = &node{}
			byID[id] = n
			all = append(all, n)
		}
		return n
	}
	// Step 1: a container per message ID, linked by References.
	for i := range msgs {
		m := &msgs[i]
		var n *node
		if id := m.k.MessageID; id != "" && (byID[id] == nil || byID[id].m == nil) {
			n = get(id)
		} else {
			// No Message-ID, or one seen before: the message is unique all the same.
			n = &node{}
			all = append(all, n)
		}
		n.m = m
		// 1A: each reference is the parent of the next, unless it has a parent already or
		// the link would make a loop.
		var prev *node
		for _, ref := range m.k.References {
			r := get(ref)
			if prev != nil && r.parent == nil && !prev.under(r) {
				prev.adopt(r)
			}
			prev = r
		}
		// 1B: the last reference is the message's parent, replacing any parent an earlier
		// message's (maybe truncated) References gave it; none without references.
		n.unlink()
		if prev != nil && !prev.under(n) {
			prev.adopt(n)
		}
	}
	// Step 2: the root set.
	var roots []*node
	for _, n := range all {
		if n.parent == nil {
			roots = append(roots, n)
		}
	}
	// Step 4: prune dummies.
	roots = prune(roots, true)
	// Step 5 looks at "the first child" of a dummy: sort first so that it is the earliest.
	sortNodes(roots)
	roots = gatherSubjects(roots)
	// Steps 6 and 7: siblings and threads by sent date.
	sortNodes(roots)
	return roots
}

// prune removes dummies without children and puts the children of the others in their
// place, except that a dummy at the root with several children stays (RFC 5256 §3
// REFERENCES step 4).
func prune(nodes []*node, root bool) []*node {
	out := nodes[:0:0]
	for _, n := range nodes {
		n.children = prune(n.children, false)
		if n.m == nil && (len(n.children) == 0 || !root || len(n.children) == 1) {
			for _, c := range n.children {
				c.parent = n.parent
			}
			out = append(out, n.children...)
			continue
		}
		out = append(out, n)
	}
	return out
}

// gatherSubjects merges threads whose roots have the same base subject (RFC 5256 §3
// REFERENCES step 5).
func gatherSubjects(roots []*node) []*node {
	// 5A-C: for each subject the root that stands for it: a dummy rather than a message,
	// a message that is not a reply rather than one that is.
	table := map[string]*node{}
	for _, n := range roots {
		k := n.keys()
		if k.Subject == "" {
			continue
		}
		t := table[k.Subject]
		if t == nil || n.m == nil && t.m != nil || t.keys().Reply && !k.Reply {
			table[k.Subject] = n
		}
	}
	// 5D: every other root of the subject joins it.
	pos := make(map[*node]int, len(roots))
	for i, n := range roots {
		pos[n] = i
	}
	for i, n := range roots {
		if n == nil {
			continue
		}
		k := n.keys()
		t := table[k.Subject]
		if k.Subject == "" || t == nil || t == n {
			continue
		}
		ti := pos[t]
		switch {
		case t.m == nil && n.m == nil:
			for _, c := range n.children {
				t.adopt(c)
			}
			roots[i] = nil
		case t.m == nil:
			t.adopt(n)
			roots[i] = nil
		case n.m == nil:
			n.adopt(t)
			roots[ti], roots[i] = n, nil
			pos[n], table[k.Subject] = ti, n
		case k.Reply && !t.keys().Reply:
			t.adopt(n)
			roots[i] = nil
		default:
			d := &node{}
			d.adopt(t)
			d.adopt(n)
			roots[ti], roots[i] = d, nil
			pos[d], table[k.Subject] = ti, d
		}
	}
	return slices.DeleteFunc(roots, func(n *node) bool { return n == nil })
}

// writeThreads writes thread-list data (RFC 5256 §4.2): "(" a message, then its one child
// inline or its several children each in parentheses ")". A chain of single replies is
// written in a loop, so that its length costs no stack.
func writeThreads(w *respWriter, roots []*node, uid bool) {
	for _, n := range roots {
		w.byte('(')
		writeThread(w, n, uid)
		w.byte(')')
	}
}

func writeThread(w *respWriter, n *node, uid bool) {
	for {
		if n.m != nil {
			if uid {
				w.num(n.m.uid)
			} else {
				w.num(n.m.seq)
			}
			if len(n.children) == 1 {
				w.sp()
				n = n.children[0]
				continue
			}
			if len(n.children) > 1 {
				w.sp()
			}
		}
		writeThreads(w, n.children, uid)
		return
	}
}
