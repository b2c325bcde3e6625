package e2e

import (
	"encoding/json"
	"fmt"
	"path/filepath"
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

// pyCopyCheck: host port cafile user password mailbox subject. Reads the message of
// mailbox with that subject over IMAP as a client does, in whole and in parts, and prints
// JSON: its X-Spam-Status, whether RFC822.SIZE is the length of BODY[] and the parts agree
// with the whole (BODY[HEADER], a partial fetch, BODYSTRUCTURE's sizes), and what SEARCH
// HEADER finds for a Yes and a No verdict.
const pyCopyCheck = `
import imaplib, json, re, ssl, sys
host, port, cafile, user, password, mailbox, subject = sys.argv[1:8]
m = imaplib.IMAP4_SSL(host, int(port), ssl_context=ssl.create_default_context(cafile=cafile), timeout=20)
m.login(user, password)
m.select(mailbox, readonly=True)
typ, data = m.uid('SEARCH', None, 'SUBJECT', '"' + subject + '"')
uids = data[0].decode().split()
assert len(uids) == 1, 'messages with subject %s: %s' % (subject, uids)
uid = uids[0]
def fetch(item):
    typ, data = m.uid('FETCH', uid, '(' + item + ')')
    assert typ == 'OK', data
    return data
full = fetch('RFC822.SIZE BODY.PEEK[]')
size = int(re.search(rb'RFC822\.SIZE (\d+)', full[0][0]).group(1))
body = full[0][1]
header = fetch('BODY.PEEK[HEADER]')[0][1]
part = fetch('BODY.PEEK[]<20.100>')[0][1]
text = fetch('BODY.PEEK[TEXT]')[0][1]
bs = fetch('BODYSTRUCTURE')[0]
bs = bs if isinstance(bs, bytes) else bs[0]
status = [l for l in header.decode().split('\r\n') if l.startswith('X-Spam-Status:')]
out = {
    'status': status,
    'size_ok': size == len(body),
    'header_ok': body.startswith(header) and header.endswith(b'\r\n\r\n'),
    'text_ok': body == header + text,
    'partial_ok': part == body[20:120],
    'bodystructure_size': int(re.search(rb'"7BIT" (\d+)', bs, re.I).group(1)) == len(text),
    'search_yes': m.uid('SEARCH', None, 'HEADER', 'X-Spam-Status', '"Yes, score"')[1][0].decode().split(),
    'search_no': m.uid('SEARCH', None, 'HEADER', 'X-Spam-Status', '"No, score"')[1][0].decode().split(),
    'uid': uid,
}
m.logout()
print(json.dumps(out))
`

// pyPOP3Check: host port cafile user password subject. Prints JSON with the X-Spam-Status
// of the POP3 message with that subject and whether LIST and TOP agree with RETR's bytes.
const pyPOP3Check = `
import json, poplib, ssl, sys
host, port, cafile, user, password, subject = sys.argv[1:7]
p = poplib.POP3_SSL(host, int(port), context=ssl.create_default_context(cafile=cafile), timeout=20)
p.user(user)
p.pass_(password)
out = []
for entry in p.list()[1]:
    n, size = map(int, entry.split())
    resp, lines, octets = p.retr(n)
    raw = b''.join(l + b'\r\n' for l in lines)
    if subject.encode() not in raw:
        continue
    top = p.top(n, 0)[1]
    out.append({
        'status': [l.decode() for l in lines if l.startswith(b'X-Spam-Status:')],
        'list_ok': size == len(raw),
        'top_ok': raw.startswith(b''.join(l + b'\r\n' for l in top)),
    })
p.quit()
print(json.dumps(out))
`

// TestJunkVerdictPerAccount (issue 13): one message to two accounts, one trained to call
// its pattern junk and one not. The body is stored once, yet each account's copy carries
// its own verdict and is filed by it: Junk with "Yes" for the first, INBOX with "No" for
// the second. Over IMAP (python's imaplib) every size and offset agrees with the bytes
// served and SEARCH HEADER sees the account's own field; over POP3 (poplib) LIST is RETR's
// length.
func TestJunkVerdictPerAccount(t *testing.T) {
	t.Parallel()
	requireTools(t, "python3")
	in := startInstance(t, nil)
	const trained, untrained, pass = "trained@example.test", "untrained@example.test", "junk-secret-2"
	in.addAccount(trained, pass)
	in.addAccount(untrained, pass)
	spamDir := t.TempDir()
	for i := 1; i <= 3; i++ {
		writeFile(t, filepath.Join(spamDir, fmt.Sprintf("%d.eml", i)), string(spamOf(100+i, trained)), 0o644)
	}
	in.mustPetrel("", "junk", "train", trained, "--spam", spamDir)

	msg := spamOf(7, trained+", "+untrained)
	if err := sendMail(in.SMTP, false, "", "", "sender@remote.example", []string{trained, untrained}, msg); err != nil {
		t.Fatal(err)
	}
	host, port := splitAddr(t, in.IMAPS)
	check := func(user, mailbox, verdict string) {
		t.Helper()
		out := run(t, nil, nil, "python3", "-c", pyCopyCheck, host, port, ca.File, user, pass, mailbox, "copy 7")
		var c struct {
			Status     []string
			SizeOK     bool     `json:"size_ok"`
			HeaderOK   bool     `json:"header_ok"`
			TextOK     bool     `json:"text_ok"`
			PartialOK  bool     `json:"partial_ok"`
			BodyStruct bool     `json:"bodystructure_size"`
			SearchYes  []string `json:"search_yes"`
			SearchNo   []string `json:"search_no"`
			UID        string
		}
		if err := json.Unmarshal([]byte(out), &c); err != nil {
			t.Fatalf("%s %s: %v: %s", user, mailbox, err, out)
		}
		if len(c.Status) != 1 || !strings.HasPrefix(c.Status[0], "X-Spam-Status: "+verdict+", score=") {
			t.Errorf("%s %s: X-Spam-Status %q, want one %q", user, mailbox, c.Status, verdict)
		}
		if !c.SizeOK || !c.HeaderOK || !c.TextOK || !c.PartialOK || !c.BodyStruct {
			t.Errorf("%s %s: sizes and parts disagree with BODY[]: %s", user, mailbox, out)
		}
		yes, no := c.SearchYes, c.SearchNo
		if verdict == "No" {
			yes, no = no, yes
		}
		if !slices.Equal(yes, []string{c.UID}) || len(no) != 0 {
			t.Errorf("%s %s: SEARCH HEADER X-Spam-Status: %s", user, mailbox, out)
		}
	}
	check(trained, "Junk", "Yes")
	check(untrained, "INBOX", "No")
	if got := imapState(t, in, trained, pass, "INBOX")["INBOX"]; len(got) != 0 {
		t.Errorf("the trained account's INBOX: %q", got)
	}

	popHost, popPort := splitAddr(t, in.POP3S)
	pop := func(user string) string {
		return run(t, nil, nil, "python3", "-c", pyPOP3Check, popHost, popPort, ca.File, user, pass, "copy 7")
	}
	if got := pop(trained); strings.TrimSpace(got) != "[]" {
		t.Errorf("POP3 of the trained account (INBOX) shows the junk: %s", got)
	}
	out := pop(untrained)
	var entries []struct {
		Status []string
		ListOK bool `json:"list_ok"`
		TopOK  bool `json:"top_ok"`
	}
	if err := json.Unmarshal([]byte(out), &entries); err != nil || len(entries) != 1 {
		t.Fatalf("POP3 of the untrained account: %v: %s", err, out)
	}
	if e := entries[0]; len(e.Status) != 1 || !strings.HasPrefix(e.Status[0], "X-Spam-Status: No, score=") || !e.ListOK || !e.TopOK {
		t.Errorf("POP3 of the untrained account: %s", out)
	}
}
