package imapd

import (
	"bufio"
	"bytes"
	"slices"
	"strings"
	"testing"

	"petrel/internal/store"
)

// tmsg is a message for the threading tests: its number is its place in the list, its
// date its number unless given.
type tmsg struct {
	id, subject string
	refs        []string
	reply       bool
	date        int64
}

func threadString(msgs []tmsg, references bool) string {
	in := make([]sortMsg, len(msgs))
	for i, m := range msgs {
		date := m.date
		if date == 0 {
			date = int64(i + 1)
		}
		in[i] = sortMsg{seq: uint32(i + 1), uid: uint32(i + 1), date: date,
			k: &store.SortKeys{MessageID: m.id, Subject: m.subject, References: m.refs, Reply: m.reply}}
	}
	var roots []*node
	if references {
		roots = threadReferences(in)
	} else {
		roots = threadOrderedSubject(in)
	}
	var buf bytes.Buffer
	w := &respWriter{bw: bufio.NewWriter(&buf)}
	writeThreads(w, roots, false)
	w.bw.Flush()
	return buf.String()
}

func TestThreadReferences(t *testing.T) {
	for _, tc := range []struct {
		name string
		msgs []tmsg
		want string
	}{
		{"empty", nil, ""},
		{"chain", []tmsg{{id: "a"}, {id: "b", refs: []string{"a"}}, {id: "c", refs: []string{"a", "b"}}}, "(1 2 3)"},
		{"replies before their parent", []tmsg{{id: "c", refs: []string{"a", "b"}, date: 3}, {id: "b", refs: []string{"a"}, date: 2}, {id: "a", date: 1}}, "(3 2 1)"},
		{"siblings by date", []tmsg{{id: "a"}, {id: "b", refs: []string{"a"}, date: 9}, {id: "c", refs: []string{"a"}, date: 5}}, "(1 (3)(2))"},
		// A missing parent with two children stays as a dummy at the root.
		{"dummy root", []tmsg{{id: "b", refs: []string{"a"}}, {id: "c", refs: []string{"a"}}}, "((1)(2))"},
		// Missing messages in the middle of a chain are pruned away.
		{"dummy inside", []tmsg{{id: "a"}, {id: "d", refs: []string{"a", "b", "c"}}}, "(1 2)"},
		// References that point at each other must not make a loop.
		{"loop", []tmsg{{id: "a", refs: []string{"b"}}, {id: "b", refs: []string{"a"}}}, "(2 1)"},
		{"own id", []tmsg{{id: "a", refs: []string{"a"}}}, "(1)"},
		// A duplicate Message-ID is a message of its own.
		{"duplicate id", []tmsg{{id: "a"}, {id: "a"}, {id: "b", refs: []string{"a"}}}, "(1 3)(2)"},
		{"no ids", []tmsg{{}, {}}, "(1)(2)"},
		// A truncated References gives way to a later, longer one (step 1B).
		{"reparent", []tmsg{{id: "d", refs: []string{"a", "c"}}, {id: "c", refs: []string{"b"}}}, "(2 1)"},
		{"keep links", []tmsg{{id: "a"}, {id: "b", refs: []string{"a"}}, {id: "c", refs: []string{"a"}}, {id: "d", refs: []string{"a", "c", "b"}}}, "(1 (2 4)(3))"},
		// Step 5: a reply joins the thread of its subject's original as a child; two
		// originals of one subject become siblings under a dummy; an empty subject is not
		// gathered.
		{"subject reply", []tmsg{{id: "a", subject: "S"}, {id: "b", subject: "S", reply: true}}, "(1 2)"},
		{"subject two originals", []tmsg{{id: "a", subject: "S"}, {id: "x", subject: "T"}, {id: "b", subject: "S"}}, "((1)(3))(2)"},
		{"subject dummy", []tmsg{{id: "b", refs: []string{"a"}, subject: "S"}, {id: "c", refs: []string{"a"}, subject: "S"}, {id: "d", subject: "S", reply: true}}, "((1)(2)(3))"},
		{"subject both dummies", []tmsg{{id: "b", refs: []string{"a"}, subject: "S"}, {id: "c", refs: []string{"a"}, subject: "S"},
			{id: "y", refs: []string{"x"}, subject: "S"}, {id: "z", refs: []string{"x"}, subject: "S"}}, "((1)(2)(3)(4))"},
		{"empty subject", []tmsg{{id: "a"}, {id: "b"}}, "(1)(2)"},
	} {
		if got := threadString(tc.msgs, true); got != tc.want {
			t.Errorf("%s: THREAD REFERENCES %q, want %q", tc.name, got, tc.want)
		}
	}
}

func TestThreadOrderedSubject(t *testing.T) {
	msgs := []tmsg{
		{subject: "B", date: 5}, {subject: "A", date: 3}, {subject: "B", date: 1}, {subject: "A", date: 4},
		{subject: "C", date: 2}, {subject: "A", date: 3},
	}
	// B starts at 1 (message 3), C at 2, A at 3 (message 2, before 6 of the same date).
	if got, want := threadString(msgs, false), "(3 1)(5)(2 (6)(4))"; got != want {
		t.Errorf("THREAD ORDEREDSUBJECT %q, want %q", got, want)
	}
}

// A long chain of replies, in order or backwards, costs neither quadratic time (no loop
// check walks the chain) nor deep recursion when written.
func TestThreadLongChain(t *testing.T) {
	const n = 100000
	msgs := make([]tmsg, n)
	for i := range msgs {
		msgs[i].id = "m" + itoa(i)
		if i > 0 {
			msgs[i].refs = []string{msgs[i-1].id}
		}
	}
	got := threadString(msgs, true)
	if !strings.HasPrefix(got, "(1 2 3 ") || !strings.HasSuffix(got, " 99999 100000)") {
		t.Errorf("chain of %d: %q...%q", n, got[:10], got[len(got)-15:])
	}
	slices.Reverse(msgs)
	for i := range msgs {
		msgs[i].date = int64(n - i)
	}
	got = threadString(msgs, true)
	if !strings.HasPrefix(got, "(100000 99999 ") || !strings.HasSuffix(got, " 2 1)") {
		t.Errorf("backward chain of %d: %q...%q", n, got[:15], got[len(got)-10:])
	}
}

func itoa(i int) string {
	var b [20]byte
	n := len(b)
	for {
		n--
		b[n] = byte('0' + i%10)
		if i /= 10; i == 0 {
			return string(b[n:])
		}
	}
}
