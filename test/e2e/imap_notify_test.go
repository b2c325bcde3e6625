package e2e

// NOTIFY (RFC 5465) with a real client: imaplib knows no NOTIFY, but it sends the command
// raw and files the unsolicited STATUS, FETCH and LIST responses by name as they come.

import (
	"encoding/json"
	"fmt"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// pyNotify: host port cafile user password. One device selects Drafts and asks for
// notifications on its inboxes, the selected mailbox (with FETCH attributes) and mailbox
// names; another device appends to INBOX, appends to Drafts and renames a folder. The
// first device sends no command meanwhile: it reads what the server tells it on its own.
const pyNotify = `
import imaplib, json, ssl, sys
host, port, cafile, user, password = sys.argv[1:6]
ctx = ssl.create_default_context(cafile=cafile)
imaplib.Commands['NOTIFY'] = ('AUTH', 'SELECTED')
def ok(r):
    typ, data = r
    if typ != 'OK':
        raise SystemExit('not OK: %r %r' % (typ, data))
    return data
def session():
    m = imaplib.IMAP4_SSL(host, int(port), ssl_context=ctx, timeout=60)
    ok(m.login(user, password))
    return m
def wait_for(m, name):
    # Reads unsolicited responses until one named name comes, and returns it.
    while name not in m.untagged_responses:
        m._get_response()
    return [d.decode() if isinstance(d, bytes) else d for d in m.untagged_responses.pop(name)]
out = {}
m = session()
out['caps'] = 'NOTIFY' in m.capabilities
ok(m.create('Lists'))
ok(m.select('Drafts'))
m.untagged_responses.pop('EXISTS', None)
ok(m._simple_command('NOTIFY', 'SET',
    '(SELECTED (MessageNew (UID RFC822.SIZE) MessageExpunge))',
    '(INBOXES (MessageNew MessageExpunge))',
    '(PERSONAL (MailboxName))'))
o = session()
ok(o.append('INBOX', None, None, b'Subject: new mail\r\n\r\nhi\r\n'))
out['status'] = wait_for(m, 'STATUS')
ok(o.append('Drafts', None, None, b'Subject: draft\r\n\r\nx\r\n'))
out['exists'] = wait_for(m, 'EXISTS')
out['fetch'] = wait_for(m, 'FETCH')
ok(o.rename('Lists', 'Projects'))
out['list'] = wait_for(m, 'LIST')
o.logout()
ok(m.noop())
m.logout()
print(json.dumps(out))
`

func TestIMAPNotifyPython(t *testing.T) {
	t.Parallel()
	requireTools(t, "python3")
	in := startInstance(t, nil)
	const user, pass = "nora@example.test", "imap-secret-3"
	in.addAccount(user, pass)
	host, port := splitAddr(t, in.IMAPS)
	out := run(t, nil, nil, "python3", "-c", pyNotify, host, port, ca.File, user, pass)
	var got map[string]any
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("imaplib output: %v\n%s", err, out)
	}
	want := map[string]any{
		"caps":   true,
		"status": []any{"INBOX (MESSAGES 1 UIDNEXT 2 UNSEEN 1)"},
		"exists": []any{"1"},
		"fetch":  []any{"1 (UID 1 RFC822.SIZE 21)"},
		"list":   []any{`() "/" Projects ("OLDNAME" (Lists))`},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("imaplib saw %v, want %v", got, want)
	}
}

// TestIMAPNotifyOverflow runs the binary with a small [imap] max_notify_pending. A session
// with NOTIFY on three mailboxes is in the middle of an APPEND (it sent the command and
// holds back its literal, as a phone uploading a large attachment would) while another
// session adds a message to each of them: three mailboxes with changes it has not been
// told of, one more than the config allows. A session waiting for a command is told of a
// change at once; it falls behind inside a command, or when its client stops reading and its
// writes block, which would take megabytes of notifications to fill the socket buffers, so
// the client here holds back a literal instead. When the APPEND
// ends the session gets RFC 5465 §5.8's NOTIFICATIONOVERFLOW and NOTIFY is off; a new
// NOTIFY SET STATUS and SELECT then show the right state, and notifications flow again.
//
// The events Petrel does not support are refused with NO [BADEVENT (the supported events)]
// (RFC 5465 §3.1): AnnotationChange (ANNOTATE's, §5.1) and MailboxMetadataChange and
// ServerMetadataChange, which §5.6 and §5.7 require only of a server with METADATA (RFC
// 5464); Petrel has neither, and CAPABILITY says so.
func TestIMAPNotifyOverflow(t *testing.T) {
	t.Parallel()
	in := startInstance(t, options{"imap": {"max_notify_pending = 2"}})
	const user, pass = "olive@example.test", "notify-secret-4"
	in.addAccount(user, pass)
	session := func() *imapConn {
		t.Helper()
		c := dialIMAPS(t, in.IMAPS)
		c.run(t, "LOGIN "+user+" "+pass)
		return c
	}
	// add appends a message to box in one write (LITERAL+).
	add := func(c *imapConn, box string) {
		t.Helper()
		msg := "Subject: to " + box + "\r\n\r\nhi\r\n"
		c.run(t, fmt.Sprintf("APPEND %s {%d+}\r\n%s", box, len(msg), msg))
	}
	// readUntil reads untagged lines until want, which must come before anything else
	// the session might say (a notification it should not send fails the test).
	readUntil := func(c *imapConn, want string) {
		t.Helper()
		if l, err := c.ReadLine(); err != nil || l != want {
			t.Fatalf("read %q, %v; want %q", l, err, want)
		}
	}

	a := session()
	for _, box := range []string{"One", "Two", "Three", "Elsewhere"} {
		a.run(t, "CREATE "+box)
	}
	caps := strings.Join(a.run(t, "CAPABILITY"), " ")
	if !strings.Contains(caps, " NOTIFY") || strings.Contains(caps, "METADATA") {
		t.Fatalf("capabilities %q: want NOTIFY and no METADATA", caps)
	}
	for i, ev := range []string{"AnnotationChange", "MailboxMetadataChange", "ServerMetadataChange"} {
		tag := fmt.Sprintf("bad%d", i)
		if err := a.WriteLine(tag + " NOTIFY SET (PERSONAL (MessageNew MessageExpunge " + ev + "))"); err != nil {
			t.Fatal(err)
		}
		readUntil(a, tag+" NO [BADEVENT (MessageNew MessageExpunge FlagChange MailboxName SubscriptionChange)] Unsupported event")
	}
	a.run(t, "NOTIFY SET (MAILBOXES (One Two Three) (MessageNew MessageExpunge))")

	// The observer is told of Elsewhere, which only it watches. The store's change feed
	// calls every watcher of a change before it goes on to the next, so once the
	// observer hears of a change to Elsewhere, a has been told of every change before it.
	obs := session()
	obs.run(t, "NOTIFY SET (MAILBOXES Elsewhere (MessageNew MessageExpunge))")

	draft := "Subject: draft\r\n\r\nslow upload\r\n"
	if err := a.WriteLine(fmt.Sprintf("up APPEND Drafts {%d}", len(draft))); err != nil {
		t.Fatal(err)
	}
	readUntil(a, "+ Ready for literal data")

	b := session()
	for _, box := range []string{"One", "Two", "Three", "Elsewhere"} {
		add(b, box)
	}
	readUntil(obs, "* STATUS Elsewhere (MESSAGES 1 UIDNEXT 2 UNSEEN 1)")

	if err := a.WriteString(draft + "\r\n"); err != nil {
		t.Fatal(err)
	}
	readUntil(a, "* OK [NOTIFICATIONOVERFLOW] Too many changes; NOTIFY is off")
	if l, err := a.ReadLine(); err != nil || !strings.HasPrefix(l, "up OK [APPENDUID ") {
		t.Fatalf("APPEND after the overflow: %q, %v", l, err)
	}

	// NOTIFY is off: a change to a mailbox it watched before says nothing.
	add(b, "One")
	add(b, "Elsewhere")
	readUntil(obs, "* STATUS Elsewhere (MESSAGES 2 UIDNEXT 3 UNSEEN 2)")
	if lines := a.run(t, "NOOP"); len(lines) != 0 {
		t.Errorf("NOOP after the overflow: %q, want nothing (NOTIFY is off)", lines)
	}

	// The client recovers with a new NOTIFY SET STATUS: the state of each mailbox now.
	uidValidity := regexp.MustCompile(` UIDVALIDITY \d+`)
	var status []string
	for _, l := range a.run(t, "NOTIFY SET STATUS (MAILBOXES (One Two Three) (MessageNew MessageExpunge))") {
		status = append(status, uidValidity.ReplaceAllString(l, ""))
	}
	want := []string{
		"* STATUS One (MESSAGES 2 UIDNEXT 3 UNSEEN 2)",
		"* STATUS Two (MESSAGES 1 UIDNEXT 2 UNSEEN 1)",
		"* STATUS Three (MESSAGES 1 UIDNEXT 2 UNSEEN 1)",
	}
	if !slices.Equal(status, want) {
		t.Fatalf("NOTIFY SET STATUS after the overflow:\n%q\nwant\n%q", status, want)
	}
	add(b, "Two")
	readUntil(a, "* STATUS Two (MESSAGES 2 UIDNEXT 3 UNSEEN 2)")

	// NOTIFY NONE, then SELECT: the messages that came during the overflow are there.
	a.run(t, "NOTIFY NONE")
	for box, n := range map[string]string{"One": "2", "Drafts": "1"} {
		if lines := a.run(t, "SELECT "+box); !slices.Contains(lines, "* "+n+" EXISTS") {
			t.Errorf("SELECT %s: %q, want %s EXISTS", box, lines, n)
		}
	}
}
