package imapd

import (
	"context"
	"strings"
	"testing"
	"time"

	"petrel/internal/mailtest/dialog"
	"petrel/internal/store"
)

// session logs alice in on a new connection and selects box ("": none).
func (e *testEnv) session(t *testing.T, box string) *dialog.Dialog {
	t.Helper()
	d := e.login(t)
	if box != "" {
		d.Send("sel SELECT " + box)
		for l := d.Line(); !strings.HasPrefix(l, "sel "); l = d.Line() {
		}
	}
	return d
}

// notifying is session with NOTIFY set to args ("SET ..."), whose tagged OK it reads.
func (e *testEnv) notifying(t *testing.T, box, args string) *dialog.Dialog {
	t.Helper()
	d := e.session(t, box)
	d.Send("n NOTIFY " + args)
	if l := d.Line(); l != "n OK NOTIFY completed" {
		t.Fatalf("NOTIFY %s: %q", args, l)
	}
	return d
}

// A session with NOTIFY on INBOXES learns of mail arriving in INBOX while it has another
// mailbox selected, between commands, without sending one; and in IDLE.
func TestNotifyInboxesStatus(t *testing.T) {
	e := newEnv(t, Config{})
	a := e.notifying(t, "Drafts", "SET (INBOXES (MessageNew MessageExpunge))")

	e.deliver(t, "INBOX", msgA)
	e.deliver(t, "Sent", msgA) // not watched: no STATUS
	e.run(t, a, `
		S: * STATUS INBOX (MESSAGES 1 UIDNEXT 2 UNSEEN 1)
		C: i IDLE
		S: + idling
	`)
	e.deliver(t, "INBOX", msgB)
	e.run(t, a, `
		S: * STATUS INBOX (MESSAGES 2 UIDNEXT 3 UNSEEN 2)
		C: DONE
		S: i OK IDLE completed
	`)

	// Another session expunges: MessageExpunge is a STATUS too, with HIGHESTMODSEQ once
	// CONDSTORE is on.
	a.Run(`
		C: c ENABLE CONDSTORE
		S: * ENABLED CONDSTORE
		S: c OK ENABLE completed
	`)
	b := e.session(t, "INBOX")
	b.Run(`
		C: y STORE 1 +FLAGS.SILENT (\Deleted)
		S: y OK STORE completed
		C: z EXPUNGE
		S: * 1 EXPUNGE
		S: z OK EXPUNGE completed
	`)
	e.run(t, a, `
		S: * STATUS INBOX (MESSAGES 1 UIDNEXT 3 UNSEEN 1 HIGHESTMODSEQ $$INBOX)
		C: o NOOP
		S: o OK NOOP completed
	`)
}

// FlagChange on a mailbox that is not selected: its UNSEEN.
func TestNotifyFlagChange(t *testing.T) {
	e := newEnv(t, Config{})
	e.deliver(t, "Sent", msgA)
	a := e.notifying(t, "", "SET (MAILBOXES Sent (MessageNew MessageExpunge FlagChange))")
	b := e.session(t, "Sent")
	b.Run(`
		C: y STORE 1 +FLAGS.SILENT (\Seen)
		S: y OK STORE completed
	`)
	a.Run(`S: * STATUS Sent (UNSEEN 0)`)
}

// MessageNew for the selected mailbox brings the FETCH the client asked for after EXISTS;
// NOTIFY SET STATUS reports the watched mailboxes at once.
func TestNotifySelectedFetch(t *testing.T) {
	e := newEnv(t, Config{})
	e.deliver(t, "Sent", msgA)
	a := e.session(t, "INBOX")
	e.run(t, a, `
		C: n NOTIFY SET STATUS (SELECTED (MessageNew (UID FLAGS RFC822.SIZE) MessageExpunge FlagChange)) (MAILBOXES (Sent Junk) (MessageNew MessageExpunge))
		S: * STATUS Sent (MESSAGES 1 UIDNEXT 2 UIDVALIDITY $Sent UNSEEN 1)
		S: * STATUS Junk (MESSAGES 0 UIDNEXT 1 UIDVALIDITY $Junk UNSEEN 0)
		S: n OK NOTIFY completed
	`)
	e.deliver(t, "INBOX", msgA)
	a.Run(`
		S: * 1 EXISTS
		S: * 1 FETCH (UID 1 FLAGS () RFC822.SIZE 149)
	`)
	// SELECTED-DELAYED: an expunge by another session waits for a command that may carry it.
	a.Run(`
		C: d NOTIFY SET (SELECTED-DELAYED (MessageNew MessageExpunge))
		S: d OK NOTIFY completed
	`)
	b := e.session(t, "INBOX")
	b.Run(`
		C: y STORE 1 +FLAGS.SILENT (\Deleted)
		S: y OK STORE completed
	`)
	a.Run(`S: * 1 FETCH (UID 1 FLAGS (\Deleted))`) // between commands, as the flags changed
	b.Run(`
		C: z EXPUNGE
		S: * 1 EXPUNGE
		S: z OK EXPUNGE completed
	`)
	// The expunged message is still number 1 for a, but gone: FETCH has nothing to say.
	a.Run(`
		C: f FETCH 1 (UID)
		S: f OK FETCH completed
		C: o NOOP
		S: * 1 EXPUNGE
		S: o OK NOOP completed
	`)
}

// Mailbox creation, renaming and deletion and subscription changes by another session come
// as LIST responses (RFC 5465 §5.4, §5.5).
func TestNotifyMailboxName(t *testing.T) {
	e := newEnv(t, Config{})
	a := e.notifying(t, "", "SET (PERSONAL (MailboxName SubscriptionChange))")
	b := e.session(t, "")
	b.Run(`
		C: 1 CREATE Lists
		S: 1 OK CREATE completed
	`)
	a.Run(`S: * LIST () "/" Lists`)
	b.Run(`
		C: 2 RENAME Lists Projects
		S: 2 OK RENAME completed
	`)
	a.Run(`S: * LIST () "/" Projects ("OLDNAME" (Lists))`)
	b.Run(`
		C: 3 SUBSCRIBE Projects
		S: 3 OK SUBSCRIBE completed
	`)
	a.Run(`S: * LIST (\Subscribed) "/" Projects`)
	b.Run(`
		C: 4 UNSUBSCRIBE Projects
		S: 4 OK UNSUBSCRIBE completed
	`)
	a.Run(`S: * LIST () "/" Projects`)
	b.Run(`
		C: 5 DELETE Projects
		S: 5 OK DELETE completed
	`)
	a.Run(`
		S: * LIST (\NonExistent) "/" Projects
		C: o NOOP
		S: o OK NOOP completed
		C: n NOTIFY NONE
		S: n OK NOTIFY completed
	`)
	b.Run(`
		C: 6 CREATE Quiet
		S: 6 OK CREATE completed
	`)
	a.Run(`
		C: o NOOP
		S: o OK NOOP completed
	`)
}

// What the RFC forbids is BAD, what Petrel does not support is NO [BADEVENT], and a LIST
// command is not interleaved with notification LIST responses.
func TestNotifyErrors(t *testing.T) {
	e := newEnv(t, Config{})
	a := e.login(t)
	a.Run(`
		C: 1 NOTIFY SET (PERSONAL (AnnotationChange))
		S: 1 NO [BADEVENT (MessageNew MessageExpunge FlagChange MailboxName SubscriptionChange)] Unsupported event
		C: 2 NOTIFY SET (PERSONAL (MessageNew))
		S: 2 BAD MessageNew and MessageExpunge go together
		C: 3 NOTIFY SET (PERSONAL (FlagChange))
		S: 3 BAD FlagChange needs MessageNew and MessageExpunge
		C: 4 NOTIFY SET (SELECTED (MailboxName))
		S: 4 BAD Only message events for the selected mailbox
		C: 5 NOTIFY SET (INBOXES (MessageNew (UID) MessageExpunge))
		S: 5 BAD FETCH attributes only for the selected mailbox
		C: 6 NOTIFY SET (SELECTED NONE) (SELECTED-DELAYED NONE)
		S: 6 BAD Only one SELECTED or SELECTED-DELAYED group
		C: 7 NOTIFY SET (NOWHERE (MessageNew MessageExpunge))
		S: 7 BAD Unknown NOTIFY mailbox filter
		C: 8 NOTIFY SET
		S: 8 BAD Expected a space
		C: 9 NOTIFY
		S: 9 BAD Expected a space
		C: 10 NOTIFY SET (SUBTREE (Lists Work) (MessageNew MessageExpunge FlagChange MailboxName)) (SUBSCRIBED NONE)
		S: 10 OK NOTIFY completed
	`)
}

// A session that cannot report its changes in time (here: in the middle of an APPEND)
// overflows its bound: NOTIFICATIONOVERFLOW, and NOTIFY is off (RFC 5465 §5.8).
func TestNotifyOverflow(t *testing.T) {
	e := newEnv(t, Config{MaxNotifyPending: 1})
	a := e.notifying(t, "", "SET (PERSONAL (MessageNew MessageExpunge))")
	seen := make(chan store.Change, 16)
	stop := e.srv.watchAll(e.alice.ID, func(c store.Change, ok bool) {
		if ok {
			seen <- c
		}
	})
	defer stop()
	a.Run(`
		C: a APPEND Drafts {5}
		S: + Ready for literal data
	`)
	e.deliver(t, "INBOX", msgA)
	e.deliver(t, "Sent", msgA)
	e.deliver(t, "Junk", msgA)
	// The feed calls its watchers one change at a time: once this watcher has the third
	// change, the session has had the first two, one more than it may hold.
	junk, err := e.st.Mailbox(context.Background(), e.alice.ID, "Junk")
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.After(60 * time.Second); ; {
		select {
		case c := <-seen:
			if c.MailboxID != junk.ID {
				continue
			}
		case <-deadline:
			t.Fatal("the third delivery never reached the change feed")
		}
		break
	}
	a.Send("hello")
	e.run(t, a, `
		S: * OK [NOTIFICATIONOVERFLOW] Too many changes; NOTIFY is off
		S: a OK [APPENDUID $Drafts 1] APPEND completed
	`)
	e.deliver(t, "INBOX", msgB)
	a.Run(`
		C: o NOOP
		S: o OK NOOP completed
	`)
}

// A NOTIFY session's watcher gets every change of the account, whatever its mailbox, and
// is told (ok false) when the store cuts the subscription off, so that it rereads.
func TestWatchAllCutOff(t *testing.T) {
	st := &subStore{subs: make(chan chan store.Change, 4)}
	srv := New(Config{}, st, nil, nil)
	type note struct {
		c  store.Change
		ok bool
	}
	got := make(chan note, 4)
	stop := srv.watchAll(1, func(c store.Change, ok bool) { got <- note{c, ok} })
	defer stop()
	ch := <-st.subs
	next := func() note {
		t.Helper()
		select {
		case n := <-got:
			return n
		case <-time.After(30 * time.Second):
			t.Fatal("the watcher was not called")
			return note{}
		}
	}
	ch <- store.Change{Kind: store.ChangeSubscription, AccountID: 1}
	ch <- store.Change{Kind: store.ChangeAdd, AccountID: 1, MailboxID: 9}
	if n := next(); !n.ok || n.c.Kind != store.ChangeSubscription {
		t.Errorf("first call %+v", n)
	}
	if n := next(); !n.ok || n.c.MailboxID != 9 {
		t.Errorf("second call %+v", n)
	}
	close(ch)
	if n := next(); n.ok {
		t.Errorf("after the cut-off: %+v, want ok false", n)
	}
}
