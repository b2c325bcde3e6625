package imapd

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"petrel/internal/store"
)

// modSeqOf returns the MODSEQ the store gave a message of one of alice's mailboxes.
func (e *testEnv) modSeqOf(t testing.TB, mailbox string, uid uint32) uint64 {
	t.Helper()
	msgs, err := e.st.Messages(context.Background(), e.mailboxNow(t, mailbox).ID, store.Filter{UIDs: []store.UIDRange{{First: uid, Last: uid}}})
	if err != nil || len(msgs) != 1 {
		t.Fatalf("message %d of %s: %v, %v", uid, mailbox, msgs, err)
	}
	return msgs[0].ModSeq
}

// inboxOf starts a server whose INBOX holds n copies of msgA.
func inboxOf(t testing.TB, n int) *testEnv {
	t.Helper()
	e := newEnv(t, Config{})
	for range n {
		e.deliver(t, "INBOX", msgA)
	}
	return e
}

// mailboxNow returns one of alice's mailboxes as the store has it now.
func (e *testEnv) mailboxNow(t testing.TB, mailbox string) store.Mailbox {
	t.Helper()
	mb, err := e.st.Mailbox(context.Background(), e.alice.ID, mailbox)
	if err != nil {
		t.Fatal(err)
	}
	return mb
}

// selectReply is the transcript of SELECT's untagged responses under IMAP4rev1 for a
// read-write mailbox; unseen 0 means no UNSEEN code.
func selectReply(mailbox string, exists, uidNext, unseen int) string {
	s := fmt.Sprintf(`
		S: * FLAGS (\Answered \Flagged \Deleted \Seen \Draft)
		S: * OK [PERMANENTFLAGS (\Answered \Flagged \Deleted \Seen \Draft \*)] Flags permitted
		S: * %d EXISTS
		S: * 0 RECENT`, exists)
	if unseen > 0 {
		s += fmt.Sprintf("\n\t\tS: * OK [UNSEEN %d] First unseen", unseen)
	}
	return s + fmt.Sprintf(`
		S: * OK [UIDVALIDITY $%s] UIDs valid
		S: * OK [UIDNEXT %d] Predicted next UID
		S: * OK [HIGHESTMODSEQ $$%s] Highest`, mailbox, uidNext, mailbox)
}

// script fills "{name}" placeholders in a transcript with values known only at run time.
func script(s string, kv ...any) string {
	for i := 0; i+1 < len(kv); i += 2 {
		s = strings.ReplaceAll(s, "{"+kv[i].(string)+"}", fmt.Sprint(kv[i+1]))
	}
	return s
}

func TestCondStore(t *testing.T) {
	e := newEnv(t, Config{})
	e.deliver(t, "INBOX", msgA)
	e.deliver(t, "INBOX", msgB)
	e.deliver(t, "INBOX", msgA)
	d := e.login(t)
	m1, m2, m3 := e.modSeqOf(t, "INBOX", 1), e.modSeqOf(t, "INBOX", 2), e.modSeqOf(t, "INBOX", 3)
	if !(m1 < m2 && m2 < m3) {
		t.Fatalf("MODSEQs %d %d %d do not grow", m1, m2, m3)
	}
	e.run(t, d, script(`
		C: a STATUS INBOX (MESSAGES HIGHESTMODSEQ)
		S: * STATUS INBOX (MESSAGES 3 HIGHESTMODSEQ $$INBOX)
		S: a OK STATUS completed
		C: b SELECT INBOX (CONDSTORE)
		`+selectReply("INBOX", 3, 4, 1)+`
		S: b OK [READ-WRITE] SELECT completed
		C: c FETCH 1:* (FLAGS MODSEQ)
		S: * 1 FETCH (FLAGS () MODSEQ ({m1}))
		S: * 2 FETCH (FLAGS () MODSEQ ({m2}))
		S: * 3 FETCH (FLAGS () MODSEQ ({m3}))
		S: c OK FETCH completed
		C: d STORE 1 +FLAGS (\Flagged)
		S: * 1 FETCH (UID 1 FLAGS (\Flagged) MODSEQ ($$INBOX))
		S: d OK STORE completed
		# Message 1 changed after {m1}: the condition fails it, message 2 passes.
		C: e STORE 1:2 (UNCHANGEDSINCE {m2}) +FLAGS (\Seen)
		S: * 2 FETCH (UID 2 FLAGS (\Seen) MODSEQ ($$INBOX))
		S: e OK [MODIFIED 1] STORE completed
		C: f UID STORE 1:3 (UNCHANGEDSINCE 0) FLAGS.SILENT (\Deleted)
		S: f OK [MODIFIED 1:3] UID STORE completed
		C: g UID STORE 3 (UNCHANGEDSINCE {m3}) +FLAGS.SILENT (\Answered)
		S: * 3 FETCH (UID 3 MODSEQ ($$INBOX))
		S: g OK UID STORE completed
		C: h UID FETCH 1:* (FLAGS) (CHANGEDSINCE {m3})
		S: * 1 FETCH (UID 1 FLAGS (\Flagged) MODSEQ ({n1}))
		S: * 2 FETCH (UID 2 FLAGS (\Seen) MODSEQ ({n2}))
		S: * 3 FETCH (UID 3 FLAGS (\Answered) MODSEQ ($$INBOX))
		S: h OK UID FETCH completed
		C: i SEARCH MODSEQ {n2}
		S: * SEARCH 2 3 (MODSEQ $$INBOX)
		S: i OK SEARCH completed
		C: j UID SEARCH MODSEQ "/flags/\\draft" all 1 NOT MODSEQ {n2}
		S: * SEARCH 1 (MODSEQ {n1})
		S: j OK UID SEARCH completed
		C: k FETCH 1 (MODSEQ) (VANISHED)
		S: k BAD VANISHED needs UID FETCH with CHANGEDSINCE, and QRESYNC enabled
		C: l STORE 1 (UNCHANGEDSINCE x) +FLAGS (\Seen)
		S: l BAD Expected a number
	`, "m1", m1, "m2", m2, "m3", m3, "n1", m3+1, "n2", m3+2))
	if got := e.modSeqOf(t, "INBOX", 1); got != m3+1 {
		t.Errorf("message 1 MODSEQ %d after its STORE, want %d", got, m3+1)
	}

	// Another session's flag change reaches this one with its MODSEQ.
	d2 := e.login(t)
	e.run(t, d2, `
		C: a SELECT INBOX
		`+selectReply("INBOX", 3, 4, 1)+`
		S: a OK [READ-WRITE] SELECT completed
		C: b STORE 1 FLAGS.SILENT (\Seen)
		S: b OK STORE completed
	`)
	e.run(t, d, `
		C: n NOOP
		S: * 1 FETCH (UID 1 FLAGS (\Seen) MODSEQ ($$INBOX))
		S: n OK NOOP completed
	`)
}

// A device that was away reconnects with QRESYNC and learns exactly what another device
// changed meanwhile: a flag, an expunge and a new message (RFC 7162 §3.2.5).
func TestQResyncReconnect(t *testing.T) {
	e := inboxOf(t, 3)
	known := e.mailboxNow(t, "INBOX").HighestModSeq

	// The other device, while the first is away.
	other := e.login(t)
	e.run(t, other, `
		C: a SELECT INBOX
		`+selectReply("INBOX", 3, 4, 1)+`
		S: a OK [READ-WRITE] SELECT completed
		C: b STORE 2 +FLAGS.SILENT (\Seen)
		S: b OK STORE completed
		C: c STORE 3 +FLAGS.SILENT (\Deleted)
		S: c OK STORE completed
		C: d EXPUNGE
		S: * 3 EXPUNGE
		S: d OK EXPUNGE completed
	`)
	e.deliver(t, "INBOX", msgB)

	d := e.login(t)
	e.run(t, d, script(`
		C: a SELECT INBOX (QRESYNC ({uv} {known}))
		S: a BAD QRESYNC is not enabled
		C: b ENABLE QRESYNC CONDSTORE
		S: * ENABLED QRESYNC CONDSTORE
		S: b OK ENABLE completed
		C: c SELECT INBOX (QRESYNC ({uv} {known} 1:3))
		`+selectReply("INBOX", 3, 5, 1)+`
		S: * VANISHED (EARLIER) 3
		S: * 2 FETCH (UID 2 FLAGS (\Seen) MODSEQ ({m2}))
		S: * 3 FETCH (UID 4 FLAGS () MODSEQ ({m4}))
		S: c OK [READ-WRITE] SELECT completed
		# A UIDVALIDITY the mailbox does not have: the client must resync in full.
		C: d EXAMINE INBOX (QRESYNC (1 {known}))
		S: * OK [CLOSED] Previous mailbox closed
		S: * FLAGS (\Answered \Flagged \Deleted \Seen \Draft)
		S: * OK [PERMANENTFLAGS ()] Read-only mailbox
		S: * 3 EXISTS
		S: * 0 RECENT
		S: * OK [UNSEEN 1] First unseen
		S: * OK [UIDVALIDITY $INBOX] UIDs valid
		S: * OK [UIDNEXT 5] Predicted next UID
		S: * OK [HIGHESTMODSEQ $$INBOX] Highest
		S: d OK [READ-ONLY] EXAMINE completed
		C: e UID FETCH 1:* (FLAGS) (CHANGEDSINCE {known} VANISHED)
		S: * VANISHED (EARLIER) 3
		S: * 2 FETCH (UID 2 FLAGS (\Seen) MODSEQ ({m2}))
		S: * 3 FETCH (UID 4 FLAGS () MODSEQ ({m4}))
		S: e OK UID FETCH completed
	`, "known", known, "uv", e.mailboxNow(t, "INBOX").UIDValidity, "m2", e.modSeqOf(t, "INBOX", 2), "m4", e.modSeqOf(t, "INBOX", 4)))

	// Expunges by the other device now arrive as VANISHED, flag changes with MODSEQ.
	e.run(t, other, `
		C: f STORE 1 +FLAGS.SILENT (\Deleted)
		S: * 3 EXISTS
		S: f OK STORE completed
		C: g STORE 2 -FLAGS.SILENT (\Seen)
		S: g OK STORE completed
		C: h EXPUNGE
		S: * 1 EXPUNGE
		S: h OK EXPUNGE completed
	`)
	e.run(t, d, script(`
		C: i NOOP
		S: * 2 FETCH (UID 2 FLAGS () MODSEQ ({m2}))
		S: * VANISHED 1
		S: i OK NOOP completed
	`, "m2", e.modSeqOf(t, "INBOX", 2)))
}

func TestESearchAndSearchRes(t *testing.T) {
	e := inboxOf(t, 5)
	d := e.login(t)
	e.run(t, d, `
		C: a SELECT INBOX
		`+selectReply("INBOX", 5, 6, 1)+`
		S: a OK [READ-WRITE] SELECT completed
		C: b STORE 2,4:5 +FLAGS.SILENT (\Flagged)
		S: b OK STORE completed
		C: c SEARCH RETURN (MIN MAX COUNT ALL) FLAGGED
		S: * ESEARCH (TAG "c") MIN 2 MAX 5 ALL 2,4:5 COUNT 3
		S: c OK SEARCH completed
		C: d UID SEARCH RETURN () DELETED
		S: * ESEARCH (TAG "d") UID
		S: d OK UID SEARCH completed
		C: e SEARCH RETURN (COUNT) DELETED
		S: * ESEARCH (TAG "e") COUNT 0
		S: e OK SEARCH completed
		C: f SEARCH RETURN (SAVE) FLAGGED
		S: f OK SEARCH completed
		C: g FETCH $ (UID)
		S: * 2 FETCH (UID 2)
		S: * 4 FETCH (UID 4)
		S: * 5 FETCH (UID 5)
		S: g OK FETCH completed
		C: h UID SEARCH RETURN (SAVE MIN) NOT $
		S: * ESEARCH (TAG "h") UID MIN 1
		S: h OK UID SEARCH completed
		C: i UID SEARCH $
		S: * SEARCH 1
		S: i OK UID SEARCH completed
		C: j STORE $ +FLAGS.SILENT (\Deleted)
		S: j OK STORE completed
		C: k EXPUNGE
		S: * 1 EXPUNGE
		S: k OK EXPUNGE completed
		# The saved message is gone: $ names nothing, and FETCH of nothing is no error.
		C: l UID FETCH $ (UID)
		S: l OK UID FETCH completed
		C: m SEARCH RETURN (ALL SAVE) OR $ 1:2
		S: * ESEARCH (TAG "m") ALL 1:2
		S: m OK SEARCH completed
		C: n SEARCH RETURN (BOGUS) ALL
		S: n BAD Unknown SEARCH RETURN option BOGUS
		# A failed SEARCH ... SAVE leaves the result empty (RFC 5182 §2.1).
		C: o SEARCH RETURN (SAVE) CHARSET X ALL
		S: o NO [BADCHARSET (UTF-8 US-ASCII)] Unsupported charset
		C: p SEARCH $
		S: * SEARCH
		S: p OK SEARCH completed
	`)
}

func TestListExtended(t *testing.T) {
	e := newEnv(t, Config{})
	e.deliver(t, "INBOX", msgA)
	d := e.login(t)
	e.run(t, d, `
		C: a CREATE Work/Petrel
		S: a OK CREATE completed
		C: b SUBSCRIBE Work/Petrel
		S: b OK SUBSCRIBE completed
		C: c SUBSCRIBE Gone
		S: c OK SUBSCRIBE completed
		C: d LIST (SUBSCRIBED) "" (Work/* Gone)
		S: * LIST (\HasNoChildren \Subscribed) "/" Work/Petrel
		S: * LIST (\NonExistent \Subscribed) "/" Gone
		S: d OK LIST completed
		C: e LIST (SUBSCRIBED RECURSIVEMATCH) "" (W% Gone)
		S: * LIST (\HasChildren) "/" Work ("CHILDINFO" ("SUBSCRIBED"))
		S: * LIST (\NonExistent \Subscribed) "/" Gone
		S: e OK LIST completed
		C: f LIST (SPECIAL-USE) "" * RETURN (STATUS (MESSAGES SIZE))
		S: * LIST (\HasNoChildren \Sent) "/" Sent
		S: * STATUS Sent (MESSAGES 0 SIZE 0)
		S: * LIST (\HasNoChildren \Drafts) "/" Drafts
		S: * STATUS Drafts (MESSAGES 0 SIZE 0)
		S: * LIST (\HasNoChildren \Trash) "/" Trash
		S: * STATUS Trash (MESSAGES 0 SIZE 0)
		S: * LIST (\HasNoChildren \Junk) "/" Junk
		S: * STATUS Junk (MESSAGES 0 SIZE 0)
		S: * LIST (\HasNoChildren \Archive) "/" Archive
		S: * STATUS Archive (MESSAGES 0 SIZE 0)
		S: f OK LIST completed
		C: g LIST "" (INBOX Work) RETURN (SUBSCRIBED CHILDREN STATUS (UIDVALIDITY HIGHESTMODSEQ))
		S: * LIST (\HasNoChildren \Subscribed) "/" INBOX
		S: * STATUS INBOX (UIDVALIDITY $INBOX HIGHESTMODSEQ $$INBOX)
		S: * LIST (\HasChildren) "/" Work
		S: * STATUS Work (UIDVALIDITY $Work HIGHESTMODSEQ $$Work)
		S: g OK LIST completed
		C: h LIST (RECURSIVEMATCH) "" *
		S: h BAD RECURSIVEMATCH needs another selection option
		C: i LIST (BOGUS) "" *
		S: i BAD Unknown LIST selection option BOGUS
		C: j LIST "" * RETURN (BOGUS)
		S: j BAD Unknown LIST return option BOGUS
		C: k STATUS INBOX (SIZE MESSAGES)
		S: * STATUS INBOX (SIZE 149 MESSAGES 1)
		S: k OK STATUS completed
	`)
}

const msgBinary = "From: a@example.net\r\nSubject: bin\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n" +
	"--b\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\ncaf=C3=A9\r\n" +
	"--b\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\nAAEC\r\n" +
	"--b\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: x-uuencode\r\n\r\nbegin\r\n--b--\r\n"

func TestIMAP4rev2AndBinary(t *testing.T) {
	e := newEnv(t, Config{})
	e.deliver(t, "INBOX", msgBinary)
	e.deliver(t, "INBOX", msgA)
	d := e.login(t)
	e.run(t, d, `
		C: a ENABLE IMAP4rev2 IMAP4rev2
		S: * ENABLED IMAP4rev2
		S: a OK ENABLE completed
		C: b SELECT INBOX
		S: * FLAGS (\Answered \Flagged \Deleted \Seen \Draft)
		S: * OK [PERMANENTFLAGS (\Answered \Flagged \Deleted \Seen \Draft \*)] Flags permitted
		S: * 2 EXISTS
		S: * OK [UIDVALIDITY $INBOX] UIDs valid
		S: * OK [UIDNEXT 3] Predicted next UID
		S: * OK [HIGHESTMODSEQ $$INBOX] Highest
		S: * LIST () "/" INBOX
		S: b OK [READ-WRITE] SELECT completed
		C: c SEARCH ALL
		S: * ESEARCH (TAG "c") ALL 1:2
		S: c OK SEARCH completed
		C: d UID SEARCH DELETED
		S: * ESEARCH (TAG "d") UID
		S: d OK UID SEARCH completed
		C: e FETCH 1 (BINARY.PEEK[1] BINARY.SIZE[1] BINARY.SIZE[2])
		S: * 1 FETCH (BINARY[1] {5}
		S: café BINARY.SIZE[1] 5 BINARY.SIZE[2] 3)
		S: e OK FETCH completed
		C: f FETCH 1 (FLAGS BINARY[2]<1.5>)
		S: * 1 FETCH (FLAGS (\Seen) BINARY[2]<1> {2}
		S: `+"\x01\x02"+`)
		S: f OK FETCH completed
		C: g FETCH 1 BINARY.PEEK[2]
		S: * 1 FETCH (BINARY[2] ~{3}
		S: `+"\x00\x01\x02"+`)
		S: g OK FETCH completed
		C: h FETCH 1:2 BINARY.PEEK[3]
		S: h NO [UNKNOWN-CTE] Cannot decode the part's content-transfer-encoding
		C: i FETCH 2 BINARY.SIZE[]
		S: * 2 FETCH (BINARY.SIZE[] 149)
		S: i OK FETCH completed
		C: j CREATE Entwürfe/a&b
		S: j OK CREATE completed
		C: k LIST "" Entw*
		S: * LIST (\HasChildren) "/" "Entwürfe"
		S: * LIST (\HasNoChildren) "/" "Entwürfe/a&b"
		S: k OK LIST completed
		C: l SELECT Entwürfe/a&b
		S: * OK [CLOSED] Previous mailbox closed
		S: * FLAGS (\Answered \Flagged \Deleted \Seen \Draft)
		S: * OK [PERMANENTFLAGS (\Answered \Flagged \Deleted \Seen \Draft \*)] Flags permitted
		S: * 0 EXISTS
		S: * OK [UIDVALIDITY $Entwürfe/a&b] UIDs valid
		S: * OK [UIDNEXT 1] Predicted next UID
		S: * OK [HIGHESTMODSEQ $$Entwürfe/a&b] Highest
		S: * LIST () "/" "Entwürfe/a&b"
		S: l OK [READ-WRITE] SELECT completed
	`)

	// UTF8=ACCEPT alone: UTF-8 names, rev1 responses otherwise.
	d2 := e.login(t)
	const utf8Msg = "Subject: café\r\nFrom: José <josé@example.net>\r\n\r\nhi\r\n"
	e.run(t, d2, script(`
		C: a LIST "" Entw*
		S: * LIST (\HasChildren) "/" Entw&APw-rfe
		S: * LIST (\HasNoChildren) "/" Entw&APw-rfe/a&-b
		S: a OK LIST completed
		C: b ENABLE UTF8=ACCEPT
		S: * ENABLED UTF8=ACCEPT
		S: b OK ENABLE completed
		C: c STATUS "Entwürfe" (MESSAGES)
		S: * STATUS "Entwürfe" (MESSAGES 0)
		S: c OK STATUS completed
		R: d APPEND Entwürfe UTF8 (~{{n}+}\r\n{msg})\r\n
		S: d OK [APPENDUID $Entwürfe 1] APPEND completed
		C: e APPEND Entwürfe ~{5+}
		C: a:b
		C:
		S: e OK [APPENDUID $Entwürfe 2] APPEND completed
		R: e2 APPEND Entwürfe ~{5+}\r\na:\x00\r\n\r\n
		S: e2 NO [UNKNOWN-CTE] Binary content with NUL octets cannot be stored
		C: f APPEND Entwürfe UTF8 ({3+}
		C: abc)
		S: f BAD UTF8 takes a literal8
	`, "n", len(utf8Msg), "msg", strings.ReplaceAll(utf8Msg, "\r\n", `\r\n`)))
	if got := e.modSeqOf(t, "Entwürfe", 1); got == 0 {
		t.Error("UTF8 APPEND stored nothing")
	}
}

// Under QRESYNC this session's own EXPUNGE and MOVE answer with VANISHED too (RFC 7162
// §3.2.10, RFC 6851 §4.3).
func TestQResyncOwnExpunges(t *testing.T) {
	e := inboxOf(t, 3)
	d := e.login(t)
	e.run(t, d, `
		C: a ENABLE QRESYNC
		S: * ENABLED QRESYNC
		S: a OK ENABLE completed
		C: b SELECT INBOX
		`+selectReply("INBOX", 3, 4, 1)+`
		S: b OK [READ-WRITE] SELECT completed
		C: c STORE 1 +FLAGS.SILENT (\Deleted)
		S: * 1 FETCH (UID 1 MODSEQ ($$INBOX))
		S: c OK STORE completed
		C: d EXPUNGE
		S: * VANISHED 1
		S: d OK EXPUNGE completed
		C: e MOVE 1:2 Trash
		S: * OK [COPYUID $Trash 2:3 1:2] Moved
		S: * VANISHED 2:3
		S: e OK MOVE completed
		C: f FETCH 1:* (UID)
		S: f BAD No messages
	`)
}
