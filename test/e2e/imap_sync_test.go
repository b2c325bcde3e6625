package e2e

// QRESYNC (RFC 7162) with a real client: Python's imaplib has no QRESYNC of its own, but it
// sends ENABLE and raw commands and sorts untagged responses by name, which is all a device
// resynchronizing needs.

import (
	"encoding/json"
	"testing"
)

// pyQResync: host port cafile user password. A device notes UIDVALIDITY and HIGHESTMODSEQ
// and leaves; another flags message 1, expunges message 2 and appends one; the first comes
// back with SELECT (QRESYNC ...) and prints what it was told.
const pyQResync = `
import imaplib, json, ssl, sys
host, port, cafile, user, password = sys.argv[1:6]
ctx = ssl.create_default_context(cafile=cafile)
def ok(r):
    typ, data = r
    if typ != 'OK':
        raise SystemExit('not OK: %r %r' % (typ, data))
    return data
def session():
    m = imaplib.IMAP4_SSL(host, int(port), ssl_context=ctx, timeout=20)
    ok(m.login(user, password))
    return m
out = {}
m = session()
ok(m.enable('QRESYNC'))
ok(m.select('INBOX'))
uidvalidity = m.response('UIDVALIDITY')[1][0].decode()
modseq = m.response('HIGHESTMODSEQ')[1][0].decode()
m.logout()

o = session()
ok(o.select('INBOX'))
ok(o.store('1', '+FLAGS', '(\\Flagged)'))
ok(o.store('2', '+FLAGS', '(\\Deleted)'))
ok(o.expunge())
ok(o.append('INBOX', None, None, b'Subject: from the other device\r\n\r\nhi\r\n'))
o.logout()

m = session()
ok(m.enable('QRESYNC'))
out['enabled'] = m.response('ENABLED')[1][0].decode()
typ, data = m._simple_command('SELECT', 'INBOX', '(QRESYNC (%s %s 1:3))' % (uidvalidity, modseq))
if typ != 'OK':
    raise SystemExit('SELECT QRESYNC: %r' % data)
out['vanished'] = [v.decode() for v in m.untagged_responses.pop('VANISHED', [])]
out['fetch'] = [f.decode() for f in m.untagged_responses.pop('FETCH', [])]
out['exists'] = m.untagged_responses.pop('EXISTS', [b''])[0].decode()
m.logout()
print(json.dumps(out))
`

func TestIMAPQResyncPython(t *testing.T) {
	t.Parallel()
	requireTools(t, "python3")
	in := startInstance(t, nil)
	const user, pass = "quinn@example.test", "imap-secret-2"
	in.addAccount(user, pass)
	for _, tok := range []string{"qr-1", "qr-2", "qr-3"} {
		mustDeliver(t, in, []string{user}, testMessage(tok, "sender@remote.example", user))
	}
	host, port := splitAddr(t, in.IMAPS)
	out := run(t, nil, nil, "python3", "-c", pyQResync, host, port, ca.File, user, pass)
	var got struct {
		Enabled  string   `json:"enabled"`
		Vanished []string `json:"vanished"`
		Fetch    []string `json:"fetch"`
		Exists   string   `json:"exists"`
	}
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("imaplib output: %v\n%s", err, out)
	}
	// Exactly the other device's changes: message 2 gone, message 1 flagged, UID 4 new
	// (now message 3); nothing about message 3 (UID 3), which did not change.
	if got.Enabled != "QRESYNC" || got.Exists != "3" || len(got.Vanished) != 1 || got.Vanished[0] != "(EARLIER) 2" ||
		len(got.Fetch) != 2 || !matchFetch(got.Fetch[0], `1 (UID 1 FLAGS (\Flagged) MODSEQ (`) ||
		!matchFetch(got.Fetch[1], `3 (UID 4 FLAGS () MODSEQ (`) {
		t.Errorf("QRESYNC as imaplib saw it:\n%+v", got)
	}
}

func matchFetch(got, prefix string) bool {
	return len(got) > len(prefix) && got[:len(prefix)] == prefix && got[len(got)-2:] == "))"
}
