package e2e

import (
	"fmt"
	"net"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"petrel/internal/mailtest"
)

// Server-side pull (`petrel account pull`, issue 16) from a Debian Dovecot into a running
// Petrel: over POP3 (STLS, delete mode) with Sieve filing, Dovecot stopped and started again,
// and Petrel killed with SIGKILL in the middle of a pull; over IMAP (implicit TLS).

const pullUser = "me@example.test"

func pulledBody(i int, tag string) string {
	return fmt.Sprintf("Return-Path: <far%d@outside.example>\r\nFrom: far%d@outside.example\r\nTo: carol@outside.example\r\nSubject: pulled %d %s\r\nMessage-ID: <%d.%s@outside.example>\r\n\r\nbody %d\r\n", i, i, i, tag, i, tag, i)
}

// healthy is a `pull list` line ending in no failures and no error.
var healthy = regexp.MustCompile(`\s0\s+-\s*$`)

var pulledSubject = regexp.MustCompile(`"pulled (\d+) ([a-z]+)"`)

// pulledIn lists the numbers of the pulled messages in a Petrel mailbox (ENVELOPE subjects),
// a number twice if it is there twice.
func pulledIn(t *testing.T, in *instance, box string) []int {
	t.Helper()
	c := dialIMAPS(t, in.IMAPS)
	defer c.Close()
	c.run(t, "LOGIN "+pullUser+" password-me")
	exists := 0
	for _, l := range c.run(t, "EXAMINE "+box) {
		if m := existsRe.FindStringSubmatch(l); m != nil {
			exists, _ = strconv.Atoi(m[1])
		}
	}
	if exists == 0 {
		return nil
	}
	var out []int
	for _, l := range c.run(t, "FETCH 1:* (ENVELOPE)") {
		if m := pulledSubject.FindStringSubmatch(l); m != nil {
			n, _ := strconv.Atoi(m[1])
			out = append(out, n)
		}
	}
	return out
}

// checkPulled checks that the account holds each of 0..n-1 exactly once: the ones whose
// tag is "filed" in Archive (Sieve), the others in INBOX, also as POP3 sees INBOX.
func checkPulled(t *testing.T, in *instance, n int, filed func(int) bool) {
	t.Helper()
	seen := map[int]int{}
	for _, box := range []string{"INBOX", "Archive"} {
		for _, i := range pulledIn(t, in, box) {
			seen[i]++
			if filed(i) != (box == "Archive") {
				t.Errorf("message %d in %s", i, box)
			}
		}
	}
	for i := range n {
		if seen[i] != 1 {
			t.Errorf("message %d is in the account %d times", i, seen[i])
		}
	}
	if len(seen) != n {
		t.Errorf("%d different messages in the account, want %d", len(seen), n)
	}
	inbox := 0
	for i := range n {
		if !filed(i) {
			inbox++
		}
	}
	p, _, err := dialPOP3S(in.POP3S)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	p.ok("USER %s", pullUser)
	p.ok("PASS password-me")
	stat, err := p.ok("STAT")
	if err != nil || !strings.HasPrefix(stat, fmt.Sprintf("+OK %d ", inbox)) {
		t.Errorf("POP3 STAT %q, %v; want %d messages", stat, err, inbox)
	}
	p.cmd("QUIT")
}

// countPulled is how many pulled messages the account has now (INBOX and Archive).
func countPulled(t *testing.T, in *instance) int {
	return len(pulledIn(t, in, "INBOX")) + len(pulledIn(t, in, "Archive"))
}

// pullInstance starts Petrel with a short pull check and the account with a Sieve script
// that files messages with "filed" in the subject into Archive.
func pullInstance(t *testing.T) *instance {
	in := startInstance(t, options{"pull": {`check = "200ms"`}})
	in.addAccount(pullUser, "password-me")
	in.mustPetrel("require \"fileinto\";\r\nif header :contains \"subject\" \"filed\" { fileinto \"Archive\"; }\r\n", "sieve", "put", pullUser, "rules")
	in.mustPetrel("", "sieve", "activate", pullUser, "rules")
	return in
}

// pullStatus is the `pull list` line of source id.
func pullStatus(t *testing.T, in *instance, id string) string {
	for _, l := range strings.Split(in.mustPetrel("", "account", "pull", "list", pullUser), "\n") {
		if strings.HasPrefix(l, id+" ") {
			return l
		}
	}
	t.Fatalf("no source %s in pull list", id)
	return ""
}

// waitPolled waits until the poll of source id ran (its next poll is no longer "now").
func waitPolled(t *testing.T, in *instance, id string) {
	t.Helper()
	if !waitFor(2*time.Minute, func() bool {
		l := pullStatus(t, in, id)
		return healthy.MatchString(l) && !strings.Contains(l, " now ")
	}) {
		t.Fatalf("pull list: %q", pullStatus(t, in, id))
	}
}

func addPull(t *testing.T, in *instance, d *mailtest.Dovecot, proto, addr, tls string) string {
	_, port, _ := net.SplitHostPort(addr)
	out := in.mustPetrel(d.Pass+"\n", "account", "pull", "add", pullUser, "--"+proto, "localhost:"+port, "--user", d.User,
		"--tls", tls, "--ca-file", d.CertFile, "--every", "1h")
	m := regexp.MustCompile(`added pull source (\d+) `).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("pull add printed %q", out)
	}
	return m[1]
}

// waitPulled waits until the account has n pulled messages.
func waitPulled(t *testing.T, in *instance, n int) {
	t.Helper()
	start := time.Now()
	defer func() { t.Logf("%d messages pulled after %v", n, time.Since(start).Round(time.Millisecond)) }()
	if !waitFor(3*time.Minute, func() bool { time.Sleep(200 * time.Millisecond); return countPulled(t, in) >= n }) {
		t.Fatalf("the account has %d pulled messages after two minutes, want %d", countPulled(t, in), n)
	}
}

func TestPullPOP3FromDovecot(t *testing.T) {
	t.Parallel()
	d := mailtest.StartDovecot(t)
	in := pullInstance(t)
	filed := func(i int) bool { return i%3 == 0 }
	tag := func(i int) string {
		if filed(i) {
			return "filed"
		}
		return "kept"
	}
	deliver := func(from, to int) {
		bodies := make([]string, 0, to-from)
		for i := from; i < to; i++ {
			bodies = append(bodies, pulledBody(i, tag(i)))
		}
		d.DeliverAll(t, bodies)
	}
	deliver(0, 10)
	id := addPull(t, in, d, "pop3", d.POP3Addr, "starttls")
	waitPulled(t, in, 10)
	checkPulled(t, in, 10, filed)
	if !waitFor(time.Minute, func() bool { return d.Count(t) == 0 }) {
		t.Fatalf("%d messages left in Dovecot in delete mode", d.Count(t))
	}

	// Dovecot goes away: the poll fails and says so in `pull list`; back, the pull goes on.
	d.Stop(t)
	deliver(10, 15)
	in.mustPetrel("", "account", "pull", "now", pullUser, id)
	if !waitFor(2*time.Minute, func() bool { return strings.Contains(pullStatus(t, in, id), "connect") }) {
		t.Fatalf("pull list after Dovecot stopped: %q", pullStatus(t, in, id))
	}
	d.Start(t)
	in.mustPetrel("", "account", "pull", "now", pullUser, id)
	waitPulled(t, in, 15)
	if !waitFor(time.Minute, func() bool { return healthy.MatchString(pullStatus(t, in, id)) }) {
		t.Errorf("pull list after the restart: %q", pullStatus(t, in, id))
	}
	checkPulled(t, in, 15, filed)

	// SIGKILL in the middle of a pull of many messages, then a restart.
	const total = 1500
	deliver(15, total)
	in.mustPetrel("", "account", "pull", "now", pullUser, id)
	if !waitFor(2*time.Minute, func() bool { return countPulled(t, in) > 15 }) {
		t.Fatal("the pull did not start")
	}
	before := countPulled(t, in)
	in.kill()
	if before >= total {
		t.Fatalf("the pull had finished before the kill; the test proved nothing")
	}
	t.Logf("killed with %d of %d messages pulled", before, total)
	in.start()
	// The restarted server ends the killed poll's lease (it is the only poller of its
	// store); the source is still due, so the pull goes on.
	waitPulled(t, in, total)
	checkPulled(t, in, total, filed)
	if !waitFor(time.Minute, func() bool { return d.Count(t) == 0 }) {
		t.Errorf("%d messages left in Dovecot", d.Count(t))
	}
}

func TestPullIMAPFromDovecot(t *testing.T) {
	t.Parallel()
	mailtest.RequireBinary(t, mailtest.IMAPBinary)
	d := mailtest.StartDovecot(t)
	in := pullInstance(t)
	filed := func(i int) bool { return i == 2 }
	deliver := func(from, to int) {
		for i := from; i < to; i++ {
			tag := "kept"
			if filed(i) {
				tag = "filed"
			}
			d.Deliver(t, i, pulledBody(i, tag))
		}
	}
	deliver(0, 5)
	id := addPull(t, in, d, "imap", d.IMAPSAddr, "implicit")
	waitPulled(t, in, 5)
	checkPulled(t, in, 5, filed)
	d.Stop(t)
	deliver(5, 8)
	in.mustPetrel("", "account", "pull", "now", pullUser, id)
	if !waitFor(2*time.Minute, func() bool { return strings.Contains(pullStatus(t, in, id), "connect") }) {
		t.Fatalf("pull list after Dovecot stopped: %q", pullStatus(t, in, id))
	}
	d.Start(t)
	in.mustPetrel("", "account", "pull", "now", pullUser, id)
	waitPulled(t, in, 8)
	checkPulled(t, in, 8, filed)
	if !waitFor(time.Minute, func() bool { return d.Count(t) == 0 }) {
		t.Errorf("%d messages left in Dovecot in delete mode", d.Count(t))
	}
}

// An IMAP source kept on Dovecot whose UIDVALIDITY changes: the running server does not pull
// the folder again, pulls what is new, and `pull list` says what happened; `pull edit`
// changes the source without pulling anything twice.
func TestPullIMAPUIDValidityFromDovecot(t *testing.T) {
	t.Parallel()
	mailtest.RequireBinary(t, mailtest.IMAPBinary)
	d := mailtest.StartDovecot(t)
	in := pullInstance(t)
	none := func(int) bool { return false }
	for i := range 4 {
		d.Deliver(t, i, pulledBody(i, "kept"))
	}
	_, port, _ := net.SplitHostPort(d.IMAPSAddr)
	out := in.mustPetrel(d.Pass+"\n", "account", "pull", "add", pullUser, "--imap", "localhost:"+port, "--user", d.User,
		"--ca-file", d.CertFile, "--every", "1h", "--keep")
	id := regexp.MustCompile(`added pull source (\d+) `).FindStringSubmatch(out)[1]
	waitPulled(t, in, 4)
	polled := func() { t.Helper(); waitPolled(t, in, id) }
	polled()
	d.Doveadm(t, "mailbox", "update", "-u", d.User, "--uid-validity", "777", "INBOX")
	d.Deliver(t, 4, pulledBody(4, "kept"))
	in.mustPetrel("", "account", "pull", "now", pullUser, id)
	waitPulled(t, in, 5)
	polled()
	checkPulled(t, in, 5, none)
	list := in.mustPetrel("", "account", "pull", "list", pullUser)
	if !strings.Contains(list, "source "+id+": ") || !strings.Contains(list, "to 777: 4 messages recognized as pulled before, 1 pulled as new") {
		t.Errorf("pull list after the UIDVALIDITY change:\n%s", list)
	}

	// Edited (delete mode, another interval): due at once, nothing pulled twice, all deleted.
	out = in.mustPetrel("", "account", "pull", "edit", pullUser, id, "--delete", "--every", "2h")
	if !strings.Contains(out, "5 pulled messages remembered") {
		t.Errorf("pull edit printed %q", out)
	}
	if !waitFor(2*time.Minute, func() bool { return d.Count(t) == 0 }) {
		t.Fatalf("%d messages left in Dovecot after switching to delete mode", d.Count(t))
	}
	polled()
	checkPulled(t, in, 5, none)
	if l := pullStatus(t, in, id); !strings.Contains(l, "delete") || !strings.Contains(l, "2h0m0s") {
		t.Errorf("pull list after the edit: %q", l)
	}
}

// A POP3 source kept on Dovecot whose UIDLs change (Dovecot's UIDLs hold the UIDVALIDITY,
// so a new one renames every message, as a move to another server would): the running
// server recognizes what it pulled by the header, pulls only what is new, and `pull list`
// says what happened.
func TestPullPOP3UIDLsChangeFromDovecot(t *testing.T) {
	t.Parallel()
	d := mailtest.StartDovecot(t)
	in := pullInstance(t)
	for i := range 4 {
		d.Deliver(t, i, pulledBody(i, "kept"))
	}
	_, port, _ := net.SplitHostPort(d.POP3Addr)
	out := in.mustPetrel(d.Pass+"\n", "account", "pull", "add", pullUser, "--pop3", "localhost:"+port, "--user", d.User,
		"--tls", "starttls", "--ca-file", d.CertFile, "--every", "1h", "--keep")
	id := regexp.MustCompile(`added pull source (\d+) `).FindStringSubmatch(out)[1]
	waitPulled(t, in, 4)
	waitPolled(t, in, id)
	d.Doveadm(t, "mailbox", "update", "-u", d.User, "--uid-validity", "778", "INBOX")
	d.Deliver(t, 4, pulledBody(4, "kept"))
	in.mustPetrel("", "account", "pull", "now", pullUser, id)
	waitPulled(t, in, 5)
	waitPolled(t, in, id)
	checkPulled(t, in, 5, func(int) bool { return false })
	list := in.mustPetrel("", "account", "pull", "list", pullUser)
	if !strings.Contains(list, "source "+id+": ") ||
		!strings.Contains(list, "the server's UIDLs changed (0 of 4 recorded still listed, 5 listed not recorded): 4 messages recognized as pulled before, 1 pulled as new") {
		t.Errorf("pull list after the UIDLs changed:\n%s", list)
	}
	if n := d.Count(t); n != 5 {
		t.Errorf("%d messages in Dovecot in keep mode, want 5", n)
	}
}
