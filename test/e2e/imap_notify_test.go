package e2e

// NOTIFY (RFC 5465) with a real client: imaplib knows no NOTIFY, but it sends the command
// raw and files the unsolicited STATUS, FETCH and LIST responses by name as they come.

import (
	"encoding/json"
	"reflect"
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
