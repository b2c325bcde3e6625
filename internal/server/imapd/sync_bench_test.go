package imapd

import (
	"fmt"
	"strings"
	"testing"

	"petrel/internal/mailtest/dialog"
)

// skipUntil reads lines until one starts with prefix.
func skipUntil(t testing.TB, d *dialog.Dialog, prefix string) {
	t.Helper()
	for !strings.HasPrefix(d.Line(), prefix) {
	}
}

// BenchmarkQResyncSelect measures what a reconnecting device costs: SELECT (QRESYNC ...) of a
// mailbox of 2,000 messages in which 20 changed flags and 20 were expunged since the MODSEQ
// the device knew. The work is two store queries by MODSEQ and the message list.
func BenchmarkQResyncSelect(b *testing.B) {
	e := inboxOf(b, 2000)
	known := e.mailboxNow(b, "INBOX")
	d := e.login(b)
	d.Send("a SELECT INBOX")
	skipUntil(b, d, "a OK")
	for i := 1; i <= 40; i++ {
		flag := `\Flagged`
		if i > 20 {
			flag = `\Deleted`
		}
		d.Send(fmt.Sprintf("s STORE %d +FLAGS.SILENT (%s)", i*40, flag))
		d.Expect("s OK STORE completed")
	}
	d.Send("x EXPUNGE")
	skipUntil(b, d, "x OK")
	d.Send("e ENABLE QRESYNC")
	skipUntil(b, d, "e OK")
	b.ResetTimer()
	// The plain SELECT, for comparison: what QRESYNC adds is the difference.
	b.Run("plain", func(b *testing.B) {
		for range b.N {
			d.Send("p SELECT INBOX")
			skipUntil(b, d, "p OK")
		}
	})
	b.Run("qresync", func(b *testing.B) { qresyncSelect(b, d, known.UIDValidity, known.HighestModSeq) })
}

func qresyncSelect(b *testing.B, d *dialog.Dialog, uidValidity uint32, modseq uint64) {
	cmd := fmt.Sprintf("q SELECT INBOX (QRESYNC (%d %d))", uidValidity, modseq)
	for range b.N {
		d.Send(cmd)
		fetches, vanished := 0, 0
		for {
			l := d.Line()
			if strings.HasPrefix(l, "q OK") {
				break
			}
			if strings.Contains(l, " FETCH (") {
				fetches++
			}
			if strings.HasPrefix(l, "* VANISHED (EARLIER) ") {
				vanished++
			}
		}
		if fetches != 20 || vanished != 1 {
			b.Fatalf("%d FETCH and %d VANISHED responses, want 20 and 1", fetches, vanished)
		}
	}
}
