package cli

import (
	"crypto/tls"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/emersion/go-imap/v2/imapclient"

	"petrel/internal/client/pop3client"
	"petrel/internal/mailtest"
)

// dovecotAccount is a real Dovecot with a mailbox written by its own tools: folders (one with
// a non-ASCII name, one nested), flags, keywords, UIDs with gaps from moves and an expunge.
// before is what an IMAP client sees there per folder, uidls what a POP3 client sees of INBOX;
// folders maps Dovecot's folder names to Petrel's.
type dovecotAccount struct {
	d       *mailtest.Dovecot
	total   int // messages in every folder
	folders map[string]string
	before  map[string]imapView
	uidls   map[string]int64
	tlsConf *tls.Config
}

func startDovecotAccount(t *testing.T) *dovecotAccount {
	mailtest.RequireBinary(t, mailtest.IMAPBinary)
	mailtest.RequireBinary(t, "/usr/bin/doveadm")
	d := mailtest.StartDovecot(t)
	const n = 300
	bodies := make([]string, n)
	for i := range bodies {
		bodies[i] = fmt.Sprintf("From: someone@example.net\r\nTo: carol@example.test\r\nSubject: message %d\r\nMessage-ID: <%d@example.net>\r\n\r\nFrom the body of %d\r\n", i, i, i)
	}
	d.DeliverAll(t, bodies)
	u := []string{"-u", d.User}
	d.Doveadm(t, append([]string{"mailbox", "create"}, append(u, "Work", "Lists.Go", "Entwürfe")...)...)
	// Dovecot numbers the messages on first access; then flags, keywords, moves (which
	// leave UID gaps in INBOX) and an expunge.
	d.Doveadm(t, append([]string{"flags", "add"}, append(u, `\Seen $Label1`, "mailbox", "INBOX", "uid", "1:100")...)...)
	d.Doveadm(t, append([]string{"flags", "add"}, append(u, `\Answered \Flagged Work`, "mailbox", "INBOX", "uid", "50:60")...)...)
	d.Doveadm(t, append([]string{"move"}, append(u, "Work", "mailbox", "INBOX", "uid", "101:150")...)...)
	d.Doveadm(t, append([]string{"copy"}, append(u, "Lists.Go", "mailbox", "INBOX", "uid", "151:160")...)...)
	d.Doveadm(t, append([]string{"copy"}, append(u, "Entwürfe", "mailbox", "INBOX", "uid", "161")...)...)
	d.Doveadm(t, append([]string{"expunge"}, append(u, "mailbox", "INBOX", "uid", "200:210")...)...)

	da := &dovecotAccount{d: d, total: n - 11 + 10 + 1, tlsConf: &tls.Config{InsecureSkipVerify: true},
		folders: map[string]string{"INBOX": "INBOX", "Work": "Work", "Lists.Go": "Lists/Go", "Entwürfe": "Entwürfe"}}
	da.before = map[string]imapView{}
	for dovecotName := range da.folders {
		da.before[dovecotName] = da.view(t, dovecotName)
	}
	da.uidls = pop3Listing(t, d.POP3SAddr, pop3client.Options{TLS: pop3client.ImplicitTLS, TLSConf: da.tlsConf}, d.User, d.Pass)
	if len(da.uidls) != n-50-11 || len(da.before["Work"].subjects) != 50 {
		t.Fatalf("Dovecot has %d messages in INBOX and %d in Work", len(da.uidls), len(da.before["Work"].subjects))
	}
	return da
}

// view is what an IMAP client sees of a Dovecot folder now.
func (da *dovecotAccount) view(t *testing.T, folder string) imapView {
	c, err := imapclient.DialTLS(da.d.IMAPSAddr, &imapclient.Options{TLSConfig: da.tlsConf})
	if err != nil {
		t.Fatal(err)
	}
	return imapMailbox(t, c, da.d.User, da.d.Pass, folder)
}

// compare checks that IMAP and POP3 clients see in Petrel (addrs: serveData's) what they saw in
// Dovecot: the same UIDVALIDITY, UIDs, subjects and flags (and received dates, if dates),
// and the same POP3 UIDLs and sizes, so that neither downloads anything again.
func (da *dovecotAccount) compare(t *testing.T, addrs map[string]string, user, pass string, dates bool) {
	for dovecotName, name := range da.folders {
		c, err := imapclient.DialInsecure(addrs["imap"], nil)
		if err != nil {
			t.Fatal(err)
		}
		after := imapMailbox(t, c, user, pass, name)
		b := da.before[dovecotName]
		if after.uidValidity != b.uidValidity {
			t.Errorf("%s: UIDVALIDITY %d in Petrel, %d in Dovecot", name, after.uidValidity, b.uidValidity)
		}
		if len(after.subjects) != len(b.subjects) {
			t.Errorf("%s: %d messages in Petrel, %d in Dovecot", name, len(after.subjects), len(b.subjects))
		}
		for uid, s := range b.subjects {
			// Dovecot reports \Recent to this first session; Petrel keeps no \Recent.
			s = strings.TrimSpace(strings.ReplaceAll(s, ` \Recent`, ""))
			if got := strings.TrimSpace(after.subjects[uid]); got != s {
				t.Errorf("%s UID %d: %q in Petrel, %q in Dovecot", name, uid, got, s)
			}
			if dates && !after.dates[uid].Equal(b.dates[uid]) {
				t.Errorf("%s UID %d: received %v in Petrel, %v in Dovecot", name, uid, after.dates[uid], b.dates[uid])
			}
		}
	}
	got := pop3Listing(t, addrs["pop3"], pop3client.Options{TLS: pop3client.NoTLS}, user, pass)
	for uidl, size := range da.uidls {
		if got[uidl] != size {
			t.Errorf("POP3 UIDL %s: size %d in Petrel, %d in Dovecot (a client would download it)", uidl, got[uidl], size)
		}
	}
	if len(got) != len(da.uidls) {
		t.Errorf("POP3: %d messages in Petrel, %d in Dovecot", len(got), len(da.uidls))
	}
}

// TestImportFromDovecot: a Maildir written by a real Dovecot (folders, flags, keywords, UIDs
// with gaps) imported into Petrel and served there shows an IMAP client the same
// UIDVALIDITY, UIDs and flags, and a POP3 client the same UIDLs and sizes, so neither
// downloads anything again. A second import adds nothing.
func TestImportFromDovecot(t *testing.T) {
	da := startDovecotAccount(t)
	if _, err := os.Stat(filepath.Join(da.d.Maildir, "dovecot-uidlist")); err != nil {
		t.Fatalf("Dovecot wrote no uidlist: %v", err)
	}
	data := filepath.Join(t.TempDir(), "data")
	const pass = "carol-secret-password"
	const carol = "carol@example.test"
	if out, err := run(t, data, pass+"\n", "account", "add", carol); err != nil {
		t.Fatal(out, err)
	}
	out, err := run(t, data, "", "import", "maildir", carol, da.d.Maildir)
	if err != nil || !strings.Contains(out, fmt.Sprintf("imported %d messages", da.total)) {
		t.Fatalf("import: %v\n%s", err, out)
	}
	t.Logf("import:\n%s", out)
	if out, err := run(t, data, "", "import", "maildir", carol, da.d.Maildir); err != nil || !strings.Contains(out, "imported 0 messages") {
		t.Errorf("second import: %v\n%s", err, out)
	}
	da.compare(t, serveData(t, data), carol, pass, false)
}

// TestImportIMAPFromDovecot: the same account copied over IMAP (imaps:// and imap:// with
// STARTTLS) gives IMAP and POP3 clients the same view, received dates included; a rerun
// copies nothing, and a rerun after new mail arrived on the source copies just that.
func TestImportIMAPFromDovecot(t *testing.T) {
	da := startDovecotAccount(t)
	data := filepath.Join(t.TempDir(), "data")
	const pass = "carol-secret-password"
	const carol = "carol@example.test"
	if out, err := run(t, data, pass+"\n", "account", "add", carol); err != nil {
		t.Fatal(out, err)
	}
	_, imapsPort, _ := net.SplitHostPort(da.d.IMAPSAddr)
	_, imapPort, _ := net.SplitHostPort(da.d.IMAPAddr)
	imaps := (&url.URL{Scheme: "imaps", User: url.User(da.d.User), Host: "localhost:" + imapsPort}).String()
	plain := (&url.URL{Scheme: "imap", User: url.User(da.d.User), Host: "localhost:" + imapPort}).String()
	pwFile := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(pwFile, []byte(da.d.Pass+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	// A wrong password fails the login and imports nothing.
	if out, err := run(t, data, "wrong\n", "import", imaps, carol, "--ca-file", da.d.CertFile); err == nil {
		t.Fatalf("import with a wrong password: %s", out)
	}
	out, err := run(t, data, da.d.Pass+"\n", "import", imaps, carol, "--ca-file", da.d.CertFile)
	if err != nil || !strings.Contains(out, fmt.Sprintf("imported %d messages", da.total)) {
		t.Fatalf("import: %v\n%s", err, out)
	}
	t.Logf("import:\n%s", out)
	if out, err := run(t, data, "", "import", "imap", "--password-file", pwFile, "--ca-file", da.d.CertFile, plain, carol); err != nil || !strings.Contains(out, "imported 0 messages") {
		t.Errorf("second import (STARTTLS): %v\n%s", err, out)
	}
	addrs := serveData(t, data)
	da.compare(t, addrs, carol, pass, true)

	// New mail on the source: a rerun beside the running server copies it, and only it,
	// with the source's UID.
	da.d.Deliver(t, 1000, "From: late@example.net\r\nSubject: late\r\n\r\nlate\r\n")
	da.before["INBOX"] = da.view(t, "INBOX")
	da.uidls = pop3Listing(t, da.d.POP3SAddr, pop3client.Options{TLS: pop3client.ImplicitTLS, TLSConf: da.tlsConf}, da.d.User, da.d.Pass)
	if out, err := run(t, data, da.d.Pass+"\n", "import", imaps, carol, "--ca-file", da.d.CertFile); err != nil || !strings.Contains(out, "imported 1 messages") {
		t.Errorf("import after new mail: %v\n%s", err, out)
	}
	da.compare(t, addrs, carol, pass, true)
}

// TestImportExportCommands: mbox in, Maildir and mbox out, and the Maildir back into
// another account gives the same listing.
func TestImportExportCommands(t *testing.T) {
	root := t.TempDir()
	data := filepath.Join(root, "data")
	for _, a := range []string{"alice@example.test", "bob@example.test"} {
		if out, err := run(t, data, "secret-password\n", "account", "add", a); err != nil {
			t.Fatal(out, err)
		}
	}
	mbox := filepath.Join(root, "old.mbox")
	os.WriteFile(mbox, []byte("From a@example.net Mon Mar  3 10:00:00 2025\nSubject: one\nStatus: RO\n\n>From quoted\n\n"+
		"From b@example.net Mon Mar  3 11:00:00 2025\nSubject: two\n\nbody\n"), 0o600)
	if out, err := run(t, data, "", "import", "mbox", "--folder", "Old/2025", "alice@example.test", mbox); err != nil || !strings.Contains(out, "imported 2 messages") {
		t.Fatalf("import mbox: %v\n%s", err, out)
	}
	if out, err := run(t, data, "", "import", "mbox", "--folder", "Old/2025", "alice@example.test", mbox); err != nil || !strings.Contains(out, "Old/2025: 0 imported, 2 already there") {
		t.Errorf("import mbox again: %v\n%s", err, out)
	}
	md := filepath.Join(root, "export-md")
	if out, err := run(t, data, "", "export", "maildir", "alice@example.test", md); err != nil || !strings.Contains(out, "exported 2 messages") {
		t.Fatalf("export maildir: %v\n%s", err, out)
	}
	if out, err := run(t, data, "", "export", "mbox", "alice@example.test", filepath.Join(root, "export-mbox")); err != nil {
		t.Fatalf("export mbox: %v\n%s", err, out)
	}
	b, err := os.ReadFile(filepath.Join(root, "export-mbox", "Old", "2025.mbox"))
	if err != nil || !strings.Contains(string(b), "\n>From quoted\n") || !strings.Contains(string(b), "Status: RO\n") {
		t.Errorf("exported mbox: %v\n%s", err, b)
	}
	if out, err := run(t, data, "", "import", "maildir", "bob@example.test", md); err != nil || !strings.Contains(out, "Old/2025: 2 imported") {
		t.Errorf("import of the export: %v\n%s", err, out)
	}
	if out, err := run(t, data, "", "export", "maildir", "alice@example.test", md); err == nil {
		t.Errorf("export into a non-empty directory: %s", out)
	}
	if out, err := run(t, data, "", "account", "pop3-uidl", "bob@example.test", "dovecot"); err != nil || !strings.Contains(out, "dovecot format") {
		t.Errorf("pop3-uidl: %v %s", err, out)
	}
}
