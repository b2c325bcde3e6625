package e2e

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestRealPOP3Clients retrieves mail with curl, mpop and fetchmail, checking exact bytes,
// UIDL-based "only new" retrieval and deletion.
func TestRealPOP3Clients(t *testing.T) {
	t.Parallel()
	requireTools(t, "python3", "curl", "mpop", "fetchmail")
	in := startInstance(t, nil)
	const carol, dave, pass = "carol@example.test", "dave@example.test", "pop3-secret-1"
	in.addAccount(carol, pass)
	in.addAccount(dave, pass)

	// deliver sends n messages to user and returns the stored bytes, retrieved with poplib as
	// the reference the other clients are compared with.
	deliver := func(t *testing.T, user, prefix string, n int) pyMaildrop {
		t.Helper()
		sent := map[string][]byte{}
		for i := 1; i <= n; i++ {
			tok := fmt.Sprintf("%s-%d", prefix, i)
			sent[tok] = testMessage(tok, "sender@remote.example", user)
			mustDeliver(t, in, []string{user}, sent[tok])
		}
		ref := pyFetch(t, in.POP3S, "ssl", ca.File, user, pass, false)
		if ref.Count != n {
			t.Fatalf("%s has %d messages, want %d", user, ref.Count, n)
		}
		got := byToken(t, ref.Messages)
		for tok, m := range sent {
			checkStored(t, tok, got[tok], m)
		}
		return ref
	}
	ref := deliver(t, carol, "carol", 3)

	t.Run("curl", func(t *testing.T) {
		curl := func(url string, extra ...string) string {
			args := append([]string{"-sS", "--max-time", "20", "--cacert", ca.File, "--user", carol + ":" + pass}, extra...)
			return run(t, nil, nil, "curl", append(args, url)...)
		}
		// pop3s://host/ is LIST: "n size" per message, sizes exact (RFC 1939 §5).
		list := curl("pop3s://" + in.POP3S + "/")
		var sizes []string
		for i, m := range ref.Messages {
			sizes = append(sizes, fmt.Sprintf("%d %d", i+1, len(m)))
		}
		if got := strings.Split(strings.TrimSuffix(list, "\r\n"), "\r\n"); strings.Join(got, ",") != strings.Join(sizes, ",") {
			t.Errorf("LIST via curl:\n%q\nwant sizes %q", list, sizes)
		}
		uidl := curl("pop3s://"+in.POP3S+"/", "-X", "UIDL")
		for i, u := range ref.UIDL {
			if !strings.Contains(uidl, fmt.Sprintf("%d %s\r\n", i+1, u)) {
				t.Errorf("UIDL via curl lacks %d %s:\n%q", i+1, u, uidl)
			}
		}
		for i, m := range ref.Messages {
			if got := curl("pop3s://" + in.POP3S + "/" + strconv.Itoa(i+1)); got != string(m) {
				t.Errorf("RETR %d via curl (pop3s):\n%q\nwant\n%q", i+1, got, m)
			}
		}
		if got := curl("pop3://"+in.POP3+"/2", "--ssl-reqd"); got != string(ref.Messages[1]) {
			t.Errorf("RETR 2 via curl (STLS):\n%q\nwant\n%q", got, ref.Messages[1])
		}
	})

	t.Run("mpop", func(t *testing.T) {
		dir := t.TempDir()
		maildir := filepath.Join(dir, "Maildir")
		for _, sub := range []string{"cur", "new", "tmp"} {
			if err := os.MkdirAll(filepath.Join(maildir, sub), 0o700); err != nil {
				t.Fatal(err)
			}
		}
		host, port := splitAddr(t, in.POP3S)
		conf := filepath.Join(dir, "mpoprc")
		writeFile(t, conf, strings.Join([]string{
			"defaults",
			"timeout 20",
			"account default",
			"host " + host,
			"port " + port,
			"tls on",
			"tls_starttls off",
			"tls_trust_file " + ca.File,
			"auth user",
			"user " + carol,
			"password " + pass,
			"delivery maildir " + maildir,
			"uidls_file " + filepath.Join(dir, "uidls"),
			"received_header off",
			"",
		}, "\n"), 0o600)
		mpop := func(args ...string) string {
			return run(t, nil, nil, "mpop", append([]string{"-C", conf}, append(args, "default")...)...)
		}

		// SASL logins (RFC 5034) with the mechanisms mpop implements through GNU SASL.
		for _, mech := range []string{"scram-sha-256", "plain"} {
			mpop("--auth-only", "--auth="+mech)
		}

		mpop("--keep=on")
		files := maildirFiles(t, maildir)
		checkRetrieved(t, "mpop", files, ref.Messages)
		// UIDL says nothing is new: the second run delivers nothing.
		mpop("--keep=on")
		if again := maildirFiles(t, maildir); len(again) != len(files) {
			t.Errorf("second mpop run in keep mode delivered %d messages again", len(again)-len(files))
		}
		if md := pyFetch(t, in.POP3S, "ssl", ca.File, carol, pass, false); md.Count != len(ref.Messages) {
			t.Errorf("after mpop in keep mode the server has %d messages, want %d", md.Count, len(ref.Messages))
		}
		// Without keep mpop deletes what it has already retrieved.
		mpop("--keep=off")
		if again := maildirFiles(t, maildir); len(again) != len(files) {
			t.Errorf("mpop in delete mode delivered %d messages again", len(again)-len(files))
		}
		if md := pyFetch(t, in.POP3S, "ssl", ca.File, carol, pass, false); md.Count != 0 {
			t.Errorf("after mpop in delete mode the server has %d messages, want 0", md.Count)
		}
	})

	t.Run("fetchmail", func(t *testing.T) {
		ref := deliver(t, dave, "dave", 3)
		dir := t.TempDir()
		out := filepath.Join(dir, "out")
		if err := os.Mkdir(out, 0o700); err != nil {
			t.Fatal(err)
		}
		// One file per message: fetchmail runs the MDA once per message.
		mda := filepath.Join(dir, "deliver.sh")
		writeFile(t, mda, "#!/bin/sh\nexec cat > \"$(mktemp "+out+"/msg.XXXXXX)\"\n", 0o700)
		// fetchmail matches the certificate's names, not its IP addresses, against the host
		// name; sslcommonname names the one it should expect.
		rc := filepath.Join(dir, "fetchmailrc")
		host, port := splitAddr(t, in.POP3S)
		writeFile(t, rc, fmt.Sprintf(`poll %s service %s proto POP3 timeout 20
  user %q there with password %q
  ssl sslcertck sslcertfile %q sslcommonname "localhost"
  no rewrite
  mda %q
`, host, port, dave, pass, ca.File, mda), 0o600)
		env := []string{"HOME=" + dir, "FETCHMAILHOME=" + dir}
		fetchmail := func(args ...string) {
			t.Helper()
			args = append([]string{"--nosyslog", "--invisible", "-f", rc, "-i", filepath.Join(dir, "ids"),
				"--pidfile", filepath.Join(dir, "pid"), "--all"}, args...)
			run(t, nil, env, "fetchmail", args...)
		}
		files := func() [][]byte {
			t.Helper()
			return dirFiles(t, out)
		}

		fetchmail("--keep")
		checkRetrieved(t, "fetchmail --keep", files(), ref.Messages)
		if md := pyFetch(t, in.POP3S, "ssl", ca.File, dave, pass, false); md.Count != len(ref.Messages) {
			t.Errorf("after fetchmail --keep the server has %d messages, want %d", md.Count, len(ref.Messages))
		}
		fetchmail("--nokeep")
		all := files()
		if len(all) != 2*len(ref.Messages) {
			t.Errorf("fetchmail --nokeep --all delivered %d messages, want %d", len(all)-len(ref.Messages), len(ref.Messages))
		}
		checkRetrieved(t, "fetchmail --keep and --nokeep", all, append(ref.Messages, ref.Messages...))
		if md := pyFetch(t, in.POP3S, "ssl", ca.File, dave, pass, false); md.Count != 0 {
			t.Errorf("after fetchmail --nokeep the server has %d messages, want 0", md.Count)
		}
	})
}

// checkRetrieved checks that the files a client delivered are exactly the stored messages,
// each as many times as listed. Local delivery may turn CRLF into LF; nothing else may change.
func checkRetrieved(t *testing.T, client string, files, stored [][]byte) {
	t.Helper()
	if len(files) != len(stored) {
		t.Errorf("%s delivered %d messages, want %d", client, len(files), len(stored))
	}
	want := map[string]int{}
	for _, m := range stored {
		want[string(bytes.ReplaceAll(m, []byte("\r\n"), []byte("\n")))]++
	}
	for _, f := range files {
		k := string(bytes.ReplaceAll(f, []byte("\r\n"), []byte("\n")))
		if want[k] == 0 {
			t.Errorf("%s delivered a message that is not one of the stored ones:\n%q\nstored:\n%q", client, f, stored)
			continue
		}
		want[k]--
	}
}

func maildirFiles(t *testing.T, maildir string) [][]byte {
	t.Helper()
	return append(dirFiles(t, filepath.Join(maildir, "new")), dirFiles(t, filepath.Join(maildir, "cur"))...)
}

func dirFiles(t *testing.T, dir string) [][]byte {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out [][]byte
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, b)
	}
	return out
}
