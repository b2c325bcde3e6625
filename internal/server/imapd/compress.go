package imapd

// COMPRESS=DEFLATE (RFC 4978): after the tagged OK of "COMPRESS DEFLATE", both directions
// are a raw DEFLATE stream (RFC 1951, no zlib header) for the rest of the connection.
//
// Offered after login unless Config.Compress is off ([imap] compress).
//
// Decisions:
//   - Only after login (RFC 4978's grammar puts COMPRESS in command-auth). Before login a client is
//     anonymous: compressing its credentials together with data an attacker may influence
//     is the CRIME family of length oracles, and an inflater (~34 KB) and a deflater for
//     every unauthenticated connection would be a cheap way to make the server spend memory.
//   - Output: each response burst (what the session flushes before it would wait for input:
//     a command's responses, IDLE's updates) ends with a sync flush (the client can act on
//     nothing still held in the compressor), not each line, so a FETCH of many messages
//     compresses as one stream. The compressor (compress/flate, BestSpeed: its
//     reset is cheap and its cost per byte is low) is pooled and held only while answering,
//     like the write buffer: after its sync flush it is reset, which starts new blocks that
//     refer to nothing sent before, still one valid stream for the client's inflater. Each
//     burst thus compresses on its own (a little less well than with a window kept across
//     bursts), and an idle compressed session keeps no compressor (one is about 500 KB).
//   - Input: the inflater must keep the client's window for the whole session, so it stays
//     (~34 KB per compressed session, idle or not). Under it the raw read buffer still
//     comes from netconn.Input and goes back while idle; above it the command reader has a
//     pooled buffer of its own, which goes back too when nothing decompressed is pending.
//     A read that times out inside the inflater would break it (flate errors are sticky),
//     so the idle wait (whose first read times out by design) happens on the raw layer only,
//     and only when the raw buffer is empty. Octets that decode to nothing (the empty block
//     of a client's flush, which the inflater reads only when asked for more) are read
//     through the inflater with the idle deadline (awaiting), which becomes CommandTimeout
//     once a decompressed octet of the command arrives; a change that wakes an IDLE session
//     waiting there is announced from inside the read (rawSource), which then goes on
//     waiting, since the deadline's expiry must not reach the inflater.
//   - The inflater is our own (internal/lib/inflate), not compress/flate's nor
//     klauspost/compress's: both read, inside a dynamic Huffman block, the bits of the
//     smallest possible next block before they decode the end of the current one. A client
//     that flushes with zlib's Z_PARTIAL_FLUSH (mbsync does) ends a burst with an empty
//     fixed block that is partly still in its bit buffer, so those decoders waited for
//     octets the client sends only after its answer: mbsync's second sync, whose pipelined
//     STORE, APPEND and FETCH make a dynamic block, hung. The standard library's also hands
//     out what it decoded only at a stored block or a full window (go.dev/issue/31514).
//     inflate reads no bit before it needs it and returns what it has before it would wait.
//     The compressor stays the standard library's: its sync flush is what every inflater
//     understands.
//   - A corrupt stream from the client ends the session with BYE (compressed), never a panic.

import (
	"bufio"
	"compress/flate"
	"errors"
	"io"
	"strings"
	"time"

	"petrel/internal/lib/inflate"
)

// errCompressStarted is not an end: COMPRESS answered already and the session goes on.
var errCompressStarted = errors.New("compression started")

// compression is a session's compressed layer, set once COMPRESS DEFLATE succeeded.
type compression struct {
	s       *session
	inflate *inflate.Reader // reads rawSource; lives as long as the session
	cmd     *bufio.Reader   // pooled: the decompressed command stream, nil while idle
	// pending: the last read from inflate filled the buffer it was given, so it may hold more
	// decompressed octets (flate returns what it has, and less than asked only when it has
	// nothing more without reading).
	pending bool
	// awaiting: the next command has not begun; reads wait with the idle deadline until a
	// decompressed octet comes, then get CommandTimeout (see commandDeadline).
	awaiting bool
	zw       *flate.Writer // pooled, held only while answering (out to flush)
}

// rawSource is what the inflater reads: the session's raw read buffer, taken from the pool
// when needed (the inflater keeps this value, while the buffer comes and goes).
type rawSource struct{ s *session }

// Buffered is what the inflater may read without waiting for the client.
func (r rawSource) Buffered() int { return r.s.in.Buffered() }

func (r rawSource) ReadByte() (byte, error) {
	for {
		c, err := r.s.in.Reader().ReadByte()
		if err == nil || !r.s.wakeInRead(err) {
			return c, err
		}
	}
}

// wakeInRead handles a read that ended because a change woke the session in IDLE while it
// waited inside the inflater: it announces the change and re-arms the deadline, and reports
// whether to read again. Any other error is for the inflater (and ends the session).
func (s *session) wakeInRead(err error) bool {
	if !isTimeout(err) || s.idle == nil || !s.takeWake() {
		return false
	}
	if s.idleWoken() != nil {
		return false
	}
	return s.setReadDeadline(time.Until(s.idle.deadline)) == nil
}

// inflated is the inflater as the command buffer reads it, noting whether more may be pending.
type inflated struct{ z *compression }

func (r inflated) Read(p []byte) (int, error) {
	n, err := r.z.inflate.Read(p)
	r.z.pending = n == len(p) && err == nil
	if n > 0 && r.z.awaiting {
		r.z.awaiting = false
		// The command has begun: it must now come whole within CommandTimeout. A refusal
		// (a wake-up in IDLE) leaves the expired deadline for wakeInRead to see.
		if err := r.z.s.setReadDeadline(r.z.s.srv.cfg.CommandTimeout); errors.Is(err, errShutdown) {
			return n, err
		}
	}
	return n, err
}

// commandDeadline sets the read deadline for a command about to be read: CommandTimeout,
// or, compressed and with no decompressed input at hand, wait (the idle wait that is left)
// until the command's first octet decompresses (inflated.Read).
func (s *session) commandDeadline(wait time.Duration) error {
	if s.z != nil && !s.z.buffered() {
		s.z.awaiting = true
		return s.setReadDeadline(wait)
	}
	return s.setReadDeadline(s.srv.cfg.CommandTimeout)
}

// awaitingCommand reports whether a timeout came before any octet of the command: an idle
// timeout (or a shutdown), not a command too slow.
func (s *session) awaitingCommand() bool { return s.z != nil && s.z.awaiting }

func compressArg(r *reader, c *Command) (err error) {
	c.Mechanism, err = r.atom()
	return err
}

// cmdCompress starts compression (RFC 4978 §3). The tagged OK goes out uncompressed; what
// follows it in each direction is compressed.
func (s *session) cmdCompress(c *Command) (done, error) {
	if !s.srv.cfg.Compress {
		return done{}, badf("COMPRESS not available")
	}
	if s.z != nil {
		return done{}, &Error{Kind: NO, Code: "COMPRESSIONACTIVE", Text: "Compression is active already"}
	}
	if !strings.EqualFold(c.Mechanism, "DEFLATE") {
		return done{}, badf("Unknown compression mechanism")
	}
	s.out().status(c.Tag, "OK", "", "DEFLATE active")
	if err := s.flush(); err != nil {
		return done{}, err
	}
	z := &compression{s: s}
	// Octets after the command line in the raw buffer are compressed already: the inflater
	// reads them from there.
	z.inflate = inflate.NewReader(rawSource{s})
	s.z = z
	s.reader()
	return done{}, errCompressStarted
}

// corruptInput reports whether err is the inflater's verdict on a corrupt stream.
func corruptInput(err error) bool {
	return errors.Is(err, inflate.ErrCorrupt)
}

// commandReader returns the buffer of decompressed input, taking one from the pool.
func (z *compression) commandReader() *bufio.Reader {
	if z.cmd == nil {
		z.cmd = z.s.srv.readers.Get().(*bufio.Reader)
		z.cmd.Reset(inflated{z})
	}
	return z.cmd
}

// buffered reports whether decompressed input is waiting, or may be.
func (z *compression) buffered() bool {
	return z.pending || z.cmd != nil && z.cmd.Buffered() > 0
}

// release gives the command buffer back (its content is dropped: callers found it empty).
func (z *compression) release() {
	if z.cmd != nil {
		z.cmd.Reset(nil)
		z.s.srv.readers.Put(z.cmd)
		z.cmd = nil
	}
}

// writer returns a compressor writing to w, from the pool.
func (z *compression) writer(w io.Writer) io.Writer {
	if z.zw == nil {
		if v := z.s.srv.deflaters.Get(); v != nil {
			z.zw = v.(*flate.Writer)
			z.zw.Reset(w)
		} else {
			z.zw, _ = flate.NewWriter(w, flate.BestSpeed) // BestSpeed is a valid level: no error
		}
	}
	return z.zw
}

// flush ends a burst with a sync flush and gives the compressor back.
func (z *compression) flush() error {
	if z.zw == nil {
		return nil
	}
	err := z.zw.Flush()
	z.zw.Reset(io.Discard)
	z.s.srv.deflaters.Put(z.zw)
	z.zw = nil
	return err
}

// close drops what the compressed layer holds when the session ends.
func (z *compression) close() {
	z.release()
	if z.zw != nil {
		z.zw.Reset(io.Discard)
		z.s.srv.deflaters.Put(z.zw)
		z.zw = nil
	}
}
