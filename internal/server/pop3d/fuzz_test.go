package pop3d

import (
	"bytes"
	"io"
	"log/slog"
	"net"
	"os"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
	"unicode"

	"petrel/internal/mailtest/dialog"
	"petrel/internal/store"
)

func FuzzCommand(f *testing.F) {
	for _, seed := range []string{
		"USER alice\r\n", "PASS with spaces \r\n", "retr 1\r\n", "TOP 1 10\r\n", "CAPA\r\n",
		"\r\n", "NOOP\n", "AUTH PLAIN =\r\n", "LIST  1\r\n", "QUIT\x00\r\n", "STAT\r\r\n", "AB\r\n",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		kw, rest, err := parseCommand(line)
		if err != nil {
			return
		}
		if len(kw) < 3 || len(kw) > 4 || strings.ToUpper(kw) != kw || strings.IndexFunc(kw, func(r rune) bool { return !unicode.IsLetter(r) }) >= 0 {
			t.Fatalf("keyword %q", kw)
		}
		for _, c := range []byte(rest) {
			if c < 0x20 || c == 0x7f {
				t.Fatalf("control character %#x in argument %q", c, rest)
			}
		}
		// The parts rebuild the line, terminator and keyword case aside.
		body := bytes.TrimSuffix(bytes.TrimSuffix(line, []byte("\n")), []byte("\r"))
		rebuilt := kw
		if len(body) > len(kw) {
			rebuilt += " " + rest
		}
		if !strings.EqualFold(rebuilt, string(body)) {
			t.Fatalf("parse(%q) = %q, %q", line, kw, rest)
		}
		if n, ok := parseNumber(rest); ok && (n < 0 || n > 999999999) {
			t.Fatalf("parseNumber(%q) = %d", rest, n)
		}
	})
}

// FuzzSession feeds arbitrary client bytes to a whole session over a socketpair. The session
// must end (no deadlock), must not panic (the recover would hide it, so the log is checked),
// must release the maildrop lock, and must not change the maildrop without a QUIT.
func FuzzSession(f *testing.F) {
	for _, seed := range []string{
		"USER alice@example.org\r\nPASS secret\r\nSTAT\r\nLIST\r\nUIDL\r\nRETR 1\r\nTOP 2 1\r\nDELE 1\r\nRSET\r\nDELE 3\r\nQUIT\r\n",
		"CAPA\r\nAUTH PLAIN AGFsaWNlQGV4YW1wbGUub3JnAHNlY3JldA==\r\nLIST 2\r\nUIDL 3\r\nDELE 2\r\n",
		"AUTH PLAIN\r\nAGFsaWNlQGV4YW1wbGUub3JnAHNlY3JldA==\r\nRETR 3\r\nNOOP\r\nQUIT\r\n",
		"AUTH X-FINAL AGFsaWNlQGV4YW1wbGUub3JnAHNlY3JldA==\r\n\r\nSTAT\r\n",
		"AUTH PLAIN\r\n*\r\nAUTH\r\nAUTH PLAIN =\r\n",
		"STLS\r\nUSER alice@example.org\r\n",
		"USER alice@example.org\r\nPASS x\r\nPASS y\r\nUSER a\r\nPASS z\r\nUSER b\r\n",
		"USER alice@example.org\r\nPASS secret\r\nTOP 1 0\r\nRETR 9\r\nDELE 0\r\nLIST x\r\nSTLS\r\nQUIT",
		strings.Repeat("A", 600) + "\r\n",
	} {
		f.Add([]byte(seed), true)
	}
	tlsConfig := testTLSConfig(f)
	f.Fuzz(func(t *testing.T, input []byte, plaintext bool) {
		st := newFakeStore()
		alice := st.addAccount("alice@example.org", store.POP3Archive)
		for _, m := range []string{msg1, msg2, msg3} {
			st.deliver(alice.ID, store.Inbox, m)
		}
		au := &fakeAuth{st: st, passwords: map[string]string{"alice@example.org": "secret"}}
		var logs dialog.Log
		srv := New(Config{
			TLS:                tlsConfig,
			AllowPlaintextAuth: plaintext,
			IdleTimeout:        2 * time.Second,
			CommandTimeout:     time.Second,
			MaxAuthFailures:    5,
		}, st, au, slog.New(slog.NewTextHandler(&logs, nil)))

		server, client := socketPair(t)
		sess := newSession(srv, server)
		if !srv.conns.Track(sess) {
			t.Fatal("not tracked")
		}
		ended := make(chan struct{})
		go sess.Serve()
		// Not serve's return: an idle session continues on another goroutine.
		go func() { srv.conns.Wait(); close(ended) }()
		go func() {
			client.SetWriteDeadline(time.Now().Add(time.Minute))
			client.Write(input)
			client.(*net.UnixConn).CloseWrite()
		}()
		go func() {
			client.SetReadDeadline(time.Now().Add(time.Minute))
			io.Copy(io.Discard, client)
		}()
		select {
		case <-ended:
		case <-time.After(2 * time.Minute):
			t.Fatalf("session did not end; input %q", input)
		}
		client.Close()

		if strings.Contains(logs.String(), "pop3: panic") {
			t.Fatalf("panic on input %q:\n%s", input, logs.String())
		}
		if st.locked(alice.ID) {
			t.Fatal("maildrop still locked after the session")
		}
		inbox, _ := st.contents(alice.ID, store.Inbox)
		if !bytes.Contains(bytes.ToUpper(input), []byte("QUIT")) && !slices.Equal(inbox, []string{msg1, msg2, msg3}) {
			t.Fatalf("maildrop changed without QUIT: %q", inbox)
		}
	})
}

// socketPair returns the two ends of a connected Unix stream socket pair. Unlike net.Pipe it
// buffers like a real socket, so a client may write while the server writes too.
func socketPair(t testing.TB) (net.Conn, net.Conn) {
	t.Helper()
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	conn := func(fd int) net.Conn {
		f := os.NewFile(uintptr(fd), "socketpair")
		defer f.Close()
		c, err := net.FileConn(f)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	return conn(fds[0]), conn(fds[1])
}
