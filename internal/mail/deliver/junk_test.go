package deliver

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"

	"petrel/internal/mail/junk"
	"petrel/internal/mail/message"
	"petrel/internal/store"
	"petrel/internal/store/sqlite"
)

const (
	junkMsg = "Return-Path: <x@win-prize.example>\r\nReceived: from mx by us\r\nFrom: \"Winner Dept\" <noreply@win-prize.example>\r\n" +
		"Subject: You won a prize!!!\r\nContent-Type: multipart/alternative; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\n" +
		"CONGRATULATIONS! Your email address won our international lottery draw. Claim your prize at http://win-prize.example/claim now!!!\r\n" +
		"--b\r\nContent-Type: text/html\r\n\r\n<p>Claim your prize now!!!</p>\r\n--b--\r\n"
	hamMsg = "Return-Path: <anna@example.org>\r\nFrom: Anna <anna@example.org>\r\nSubject: dinner on Friday\r\n\r\n" +
		"Hi, are we still on for dinner on Friday at the old harbour? I booked a table for seven.\r\n"
)

// TestDeliverJunk: a message like one the account moved to Junk is filed in Junk with the
// verdict after Return-Path, and its cached structure matches the stored bytes; unlike mail
// stays in INBOX with a No verdict; submitted mail (Classify unset) is not classified; two
// accounts are filed each by its own counts, each copy with its own verdict.
func TestDeliverJunk(t *testing.T) {
	ctx := context.Background()
	st, err := sqlite.Open(filepath.Join(t.TempDir(), "petrel.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := st.AddDomain(ctx, "example.test"); err != nil {
		t.Fatal(err)
	}
	var accts []store.Account
	for _, a := range []string{"alice@example.test", "bob@example.test"} {
		acct, err := st.AddAccount(ctx, a, store.Credentials{PasswordHash: "x"})
		if err != nil {
			t.Fatal(err)
		}
		accts = append(accts, acct)
	}
	alice, bob := accts[0].ID, accts[1].ID
	f := &junk.Filter{Store: st}
	if _, err := f.TrainMessage(ctx, alice, []byte(strings.Replace(junkMsg, "now!!!", "today!!!", 1)), true); err != nil {
		t.Fatal(err)
	}
	d := New(st, slog.New(slog.DiscardHandler))
	d.SetJunk(f)

	deliver := func(msg string, classify bool, targets ...store.Target) {
		t.Helper()
		body := NewSpool(t.TempDir(), 1<<20)
		defer body.Close()
		body.Write([]byte(msg))
		if _, err := d.Deliver(ctx, Envelope{MailFrom: "x@remote.example", Targets: targets, Classify: classify}, body); err != nil {
			t.Fatal(err)
		}
	}
	last := func(acct int64, mailbox string) (string, store.Message) {
		t.Helper()
		mb, err := st.Mailbox(ctx, acct, mailbox)
		if err != nil {
			t.Fatal(err)
		}
		msgs, err := st.Messages(ctx, mb.ID, store.Filter{})
		if err != nil || len(msgs) == 0 {
			t.Fatalf("%s of account %d: %d messages, %v", mailbox, acct, len(msgs), err)
		}
		m := msgs[len(msgs)-1]
		rc, err := st.OpenBlob(ctx, m.BlobID)
		if err != nil {
			t.Fatal(err)
		}
		defer rc.Close()
		b, _ := io.ReadAll(rc)
		return string(b), m
	}
	count := func(acct int64, mailbox string) int {
		mb, err := st.Mailbox(ctx, acct, mailbox)
		if err != nil {
			t.Fatal(err)
		}
		return mb.Messages
	}

	deliver(junkMsg, true, store.Target{AccountID: alice})
	got, m := last(alice, store.Junk)
	if !strings.HasPrefix(got, "Return-Path: <x@win-prize.example>\r\nX-Spam-Flag: YES\r\nX-Spam-Status: Yes, score=") ||
		!strings.HasSuffix(got, junkMsg[len("Return-Path: <x@win-prize.example>\r\n"):]) {
		t.Errorf("stored message:\n%s", got)
	}
	cached, err := st.Parsed(ctx, m.BlobID)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := message.Parse(bytes.NewReader([]byte(got)))
	if string(cached.Structure) != string(want.Structure) {
		t.Errorf("cached structure\n%s\ndoes not match the stored message's\n%s", cached.Structure, want.Structure)
	}

	deliver(hamMsg, true, store.Target{AccountID: alice})
	if got, _ := last(alice, store.Inbox); !strings.Contains(got, "\r\nX-Spam-Status: No, score=") || strings.Contains(got, "X-Spam-Flag") {
		t.Errorf("ham stored as\n%s", got)
	}

	junkBefore := count(alice, store.Junk)
	deliver(junkMsg, false, store.Target{AccountID: alice})
	if got, _ := last(alice, store.Inbox); strings.Contains(got, "X-Spam") || count(alice, store.Junk) != junkBefore {
		t.Errorf("submitted mail was classified:\n%s", got)
	}

	// Alice trained it, Bob did not: one body, filed per account, each copy with its own
	// verdict, its size and cached structure those of the bytes it reads.
	deliver(junkMsg, true, store.Target{AccountID: alice}, store.Target{AccountID: bob})
	if count(alice, store.Junk) != junkBefore+1 || count(bob, store.Inbox) != 1 || count(bob, store.Junk) != 0 {
		t.Errorf("two accounts: alice Junk %d, bob INBOX %d Junk %d", count(alice, store.Junk), count(bob, store.Inbox), count(bob, store.Junk))
	}
	gotA, mA := last(alice, store.Junk)
	gotB, mB := last(bob, store.Inbox)
	if !strings.Contains(gotA, "\r\nX-Spam-Status: Yes, score=") || !strings.Contains(gotB, "\r\nX-Spam-Status: No, score=") ||
		strings.Contains(gotB, "X-Spam-Flag") {
		t.Errorf("two accounts: alice's copy\n%s\nbob's copy\n%s", gotA, gotB)
	}
	for _, c := range []struct {
		got string
		m   store.Message
	}{{gotA, mA}, {gotB, mB}} {
		cached, err := st.Parsed(ctx, c.m.BlobID)
		if err != nil {
			t.Fatal(err)
		}
		want, _ := message.Parse(bytes.NewReader([]byte(c.got)))
		if c.m.Size != int64(len(c.got)) || string(cached.Structure) != string(want.Structure) {
			t.Errorf("copy of %d bytes: size %d, cached structure\n%s\nwant\n%s", len(c.got), c.m.Size, cached.Structure, want.Structure)
		}
	}
	// A target already in Junk (DMARC quarantine) stays there, and INBOX plus Junk of one
	// account that is junk is one message.
	deliver(hamMsg, true, store.Target{AccountID: bob, Mailbox: store.Junk})
	deliver(junkMsg, true, store.Target{AccountID: alice}, store.Target{AccountID: alice, Mailbox: store.Junk})
	if count(bob, store.Junk) != 1 || count(alice, store.Junk) != junkBefore+2 {
		t.Errorf("quarantined: bob Junk %d; alice Junk %d, want %d", count(bob, store.Junk), count(alice, store.Junk), junkBefore+2)
	}
}
