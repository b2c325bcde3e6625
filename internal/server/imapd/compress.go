package imapd

// COMPRESS=DEFLATE (RFC 4978): after the tagged OK of "COMPRESS DEFLATE", both directions
// are a raw DEFLATE stream (RFC 1951, no zlib header) for the rest of the connection.
//
// Decisions:
//   - Only after login (RFC 4978 §5 puts COMPRESS in command-auth). Before login a client is
//     anonymous: compressing its credentials together with data an attacker may influence
//     is the CRIME family of length oracles, and an inflater (~45 KB) and a deflater for
//     every unauthenticated connection would be a cheap way to make the server spend memory.
//   - Output: each response burst (what the session flushes before it would wait for input:
//     a command's responses, IDLE's updates) ends with a sync flush (RFC 4978 §4: a client
//     must not wait for data the server holds back), not each line, so a FETCH of many
//     messages compresses as one stream. The compressor (compress/flate, BestSpeed: its
//     reset is cheap and its cost per byte is low) is pooled and held only while answering,
//     like the write buffer: after its sync flush it is reset, which starts new blocks that
//     refer to nothing sent before, still one valid stream for the client's inflater. Each
//     burst thus compresses on its own (a little less well than with a window kept across
//     bursts), and an idle compressed session keeps no compressor (one is about 500 KB).
//   - Input: the inflater must keep the client's window for the whole session, so it stays
//     (~45 KB per compressed session, idle or not). Under it the raw read buffer still
//     comes from netconn.Input and goes back while idle; above it the command reader has a
//     pooled buffer of its own, which goes back too when nothing decompressed is pending.
//     A read that times out inside the inflater would break it (flate errors are sticky),
//     so the idle wait (whose first read times out by design) happens on the raw layer only.
//   - A corrupt stream from the client ends the session with BYE (compressed), never a panic.

import (
	"bufio"
	"compress/flate"
	"errors"
	"io"
)

// errCompressStarted is not an end: COMPRESS answered already and the session goes on.
var errCompressStarted = errors.New("compression started")

// compression is a session's compressed layer, set once COMPRESS DEFLATE succeeded.
type compression struct {
	s       *session
	inflate io.ReadCloser // reads rawSource; lives as long as the session
	cmd     *bufio.Reader // pooled: the decompressed command stream, nil while idle
	// pending: the last read from inflate filled the buffer it was given, so it may hold more
	// decompressed octets (flate returns what it has, and less than asked only when it has
	// nothing more without reading).
	pending bool
	zw      *flate.Writer // pooled, held only while answering (out to flush)
}

// rawSource is what the inflater reads: the session's raw read buffer, taken from the pool
// when needed (the inflater keeps this value, while the buffer comes and goes).
type rawSource struct{ s *session }

func (r rawSource) Read(p []byte) (int, error) { return r.s.in.Reader().Read(p) }
func (r rawSource) ReadByte() (byte, error)    { return r.s.in.Reader().ReadByte() }

// inflated is the inflater as the command buffer reads it, noting whether more may be pending.
type inflated struct{ z *compression }

func (r inflated) Read(p []byte) (int, error) {
	n, err := r.z.inflate.Read(p)
	r.z.pending = n == len(p) && err == nil
	return n, err
}

func compressArg(r *reader, c *Command) (err error) {
	c.Mechanism, err = r.atom()
	return err
}

// cmdCompress starts compression (RFC 4978 §3). The tagged OK goes out uncompressed; what
// follows it in each direction is compressed.
func (s *session) cmdCompress(c *Command) (done, error) {
	if s.z != nil {
		return done{}, &Error{Kind: NO, Code: "COMPRESSIONACTIVE", Text: "Compression is active already"}
	}
	if !equalFold(c.Mechanism, "DEFLATE") {
		return done{}, badf("Unknown compression mechanism")
	}
	s.out().status(c.Tag, "OK", "", "DEFLATE active")
	if err := s.flush(); err != nil {
		return done{}, err
	}
	z := &compression{s: s}
	// Octets after the command line in the raw buffer are compressed already: the inflater
	// reads them from there.
	z.inflate = flate.NewReader(rawSource{s})
	s.z = z
	s.reader()
	return done{}, errCompressStarted
}

// equalFold is strings.EqualFold for ASCII atoms.
func equalFold(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range len(a) {
		x, y := a[i], b[i]
		if 'a' <= x && x <= 'z' {
			x -= 'a' - 'A'
		}
		if 'a' <= y && y <= 'z' {
			y -= 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
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
	z.inflate.Close()
}
