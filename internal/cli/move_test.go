package cli

import (
	"crypto/tls"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/emersion/go-imap/v2/imapclient"

	"petrel/internal/client/pop3client"
	"petrel/internal/mailtest"
)

// TestImportFromDovecot: a Maildir written by a real Dovecot (folders, flags, keywords, UIDs
// with gaps) imported into Petrel and served there shows an IMAP client the same
// UIDVALIDITY, UIDs and flags, and a POP3 client the same UIDLs and sizes, so neither
// downloads anything again. A second import adds nothing.
func TestImportFromDovecot(t *testing.T) {
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

	tlsConf := &tls.Config{InsecureSkipVerify: true}
	dovecotIMAP := func(mailbox string) imapView {
		c, err := imapclient.DialTLS(d.IMAPSAddr, &imapclient.Options{TLSConfig: tlsConf})
		if err != nil {
			t.Fatal(err)
		}
		return imapMailbox(t, c, d.User, d.Pass, mailbox)
	}
	folders := map[string]string{"INBOX": "INBOX", "Work": "Work", "Lists.Go": "Lists/Go", "Entwürfe": "Entwürfe"}
	before := map[string]imapView{}
	for dovecotName := range folders {
		before[dovecotName] = dovecotIMAP(dovecotName)
	}
	uidls := pop3Listing(t, d.POP3SAddr, pop3client.Options{TLS: pop3client.ImplicitTLS, TLSConf: tlsConf}, d.User, d.Pass)
	if len(uidls) != n-50-11 || len(before["Work"].subjects) != 50 {
		t.Fatalf("Dovecot has %d messages in INBOX and %d in Work", len(uidls), len(before["Work"].subjects))
	}
	if _, err := os.Stat(filepath.Join(d.Maildir, "dovecot-uidlist")); err != nil {
		t.Fatalf("Dovecot wrote no uidlist: %v", err)
	}

	data := filepath.Join(t.TempDir(), "data")
	const pass = "carol-secret-password"
	const carol = "carol@example.test"
	if out, err := run(t, data, pass+"\n", "account", "add", carol); err != nil {
		t.Fatal(out, err)
	}
	out, err := run(t, data, "", "import", "maildir", carol, d.Maildir)
	if err != nil || !strings.Contains(out, fmt.Sprintf("imported %d messages", n-11+10+1)) {
		t.Fatalf("import: %v\n%s", err, out)
	}
	t.Logf("import:\n%s", out)
	if out, err := run(t, data, "", "import", "maildir", carol, d.Maildir); err != nil || !strings.Contains(out, "imported 0 messages") {
		t.Errorf("second import: %v\n%s", err, out)
	}

	addrs := serveData(t, data)
	for dovecotName, name := range folders {
		c, err := imapclient.DialInsecure(addrs["imap"], nil)
		if err != nil {
			t.Fatal(err)
		}
		after := imapMailbox(t, c, carol, pass, name)
		b := before[dovecotName]
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
		}
	}
	got := pop3Listing(t, addrs["pop3"], pop3client.Options{TLS: pop3client.NoTLS}, carol, pass)
	for uidl, size := range uidls {
		if got[uidl] != size {
			t.Errorf("POP3 UIDL %s: size %d in Petrel, %d in Dovecot (a client would download it)", uidl, got[uidl], size)
		}
	}
	if len(got) != len(uidls) {
		t.Errorf("POP3: %d messages in Petrel, %d in Dovecot", len(got), len(uidls))
	}
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
