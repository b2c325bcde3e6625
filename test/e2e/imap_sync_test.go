package e2e

// Real IMAP clients that synchronize or retrieve (issue 10, "How it is checked"): mbsync
// (isync) in both directions, getmail6 and fetchmail over IMAP, and one mailbox shared by a
// POP3 session and two IMAP sessions.

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// pyState: host port cafile user password mailbox... Prints, as JSON, each mailbox's messages
// as "Subject|flags" (flags sorted), in UID order; a missing mailbox gives null.
const pyState = `
import imaplib, json, re, ssl, sys
host, port, cafile, user, password = sys.argv[1:6]
m = imaplib.IMAP4_SSL(host, int(port), ssl_context=ssl.create_default_context(cafile=cafile), timeout=20)
m.login(user, password)
out = {}
for mb in sys.argv[6:]:
    typ, _ = m.select(mb, readonly=True)
    if typ != 'OK':
        out[mb] = None
        continue
    typ, data = m.uid('FETCH', '1:*', '(FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)])')
    msgs = []
    for part in data:
        if not isinstance(part, tuple):
            continue
        flags = sorted(re.search(rb'FLAGS \(([^)]*)\)', part[0]).group(1).decode().split())
        subject = part[1].decode().strip().removeprefix('Subject: ')
        msgs.append(subject + '|' + ' '.join(flags))
    out[mb] = msgs
m.logout()
print(json.dumps(out))
`

// imapState returns what pyState prints for the mailboxes of user.
func imapState(t *testing.T, in *instance, user, pass string, mailboxes ...string) map[string][]string {
	t.Helper()
	host, port := splitAddr(t, in.IMAPS)
	out := run(t, nil, nil, "python3", append([]string{"-c", pyState, host, port, ca.File, user, pass}, mailboxes...)...)
	var got map[string][]string
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("imap state: %v\n%s", err, out)
	}
	return got
}

// TestMbsync syncs INBOX and a folder both ways with mbsync: what the server has arrives in
// a local Maildir, and a flag set locally, a new local message and a new local folder with
// a message reach the server, while a message delivered meanwhile comes down.
func TestMbsync(t *testing.T) {
	t.Parallel()
	requireTools(t, "python3", "mbsync")
	in := startInstance(t, nil)
	const user, pass = "mia@example.test", "mbsync-secret-1"
	in.addAccount(user, pass)
	for _, tok := range []string{"sync-1", "sync-2"} {
		mustDeliver(t, in, []string{user}, testMessage(tok, "sender@remote.example", user))
	}
	dir := t.TempDir()
	local := filepath.Join(dir, "mail")
	if err := os.Mkdir(local, 0o700); err != nil {
		t.Fatal(err)
	}
	// The certificate names localhost, not 127.0.0.1, and mbsync checks the host name.
	_, port := splitAddr(t, in.IMAPS)
	rc := filepath.Join(dir, "mbsyncrc")
	writeFile(t, rc, fmt.Sprintf(`IMAPAccount petrel
Host localhost
Port %s
User %s
Pass %s
SSLType IMAPS
CertificateFile %s
Timeout 20

IMAPStore remote
Account petrel

MaildirStore local
Path %s/
Inbox %s/INBOX
SubFolders Verbatim

Channel petrel
Far :remote:
Near :local:
Patterns INBOX Work
Create Both
Expunge Both
SyncState *
`, port, user, pass, ca.File, local, local), 0o600)
	mbsync := func() { t.Helper(); run(t, nil, []string{"HOME=" + dir}, "mbsync", "-c", rc, "-a") }

	mbsync()
	inbox := filepath.Join(local, "INBOX")
	files := maildirNames(t, inbox)
	if len(files) != 2 {
		t.Fatalf("first sync brought %d messages into INBOX, want 2: %v", len(files), files)
	}

	// Local changes: message sync-1 seen and flagged, a new message in INBOX, a new folder
	// Work with one message. A message arrives on the server meanwhile.
	flagged := false
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(b), "Subject: e2e sync-1") {
			base := filepath.Base(f)
			if i := strings.Index(base, ":2,"); i >= 0 {
				base = base[:i]
			}
			if err := os.Rename(f, filepath.Join(inbox, "cur", base+":2,FS")); err != nil {
				t.Fatal(err)
			}
			flagged = true
		}
	}
	if !flagged {
		t.Fatal("sync-1 not among the synced files")
	}
	newLocal := func(folder, token string) {
		for _, sub := range []string{"cur", "new", "tmp"} {
			if err := os.MkdirAll(filepath.Join(folder, sub), 0o700); err != nil {
				t.Fatal(err)
			}
		}
		writeFile(t, filepath.Join(folder, "new", token+".local"), string(testMessage(token, user, user)), 0o600)
	}
	newLocal(inbox, "local-1")
	newLocal(filepath.Join(local, "Work"), "local-work-1")
	mustDeliver(t, in, []string{user}, testMessage("sync-3", "sender@remote.example", user))

	mbsync()
	got := imapState(t, in, user, pass, "INBOX", "Work")
	want := map[string][]string{
		"INBOX": {`e2e sync-1|\Flagged \Seen`, "e2e sync-2|", "e2e sync-3|", "e2e local-1|"},
		"Work":  {"e2e local-work-1|"},
	}
	for mb, msgs := range want {
		g := append([]string(nil), got[mb]...)
		sort.Strings(g)
		sort.Strings(msgs)
		if strings.Join(g, "\n") != strings.Join(msgs, "\n") {
			t.Errorf("server %s after the two-way sync:\n%q\nwant\n%q", mb, got[mb], msgs)
		}
	}
	if n := len(maildirNames(t, inbox)); n != 4 {
		t.Errorf("local INBOX has %d messages after the second sync, want 4 (sync-3 came down)", n)
	}

	// mbsync (isync) uses COMPRESS=DEFLATE whenever the server offers it, as Petrel does by
	// default: the syncs above ran compressed (its second sync once hung there: see
	// internal/lib/inflate).
	if n := strings.Count(in.stderr.String(), "compress=true"); n < 2 {
		t.Errorf("%d compressed IMAP sessions in the server log, want the syncs' (at least 2)", n)
	}

	// A third run finds nothing to do: the same state on both sides.
	mbsync()
	if again := imapState(t, in, user, pass, "INBOX"); len(again["INBOX"]) != 4 {
		t.Errorf("a sync without changes changed the server: %q", again["INBOX"])
	}
	if n := len(maildirNames(t, inbox)); n != 4 {
		t.Errorf("a sync without changes left %d local messages, want 4", n)
	}
}

// maildirNames lists the message files of a Maildir folder.
func maildirNames(t *testing.T, folder string) []string {
	t.Helper()
	var out []string
	for _, sub := range []string{"new", "cur"} {
		ents, err := os.ReadDir(filepath.Join(folder, sub))
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range ents {
			out = append(out, filepath.Join(folder, sub, e.Name()))
		}
	}
	return out
}

// TestIMAPRetrievers: getmail6 and fetchmail retrieve over IMAP (implicit TLS), keeping the
// messages on the server, then deleting them.
func TestIMAPRetrievers(t *testing.T) {
	t.Parallel()
	requireTools(t, "python3", "getmail", "fetchmail")
	in := startInstance(t, nil)
	host, port := splitAddr(t, in.IMAPS)
	deliver := func(t *testing.T, user, prefix string) [][]byte {
		var sent [][]byte
		for i := 1; i <= 3; i++ {
			msg := testMessage(fmt.Sprintf("%s-%d", prefix, i), "sender@remote.example", user)
			mustDeliver(t, in, []string{user}, msg)
			sent = append(sent, msg)
		}
		return sent
	}

	t.Run("getmail", func(t *testing.T) {
		const user, pass = "gus@example.test", "getmail-secret-1"
		in.addAccount(user, pass)
		sent := deliver(t, user, "getmail")
		dir, out, mda := mdaDir(t)
		rc := filepath.Join(dir, "getmailrc")
		getmail := func(deleteAfter bool) {
			t.Helper()
			writeFile(t, rc, fmt.Sprintf(`[retriever]
type = SimpleIMAPSSLRetriever
server = %s
port = %s
username = %s
password = %s
mailboxes = ("INBOX",)
ca_certs = %s
timeout = 20
record_mailbox = false

# Maildir delivery refuses to run as root (the tests may); an external MDA may be allowed.
[destination]
type = MDA_external
path = %s
allow_root_commands = true

[options]
read_all = false
delete = %v
delivered_to = false
received = false
verbose = 0
`, host, port, user, pass, ca.File, mda, deleteAfter), 0o600)
			run(t, nil, []string{"HOME=" + dir}, "getmail", "--getmaildir", dir, "--rcfile", rc)
		}
		getmail(false)
		checkDelivered(t, "getmail", dirFiles(t, out), sent)
		if got := imapState(t, in, user, pass, "INBOX"); len(got["INBOX"]) != 3 {
			t.Errorf("after getmail without delete the server has %q", got["INBOX"])
		}
		// getmail remembers what it retrieved: a second run brings nothing, and with delete
		// it removes what it has already.
		getmail(true)
		checkDelivered(t, "getmail, second run", dirFiles(t, out), sent)
		if got := imapState(t, in, user, pass, "INBOX"); len(got["INBOX"]) != 0 {
			t.Errorf("after getmail with delete the server has %q", got["INBOX"])
		}
	})

	t.Run("fetchmail", func(t *testing.T) {
		const user, pass = "fay@example.test", "fetchmail-imap-1"
		in.addAccount(user, pass)
		sent := deliver(t, user, "fetchmail-imap")
		dir, out, mda := mdaDir(t)
		rc := filepath.Join(dir, "fetchmailrc")
		writeFile(t, rc, fmt.Sprintf(`poll %s service %s proto IMAP timeout 20
  user %q there with password %q
  ssl sslcertck sslcertfile %q sslcommonname "localhost"
  no rewrite
  mda %q
`, host, port, user, pass, ca.File, mda), 0o600)
		env := []string{"HOME=" + dir, "FETCHMAILHOME=" + dir}
		fetchmail := func(args ...string) {
			t.Helper()
			run(t, nil, env, "fetchmail", append([]string{"--nosyslog", "--invisible", "-f", rc,
				"-i", filepath.Join(dir, "ids"), "--pidfile", filepath.Join(dir, "pid")}, args...)...)
		}
		fetchmail("--keep")
		checkDelivered(t, "fetchmail IMAP --keep", dirFiles(t, out), sent)
		// fetchmail marks what it retrieved \Seen and, without --all, fetches only unseen
		// messages: nothing the second time; --nokeep --all fetches again and deletes.
		if got := imapState(t, in, user, pass, "INBOX"); len(got["INBOX"]) != 3 || !strings.HasSuffix(got["INBOX"][0], `\Seen`) {
			t.Errorf("after fetchmail --keep the server has %q, want 3 seen messages", got["INBOX"])
		}
		fetchmail("--nokeep", "--all")
		checkDelivered(t, "fetchmail IMAP --keep, then --nokeep --all", dirFiles(t, out), append(sent, sent...))
		if got := imapState(t, in, user, pass, "INBOX"); len(got["INBOX"]) != 0 {
			t.Errorf("after fetchmail --nokeep the server has %q", got["INBOX"])
		}
	})
}

// checkDelivered checks that the files a client delivered are the sent messages as stored
// (the server's trace fields, then the message exactly), each as many times as listed. Local
// delivery may turn CRLF into LF; nothing else may change.
func checkDelivered(t *testing.T, client string, files, sent [][]byte) {
	t.Helper()
	if len(files) != len(sent) {
		t.Errorf("%s delivered %d messages, want %d", client, len(files), len(sent))
	}
	lf := func(b []byte) string { return strings.ReplaceAll(string(b), "\r\n", "\n") }
	want := map[string]int{}
	for _, m := range sent {
		want[lf(m)]++
	}
	for _, f := range files {
		found := false
		for m, n := range want {
			if n > 0 && strings.HasSuffix(lf(f), "\n"+m) && strings.HasPrefix(lf(f), "Return-Path: ") {
				want[m]--
				found = true
				break
			}
		}
		if !found {
			t.Errorf("%s delivered a message that is not one of the sent ones as stored:\n%q", client, f)
		}
	}
}

// mdaDir makes a directory for a retriever's files, with an MDA script (mda) that writes each
// message it reads into a file of its own in out.
func mdaDir(t *testing.T) (dir, out, mda string) {
	t.Helper()
	dir = t.TempDir()
	out = filepath.Join(dir, "out")
	if err := os.Mkdir(out, 0o700); err != nil {
		t.Fatal(err)
	}
	mda = filepath.Join(dir, "deliver.sh")
	writeFile(t, mda, "#!/bin/sh\nexec cat > \"$(mktemp "+out+"/msg.XXXXXX)\"\n", 0o700)
	return dir, out, mda
}

// pyThree: host imap_port pop_port cafile user password. Two IMAP sessions (imaplib) and a
// POP3 session (poplib) on one INBOX of three messages; prints JSON with what each saw.
const pyThree = `
import imaplib, json, poplib, re, ssl, sys
host, imap_port, pop_port, cafile, user, password = sys.argv[1:7]
ctx = ssl.create_default_context(cafile=cafile)
def imap():
    m = imaplib.IMAP4_SSL(host, int(imap_port), ssl_context=ctx, timeout=20)
    m.login(user, password)
    m.select('INBOX')
    return m
def untagged(m, name):
    return sorted(d.decode() if isinstance(d, bytes) else d[0].decode() for d in m.response(name)[1] if d)
out = {}
a, b = imap(), imap()
# A flags message 2; B learns it at its next command (FETCH FLAGS, RFC 9051 §7.5.1).
a.store('2', '+FLAGS', '(\\Flagged)')
b.noop()
out['b_sees_flag'] = untagged(b, 'FETCH')
# B appends a message; A learns of it (EXISTS).
b.append('INBOX', None, None, b'Subject: appended by b\r\n\r\nhi\r\n')
a.noop()
out['a_sees_append'] = max(int(n) for n in untagged(a, 'EXISTS'))  # imaplib keeps SELECT's too
# POP3 logs in (4 messages now), deletes message 1 and quits: both IMAP sessions see the
# expunge; the IMAP flag is invisible to POP3.
p = poplib.POP3_SSL(host, int(pop_port), context=ctx, timeout=20)
p.user(user); p.pass_(password)
out['pop_count'] = p.stat()[0]
p.dele(1)
p.quit()
a.noop()
out['a_sees_pop_delete'] = untagged(a, 'EXPUNGE')
b.noop()
out['b_sees_pop_delete'] = untagged(b, 'EXPUNGE')
# A POP3 session opens, then A expunges a message: the POP3 session keeps its snapshot
# (RFC 1939), B sees the expunge, and the next POP3 session sees it gone.
p = poplib.POP3_SSL(host, int(pop_port), context=ctx, timeout=20)
p.user(user); p.pass_(password)
before = p.stat()[0]
a.store('2', '+FLAGS', '(\\Deleted)')
a.expunge()
out['pop_snapshot'] = [before, p.stat()[0]]
p.quit()
b.noop()
out['b_sees_a_expunge'] = untagged(b, 'EXPUNGE')
p = poplib.POP3_SSL(host, int(pop_port), context=ctx, timeout=20)
p.user(user); p.pass_(password)
out['pop_after'] = p.stat()[0]
p.quit()
out['a_left'] = a.search(None, 'ALL')[1][0].decode()
out['b_left'] = b.search(None, 'ALL')[1][0].decode()
out['b_flagged'] = b.search(None, 'FLAGGED')[1][0].decode()
a.logout(); b.logout()
print(json.dumps(out))
`

// TestPOP3AndTwoIMAPSessions: a POP3 session and two IMAP sessions share a mailbox and each
// sees the others' changes, by the rule of docs/architecture.md (POP3 and IMAP on one
// mailbox): an IMAP session learns of a flag, an append and an expunge by another session,
// and of a POP3 deletion, at its next command; a POP3 session works on its snapshot and the
// next one sees the changes.
func TestPOP3AndTwoIMAPSessions(t *testing.T) {
	t.Parallel()
	requireTools(t, "python3")
	in := startInstance(t, nil)
	const user, pass = "tri@example.test", "shared-secret-3"
	in.addAccount(user, pass)
	for _, tok := range []string{"three-1", "three-2", "three-3"} {
		mustDeliver(t, in, []string{user}, testMessage(tok, "sender@remote.example", user))
	}
	host, imapPort := splitAddr(t, in.IMAPS)
	_, popPort := splitAddr(t, in.POP3S)
	out := run(t, nil, nil, "python3", "-c", pyThree, host, imapPort, popPort, ca.File, user, pass)
	var got map[string]any
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("output: %v\n%s", err, out)
	}
	want := map[string]string{
		"b_sees_flag":       `["2 (UID 2 FLAGS (\\Flagged))"]`,
		"a_sees_append":     `4`,
		"pop_count":         `4`,
		"a_sees_pop_delete": `["1"]`,
		"b_sees_pop_delete": `["1"]`,
		"pop_snapshot":      `[3,3]`,
		"b_sees_a_expunge":  `["2"]`,
		"pop_after":         `2`,
		"a_left":            `"1 2"`,
		"b_left":            `"1 2"`,
		"b_flagged":         `"1"`,
	}
	for k, w := range want {
		g, _ := json.Marshal(got[k])
		if string(g) != w {
			t.Errorf("%s = %s, want %s", k, g, w)
		}
	}
	if t.Failed() {
		t.Logf("all: %s", out)
	}
}
