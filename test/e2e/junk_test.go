package e2e

import (
	"fmt"
	"slices"
	"strings"
	"testing"
)

// pyJunkMove: host port cafile user password mailbox subject. Moves the messages of mailbox
// whose Subject contains subject into Junk with UID MOVE, as a mail client's "mark as
// junk" does, and prints the X-Spam-Status field each had.
const pyJunkMove = `
import imaplib, ssl, sys
host, port, cafile, user, password, mailbox, subject = sys.argv[1:8]
m = imaplib.IMAP4_SSL(host, int(port), ssl_context=ssl.create_default_context(cafile=cafile), timeout=20)
m.login(user, password)
m.select(mailbox)
typ, data = m.uid('SEARCH', None, 'SUBJECT', '"' + subject + '"')
uids = data[0].decode().split()
assert uids, 'no message with subject ' + subject
for uid in uids:
    typ, data = m.uid('FETCH', uid, '(BODY.PEEK[HEADER.FIELDS (X-SPAM-STATUS)])')
    print(data[0][1].decode().strip())
typ, data = m.uid('MOVE', ','.join(uids), 'Junk')
assert typ == 'OK', data
m.logout()
`

// spamOf is one copy of a spam campaign: the same text to the same user, with its own
// Message-ID and tracking link, as bulk senders send it.
func spamOf(n int, to string) []byte {
	return []byte(fmt.Sprintf("From: \"Winner Department\" <noreply@win-prize.example>\r\nTo: %s\r\n"+
		"Subject: CONGRATULATIONS you won copy %d\r\nMessage-ID: <%d.campaign@win-prize.example>\r\n"+
		"Content-Type: text/plain; charset=utf-8\r\n\r\n"+
		"Dear winner, your email address won our international lottery draw.\r\n"+
		"To claim your prize of $1,500,000 send your full name, address and bank details.\r\n"+
		"This offer expires in 48 hours, claim now at http://win-prize.example/c/%d !!!\r\n", to, n, n, n))
}

// TestJunkTrainedByIMAP: a new account files everything in INBOX with a neutral verdict;
// its user moves one spam to Junk with python's imaplib (UID MOVE), and the campaign's
// next copy arriving over SMTP is filed into Junk with the verdict in its header, while a
// personal message still reaches INBOX.
func TestJunkTrainedByIMAP(t *testing.T) {
	t.Parallel()
	requireTools(t, "python3")
	in := startInstance(t, nil)
	const user, pass = "jun@example.test", "junk-secret-1"
	in.addAccount(user, pass)
	send := func(msg []byte) {
		t.Helper()
		if err := sendMail(in.SMTP, false, "", "", "sender@remote.example", []string{user}, msg); err != nil {
			t.Fatal(err)
		}
	}
	subjects := func(mailbox string) []string {
		t.Helper()
		var out []string
		for _, m := range imapState(t, in, user, pass, mailbox)[mailbox] {
			out = append(out, strings.Split(m, "|")[0])
		}
		return out
	}

	send(spamOf(1, user))
	if got := subjects("INBOX"); !slices.Equal(got, []string{"CONGRATULATIONS you won copy 1"}) {
		t.Fatalf("an untrained account's INBOX: %q", got)
	}
	host, port := splitAddr(t, in.IMAPS)
	out := run(t, nil, nil, "python3", "-c", pyJunkMove, host, port, ca.File, user, pass, "INBOX", "copy 1")
	if !strings.HasPrefix(out, "X-Spam-Status: No, score=0.50 required=0.90") {
		t.Errorf("verdict of the first copy: %q", out)
	}

	send(spamOf(2, user))
	send([]byte("From: Anna <anna@example.org>\r\nTo: " + user + "\r\nSubject: dinner on Friday\r\n\r\n" +
		"Hi, are we still on for dinner on Friday at the old harbour? I booked a table.\r\n"))
	if got := subjects("Junk"); !slices.Equal(got, []string{"CONGRATULATIONS you won copy 1", "CONGRATULATIONS you won copy 2"}) {
		t.Errorf("Junk after training: %q", got)
	}
	if got := subjects("INBOX"); !slices.Equal(got, []string{"dinner on Friday"}) {
		t.Errorf("INBOX after training: %q", got)
	}
	out = run(t, nil, nil, "python3", "-c", pyJunkMove, host, port, ca.File, user, pass, "Junk", "copy 2")
	if !strings.HasPrefix(out, "X-Spam-Status: Yes, score=") {
		t.Errorf("verdict of the second copy: %q", out)
	}
	if stats := in.mustPetrel("", "junk", "stats", user); !strings.Contains(stats, "trained:     1 junk, 0 not junk") {
		t.Errorf("junk stats: %s", stats)
	}
}
