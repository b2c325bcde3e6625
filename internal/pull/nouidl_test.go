package pull

import (
	"bufio"
	"context"
	"crypto/sha256"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"petrel/internal/store"
)

// pop3NoUIDL is a small POP3 server (RFC 1939) on loopback without UIDL, which Dovecot
// cannot be made to lack: USER/PASS, STAT, LIST, RETR, DELE, RSET, NOOP, QUIT and, when top
// is set, TOP. DELE takes effect at QUIT only, as the RFC says. setUIDL gives it UIDL after
// all, with UIDLs a test can change (as a server migration would), and with TOP unset it is
// then a server with UIDL but without TOP, which Dovecot cannot be made to be either.
type pop3NoUIDL struct {
	addr string
	top  bool
	mu   sync.Mutex
	msgs []string // CRLF bodies
	uidl string   // UIDL's prefix to a digest of the body; "" for no UIDL
}

func startPOP3NoUIDL(t *testing.T, top bool) *pop3NoUIDL {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &pop3NoUIDL{addr: l.Addr().String(), top: top}
	var wg sync.WaitGroup
	t.Cleanup(func() { l.Close(); wg.Wait() })
	wg.Go(func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			wg.Go(func() { s.serve(c) })
		}
	})
	return s
}

func (s *pop3NoUIDL) put(bodies ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.msgs = append(s.msgs, bodies...)
}

// setUIDL makes UIDL name each message prefix + a digest of its body.
func (s *pop3NoUIDL) setUIDL(prefix string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.uidl = prefix
}

func (s *pop3NoUIDL) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.msgs)
}

// remove removes message i (0-based), as another client would.
func (s *pop3NoUIDL) remove(i int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.msgs = slices.Delete(s.msgs, i, i+1)
}

func (s *pop3NoUIDL) serve(c net.Conn) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(time.Minute))
	r := bufio.NewReader(c)
	w := bufio.NewWriter(c)
	reply := func(format string, args ...any) { fmt.Fprintf(w, format+"\r\n", args...); w.Flush() }
	multi := func(text string) {
		for _, l := range strings.SplitAfter(strings.TrimSuffix(text, "\r\n"), "\r\n") {
			l = strings.TrimSuffix(l, "\r\n")
			if strings.HasPrefix(l, ".") {
				l = "." + l
			}
			fmt.Fprintf(w, "%s\r\n", l)
		}
		fmt.Fprintf(w, ".\r\n")
		w.Flush()
	}
	reply("+OK no UIDL here")
	// The maildrop as the session sees it (RFC 1939 §5: numbers fixed for the session).
	var drop []string
	deleted := map[int]bool{}
	s.mu.Lock()
	uidl := s.uidl
	s.mu.Unlock()
	msg := func(arg string) (int, bool) {
		n, err := strconv.Atoi(arg)
		if err != nil || n < 1 || n > len(drop) || deleted[n] {
			reply("-ERR no such message")
			return 0, false
		}
		return n, true
	}
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		f := strings.Fields(line)
		if len(f) == 0 {
			reply("-ERR empty command")
			continue
		}
		arg := func(i int) string {
			if i < len(f) {
				return f[i]
			}
			return ""
		}
		switch strings.ToUpper(f[0]) {
		case "CAPA":
			capa := "USER\r\n"
			if s.top {
				capa += "TOP\r\n"
			}
			if uidl != "" {
				capa += "UIDL\r\n"
			}
			w.WriteString("+OK\r\n")
			multi(capa)
		case "USER":
			reply("+OK")
		case "PASS":
			if arg(1) != outsidePass {
				reply("-ERR [AUTH] wrong password")
				continue
			}
			s.mu.Lock()
			drop = slices.Clone(s.msgs)
			uidl = s.uidl
			s.mu.Unlock()
			reply("+OK")
		case "STAT":
			size := 0
			for i, m := range drop {
				if !deleted[i+1] {
					size += len(m)
				}
			}
			reply("+OK %d %d", len(drop)-len(deleted), size)
		case "LIST":
			w.WriteString("+OK\r\n")
			var b strings.Builder
			for i, m := range drop {
				if !deleted[i+1] {
					fmt.Fprintf(&b, "%d %d\r\n", i+1, len(m))
				}
			}
			multi(b.String())
		case "UIDL":
			if uidl == "" {
				reply("-ERR unknown command")
				continue
			}
			w.WriteString("+OK\r\n")
			var b strings.Builder
			for i, m := range drop {
				if !deleted[i+1] {
					fmt.Fprintf(&b, "%d %s%x\r\n", i+1, uidl, sha256.Sum256([]byte(m)))
				}
			}
			multi(b.String())
		case "RETR":
			if n, ok := msg(arg(1)); ok {
				w.WriteString("+OK\r\n")
				multi(drop[n-1])
			}
		case "TOP":
			if !s.top {
				reply("-ERR unknown command")
			} else if n, ok := msg(arg(1)); ok {
				head, _, _ := strings.Cut(drop[n-1], "\r\n\r\n")
				w.WriteString("+OK\r\n")
				multi(head + "\r\n\r\n")
			}
		case "DELE":
			if n, ok := msg(arg(1)); ok {
				deleted[n] = true
				reply("+OK")
			}
		case "RSET":
			clear(deleted)
			reply("+OK")
		case "NOOP":
			reply("+OK")
		case "QUIT":
			s.mu.Lock()
			// Remove the deleted messages of this session's view from the maildrop.
			for i := len(drop); i >= 1; i-- {
				if deleted[i] {
					if j := slices.Index(s.msgs, drop[i-1]); j >= 0 {
						s.msgs = slices.Delete(s.msgs, j, j+1)
					}
				}
			}
			s.mu.Unlock()
			reply("+OK bye")
			return
		default:
			reply("-ERR unknown command")
		}
	}
}

// addPlain adds a POP3 source over plain TCP at addr.
func (e *env) addPlain(t *testing.T, addr string, keep bool) {
	t.Helper()
	e.addSource(t, store.PullSource{Protocol: "pop3", Addr: addr, TLS: "plain", User: "far", Keep: keep}, outsidePass)
}

// Without UIDL, deleting mail: copies of one message are each pulled once, and a poll that
// dies after a delivery (no QUIT: nothing deleted) delivers nothing twice when run again.
func TestPOP3WithoutUIDLDelete(t *testing.T) {
	e := newEnv(t)
	srv := startPOP3NoUIDL(t, false)
	// Messages 1 and 2 twice each, byte for byte: each copy is pulled.
	srv.put(msg(0), msg(1), msg(1), msg(2), msg(2), msg(3))
	e.addPlain(t, srv.addr, false)
	// The poll dies after the third delivery committed, before its QUIT: nothing is deleted.
	e.poller.dl = &crashAfter{d: e.dl, n: 3}
	if src := e.pollNow(t); src.Failures != 1 || !strings.Contains(src.LastError, errCrash.Error()) {
		t.Fatalf("after the crash %+v", src)
	}
	if n := srv.count(); n != 6 {
		t.Fatalf("%d messages on the server after a poll without QUIT, want 6", n)
	}
	if got := e.subjects(t); !slices.Equal(got, []string{"pulled 0", "pulled 1", "pulled 1"}) {
		t.Fatalf("after the crash %v", got)
	}
	e.poller.dl = e.dl
	if src := e.pollNow(t); src.Failures != 0 || src.LastError != "" {
		t.Fatalf("after the retry %+v", src)
	}
	if got := e.subjects(t); !slices.Equal(got, []string{"pulled 0", "pulled 1", "pulled 1", "pulled 2", "pulled 2", "pulled 3"}) {
		t.Fatalf("after the retry %v", got)
	}
	if n := srv.count(); n != 0 {
		t.Fatalf("%d messages left on the server in delete mode", n)
	}
	// After a QUIT that removed them, their names are free: a new copy of a message pulled
	// before is a new message.
	if seen, _ := e.local.PulledUIDs(context.Background(), e.sourceID); len(seen) != 0 {
		t.Errorf("state after the server emptied: %v", seen)
	}
	srv.put(msg(0))
	e.pollNow(t)
	if got := e.subjects(t); len(got) != 7 || got[6] != "pulled 0" {
		t.Fatalf("a new copy of message 0: %v", got)
	}
}

// Without UIDL, keeping mail: TOP names the messages by their headers; without TOP, refused.
func TestPOP3WithoutUIDLKeep(t *testing.T) {
	e := newEnv(t)
	noTop := startPOP3NoUIDL(t, false)
	noTop.put(msg(0))
	e.addPlain(t, noTop.addr, true)
	if src := e.pollNow(t); src.Failures != 1 || !strings.Contains(src.LastError, "neither UIDL nor TOP") || !strings.Contains(src.LastError, "--delete") {
		t.Fatalf("keeping mail on a server without UIDL and TOP: %+v", src)
	}
	if got := e.subjects(t); len(got) != 0 {
		t.Fatalf("pulled %v", got)
	}

	srv := startPOP3NoUIDL(t, true)
	srv.put(msg(1), msg(1), msg(2))
	e.addPlain(t, srv.addr, true)
	for range 2 {
		if src := e.pollNow(t); src.Failures != 0 {
			t.Fatalf("%+v", src)
		}
	}
	if got := e.subjects(t); !slices.Equal(got, []string{"pulled 1", "pulled 1", "pulled 2"}) {
		t.Fatalf("pulled %v", got)
	}
	if n := srv.count(); n != 3 {
		t.Fatalf("%d on the server in keep mode", n)
	}
	// One copy leaves (another client deleted it): nothing new. A third copy comes: it is new.
	srv.remove(0)
	e.pollNow(t)
	srv.put(msg(1), msg(3))
	e.pollNow(t)
	if got := e.subjects(t); !slices.Equal(got, []string{"pulled 1", "pulled 1", "pulled 2", "pulled 1", "pulled 3"}) {
		t.Fatalf("pulled %v", got)
	}
	// Switched to delete mode, the same identities hold: nothing twice, all deleted.
	e.poller.st = keepOff{e.local}
	e.pollNow(t)
	if got := e.subjects(t); len(got) != 5 {
		t.Fatalf("after switching to delete mode %v", got)
	}
	if n := srv.count(); n != 0 {
		t.Fatalf("%d left on the server", n)
	}
}

func TestHeaderDigest(t *testing.T) {
	crlf := "A: 1\r\nB: 2\r\n\r\nbody\r\n"
	d1, _ := headerDigest(strings.NewReader(crlf))
	d2, _ := headerDigest(strings.NewReader(strings.ReplaceAll(crlf, "\r\n", "\n")))
	d3, _ := headerDigest(strings.NewReader("A: 1\r\nB: 2\r\n\r\nanother body\r\n"))
	d4, _ := headerDigest(strings.NewReader("A: 1\r\nB: 2\r\n"))
	d5, _ := headerDigest(strings.NewReader("A: 1\r\nB: 3\r\n\r\nbody\r\n"))
	d6, _ := headerDigest(strings.NewReader(strings.Repeat("X", 40000) + "\r\n\r\n"))
	d7, _ := headerDigest(strings.NewReader(strings.Repeat("X", 40001) + "\r\n\r\n"))
	if d1 != d2 || d1 != d3 || d1 != d4 {
		t.Errorf("one header block, several digests: %s %s %s %s", d1, d2, d3, d4)
	}
	if d1 == d5 || d6 == d7 || len(d1) != 64 {
		t.Errorf("different header blocks, one digest: %s %s; %s %s", d1, d5, d6, d7)
	}
}

// FuzzHeaderDigest: whatever follows the header block does not change the digest, and LF
// line endings give the digest of CRLF ones.
func FuzzHeaderDigest(f *testing.F) {
	f.Add("Subject: a\r\nFrom: b\r\n", "body\r\n")
	f.Add("", "")
	f.Add("X: "+strings.Repeat("y", 20000), "z")
	f.Fuzz(func(t *testing.T, head, body string) {
		if strings.Contains(head, "\r") {
			return // bare CRs are not line endings: the LF form would differ
		}
		d1, err1 := headerDigest(strings.NewReader(head))
		d2, err2 := headerDigest(strings.NewReader(head + "\n\n" + body))
		d3, err3 := headerDigest(strings.NewReader(strings.ReplaceAll(head, "\n", "\r\n") + "\r\n\r\n" + body))
		if err1 != nil || err2 != nil || err3 != nil {
			t.Fatal(err1, err2, err3)
		}
		if d1 != d2 || d1 != d3 {
			t.Errorf("%q + %q: digests %s %s %s", head, body, d1, d2, d3)
		}
	})
}
