package e2e

// Real IMAP clients against the built binary: Python's imaplib (strict about responses, and
// the library most scripts use) and curl.

import (
	"encoding/json"
	"strings"
	"testing"
)

// pyIMAP: host port mode(ssl|starttls) cafile user password smtp_host smtp_port
// Runs a whole session and prints JSON with what it saw; any unexpected answer raises.
const pyIMAP = `
import imaplib, json, smtplib, ssl, sys, socket
host, port, mode, cafile, user, password, smtp_host, smtp_port = sys.argv[1:9]
ctx = ssl.create_default_context(cafile=cafile)
if mode == 'ssl':
    m = imaplib.IMAP4_SSL(host, int(port), ssl_context=ctx, timeout=20)
else:
    m = imaplib.IMAP4(host, int(port), timeout=20)
    m.starttls(ssl_context=ctx)
out = {}
def ok(r):
    typ, data = r
    if typ != 'OK':
        raise SystemExit('not OK: %r %r' % (typ, data))
    return data
ok(m.login(user, password))
out['count'] = int(ok(m.select('INBOX'))[0])
out['search'] = ok(m.search(None, 'SUBJECT', '"e2e imap-2"'))[0].decode()
data = ok(m.fetch('1', '(BODY.PEEK[HEADER.FIELDS (SUBJECT)])'))
out['header'] = data[0][1].decode()
data = ok(m.fetch('2', '(RFC822.SIZE BODY[])'))
out['body'] = data[0][1].decode('utf-8')
out['flags'] = ok(m.fetch('2', '(FLAGS)'))[0].decode()
ok(m.store('1', '+FLAGS', '(\\Flagged)'))
out['flagged'] = ok(m.search(None, 'FLAGGED'))[0].decode()
ok(m.create('Projects/Petrel'))
ok(m.copy('1', 'Projects/Petrel'))
typ, data = m._simple_command('MOVE', '2', 'Archive')
if typ != 'OK':
    raise SystemExit('MOVE: %r' % data)
ok(m.rename('Projects', 'Work'))
out['list'] = [l.decode() for l in ok(m.list('""', 'Work*'))]
ok(m.append('Work/Petrel', '(\\Seen)', None, b'Subject: appended\r\n\r\nhi\r\n'))
out['status'] = ok(m.status('Work/Petrel', '(MESSAGES UNSEEN)'))[0].decode()
ok(m.store('1', '+FLAGS', '(\\Deleted)'))
ok(m.expunge())
out['after_expunge'] = int(ok(m.select('INBOX'))[0])
ok(m.select('Work/Petrel'))
ok(m.store('1:*', '+FLAGS', '(\\Deleted)'))
ok(m.close())
ok(m.delete('Work/Petrel'))
ok(m.delete('Work'))
ok(m.select('INBOX'))
# IDLE (RFC 2177), by hand: Python 3.11's imaplib has no idle().
tag = m._new_tag().decode()
m.send(('%s IDLE\r\n' % tag).encode())
line = m.readline()
if not line.startswith(b'+'):
    raise SystemExit('IDLE: %r' % line)
s = smtplib.SMTP(smtp_host, int(smtp_port), local_hostname='client.example', timeout=20)
s.sendmail('sender@remote.example', [user], b'Subject: e2e idle\r\n\r\nwake up\r\n')
s.quit()
out['idle'] = m.readline().decode().strip()
m.send(b'DONE\r\n')
line = m.readline()
if not line.startswith(tag.encode() + b' OK'):
    raise SystemExit('IDLE end: %r' % line)
m.logout()  # imaplib reports the BYE that precedes the tagged OK
print(json.dumps(out))
`

// TestIMAPClients runs an imaplib session over implicit TLS and over STARTTLS, and fetches
// with curl, against the built binary.
func TestIMAPClients(t *testing.T) {
	t.Parallel()
	requireTools(t, "python3", "curl")
	in := startInstance(t, nil)
	const user, pass = "ivy@example.test", "imap-secret-1"
	in.addAccount(user, pass)
	var sent [][]byte
	for _, tok := range []string{"imap-1", "imap-2"} {
		msg := testMessage(tok, "sender@remote.example", user)
		mustDeliver(t, in, []string{user}, msg)
		sent = append(sent, msg)
	}

	// curl reads over imaps://: the message by UID, and a search.
	curl := func(url string, extra ...string) string {
		args := append([]string{"-sS", "--max-time", "20", "--cacert", ca.File, "--user", user + ":" + pass}, extra...)
		return run(t, nil, nil, "curl", append(args, url)...)
	}
	checkStored(t, "curl imaps UID=1", []byte(curl("imaps://"+in.IMAPS+"/INBOX;UID=1")), sent[0])
	if got := curl("imaps://"+in.IMAPS+"/INBOX", "-X", "SEARCH SUBJECT imap-2"); got != "* SEARCH 2\r\n" {
		t.Errorf("curl SEARCH: %q", got)
	}
	// imap:// with --ssl-reqd goes through STARTTLS.
	checkStored(t, "curl imap+STARTTLS UID=2", []byte(curl("imap://"+in.IMAP+"/INBOX;UID=2", "--ssl-reqd")), sent[1])

	smtpHost, smtpPort := splitAddr(t, in.SMTP)
	for _, mode := range []string{"ssl", "starttls"} {
		addr := in.IMAPS
		if mode == "starttls" {
			// The first round left one message (the one IDLE saw arrive); the session
			// needs two.
			addr = in.IMAP
			mustDeliver(t, in, []string{user}, testMessage("imap-3", "sender@remote.example", user))
		}
		host, port := splitAddr(t, addr)
		out := run(t, nil, nil, "python3", "-c", pyIMAP, host, port, mode, ca.File, user, pass, smtpHost, smtpPort)
		var got struct {
			Count        int      `json:"count"`
			Search       string   `json:"search"`
			Header       string   `json:"header"`
			Body         string   `json:"body"`
			Flags        string   `json:"flags"`
			Flagged      string   `json:"flagged"`
			List         []string `json:"list"`
			Status       string   `json:"status"`
			AfterExpunge int      `json:"after_expunge"`
			Idle         string   `json:"idle"`
		}
		if err := json.Unmarshal([]byte(out), &got); err != nil {
			t.Fatalf("%s: imaplib output: %v\n%s", mode, err, out)
		}
		// Each round empties INBOX, then IDLE sees one message arrive over SMTP.
		if got.Count != 2 {
			t.Errorf("%s: SELECT found %d messages, want 2", mode, got.Count)
		}
		if got.Idle != "* 1 EXISTS" {
			t.Errorf("%s: IDLE saw %q, want \"* 1 EXISTS\"", mode, got.Idle)
		}
		if mode == "ssl" {
			checkStored(t, "imaplib BODY[]", []byte(got.Body), sent[1])
			// curl's FETCH BODY[] set \Seen on message 1, so its copy is seen too.
			if got.Search != "2" || got.Header != "Subject: e2e imap-1\r\n\r\n" ||
				!strings.Contains(got.Flags, `\Seen`) || got.Flagged != "1" ||
				strings.Join(got.List, "|") != `(\HasChildren) "/" Work|(\HasNoChildren) "/" Work/Petrel` ||
				got.Status != "Work/Petrel (MESSAGES 2 UNSEEN 0)" || got.AfterExpunge != 0 {
				t.Errorf("imaplib session:\n%+v", got)
			}
		}
	}
}

// pyShared: host imap_port pop3_port cafile user password. One IMAP session (imaplib) and
// POP3 sessions (poplib) on the same INBOX; prints JSON with what each saw.
const pyShared = `
import imaplib, json, poplib, ssl, sys
host, imap_port, pop_port, cafile, user, password = sys.argv[1:7]
ctx = ssl.create_default_context(cafile=cafile)
out = {}
m = imaplib.IMAP4_SSL(host, int(imap_port), ssl_context=ctx, timeout=20)
m.login(user, password)
out['imap_exists'] = int(m.select('INBOX')[1][0])
# IMAP marks message 2 seen and flagged; POP3 still lists both.
m.store('2', '+FLAGS', '(\\Flagged)')
p = poplib.POP3_SSL(host, int(pop_port), context=ctx, timeout=20)
p.user(user); p.pass_(password)
out['pop_count'] = p.stat()[0]
p.dele(1)
p.quit()
# The POP3 deletion reaches the IMAP session at its next command (RFC 9051 §7.5.1).
typ, data = m.noop()
out['imap_expunge'] = [d.decode() for d in m.response('EXPUNGE')[1] if d]
out['imap_left'] = m.search(None, 'ALL')[1][0].decode()
out['imap_flagged'] = m.search(None, 'FLAGGED')[1][0].decode()
m.logout()
p = poplib.POP3_SSL(host, int(pop_port), context=ctx, timeout=20)
p.user(user); p.pass_(password)
out['pop_after'] = p.stat()[0]
p.quit()
print(json.dumps(out))
`

// TestPOP3AndIMAPShareAMailbox: a POP3 deletion is an expunge an open IMAP session learns
// of; an IMAP flag is invisible to POP3, which keeps listing the message.
func TestPOP3AndIMAPShareAMailbox(t *testing.T) {
	t.Parallel()
	requireTools(t, "python3")
	in := startInstance(t, nil)
	const user, pass = "pat@example.test", "shared-secret-1"
	in.addAccount(user, pass)
	for _, tok := range []string{"shared-1", "shared-2"} {
		mustDeliver(t, in, []string{user}, testMessage(tok, "sender@remote.example", user))
	}
	host, imapPort := splitAddr(t, in.IMAPS)
	_, popPort := splitAddr(t, in.POP3S)
	out := run(t, nil, nil, "python3", "-c", pyShared, host, imapPort, popPort, ca.File, user, pass)
	var got struct {
		IMAPExists  int      `json:"imap_exists"`
		POPCount    int      `json:"pop_count"`
		IMAPExpunge []string `json:"imap_expunge"`
		IMAPLeft    string   `json:"imap_left"`
		IMAPFlagged string   `json:"imap_flagged"`
		POPAfter    int      `json:"pop_after"`
	}
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("output: %v\n%s", err, out)
	}
	if got.IMAPExists != 2 || got.POPCount != 2 || strings.Join(got.IMAPExpunge, ",") != "1" ||
		got.IMAPLeft != "1" || got.IMAPFlagged != "1" || got.POPAfter != 1 {
		t.Errorf("shared mailbox: %+v", got)
	}
}
