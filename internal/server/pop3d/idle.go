package pop3d

// What an idle session costs. Most POP3 connections spend nearly all their life waiting for
// the next command, so that wait is made cheap (docs/benchmarks.md, idle connections). A
// session that has had no input for moveOnAfter:
//
//   - gives its read buffer back to the server's pool (the write buffer is only ever held
//     while a command runs, see server.go) and waits for the socket to become readable
//     (netconn.WaitReadable: a non-consuming MSG_PEEK, then the runtime's poller) instead of inside a
//     read; it takes a buffer again when input comes;
//   - continues on a fresh goroutine. A TLS handshake grows a goroutine's stack to 8 KB or
//     more, a command to several KB, and the runtime only halves a stack at a GC when the
//     goroutine uses under a quarter of it counting an 800-byte margin, so 4 KB is the least
//     a stack ever gets back to. A fresh goroutine starts at the runtime's starting size (2 KB
//     while most goroutines are idle sessions), and WaitReadable's few frames fit in it.
//
// A client in a dialogue answers within a round trip and waits exactly as before: a plain
// read with a deadline. Only that read timing out proves that nothing is buffered anywhere: a
// TLS connection may hold input that the socket no longer shows (a record read together with
// the previous one, or the rest of a record larger than the read buffer), which crypto/tls's
// Read returns without touching the socket. crypto/tls treats a timeout as temporary, so the
// connection stays usable.

import (
	"bufio"
	"errors"
	"os"
	"time"

	"petrel/internal/lib/netconn"
)

// moveOnAfter is how long a session waits for its next command on the goroutine that ran the
// last one before it continues on a fresh one.
const moveOnAfter = 100 * time.Millisecond

// waitInput waits up to wait for the first byte of the next command (the RFC 1939 §3
// autologout timer, or CommandTimeout within a SASL exchange). On return without error, s.rd
// holds input or a read will not wait long. With moveAfter > 0, waitInput returns errMoveOn
// when nothing came within moveAfter, having given back the read buffer and set the deadline
// for the rest of wait; the caller continues on a fresh goroutine and calls waitInput again.
func (s *session) waitInput(wait, moveAfter time.Duration) error {
	if s.movedOn {
		// Nothing else happens here before the wait: even setting a deadline would grow the
		// stack, timer code is deep.
		s.movedOn = false
		if err := netconn.WaitReadable(s.rc); err != nil {
			return err
		}
		s.reader()
		return nil
	}
	mayMove := s.rc != nil && moveAfter > 0 && moveAfter < wait
	first := wait
	if mayMove {
		first = moveAfter
	}
	// A session in a dialogue waits here, exactly as it would without any of this.
	r := s.reader()
	if err := s.setReadDeadline(first); err != nil {
		return err
	}
	_, err := r.Peek(1)
	if !mayMove || !errors.Is(err, os.ErrDeadlineExceeded) {
		return err
	}
	// The read timed out, so nothing is buffered: not in s.rd, and no whole record in
	// crypto/tls (its Read would have returned it without touching the socket). A partial
	// record is completed through the socket, which WaitReadable watches.
	s.releaseReader()
	// The timeout may also be Shutdown's interrupt: setReadDeadline reports it.
	if err := s.setReadDeadline(wait - first); err != nil {
		return err
	}
	s.movedOn = true
	return errMoveOn
}

// reader returns the session's read buffer, taking one from the pool if it has none.
func (s *session) reader() *bufio.Reader {
	if s.rd == nil {
		s.rd = s.srv.readers.Get().(*bufio.Reader)
		s.rd.Reset(s.conn)
	}
	return s.rd
}

// releaseReader gives the read buffer back to the pool, dropping whatever it holds (callers
// either found it empty or mean to discard it, as after STLS).
func (s *session) releaseReader() {
	if s.rd != nil {
		s.rd.Reset(nil)
		s.srv.readers.Put(s.rd)
		s.rd = nil
	}
}
