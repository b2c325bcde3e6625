// Package inflate decompresses a raw DEFLATE stream (RFC 1951) that arrives over a
// conversation, as IMAP's COMPRESS=DEFLATE (RFC 4978) carries one: it hands out what it has
// decoded before it would wait for more input, so a peer that flushes and then waits for an
// answer is always answered.
//
// Why not compress/flate or github.com/klauspost/compress/flate: both decode a dynamic
// Huffman block by reading, before each symbol, enough bits for the end-of-block code plus
// the 10 bits of the smallest possible next block. A zlib peer that flushes with
// Z_PARTIAL_FLUSH (mbsync does) ends its burst with the block's end-of-block code and an empty
// fixed block of 10 bits of which up to 7 stay in its bit buffer until it sends more; those
// decoders then wait for bits the peer will send only after it got an answer to what it
// already sent, which they hold: a deadlock. The standard library also returns decoded data
// only at a stored block or a full window (go.dev/issue/31514). This decoder never reads a
// bit before it needs it, and before it would block on the source for a symbol it returns
// what it has.
//
// Decoding is bit by bit over canonical code counts (the way zlib's puff.c reference
// decoder does it): simple and slower than table lookup, which is fine for what a client
// sends a server (commands, and the messages it appends).
package inflate

import (
	"errors"
	"io"
)

// Source is what a Reader reads: octets, and how many it can read without waiting.
type Source interface {
	io.ByteReader
	// Buffered returns how many octets ReadByte returns without waiting for input.
	Buffered() int
}

// ErrCorrupt is returned (wrapped) for a stream that is not valid DEFLATE.
var ErrCorrupt = errors.New("inflate: corrupt input")

const (
	windowSize = 1 << 15
	maxBits    = 15
	// maxSymbolBits bounds the bits of one length/distance pair: a 15-bit code, 5 extra
	// bits, a 15-bit distance code, 13 extra bits.
	maxSymbolBits = 15 + 5 + 15 + 13
)

// Block types (RFC 1951 §3.2.3).
const (
	stored  = 0
	fixed   = 1
	dynamic = 2
)

// huffman is a canonical Huffman code: how many codes of each length, and the symbols in
// code order.
type huffman struct {
	count  [maxBits + 1]uint16
	symbol []uint16
}

// build makes the code for the given code lengths (0: symbol unused). An over-subscribed set
// of lengths is corrupt; an incomplete one is allowed (RFC 1951 permits a single distance
// code), and decoding a code it lacks is corrupt.
func (h *huffman) build(lengths []uint8) error {
	h.count = [maxBits + 1]uint16{}
	for _, l := range lengths {
		h.count[l]++
	}
	left := 1
	for l := 1; l <= maxBits; l++ {
		left <<= 1
		left -= int(h.count[l])
		if left < 0 {
			return ErrCorrupt
		}
	}
	var offs [maxBits + 2]uint16
	for l := 1; l <= maxBits; l++ {
		offs[l+1] = offs[l] + h.count[l]
	}
	h.symbol = h.symbol[:0]
	h.symbol = append(h.symbol, make([]uint16, len(lengths))...)
	for sym, l := range lengths {
		if l != 0 {
			h.symbol[offs[l]] = uint16(sym)
			offs[l]++
		}
	}
	return nil
}

var (
	fixedLit, fixedDist huffman
	// Base values and extra bits of the length (257..285) and distance codes.
	lengthBase  = [29]uint16{3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195, 227, 258}
	lengthExtra = [29]uint8{0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0}
	distBase    = [30]uint16{1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769, 1025, 1537, 2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577}
	distExtra   = [30]uint8{0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13}
	// The order of the code length code lengths in a dynamic block header.
	clOrder = [19]uint8{16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15}
)

func init() {
	var l [288]uint8
	for i := range l {
		switch {
		case i < 144:
			l[i] = 8
		case i < 256:
			l[i] = 9
		case i < 280:
			l[i] = 7
		default:
			l[i] = 8
		}
	}
	fixedLit.build(l[:])
	var d [30]uint8
	for i := range d {
		d[i] = 5
	}
	fixedDist.build(d[:])
}

// Reader decompresses a raw DEFLATE stream read from a Source. Errors are sticky: after one
// (the source's, or ErrCorrupt), every Read returns it.
type Reader struct {
	src  Source
	bits uint64 // bit buffer, least significant bit first
	nb   uint   // bits in it
	err  error

	win   [windowSize]byte
	wpos  int   // where the next decoded octet goes in win
	total int64 // octets decoded so far

	inBlock bool
	final   bool // the current block is the last
	typ     int
	left    int // octets left in a stored block
	lit     *huffman
	dist    *huffman
	dynLit  huffman
	dynDist huffman

	copyLen, copyDist int // a match not yet copied out whole
}

// NewReader returns a Reader of src.
func NewReader(src Source) *Reader { return &Reader{src: src} }

// Read implements io.Reader. It returns at least one octet, or an error, unless len(p) is
// 0. It returns fewer than len(p) when the stream ended, when a block ended, or when the
// next symbol would need input the source does not have buffered: the peer may be waiting
// for an answer to what it sent.
func (r *Reader) Read(p []byte) (int, error) {
	if r.err != nil {
		return 0, r.err
	}
	n, err := r.read(p)
	if err != nil {
		if errors.Is(err, io.EOF) && !(r.final && !r.inBlock && r.copyLen == 0) {
			err = io.ErrUnexpectedEOF
		}
		r.err = err
		if n > 0 {
			return n, nil
		}
	}
	return n, err
}

func (r *Reader) read(p []byte) (n int, err error) {
	for n < len(p) {
		if r.copyLen > 0 {
			n += r.copyOut(p[n:])
			continue
		}
		if !r.inBlock {
			if r.final {
				return n, io.EOF
			}
			if n > 0 {
				return n, nil // a block boundary: hand out what this block gave
			}
			if err := r.header(); err != nil {
				return n, err
			}
			continue
		}
		if r.typ == stored {
			if r.left == 0 {
				r.inBlock = false
				continue
			}
			if n > 0 && r.nb < 8 && r.src.Buffered() == 0 {
				return n, nil
			}
			c, err := r.storedByte()
			if err != nil {
				return n, err
			}
			r.left--
			p[n] = c
			r.emit(c)
			n++
			continue
		}
		if n > 0 && int(r.nb)+8*r.src.Buffered() < maxSymbolBits {
			return n, nil
		}
		sym, err := r.decode(r.lit)
		if err != nil {
			return n, err
		}
		switch {
		case sym < 256:
			p[n] = byte(sym)
			r.emit(byte(sym))
			n++
		case sym == 256:
			r.inBlock = false
		default:
			if err := r.match(sym); err != nil {
				return n, err
			}
		}
	}
	return n, nil
}

// match reads the length and distance of a match whose length symbol is sym.
func (r *Reader) match(sym int) error {
	sym -= 257
	if sym >= len(lengthBase) {
		return ErrCorrupt
	}
	extra, err := r.getBits(uint(lengthExtra[sym]))
	if err != nil {
		return err
	}
	length := int(lengthBase[sym]) + int(extra)
	dsym, err := r.decode(r.dist)
	if err != nil {
		return err
	}
	if dsym >= len(distBase) {
		return ErrCorrupt
	}
	if extra, err = r.getBits(uint(distExtra[dsym])); err != nil {
		return err
	}
	dist := int(distBase[dsym]) + int(extra)
	if int64(dist) > r.total {
		return ErrCorrupt // before the start of the stream
	}
	r.copyLen, r.copyDist = length, dist
	return nil
}

// copyOut copies what it can of the pending match into p.
func (r *Reader) copyOut(p []byte) int {
	n := min(len(p), r.copyLen)
	for i := range n {
		c := r.win[(r.wpos-r.copyDist)&(windowSize-1)]
		p[i] = c
		r.emit(c)
	}
	r.copyLen -= n
	return n
}

func (r *Reader) emit(c byte) {
	r.win[r.wpos] = c
	r.wpos = (r.wpos + 1) & (windowSize - 1)
	r.total++
}

// header reads a block header, and the code tables of a dynamic block.
func (r *Reader) header() error {
	h, err := r.getBits(3)
	if err != nil {
		return err
	}
	r.final = h&1 == 1
	r.typ = int(h >> 1)
	switch r.typ {
	case stored:
		// Skip to the octet boundary (RFC 1951 §3.2.4); LEN and NLEN follow.
		r.bits >>= r.nb % 8
		r.nb -= r.nb % 8
		v, err := r.getBits(32)
		if err != nil {
			return err
		}
		length, nlength := uint16(v), uint16(v>>16)
		if length != ^nlength {
			return ErrCorrupt
		}
		r.left = int(length)
	case fixed:
		r.lit, r.dist = &fixedLit, &fixedDist
	case dynamic:
		if err := r.dynamicTables(); err != nil {
			return err
		}
		r.lit, r.dist = &r.dynLit, &r.dynDist
	default:
		return ErrCorrupt
	}
	r.inBlock = true
	return nil
}

// dynamicTables reads the code lengths of a dynamic block (RFC 1951 §3.2.7).
func (r *Reader) dynamicTables() error {
	v, err := r.getBits(14)
	if err != nil {
		return err
	}
	nlen, ndist, ncode := int(v&31)+257, int(v>>5&31)+1, int(v>>10)+4
	if nlen > 286 || ndist > 30 {
		return ErrCorrupt
	}
	var lengths [286 + 30]uint8
	for i := range ncode {
		l, err := r.getBits(3)
		if err != nil {
			return err
		}
		lengths[clOrder[i]] = uint8(l)
	}
	var cl huffman
	if err := cl.build(lengths[:19]); err != nil {
		return err
	}
	lengths = [286 + 30]uint8{}
	for i := 0; i < nlen+ndist; {
		sym, err := r.decode(&cl)
		if err != nil {
			return err
		}
		if sym < 16 {
			lengths[i] = uint8(sym)
			i++
			continue
		}
		var prev uint8
		var rep uint64
		switch sym {
		case 16:
			if i == 0 {
				return ErrCorrupt // nothing to repeat
			}
			prev = lengths[i-1]
			rep, err = r.getBits(2)
			rep += 3
		case 17:
			rep, err = r.getBits(3)
			rep += 3
		default:
			rep, err = r.getBits(7)
			rep += 11
		}
		if err != nil {
			return err
		}
		if i+int(rep) > nlen+ndist {
			return ErrCorrupt
		}
		for range rep {
			lengths[i] = prev
			i++
		}
	}
	if lengths[256] == 0 {
		return ErrCorrupt // no end-of-block code
	}
	if err := r.dynLit.build(lengths[:nlen]); err != nil {
		return err
	}
	return r.dynDist.build(lengths[nlen : nlen+ndist])
}

// decode reads one symbol of h, a bit at a time.
func (r *Reader) decode(h *huffman) (int, error) {
	code, first, index := 0, 0, 0
	for l := 1; l <= maxBits; l++ {
		b, err := r.getBits(1)
		if err != nil {
			return 0, err
		}
		code |= int(b)
		count := int(h.count[l])
		if code-first < count {
			return int(h.symbol[index+code-first]), nil
		}
		index += count
		first += count
		first <<= 1
		code <<= 1
	}
	return 0, ErrCorrupt // a code the table lacks
}

// getBits reads n bits (at most 32), reading octets from the source only as needed.
func (r *Reader) getBits(n uint) (uint64, error) {
	for r.nb < n {
		c, err := r.src.ReadByte()
		if err != nil {
			return 0, err
		}
		r.bits |= uint64(c) << r.nb
		r.nb += 8
	}
	v := r.bits & (1<<n - 1)
	r.bits >>= n
	r.nb -= n
	return v, nil
}

// storedByte reads an octet of a stored block: from the bit buffer (octet-aligned there)
// first.
func (r *Reader) storedByte() (byte, error) {
	if r.nb >= 8 {
		v, _ := r.getBits(8)
		return byte(v), nil
	}
	return r.src.ReadByte()
}
