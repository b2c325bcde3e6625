package netconn

// What a session waiting for a command costs. Most POP3 and IMAP connections spend nearly
// all their life waiting for the next command, so that wait is made cheap (docs/benchmarks.md,
// idle connections). A session that has had no input for a moment (its moveAfter):
//
//   - gives its read buffer back to the server's pool and waits for the socket to become
//     readable (WaitReadable: a non-consuming MSG_PEEK, then the runtime's poller) instead
//     of inside a read; it takes a buffer again when input comes;
//   - continues on a fresh goroutine. A TLS handshake grows a goroutine's stack to 8 KB or
//     more, a command to several KB, and the runtime only halves a stack at a GC when the
//     goroutine uses under a quarter of it counting an 800-byte margin, so 4 KB is the least
//     a stack ever gets back to. A fresh goroutine starts at the runtime's starting size (2 KB
//     while most goroutines are idle sessions), and WaitReadable's few frames fit in it, as
//     long as the path from the goroutine's start to Input.Wait stays short and shallow.
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
	"net"
	"os"
	"sync"
	"syscall"
	"time"
)

// ErrMoveOn is not an end: Input.Wait found no input, gave back the read buffer, and the
// session is to continue on a fresh goroutine and call Wait again there.
var ErrMoveOn = errors.New("idle: continue on a fresh goroutine")

// Input is a session's read side: a read buffer from a pool, held only while there is
// input, and the buffer-less wait for the next command.
type Input struct {
	pool    *sync.Pool      // of *bufio.Reader
	rc      syscall.RawConn // the socket, to wait without a buffer; nil: none (always wait in a read)
	conn    net.Conn        // what the buffer reads
	rd      *bufio.Reader   // nil while waiting without a buffer
	movedOn bool            // Wait returned ErrMoveOn; the next Wait waits on the socket
}

// NewInput returns the read side of raw, with buffers from pool (of *bufio.Reader).
func NewInput(raw net.Conn, pool *sync.Pool) Input {
	return Input{pool: pool, rc: RawConn(raw), conn: raw}
}

// ReadTimeout sets a session's read deadline to now+d: the session's own method, which knows
// about shutdown and login deadlines. (An interface rather than a func field: the session
// passes itself, which costs no allocation and no memory while it idles.)
type ReadTimeout interface {
	SetReadTimeout(d time.Duration) error
}

// SetConn makes c (say, a tls.Conn over the raw one) the connection to read, dropping
// whatever was buffered from the previous one (RFC 2595 §4, RFC 9051 §6.2.1).
func (in *Input) SetConn(c net.Conn) {
	in.conn = c
	in.Release()
}

// Reader returns the read buffer, taking one from the pool if there is none.
func (in *Input) Reader() *bufio.Reader {
	if in.rd == nil {
		in.rd = in.pool.Get().(*bufio.Reader)
		in.rd.Reset(in.conn)
	}
	return in.rd
}

// Buffered returns the number of bytes held in the read buffer.
func (in *Input) Buffered() int {
	if in.rd == nil {
		return 0
	}
	return in.rd.Buffered()
}

// Release gives the read buffer back to the pool, dropping whatever it holds (callers
// either found it empty or mean to discard it).
func (in *Input) Release() {
	if in.rd != nil {
		in.rd.Reset(nil)
		in.pool.Put(in.rd)
		in.rd = nil
	}
}

// Wait waits up to wait for input, setting deadlines through dl. On return without
// error, the read buffer holds input or a read will not wait long. With moveAfter > 0, Wait
// returns ErrMoveOn when nothing came within moveAfter, having given back the read buffer
// and set the deadline for the rest of wait; the caller continues on a fresh goroutine and
// calls Wait again.
func (in *Input) Wait(wait, moveAfter time.Duration, dl ReadTimeout) error {
	if in.movedOn {
		// Nothing else happens here before the wait: even setting a deadline would grow the
		// stack, timer code is deep.
		in.movedOn = false
		if err := WaitReadable(in.rc); err != nil {
			return err
		}
		in.Reader()
		return nil
	}
	mayMove := in.rc != nil && moveAfter > 0 && moveAfter < wait
	first := wait
	if mayMove {
		first = moveAfter
	}
	// A session in a dialogue waits here, exactly as it would without any of this.
	r := in.Reader()
	if err := dl.SetReadTimeout(first); err != nil {
		return err
	}
	_, err := r.Peek(1)
	if !mayMove || !errors.Is(err, os.ErrDeadlineExceeded) {
		return err
	}
	// The read timed out, so nothing is buffered: not in rd, and no whole record in
	// crypto/tls (its Read would have returned it without touching the socket). A partial
	// record is completed through the socket, which WaitReadable watches.
	in.Release()
	// The timeout may also be a shutdown's interrupt: SetReadTimeout reports it.
	if err := dl.SetReadTimeout(wait - first); err != nil {
		return err
	}
	in.movedOn = true
	return ErrMoveOn
}
