package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestManagementWhileRunning changes domains, accounts, aliases and policies with the CLI
// while the server runs, and checks each change is in effect without a restart: at once for
// additions, within a second for what RCPT may have cached.
func TestManagementWhileRunning(t *testing.T) {
	t.Parallel()
	in := startInstance(t, nil)
	const (
		bob, bobPass = "bob@example.test", "bob-secret-1"
		alice        = "alice@example.org"
		pass1, pass2 = "secret12", "new-secret-34"
	)
	in.addAccount(bob, bobPass)

	n := 0
	deliverTo := func(rcpt string) []byte {
		t.Helper()
		n++
		m := testMessage(fmt.Sprintf("manage-%d", n), "sender@remote.example", rcpt)
		mustDeliver(t, in, []string{rcpt}, m)
		return m
	}
	// fetchExpect expects exactly the given messages in user's maildrop, deletes them and QUITs.
	fetchExpect := func(user, pass string, want ...[]byte) {
		t.Helper()
		got := byToken(t, mustFetchAll(t, in, user, pass, true))
		if len(got) != len(want) {
			t.Errorf("%s: %d messages, want %d", user, len(got), len(want))
		}
		for _, w := range want {
			tok := tokenOf(w)
			if got[tok] == nil {
				t.Errorf("%s: message %s missing", user, tok)
				continue
			}
			checkStored(t, user+" "+tok, got[tok], w)
		}
	}

	// A new domain: refused before it exists (no relay), then unknown users get 550 5.1.1.
	if rp := rcptReply(t, in, alice); rp.Code/100 != 5 {
		t.Errorf("RCPT to a domain not hosted yet: %v, want 5xx", rp)
	}
	in.mustPetrel("", "domain", "add", "example.org")
	if rp := rcptReply(t, in, alice); rp.Code != 550 || !strings.HasPrefix(rp.Text, "5.1.1") {
		t.Errorf("RCPT to an unknown user of a hosted domain: %v, want 550 5.1.1", rp)
	}

	// A new account logs in and receives at once.
	in.addAccount(alice, pass1)
	fetchExpect(alice, pass1)
	fetchExpect(alice, pass1, deliverTo(alice))

	// Sub-addressing: user+tag delivers to user.
	fetchExpect(alice, pass1, deliverTo("alice+news@example.org"))

	// Aliases, including one to several accounts.
	in.mustPetrel("", "alias", "add", "team@example.org", alice, bob)
	in.mustPetrel("", "alias", "add", "alice.smith@example.org", alice)
	if out := in.mustPetrel("", "alias", "list"); !strings.Contains(out, "team@example.org") || !strings.Contains(out, "alice.smith@example.org") {
		t.Errorf("alias list:\n%s", out)
	}
	team := deliverTo("team@example.org")
	fetchExpect(alice, pass1, team, deliverTo("alice.smith@example.org"))
	fetchExpect(bob, bobPass, team)

	// Submission: the account's own address and its aliases are allowed senders, another
	// account's address is not.
	for _, from := range []string{alice, "alice.smith@example.org"} {
		n++
		m := testMessage(fmt.Sprintf("manage-%d", n), from, bob)
		if err := sendMail(in.Submission, false, alice, pass1, from, []string{bob}, m); err != nil {
			t.Errorf("submission as %s from %s: %v", alice, from, err)
		} else {
			fetchExpect(bob, bobPass, m)
		}
	}
	if err := sendMail(in.Submission, false, alice, pass1, bob, []string{bob}, testMessage("forged", bob, bob)); err == nil ||
		!strings.Contains(err.Error(), "MAIL FROM") {
		t.Errorf("submission as %s with MAIL FROM %s: %v, want MAIL FROM refused", alice, bob, err)
	}

	// Catch-all on and off.
	if rp := rcptReply(t, in, "nobody@example.org"); rp.Code != 550 {
		t.Errorf("RCPT to an unknown user without catch-all: %v, want 550", rp)
	}
	in.mustPetrel("", "domain", "catchall", "example.org", alice)
	fetchExpect(alice, pass1, deliverTo("nobody@example.org"))
	in.mustPetrel("", "domain", "catchall", "example.org", "-")
	if rp := rcptRefused(t, in, "nobody@example.org"); rp.Code != 550 {
		t.Errorf("RCPT to an unknown user after clearing the catch-all: %v, want 550", rp)
	}

	// A new password works at once and the old one no longer does, over POP3 and SMTP AUTH.
	in.mustPetrel(pass2+"\n", "account", "passwd", alice)
	if _, err := fetchAll(in.POP3S, alice, pass1, false); err == nil {
		t.Errorf("POP3 login with the old password succeeded")
	}
	if err := sendMail(in.Submission, false, alice, pass1, alice, []string{alice}, testMessage("oldpass", alice, alice)); err == nil {
		t.Errorf("SMTP AUTH with the old password succeeded")
	}
	fetchExpect(alice, pass2)

	// POP3 deletion policies (applied at QUIT).
	deliverTo(alice) // DELE 1 below acts on this one
	m2 := deliverTo(alice)
	deleFirst := func() {
		t.Helper()
		p, _, err := dialPOP3S(in.POP3S)
		if err != nil {
			t.Fatal(err)
		}
		defer p.Close()
		if err := p.login(alice, pass2); err != nil {
			t.Fatal(err)
		}
		for _, c := range []string{"DELE 1", "QUIT"} {
			if _, err := p.ok("%s", c); err != nil {
				t.Fatal(err)
			}
		}
	}
	stat := func() int {
		t.Helper()
		msgs, err := fetchAll(in.POP3S, alice, pass2, false)
		if err != nil {
			t.Fatal(err)
		}
		return len(msgs)
	}
	in.mustPetrel("", "account", "pop3-delete", alice, "keep")
	if out := in.mustPetrel("", "account", "list", "example.org"); !strings.Contains(out, alice+"\tpop3-delete=keep") {
		t.Errorf("account list does not show the keep policy:\n%s", out)
	}
	deleFirst()
	if got := stat(); got != 2 {
		t.Errorf("keep: after DELE 1 and QUIT the next session lists %d messages, want 2", got)
	}
	in.mustPetrel("", "account", "pop3-delete", alice, "archive")
	deleFirst()
	if got := stat(); got != 1 {
		t.Errorf("archive: after DELE 1 and QUIT the next session lists %d messages, want 1", got)
	}
	in.mustPetrel("", "account", "pop3-delete", alice, "delete")
	fetchExpect(alice, pass2, m2)
	if got := stat(); got != 0 {
		t.Errorf("delete: %d messages left, want 0", got)
	}

	// A deleted account can no longer log in or receive.
	in.mustPetrel("", "account", "del", alice)
	if _, err := fetchAll(in.POP3S, alice, pass2, false); err == nil {
		t.Errorf("POP3 login of a deleted account succeeded")
	}
	if rp := rcptRefused(t, in, alice); rp.Code != 550 {
		t.Errorf("RCPT to a deleted account: %v, want 550", rp)
	}
}

// rcptRefused asks RCPT TO:<rcpt> until it is refused, or for a minute, and returns the
// last reply: a directory change made by the CLI reaches RCPT once the recipient cache's
// second (see deliver.Resolve) has passed, and on a loaded machine the RCPT that sees it
// can come much later than that.
func rcptRefused(t *testing.T, in *instance, rcpt string) reply {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		rp := rcptReply(t, in, rcpt)
		if rp.Code >= 500 || time.Now().After(deadline) {
			return rp
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// rcptReply returns the MX port's reply to RCPT TO:<rcpt> from a remote sender.
func rcptReply(t *testing.T, in *instance, rcpt string) reply {
	t.Helper()
	s, _, err := dialSMTP(in.SMTP)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.expect(250, "EHLO client.example"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.expect(250, "MAIL FROM:<sender@remote.example>"); err != nil {
		t.Fatal(err)
	}
	rp, err := s.cmd("RCPT TO:<%s>", rcpt)
	if err != nil {
		t.Fatal(err)
	}
	s.cmd("QUIT")
	return rp
}
