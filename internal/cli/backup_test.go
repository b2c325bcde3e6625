package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/smtp"
	"os"
	"path/filepath"
	"petrel/internal/mailtest"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"petrel/internal/app"
	"petrel/internal/client/pop3client"
	"petrel/internal/config"
	"petrel/internal/store"
)

var listeningLine = regexp.MustCompile(`petrel: (\S+) +listening on (\S+)`)

// serveData runs a development instance on the data directory, on free loopback ports with
// plaintext logins allowed, until the test ends; it returns the address of each listener by
// name ("smtp", "pop3", "imap", ...).
func serveData(t *testing.T, data string) map[string]string {
	t.Helper()
	return serveDataLog(t, data, slog.New(slog.DiscardHandler))
}

// serveDataLog is serveData with the server's log.
func serveDataLog(t *testing.T, data string, log *slog.Logger) map[string]string {
	t.Helper()
	cfg := config.Dev()
	cfg.Data = data
	for _, l := range []*[]string{&cfg.SMTP.Listen, &cfg.SMTP.Submission, &cfg.SMTP.Submissions,
		&cfg.POP3.Listen, &cfg.POP3.ListenTLS, &cfg.IMAP.Listen, &cfg.IMAP.ListenTLS,
		&cfg.HTTP.Listen, &cfg.HTTP.ListenTLS, &cfg.ManageSieve.Listen} {
		*l = []string{"127.0.0.1:0"}
	}
	cfg.POP3.AllowPlaintextAuth, cfg.IMAP.AllowPlaintextAuth, cfg.SMTP.AllowInsecureAuth = true, true, true
	// An empty DNS server on loopback answers the inbound checks at once; the machine's own
	// resolver may drop queries (CI), and every delivery would wait out the DNS timeout.
	cfg.DNS.Resolver = mailtest.StartDNS(t, mailtest.Zone{}).Addr
	cfg.Limits.AuthFailureDelay, cfg.Limits.AuthFailureMaxDelay = config.Duration{Duration: time.Millisecond}, config.Duration{Duration: time.Millisecond}
	out := &syncBuffer{}
	a, err := app.New(context.Background(), cfg, log, out)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx, nil) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve %s: %v", data, err)
		}
	})
	for deadline := time.Now().Add(30 * time.Second); ; {
		addrs := map[string]string{}
		for _, m := range listeningLine.FindAllStringSubmatch(out.String(), -1) {
			addrs[m[1]] = m[2]
		}
		if len(addrs) == 10 { // every listener of the development instance
			return addrs
		}
		if time.Now().After(deadline) {
			t.Fatalf("server did not start:\n%s", out.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

const devAddr = "dev@example.test"

// sendMX delivers one message over the MX port and reports whether it was accepted.
func sendMX(addr, subject string) error {
	c, err := smtp.Dial(addr)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.Mail("load@remote.example"); err != nil {
		return err
	}
	if err := c.Rcpt(devAddr); err != nil {
		return err
	}
	w, err := c.Data()
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "From: load@remote.example\r\nTo: %s\r\nSubject: %s\r\nMessage-ID: <%s@remote.example>\r\n\r\nbody of %s\r\n", devAddr, subject, subject, subject)
	if err := w.Close(); err != nil {
		return err
	}
	return c.Quit()
}

// imapView is what an IMAP client in sync knows of INBOX: UIDVALIDITY and subject by UID.
type imapView struct {
	uidValidity uint32
	subjects    map[imap.UID]string
	dates       map[imap.UID]time.Time // INTERNALDATE
}

func imapState(t *testing.T, addr, pass string) imapView {
	t.Helper()
	c, err := imapclient.DialInsecure(addr, nil)
	if err != nil {
		t.Fatal(err)
	}
	return imapMailbox(t, c, devAddr, pass, "INBOX")
}

// imapMailbox logs in, reads what a client in sync knows of one mailbox, and logs out.
func imapMailbox(t *testing.T, c *imapclient.Client, user, pass, mailbox string) imapView {
	t.Helper()
	defer c.Close()
	if err := c.Login(user, pass).Wait(); err != nil {
		t.Fatalf("IMAP LOGIN: %v", err)
	}
	sel, err := c.Select(mailbox, nil).Wait()
	if err != nil {
		t.Fatalf("IMAP SELECT %s: %v", mailbox, err)
	}
	v := imapView{uidValidity: sel.UIDValidity, subjects: map[imap.UID]string{}, dates: map[imap.UID]time.Time{}}
	if sel.NumMessages == 0 {
		return v
	}
	msgs, err := c.Fetch(imap.SeqSet{{Start: 1, Stop: 0}}, &imap.FetchOptions{UID: true, Envelope: true, Flags: true, InternalDate: true}).Collect()
	if err != nil {
		t.Fatalf("IMAP FETCH: %v", err)
	}
	for _, m := range msgs {
		flags := make([]string, len(m.Flags))
		for i, f := range m.Flags {
			flags[i] = string(f)
		}
		slices.Sort(flags)
		v.subjects[m.UID] = m.Envelope.Subject + " " + strings.Join(flags, " ")
		v.dates[m.UID] = m.InternalDate
	}
	c.Logout().Wait()
	return v
}

// pop3UIDLs is what a POP3 client that leaves mail on the server remembers: UIDL and size.
func pop3UIDLs(t *testing.T, addr, pass string) map[string]int64 {
	t.Helper()
	return pop3Listing(t, addr, pop3client.Options{TLS: pop3client.NoTLS}, devAddr, pass)
}

func pop3Listing(t *testing.T, addr string, o pop3client.Options, user, pass string) map[string]int64 {
	t.Helper()
	c, err := pop3client.Dial(context.Background(), addr, o)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.UserPass(user, pass); err != nil {
		t.Fatal(err)
	}
	uids, err := c.UIDL()
	if err != nil {
		t.Fatal(err)
	}
	sizes, err := c.List()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int64{}
	for i, u := range uids {
		out[u.UID] = sizes[i].Size
	}
	return out
}

// TestBackupUnderLoadRestore: a backup taken while SMTP clients deliver holds every message
// acknowledged before it began, exactly once; restored into a new data directory and served
// there, it shows IMAP the same UIDVALIDITY and UIDs and POP3 the same UIDLs.
func TestBackupUnderLoadRestore(t *testing.T) {
	root := t.TempDir()
	data := filepath.Join(root, "data")
	addrs := serveData(t, data)
	const pass = "dev-secret-password"
	if out, err := run(t, data, pass+"\n", "account", "passwd", devAddr); err != nil {
		t.Fatal(out, err)
	}
	// Some mail before, with flags set by IMAP, so that MODSEQs and flags are in play.
	for i := range 20 {
		if err := sendMX(addrs["smtp"], fmt.Sprintf("before-%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	before := imapState(t, addrs["imap"], pass)
	uidls := pop3UIDLs(t, addrs["pop3"], pass)

	// Load: four clients deliver until told to stop, each noting when each message was
	// acknowledged.
	type acked struct {
		subject string
		at      time.Time
	}
	var (
		mu    sync.Mutex
		acks  []acked
		wg    sync.WaitGroup
		stop  = make(chan struct{})
		fails = make(chan error, 4)
	)
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				subject := fmt.Sprintf("load-%d-%d", w, i)
				if err := sendMX(addrs["smtp"], subject); err != nil {
					fails <- err
					return
				}
				mu.Lock()
				acks = append(acks, acked{subject, time.Now()})
				mu.Unlock()
			}
		}()
	}
	// Let the load run a while before the backup, then take it during the load.
	for deadline := time.Now().Add(30 * time.Second); ; {
		mu.Lock()
		n := len(acks)
		mu.Unlock()
		if n >= 40 || time.Now().After(deadline) {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	backup := filepath.Join(root, "backup")
	started := time.Now()
	out, err := run(t, data, "", "backup", backup)
	if err != nil {
		t.Fatal(out, err)
	}
	// Keep the load going a little after the backup too, then stop it.
	mu.Lock()
	after := len(acks) + 10
	mu.Unlock()
	for deadline := time.Now().Add(30 * time.Second); ; {
		mu.Lock()
		n := len(acks)
		mu.Unlock()
		if n >= after || time.Now().After(deadline) {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	close(stop)
	wg.Wait()
	close(fails)
	for err := range fails {
		t.Fatalf("delivery under load: %v", err)
	}
	t.Logf("backup: %s", strings.TrimSpace(out))

	if out, err := run(t, "", "", "verify", backup); err != nil {
		t.Fatalf("verify of the backup: %v\n%s", err, out)
	}
	restored := filepath.Join(root, "restored")
	if out, err := run(t, restored, "", "restore", backup); err != nil {
		t.Fatal(out, err)
	}
	if out, err := run(t, data, "", "restore", backup); err == nil {
		t.Errorf("restore into the live data directory succeeded: %s", out)
	}

	// Every message acknowledged before the backup began is in the restored store, once.
	st, err := app.OpenStore(restored, config.Quota{}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	acct, err := st.AccountByAddress(ctx, devAddr)
	if err != nil {
		t.Fatal(err)
	}
	inbox, err := st.Mailbox(ctx, acct.ID, store.Inbox)
	if err != nil {
		t.Fatal(err)
	}
	msgs, err := st.Messages(ctx, inbox.ID, store.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	count := map[string]int{}
	for _, m := range msgs {
		p, err := st.Parsed(ctx, m.BlobID)
		if err != nil {
			t.Fatal(err)
		}
		count[p.Subject]++
	}
	st.Close()
	mu.Lock()
	inBackup := 0
	for _, a := range acks {
		switch n := count[a.subject]; {
		case a.at.Before(started) && n != 1:
			t.Errorf("%s, acknowledged before the backup began, is in it %d times", a.subject, n)
		case n > 1:
			t.Errorf("%s is in the backup %d times", a.subject, n)
		}
		if count[a.subject] == 1 {
			inBackup++
		}
	}
	t.Logf("%d messages delivered under load, %d of them in the backup", len(acks), inBackup)
	mu.Unlock()

	// Served from the restored directory, the clients see what they knew.
	raddrs := serveData(t, restored)
	after2 := imapState(t, raddrs["imap"], pass)
	if after2.uidValidity != before.uidValidity {
		t.Errorf("UIDVALIDITY %d after the restore, %d before", after2.uidValidity, before.uidValidity)
	}
	for uid, subject := range before.subjects {
		if after2.subjects[uid] != subject {
			t.Errorf("UID %d is %q after the restore, was %q", uid, after2.subjects[uid], subject)
		}
	}
	ruidls := pop3UIDLs(t, raddrs["pop3"], pass)
	for u, size := range uidls {
		if ruidls[u] != size {
			t.Errorf("POP3 UIDL %s: size %d after the restore, %d before (a client would download it again)", u, ruidls[u], size)
		}
	}
	if len(ruidls) != len(after2.subjects) {
		t.Errorf("POP3 lists %d messages, IMAP %d", len(ruidls), len(after2.subjects))
	}
}

// TestVerifyCommand: verify names what is wrong in a backup whose files changed.
func TestVerifyCommand(t *testing.T) {
	root := t.TempDir()
	data := filepath.Join(root, "data")
	if out, err := run(t, data, "", "domain", "add", "example.org"); err != nil {
		t.Fatal(out, err)
	}
	backup := filepath.Join(root, "backup")
	if out, err := run(t, data, "", "backup", backup); err != nil {
		t.Fatal(out, err)
	}
	if out, err := run(t, data, "", "verify"); err != nil || !strings.Contains(out, "ok:") {
		t.Fatalf("verify of the data directory: %v\n%s", err, out)
	}
	keys, _ := filepath.Glob(filepath.Join(backup, "dkim", "example.org", "*.pem"))
	if len(keys) != 2 {
		t.Fatalf("backup has DKIM keys %v, want 2", keys)
	}
	os.Remove(keys[0])
	f, err := os.OpenFile(keys[1], os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(f, "x")
	f.Close()
	out, err := run(t, "", "", "verify", backup)
	rel0, _ := filepath.Rel(backup, keys[0])
	rel1, _ := filepath.Rel(backup, keys[1])
	if err == nil || !strings.Contains(out, rel0+": missing") || !strings.Contains(out, rel1+": ") {
		t.Errorf("verify of a damaged backup: %v\n%s", err, out)
	}
	if out, err := run(t, filepath.Join(root, "new"), "", "restore", backup); err == nil {
		t.Errorf("restore of a damaged backup succeeded: %s", out)
	}
}

// TestBackupRate: --rate 0 (no limit) and --rate N make the same complete backup; a rate that
// is not a number is a usage error.
func TestBackupRate(t *testing.T) {
	root := t.TempDir()
	data := filepath.Join(root, "data")
	if out, err := run(t, data, "", "domain", "add", "example.org"); err != nil {
		t.Fatal(out, err)
	}
	for _, rate := range []string{"0", "5"} {
		backup := filepath.Join(root, "backup-"+rate)
		if out, err := run(t, data, "", "backup", "--rate", rate, backup); err != nil {
			t.Fatalf("backup --rate %s: %v\n%s", rate, err, out)
		}
		if out, err := run(t, "", "", "verify", backup); err != nil || !strings.Contains(out, "ok:") {
			t.Errorf("verify of the backup made with --rate %s: %v\n%s", rate, err, out)
		}
	}
	if out, err := run(t, data, "", "backup", "--rate", "fast", filepath.Join(root, "backup-x")); !errors.Is(err, ErrUsage) {
		t.Errorf("backup --rate fast: %v, want a usage error\n%s", err, out)
	}
}
