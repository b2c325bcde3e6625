package imapd

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"petrel/internal/mail/auth"
	"petrel/internal/mail/message"
	"petrel/internal/store"
	"petrel/internal/store/sqlite"
)

// The SORT/THREAD benchmark corpus: one INBOX of sortCorpusSize messages with realistic
// headers (2,000 senders with display names, 5,000 subjects with Re:/Fwd:/[list] prefixes,
// dates over three years in random order, a third of the messages replying to an earlier
// one with In-Reply-To and References), parsed by message.Parse as a delivery would be.
// Building it takes a while, so it is kept in the temporary directory for later runs.
const (
	sortCorpusSize    = 100_000
	sortCorpusVersion = 2
	sortCorpusAccount = "sort@example.org"
)

func openSortCorpus(b *testing.B) *sqlite.Store {
	dir := filepath.Join(os.TempDir(), fmt.Sprintf("petrel-bench-sort-v%d-%d", sortCorpusVersion, sortCorpusSize))
	done := filepath.Join(dir, "complete")
	open := func() *sqlite.Store {
		st, err := sqlite.Open(filepath.Join(dir, "petrel.db"), sqlite.Options{MaxBatch: 512})
		if err != nil {
			b.Fatal(err)
		}
		return st
	}
	if _, err := os.Stat(done); err != nil {
		os.RemoveAll(dir)
		if err := os.MkdirAll(dir, 0o700); err != nil {
			b.Fatal(err)
		}
		b.Logf("building the %d-message sort corpus in %s (once)", sortCorpusSize, dir)
		st := open()
		buildSortCorpus(b, st)
		if err := st.Close(); err != nil {
			b.Fatal(err)
		}
		if err := os.WriteFile(done, nil, 0o600); err != nil {
			b.Fatal(err)
		}
	}
	st := open()
	b.Cleanup(func() { st.Close() })
	return st
}

func buildSortCorpus(b *testing.B, st *sqlite.Store) {
	ctx := context.Background()
	if err := st.AddDomain(ctx, "example.org"); err != nil {
		b.Fatal(err)
	}
	cred, err := auth.NewCredentials(alicePass)
	if err != nil {
		b.Fatal(err)
	}
	a, err := st.AddAccount(ctx, sortCorpusAccount, cred)
	if err != nil {
		b.Fatal(err)
	}
	r := rand.New(rand.NewPCG(7, 8))
	word := func() string {
		w := make([]byte, 3+r.IntN(7))
		for i := range w {
			w[i] = byte('a' + r.IntN(26))
		}
		return string(w)
	}
	senders := make([]string, 2000)
	for i := range senders {
		senders[i] = fmt.Sprintf("%s %s <%s%d@%s.example>", strings.ToUpper(word()[:1])+word(), strings.ToUpper(word()[:1])+word(), word(), i, word())
	}
	subjects := make([]string, 5000)
	for i := range subjects {
		subjects[i] = word() + " " + word() + " " + word()
	}
	prefixes := []string{"", "", "", "Re: ", "RE: Re: ", "Fwd: ", "[list] Re: ", "Re: [list] "}
	start := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	var batch []store.BatchMessage
	for i := 1; i <= sortCorpusSize; i++ {
		var h strings.Builder
		fmt.Fprintf(&h, "From: %s\r\nTo: %s\r\n", senders[r.IntN(len(senders))], senders[r.IntN(len(senders))])
		if r.IntN(4) == 0 {
			fmt.Fprintf(&h, "Cc: %s\r\n", senders[r.IntN(len(senders))])
		}
		date := start.Add(time.Duration(r.Int64N(int64(3 * 365 * 24 * time.Hour))))
		fmt.Fprintf(&h, "Date: %s\r\nSubject: %s%s\r\nMessage-ID: <%d@bench.example>\r\n",
			date.Format(time.RFC1123Z), prefixes[r.IntN(len(prefixes))], subjects[r.IntN(len(subjects))], i)
		if i > 1 && r.IntN(3) == 0 {
			parent := 1 + r.IntN(i-1)
			fmt.Fprintf(&h, "In-Reply-To: <%d@bench.example>\r\nReferences: <%d@bench.example> <%d@bench.example>\r\n", parent, 1+r.IntN(parent), parent)
		}
		body := h.String() + "\r\n" + word() + " " + word() + "\r\n"
		parsed, err := message.Parse(strings.NewReader(body))
		if err != nil {
			b.Fatal(err)
		}
		batch = append(batch, store.BatchMessage{AppendMessage: store.AppendMessage{
			Body: strings.NewReader(body), Size: int64(len(body)), Parsed: parsed, InternalDate: date.Add(time.Minute),
		}})
		if len(batch) == 1000 || i == sortCorpusSize {
			if _, err := st.AppendBatch(ctx, a.ID, store.Inbox, batch); err != nil {
				b.Fatal(err)
			}
			batch = batch[:0]
		}
	}
}

// BenchmarkSort100K is SORT and THREAD over IMAP in a selected mailbox of 100,000
// messages: the search (ALL), the store's read of every message's keys, the sort or the
// threading, and the response (100,000 numbers) over a loopback connection.
func BenchmarkSort100K(b *testing.B) {
	st := openSortCorpus(b)
	d := benchSession(b, st, sortCorpusAccount)
	for _, tc := range []struct{ name, cmd, reply string }{
		{"date", "SORT (DATE) UTF-8 ALL", "* SORT "},
		{"reverse-arrival", "SORT (REVERSE ARRIVAL) UTF-8 ALL", "* SORT "},
		{"subject", "SORT (SUBJECT) UTF-8 ALL", "* SORT "},
		{"from-date", "SORT (FROM DATE) UTF-8 ALL", "* SORT "},
		{"displayfrom", "SORT (DISPLAYFROM) UTF-8 ALL", "* SORT "},
		{"esort-minmax", "SORT RETURN (MIN MAX COUNT) (DATE) UTF-8 ALL", "* ESEARCH "},
		{"date-unseen", "SORT (DATE) UTF-8 UNSEEN", "* SORT "},
		{"date-1000", "SORT (DATE) UTF-8 UID 50000:50999", "* SORT "},
		{"thread-references", "THREAD REFERENCES UTF-8 ALL", "* THREAD ("},
		{"thread-orderedsubject", "THREAD ORDEREDSUBJECT UTF-8 ALL", "* THREAD ("},
	} {
		b.Run(tc.name, func(b *testing.B) {
			var size int
			cpu := cpuTime()
			for b.Loop() {
				d.Send("t " + tc.cmd)
				line := d.Line()
				if !strings.HasPrefix(line, tc.reply) {
					b.Fatalf("reply %.80q", line)
				}
				size = len(line)
				if l := d.Line(); !strings.HasPrefix(l, "t OK") {
					b.Fatalf("reply %q", l)
				}
			}
			b.ReportMetric(float64(size), "reply-bytes")
			// The process's CPU time (server and client) per command: on a shared machine
			// the wall time per command says as much about the other processes.
			b.ReportMetric(float64((cpuTime()-cpu).Microseconds())/1000/float64(b.N), "cpu-ms/op")
		})
	}
}

// cpuTime is the CPU time the process has used, user and system.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
