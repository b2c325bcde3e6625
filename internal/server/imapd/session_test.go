package imapd

import (
	"context"
	"encoding/base64"
	"fmt"
	"strings"
	"testing"
	"time"

	"petrel/internal/lib/scram"
	"petrel/internal/mailtest/dialog"
)

const (
	msgA = "From: Bob <bob@example.net>\r\nTo: alice@example.org\r\nSubject: hello\r\nDate: Mon, 7 Dec 2026 08:00:00 +0000\r\nMessage-ID: <a@example.net>\r\n\r\nfirst body\r\n"
	msgB = "From: carol@example.net\r\nSubject: =?utf-8?q?caf=C3=A9?=\r\nContent-Type: multipart/mixed; boundary=xx\r\n\r\n--xx\r\nContent-Type: text/plain\r\n\r\npart one\r\n--xx\r\nContent-Type: text/html\r\n\r\n<p>two</p>\r\n--xx--\r\n"
)

func TestLoginNeedsTLS(t *testing.T) {
	e := newEnv(t, Config{})
	d := e.dial(t)
	e.run(t, d, `
		C: a CAPABILITY
		S: * CAPABILITY IMAP4rev1 LITERAL+ SASL-IR ID ENABLE IDLE NAMESPACE UNSELECT UIDPLUS MOVE CHILDREN SPECIAL-USE IMAP4rev2 UTF8=ACCEPT CONDSTORE QRESYNC ESEARCH SEARCHRES LIST-EXTENDED LIST-STATUS STATUS=SIZE BINARY MULTIAPPEND NOTIFY SORT SORT=DISPLAY ESORT THREAD=ORDEREDSUBJECT THREAD=REFERENCES APPENDLIMIT=67108864 STARTTLS LOGINDISABLED
		S: a OK CAPABILITY completed
		C: b LOGIN alice@example.org secret
		S: b NO [PRIVACYREQUIRED] Use STARTTLS first
		C: c SELECT INBOX
		S: c BAD Command not valid in this state
		C: c2 APPEND INBOX {11+}
		R: c3 LOGOUT\r\n\r\n
		S: c2 BAD Command not valid in this state
		C: d STARTTLS
		S: d OK Begin TLS negotiation now
		STARTTLS
		C: e CAPABILITY
		S: * CAPABILITY IMAP4rev1 LITERAL+ SASL-IR ID ENABLE IDLE NAMESPACE UNSELECT UIDPLUS MOVE CHILDREN SPECIAL-USE IMAP4rev2 UTF8=ACCEPT CONDSTORE QRESYNC ESEARCH SEARCHRES LIST-EXTENDED LIST-STATUS STATUS=SIZE BINARY MULTIAPPEND NOTIFY SORT SORT=DISPLAY ESORT THREAD=ORDEREDSUBJECT THREAD=REFERENCES APPENDLIMIT=67108864 AUTH=SCRAM-SHA-256 AUTH=PLAIN AUTH=LOGIN
		S: e OK CAPABILITY completed
		C: f LOGIN alice@example.org wrong
		S: f NO [AUTHENTICATIONFAILED] Invalid credentials
		C: g AUTHENTICATE PLAIN AGFsaWNlQGV4YW1wbGUub3JnAHNlY3JldA==
		S: g OK [CAPABILITY IMAP4rev1 LITERAL+ SASL-IR ID ENABLE IDLE NAMESPACE UNSELECT UIDPLUS MOVE CHILDREN SPECIAL-USE IMAP4rev2 UTF8=ACCEPT CONDSTORE QRESYNC ESEARCH SEARCHRES LIST-EXTENDED LIST-STATUS STATUS=SIZE BINARY MULTIAPPEND NOTIFY SORT SORT=DISPLAY ESORT THREAD=ORDEREDSUBJECT THREAD=REFERENCES APPENDLIMIT=67108864 QUOTA QUOTA=RES-STORAGE QUOTA=RES-MESSAGE] Logged in
		C: h LOGOUT
		S: * BYE Logging out
		S: h OK LOGOUT completed
		CLOSED
	`)
}

// Input sent before STARTTLS's handshake is dropped, not run under TLS (RFC 9051 §6.2.1).
func TestStartTLSDiscardsBufferedInput(t *testing.T) {
	e := newEnv(t, Config{})
	d := e.dial(t)
	d.Raw("s STARTTLS\r\nx LOGIN alice@example.org secret\r\n")
	d.Expect("s OK Begin TLS negotiation now")
	d.StartTLS()
	e.run(t, d, `
		C: n NOOP
		S: n OK NOOP completed
	`)
}

func TestMailboxSession(t *testing.T) {
	e := newEnv(t, Config{})
	e.deliver(t, "INBOX", msgA)
	e.deliver(t, "INBOX", msgB)
	d := e.login(t)
	e.run(t, d, `
		C: a LIST "" *
		S: * LIST (\HasNoChildren) "/" INBOX
		S: * LIST (\HasNoChildren \Sent) "/" Sent
		S: * LIST (\HasNoChildren \Drafts) "/" Drafts
		S: * LIST (\HasNoChildren \Trash) "/" Trash
		S: * LIST (\HasNoChildren \Junk) "/" Junk
		S: * LIST (\HasNoChildren \Archive) "/" Archive
		S: a OK LIST completed
		C: b SELECT inbox
		S: * FLAGS (\Answered \Flagged \Deleted \Seen \Draft)
		S: * OK [PERMANENTFLAGS (\Answered \Flagged \Deleted \Seen \Draft \*)] Flags permitted
		S: * 2 EXISTS
		S: * 0 RECENT
		S: * OK [UNSEEN 1] First unseen
		S: * OK [UIDVALIDITY $INBOX] UIDs valid
		S: * OK [UIDNEXT 3] Predicted next UID
		S: * OK [HIGHESTMODSEQ $$INBOX] Highest
		S: b OK [READ-WRITE] SELECT completed
		C: c FETCH 1:* (UID FLAGS RFC822.SIZE INTERNALDATE)
		S: * 1 FETCH (UID 1 FLAGS () RFC822.SIZE 149 INTERNALDATE "07-Dec-2026 09:00:00 +0000")
		S: * 2 FETCH (UID 2 FLAGS () RFC822.SIZE 200 INTERNALDATE "07-Dec-2026 09:00:00 +0000")
		S: c OK FETCH completed
		C: d UID FETCH 1 ENVELOPE
		S: * 1 FETCH (UID 1 ENVELOPE ("Mon, 7 Dec 2026 08:00:00 +0000" "hello" (("Bob" NIL "bob" "example.net")) (("Bob" NIL "bob" "example.net")) (("Bob" NIL "bob" "example.net")) ((NIL NIL "alice" "example.org")) NIL NIL NIL "<a@example.net>"))
		S: d OK UID FETCH completed
		C: e FETCH 2 (BODYSTRUCTURE ENVELOPE)
		S: * 2 FETCH (BODYSTRUCTURE (("text" "plain" NIL NIL NIL "7bit" 8 1 NIL NIL NIL NIL)("text" "html" NIL NIL NIL "7bit" 10 1 NIL NIL NIL NIL) "mixed" ("boundary" "xx") NIL NIL NIL) ENVELOPE (NIL "=?utf-8?q?caf=C3=A9?=" ((NIL NIL "carol" "example.net")) ((NIL NIL "carol" "example.net")) ((NIL NIL "carol" "example.net")) NIL NIL NIL NIL NIL))
		S: e OK FETCH completed
		C: f FETCH 2 (BODY.PEEK[2] BODY.PEEK[1.MIME] BODY.PEEK[HEADER.FIELDS (subject)] BODY.PEEK[]<0.4>)
		S: * 2 FETCH (BODY[2] {10}
		S: <p>two</p> BODY[1.MIME] {28}
		S: Content-Type: text/plain
		S:
		S:  BODY[HEADER.FIELDS (subject)] {34}
		S: Subject: =?utf-8?q?caf=C3=A9?=
		S:
		S:  BODY[]<0> {4}
		S: From)
		S: f OK FETCH completed
		C: g FETCH 1 BODY[TEXT]
		S: * 1 FETCH (FLAGS (\Seen) BODY[TEXT] {12}
		S: first body
		S: )
		S: g OK FETCH completed
		C: h STORE 2 +FLAGS (\Flagged Project)
		S: * 2 FETCH (UID 2 FLAGS (Project \Flagged))
		S: h OK STORE completed
		C: i SEARCH UNSEEN FLAGGED
		S: * SEARCH 2
		S: i OK SEARCH completed
		C: j UID SEARCH OR SUBJECT café TEXT "FIRST BODY"
		S: * SEARCH 1 2
		S: j OK UID SEARCH completed
		C: k SEARCH NOT 1 SINCE 8-Dec-2026
		S: * SEARCH
		S: k OK SEARCH completed
		C: l COPY 1:2 Archive
		S: l OK [COPYUID $Archive 1:2 1:2] COPY completed
		C: m MOVE 1 Trash
		S: * OK [COPYUID $Trash 1 1] Moved
		S: * 1 EXPUNGE
		S: m OK MOVE completed
		C: n STORE 1 +FLAGS.SILENT (\Deleted)
		S: n OK STORE completed
		C: o EXPUNGE
		S: * 1 EXPUNGE
		S: o OK EXPUNGE completed
		C: p STATUS Archive (MESSAGES UNSEEN UIDNEXT SIZE)
		S: * STATUS Archive (MESSAGES 2 UNSEEN 1 UIDNEXT 3 SIZE 349)
		S: p OK STATUS completed
		C: q FETCH 1 FLAGS
		S: q BAD No messages
		C: r CLOSE
		S: r OK CLOSE completed
	`)
}

func TestFolders(t *testing.T) {
	e := newEnv(t, Config{})
	d := e.login(t)
	e.run(t, d, `
		C: a CREATE Projects/Petrel/
		S: a OK CREATE completed
		C: b CREATE Projects
		S: b NO [ALREADYEXISTS] Mailbox exists
		C: c CREATE &ZeVnLIqe-
		S: c OK CREATE completed
		C: d LIST "" %
		S: * LIST (\HasNoChildren) "/" INBOX
		S: * LIST (\HasNoChildren \Sent) "/" Sent
		S: * LIST (\HasNoChildren \Drafts) "/" Drafts
		S: * LIST (\HasNoChildren \Trash) "/" Trash
		S: * LIST (\HasNoChildren \Junk) "/" Junk
		S: * LIST (\HasNoChildren \Archive) "/" Archive
		S: * LIST (\HasChildren) "/" Projects
		S: * LIST (\HasNoChildren) "/" &ZeVnLIqe-
		S: d OK LIST completed
		C: e RENAME Projects Work
		S: e OK RENAME completed
		C: f LIST "" Work/*
		S: * LIST (\HasNoChildren) "/" Work/Petrel
		S: f OK LIST completed
		C: f2 LIST "" Projects*
		S: f2 OK LIST completed
		C: g DELETE Work
		S: g NO [HASCHILDREN] Mailbox has inferior mailboxes
		C: h DELETE INBOX
		S: h NO [CANNOT] Invalid mailbox name or operation
		C: i DELETE nosuch
		S: i NO [NONEXISTENT] No such mailbox
		C: j CREATE ../etc
		S: j NO [CANNOT] Invalid mailbox name or operation
		C: k SUBSCRIBE Work/Petrel
		S: k OK SUBSCRIBE completed
		C: l LSUB "" Work*
		S: * LSUB () "/" Work/Petrel
		S: l OK LSUB completed
		C: m LIST "" ""
		S: * LIST (\Noselect) "/" ""
		S: m OK LIST completed
		C: n NAMESPACE
		S: * NAMESPACE (("" "/")) NIL NIL
		S: n OK NAMESPACE completed
		C: o APPEND nosuch {3+}
		R: abc\r\n
		S: o NO [TRYCREATE] No such mailbox
	`)
	e.run(t, d, `
		C: p APPEND Work/Petrel (\Seen) " 7-Feb-1994 21:52:25 -0800" {18}
		S: + Ready for literal data
		R: Subject: x\r\n\r\nhi\r\n\r\n
		S: p OK [APPENDUID $Work/Petrel 1] APPEND completed
		C: q EXAMINE Work/Petrel
		S: * FLAGS (\Answered \Flagged \Deleted \Seen \Draft)
		S: * OK [PERMANENTFLAGS ()] Read-only mailbox
		S: * 1 EXISTS
		S: * 0 RECENT
		S: * OK [UIDVALIDITY $Work/Petrel] UIDs valid
		S: * OK [UIDNEXT 2] Predicted next UID
		S: * OK [HIGHESTMODSEQ $$Work/Petrel] Highest
		S: q OK [READ-ONLY] EXAMINE completed
		C: r FETCH 1 (FLAGS INTERNALDATE)
		S: * 1 FETCH (FLAGS (\Seen) INTERNALDATE "08-Feb-1994 05:52:25 +0000")
		S: r OK FETCH completed
		C: s STORE 1 +FLAGS (\Deleted)
		S: s NO [READ-ONLY] Mailbox is read-only
	`)
}

// The literal limits of reader.go over a real connection: refused sizes get their answer at
// once and the session goes on, or ends with BYE for a non-synchronizing literal.
func TestLiteralLimitsOnTheWire(t *testing.T) {
	e := newEnv(t, Config{Limits: Limits{MaxCommand: 1000}, AppendLimit: 100})
	d := e.login(t)
	e.run(t, d, `
		C: a LOGIN {4294967295}
		S: a NO [TOOBIG] Literal too large
		C: b APPEND INBOX {101}
		S: b NO [TOOBIG] Message too large
		C: c NOOP
		S: c OK NOOP completed
		C: d SEARCH SUBJECT ( {5+}
		R: d2 NOOP\r\n
		S: d BAD Expected a string
		C: e NOOP
		S: e OK NOOP completed
		C: f APPEND INBOX {101+}
		S: * BYE [TOOBIG] Message too large
		CLOSED
	`)
	d = e.login(t)
	e.run(t, d, `
		C: a SEARCH SUBJECT {2000+}
		S: * BYE [TOOBIG] Literal too large
		CLOSED
	`)
}

// Two sessions on one mailbox: each learns the other's flag changes, new mail and expunges
// at its next command, EXPUNGE waiting while a FETCH runs (RFC 9051 §7.5.1).
func TestSessionsSeeEachOther(t *testing.T) {
	e := newEnv(t, Config{})
	e.deliver(t, "INBOX", msgA)
	e.deliver(t, "INBOX", msgA)
	one, two := e.login(t), e.login(t)
	for _, d := range []interface{ Send(string) }{one, two} {
		d.Send("s SELECT INBOX")
	}
	for _, d := range []*testDialog{{one}, {two}} {
		d.skipUntil(t, "s OK [READ-WRITE] SELECT completed")
	}
	e.run(t, one, `
		C: a STORE 1 +FLAGS.SILENT (\Deleted \Seen)
		S: a OK STORE completed
		C: b EXPUNGE
		S: * 1 EXPUNGE
		S: b OK EXPUNGE completed
	`)
	e.deliver(t, "INBOX", msgB)
	e.run(t, two, `
		C: a FETCH 2 FLAGS
		S: * 2 FETCH (FLAGS ())
		S: * 3 EXISTS
		S: a OK FETCH completed
		C: b NOOP
		S: * 1 EXPUNGE
		S: b OK NOOP completed
		C: c STORE 2 +FLAGS (\Answered)
		S: * 2 FETCH (UID 3 FLAGS (\Answered))
		S: c OK STORE completed
	`)
	e.run(t, one, `
		C: c NOOP
		S: * 2 EXISTS
		S: c OK NOOP completed
		C: d FETCH 2 FLAGS
		S: * 2 FETCH (FLAGS (\Answered))
		S: d OK FETCH completed
	`)
}

// IDLE is woken by a delivery (RFC 2177).
func TestIdle(t *testing.T) {
	e := newEnv(t, Config{})
	d := e.login(t)
	e.run(t, d, `
		C: s SELECT INBOX
		S: * FLAGS (\Answered \Flagged \Deleted \Seen \Draft)
		S: * OK [PERMANENTFLAGS (\Answered \Flagged \Deleted \Seen \Draft \*)] Flags permitted
		S: * 0 EXISTS
		S: * 0 RECENT
		S: * OK [UIDVALIDITY $INBOX] UIDs valid
		S: * OK [UIDNEXT 1] Predicted next UID
		S: * OK [HIGHESTMODSEQ $$INBOX] Highest
		S: s OK [READ-WRITE] SELECT completed
		C: i IDLE
		S: + idling
	`)
	e.deliver(t, "INBOX", msgA)
	e.run(t, d, `
		S: * 1 EXISTS
		C: DONE
		S: i OK IDLE completed
		C: i2 IDLE
		S: + idling
		C: nope
		S: i2 BAD Expected DONE
	`)
}

type testDialog struct{ d interface{ Line() string } }

func (d *testDialog) skipUntil(t *testing.T, line string) {
	t.Helper()
	for i := 0; i < 20; i++ {
		if l := d.d.Line(); l == line {
			return
		} else if strings.HasPrefix(l, "s ") {
			t.Fatalf("got %q, want %q", l, line)
		}
	}
	t.Fatalf("no %q", line)
}

// A connection that says nothing is told why it is closed (RFC 9051 §5.4 autologout).
func TestIdleTimeouts(t *testing.T) {
	e := newEnv(t, Config{LoginIdleTimeout: 50 * time.Millisecond})
	d := e.dial(t)
	e.run(t, d, `
		S: * BYE Autologout; idle for too long
		CLOSED
	`)
	// A command that starts but does not end within CommandTimeout.
	e = newEnv(t, Config{CommandTimeout: 50 * time.Millisecond})
	d = e.dial(t)
	d.Raw("a NOO")
	e.run(t, d, `
		S: * BYE Command too slow
		CLOSED
	`)
}

// Shutdown tells a session waiting for a command, and one in IDLE, that the server stops.
func TestShutdown(t *testing.T) {
	e := newEnv(t, Config{})
	waiting, idling := e.login(t), e.login(t)
	e.run(t, idling, `
		C: i IDLE
		S: + idling
	`)
	done := make(chan error, 1)
	go func() { done <- e.srv.Shutdown(context.Background()) }()
	for _, d := range []*dialog.Dialog{waiting, idling} {
		e.run(t, d, `
			S: * BYE [UNAVAILABLE] Server shutting down
			CLOSED
		`)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// Refusals that leave the session usable.
func TestRefusals(t *testing.T) {
	e := newEnv(t, Config{})
	e.deliver(t, "INBOX", msgA)
	e.deliver(t, "INBOX", msgA)
	d := e.login(t)
	e.run(t, d, `
		C: a STARTTLS
		S: a BAD Command not valid in this state
		C: b FETCH 1 FLAGS
		S: b BAD Command not valid in this state
		C: c EXAMINE INBOX
		S: * FLAGS (\Answered \Flagged \Deleted \Seen \Draft)
		S: * OK [PERMANENTFLAGS ()] Read-only mailbox
		S: * 2 EXISTS
		S: * 0 RECENT
		S: * OK [UNSEEN 1] First unseen
		S: * OK [UIDVALIDITY $INBOX] UIDs valid
		S: * OK [UIDNEXT 3] Predicted next UID
		S: * OK [HIGHESTMODSEQ $$INBOX] Highest
		S: c OK [READ-ONLY] EXAMINE completed
		C: d FETCH 3 FLAGS
		S: d BAD Invalid message sequence number
		C: e UID FETCH 100:* UID
		S: * 2 FETCH (UID 2)
		S: e OK UID FETCH completed
		C: f FETCH 1 BODY[]<0.4>
		S: * 1 FETCH (BODY[]<0> {4}
		S: From)
		S: f OK FETCH completed
		C: g SEARCH UNSEEN
		S: * SEARCH 1 2
		S: g OK SEARCH completed
		C: h SEARCH CHARSET KOI8-R TEXT x
		S: h NO [BADCHARSET (UTF-8 US-ASCII)] Unsupported charset
		C: i SEARCH RETURN (COUNT SAVE NOSUCH) ALL
		S: i BAD Unknown SEARCH RETURN option NOSUCH
		C: j FETCH 1 BINARY[1.TEXT]
		S: j BAD Expected ']'
		C: k MOVE 1 Trash
		S: k NO [READ-ONLY] Mailbox is read-only
		C: l COPY 1 Nowhere
		S: l NO [TRYCREATE] No such mailbox
		C: m SELECT INBOX
		S: * FLAGS (\Answered \Flagged \Deleted \Seen \Draft)
		S: * OK [PERMANENTFLAGS (\Answered \Flagged \Deleted \Seen \Draft \*)] Flags permitted
		S: * 2 EXISTS
		S: * 0 RECENT
		S: * OK [UNSEEN 1] First unseen
		S: * OK [UIDVALIDITY $INBOX] UIDs valid
		S: * OK [UIDNEXT 3] Predicted next UID
		S: * OK [HIGHESTMODSEQ $$INBOX] Highest
		S: m OK [READ-WRITE] SELECT completed
		C: n STORE 1 +FLAGS (\Recent)
		S: n BAD Invalid flag
		C: o STATUS INBOX (MESSAGES BOGUS)
		S: o BAD Unknown STATUS item BOGUS
		C: p SELECT nosuch
		S: p NO [NONEXISTENT] No such mailbox
		C: q FETCH 1 FLAGS
		S: q BAD Command not valid in this state
		C: r ID NIL
		S: * ID ("name" "Petrel")
		S: r OK ID completed
		C: s ENABLE X-UNKNOWN
		S: * ENABLED
		S: s OK ENABLE completed
	`)
}

// An account has at most MaxAccountSessions sessions; one ending makes room.
func TestSessionsPerAccount(t *testing.T) {
	e := newEnv(t, Config{MaxAccountSessions: 1})
	first := e.login(t)
	d := e.dial(t)
	e.run(t, d, `
		C: s STARTTLS
		S: s OK Begin TLS negotiation now
		STARTTLS
		C: l LOGIN alice@example.org secret
		S: l NO [LIMIT] Too many sessions for this account
	`)
	e.run(t, first, `
		C: o LOGOUT
		S: * BYE Logging out
		S: o OK LOGOUT completed
		CLOSED
	`)
	// The server counts the session out just after closing it, so the client may see the
	// close first: try again until the count has caught up (MaxAuthFailures does not apply,
	// LIMIT is no failed login).
	for i := 0; ; i++ {
		d.Send("l LOGIN alice@example.org secret")
		l := d.Line()
		if strings.HasPrefix(l, "l OK ") {
			break
		}
		if l != "l NO [LIMIT] Too many sessions for this account" || i > 1000 {
			t.Fatalf("login after the first session ended: %q", l)
		}
		time.Sleep(time.Millisecond)
	}
}

// AUTHENTICATE SCRAM-SHA-256 (RFC 7677) with an initial response (RFC 4959): the server's
// final message goes in a last continuation, answered with an empty line (RFC 9051 §6.2.2),
// and the client checks the server's signature.
func TestAuthenticateSCRAM(t *testing.T) {
	e := newEnv(t, Config{})
	d := e.dial(t)
	e.run(t, d, `
		C: s STARTTLS
		S: s OK Begin TLS negotiation now
		STARTTLS
	`)
	c := scram.NewClient("alice@example.org", alicePass)
	mech, first, err := c.Start()
	if err != nil {
		t.Fatal(err)
	}
	d.Send("a AUTHENTICATE " + mech + " " + base64.StdEncoding.EncodeToString(first))
	for {
		l := d.Line()
		if strings.HasPrefix(l, "a OK ") {
			break
		}
		if !strings.HasPrefix(l, "+ ") {
			t.Fatalf("SCRAM exchange: %q", l)
		}
		challenge, err := base64.StdEncoding.DecodeString(l[2:])
		if err != nil {
			t.Fatal(err)
		}
		resp, err := c.Next(challenge)
		if err != nil {
			t.Fatal(err)
		}
		d.Send(base64.StdEncoding.EncodeToString(resp))
	}
	if !c.ServerVerified() {
		t.Error("the server's signature was not checked")
	}
	e.run(t, d, `
		C: b SELECT INBOX
		S: * FLAGS (\Answered \Flagged \Deleted \Seen \Draft)
	`)
}

// MULTIAPPEND (RFC 3502): several messages in one APPEND, each with its own flags and date,
// synchronizing literals or not, committed together with an APPENDUID UID set; a refused
// one (too large, or a missing mailbox) adds none of them, and the session goes on.
func TestMultiAppend(t *testing.T) {
	e := newEnv(t, Config{AppendLimit: 60})
	d := e.login(t)
	e.run(t, d, `
		C: a CREATE Saved
		S: a OK CREATE completed
		C: b APPEND Saved (\Seen) {18}
		S: + Ready for literal data
		R: Subject: x\r\n\r\nhi\r\n \" 7-Feb-1994 21:52:25 -0800\" {18}\r\n
		S: + Ready for literal data
		R: Subject: y\r\n\r\nyo\r\n {18+}\r\nSubject: z\r\n\r\nzz\r\n\r\n
		S: b OK [APPENDUID $Saved 1:3] APPEND completed
		C: c APPEND Saved {18+}
		R: Subject: x\r\n\r\nhi\r\n {18+}\r\nSubject: y\r\n\r\nyo\r\n {30}\r\n
		S: c NO [TOOBIG] Message too large
		C: d APPEND Nowhere {18+}
		R: Subject: x\r\n\r\nhi\r\n {18+}\r\nSubject: y\r\n\r\nyo\r\n\r\n
		S: d NO [TRYCREATE] No such mailbox
		C: e STATUS Saved (MESSAGES UIDNEXT)
		S: * STATUS Saved (MESSAGES 3 UIDNEXT 4)
		S: e OK STATUS completed
		C: f EXAMINE Saved
		S: * FLAGS (\Answered \Flagged \Deleted \Seen \Draft)
		S: * OK [PERMANENTFLAGS ()] Read-only mailbox
		S: * 3 EXISTS
		S: * 0 RECENT
		S: * OK [UNSEEN 2] First unseen
		S: * OK [UIDVALIDITY $Saved] UIDs valid
		S: * OK [UIDNEXT 4] Predicted next UID
		S: * OK [HIGHESTMODSEQ $$Saved] Highest
		S: f OK [READ-ONLY] EXAMINE completed
		C: g FETCH 1:3 (FLAGS)
		S: * 1 FETCH (FLAGS (\Seen))
		S: * 2 FETCH (FLAGS ())
		S: * 3 FETCH (FLAGS ())
		S: g OK FETCH completed
		C: h FETCH 2 (INTERNALDATE BODY.PEEK[HEADER.FIELDS (SUBJECT)])
		S: * 2 FETCH (INTERNALDATE "08-Feb-1994 05:52:25 +0000" BODY[HEADER.FIELDS (SUBJECT)] {14}
		S: Subject: y
		S:
		S: )
		S: h OK FETCH completed
	`)
}

// A SELECT of the mailbox already selected answers from the session's view when nothing
// changed since its last command (its own STORE included), and from the store when
// something did: a delivery, or another session's expunge not yet announced to it.
func TestReselect(t *testing.T) {
	e := newEnv(t, Config{})
	for range 3 {
		e.deliver(t, "INBOX", msgA)
	}
	a, b := e.login(t), e.login(t)
	selectLines := func(tag string, exists, unseen, next int) string {
		u := ""
		if unseen > 0 {
			u = fmt.Sprintf("S: * OK [UNSEEN %d] First unseen\n", unseen)
		}
		return fmt.Sprintf(`C: %[1]s SELECT INBOX
S: * FLAGS (\Answered \Flagged \Deleted \Seen \Draft)
S: * OK [PERMANENTFLAGS (\Answered \Flagged \Deleted \Seen \Draft \*)] Flags permitted
S: * %[2]d EXISTS
S: * 0 RECENT
%[3]sS: * OK [UIDVALIDITY $INBOX] UIDs valid
S: * OK [UIDNEXT %[4]d] Predicted next UID
S: * OK [HIGHESTMODSEQ $$INBOX] Highest
S: %[1]s OK [READ-WRITE] SELECT completed`, tag, exists, u, next)
	}
	e.run(t, a, selectLines("s1", 3, 1, 4))
	e.run(t, a, `
		C: f STORE 1 +FLAGS (\Seen)
		S: * 1 FETCH (UID 1 FLAGS (\Seen))
		S: f OK STORE completed
	`)
	e.run(t, a, selectLines("s2", 3, 2, 4))
	e.deliver(t, "INBOX", msgA)
	e.run(t, a, selectLines("s3", 4, 2, 5))
	e.run(t, b, selectLines("b1", 4, 2, 5))
	e.run(t, b, `
		C: b2 STORE 4 +FLAGS.SILENT (\Deleted)
		S: b2 OK STORE completed
		C: b3 EXPUNGE
		S: * 4 EXPUNGE
		S: b3 OK EXPUNGE completed
	`)
	// FETCH may not announce the expunge (RFC 9051 §7.5.1): it waits in a's view, which
	// then still numbers four messages; the next SELECT counts three.
	e.run(t, a, `
		C: g FETCH 1 FLAGS
		S: * 1 FETCH (FLAGS (\Seen))
		S: g OK FETCH completed
	`)
	e.run(t, a, selectLines("s4", 3, 2, 5))
}
