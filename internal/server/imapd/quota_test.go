package imapd

import (
	"context"
	"encoding/base64"
	"strings"
	"testing"

	"petrel/internal/store"
)

// TestQuota: GETQUOTAROOT and GETQUOTA report the account's one root once it has limits,
// APPEND and COPY beyond them get NO [OVERQUOTA] and store nothing, MOVE is never refused,
// SETQUOTA is refused, and STATUS reports DELETED and DELETED-STORAGE.
func TestQuota(t *testing.T) {
	e := newEnv(t, Config{})
	ctx := context.Background()
	e.deliver(t, "INBOX", msgA) // 149 octets
	d := e.login(t)
	e.run(t, d, `
		C: a GETQUOTAROOT INBOX
		S: * QUOTAROOT INBOX
		S: a OK GETQUOTAROOT completed
		C: b GETQUOTA ""
		S: b NO [NONEXISTENT] No such quota root
		C: c SETQUOTA "" (STORAGE 100)
		S: c NO [NOPERM] Quotas are set by the administrator
		C: c2 SETQUOTA "" STORAGE
		S: c2 BAD Expected '('
	`)
	if err := e.st.SetQuota(ctx, e.alice.ID, store.QuotaLimits{Storage: 2048, Messages: 2}); err != nil {
		t.Fatal(err)
	}
	e.run(t, d, `
		C: d GETQUOTAROOT inbox
		S: * QUOTAROOT INBOX ""
		S: * QUOTA "" (STORAGE 1 2 MESSAGE 1 2)
		S: d OK GETQUOTAROOT completed
		C: e GETQUOTA ""
		S: * QUOTA "" (STORAGE 1 2 MESSAGE 1 2)
		S: e OK GETQUOTA completed
		C: f GETQUOTAROOT Nowhere
		S: f NO [NONEXISTENT] No such mailbox
		C: g APPEND Drafts {10+}
		C: 0123456789
		S: g OK [APPENDUID $Drafts 1] APPEND completed
		C: h APPEND Drafts {10+}
		C: 0123456789
		S: h NO [OVERQUOTA] Quota exceeded
		C: i SELECT INBOX
		S: * FLAGS (\Answered \Flagged \Deleted \Seen \Draft)
		S: * OK [PERMANENTFLAGS (\Answered \Flagged \Deleted \Seen \Draft \*)] Flags permitted
		S: * 1 EXISTS
		S: * 0 RECENT
		S: * OK [UNSEEN 1] First unseen
		S: * OK [UIDVALIDITY $INBOX] UIDs valid
		S: * OK [UIDNEXT 2] Predicted next UID
		S: * OK [HIGHESTMODSEQ $$INBOX] Highest
		S: i OK [READ-WRITE] SELECT completed
		C: j COPY 1 Archive
		S: j NO [OVERQUOTA] Quota exceeded
		C: k MOVE 1 Archive
		S: * OK [COPYUID $Archive 1 1] Moved
		S: * 1 EXPUNGE
		S: k OK MOVE completed
		C: l SELECT Archive
		S: * FLAGS (\Answered \Flagged \Deleted \Seen \Draft)
		S: * OK [PERMANENTFLAGS (\Answered \Flagged \Deleted \Seen \Draft \*)] Flags permitted
		S: * 1 EXISTS
		S: * 0 RECENT
		S: * OK [UNSEEN 1] First unseen
		S: * OK [UIDVALIDITY $Archive] UIDs valid
		S: * OK [UIDNEXT 2] Predicted next UID
		S: * OK [HIGHESTMODSEQ $$Archive] Highest
		S: l OK [READ-WRITE] SELECT completed
		C: m STORE 1 +FLAGS.SILENT (\Deleted)
		S: m OK STORE completed
		C: n STATUS Archive (DELETED DELETED-STORAGE MESSAGES)
		S: * STATUS Archive (DELETED 1 DELETED-STORAGE 149 MESSAGES 1)
		S: n OK STATUS completed
	`)
	u, err := e.st.Usage(ctx, e.alice.ID)
	if err != nil || u.Messages != 2 || u.Size != 159 {
		t.Errorf("usage %+v, %v; want the delivered and the first appended message", u, err)
	}
}

// TestSearchIndex: the text keys are answered from the full-text index, which holds the
// decoded text (a base64 body, an encoded-word subject, an address), and combine with
// flags, NOT, OR and nesting; an expunged message is not found.
func TestSearchIndex(t *testing.T) {
	e := newEnv(t, Config{})
	body := base64.StdEncoding.EncodeToString([]byte("Das Treffen ist am Donnerstag im Büro.\r\n"))
	e.deliver(t, "INBOX", "From: Dora <dora@example.net>\r\nTo: alice@example.org\r\nSubject: =?utf-8?q?Gr=C3=BC=C3=9Fe?=\r\n"+
		"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n"+body+"\r\n")
	e.deliver(t, "INBOX", "From: Erik <erik@example.com>\r\nTo: alice@example.org\r\nCc: dora@example.net\r\nSubject: plans\r\n\r\nSee you on Thursday in the office.\r\n")
	e.deliver(t, "INBOX", "From: Fay <fay@example.org>\r\nTo: bob@example.org\r\nBcc: alice@example.org\r\nSubject: office party\r\n\r\nCake.\r\n")
	d := e.login(t)
	d.Send("s SELECT INBOX")
	for !strings.HasPrefix(d.Line(), "s OK") {
	}
	e.run(t, d, `
		C: a SEARCH BODY donnerstag
		S: * SEARCH 1
		S: a OK SEARCH completed
		C: b SEARCH BODY RGFzIFRy
		S: * SEARCH
		S: b OK SEARCH completed
		C: c SEARCH SUBJECT grüsse
		S: * SEARCH
		S: c OK SEARCH completed
		C: d SEARCH SUBJECT GRÜSSE
		S: * SEARCH
		S: d OK SEARCH completed
		C: e SEARCH SUBJECT grüße
		S: * SEARCH 1
		S: e OK SEARCH completed
		C: f SEARCH TEXT office
		S: * SEARCH 2 3
		S: f OK SEARCH completed
		C: g SEARCH FROM dora@example.net
		S: * SEARCH 1
		S: g OK SEARCH completed
		C: h SEARCH CC dora
		S: * SEARCH 2
		S: h OK SEARCH completed
		C: i SEARCH OR BCC alice TO bob
		S: * SEARCH 3
		S: i OK SEARCH completed
		C: j SEARCH NOT TEXT office
		S: * SEARCH 1
		S: j OK SEARCH completed
		C: k SEARCH TEXT office NOT (SUBJECT party)
		S: * SEARCH 2
		S: k OK SEARCH completed
		C: l SEARCH TEXT "in the off"
		S: * SEARCH 2
		S: l OK SEARCH completed
		C: m SEARCH TEXT "office in"
		S: * SEARCH
		S: m OK SEARCH completed
		C: n STORE 2 +FLAGS.SILENT (\Seen \Deleted)
		S: n OK STORE completed
		C: o SEARCH SEEN TEXT office
		S: * SEARCH 2
		S: o OK SEARCH completed
		C: p EXPUNGE
		S: * 2 EXPUNGE
		S: p OK EXPUNGE completed
		C: q UID SEARCH TEXT office
		S: * SEARCH 3
		S: q OK UID SEARCH completed
		C: r SEARCH SUBJECT "!!"
		S: * SEARCH 1 2
		S: r OK SEARCH completed
		C: s SEARCH TEXT office
		S: * SEARCH 2
		S: s OK SEARCH completed
		C: t SEARCH TEXT office SUBJECT party FROM fay
		S: * SEARCH 2
		S: t OK SEARCH completed
		C: u UID SEARCH TEXT office SUBJECT plans
		S: * SEARCH
		S: u OK UID SEARCH completed
	`)
	if strings.Contains(e.logs.String(), "level=ERROR") {
		t.Errorf("errors logged:\n%s", e.logs)
	}
}
