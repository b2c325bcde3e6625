package inflate

import (
	"bufio"
	"bytes"
	"compress/flate"
	"encoding/hex"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"strings"
	"testing"
)

// bursts is a Source that holds octets the peer has sent so far; reading past them is what
// would wait for the peer, which the tests forbid while decoded text is still due.
type bursts struct {
	buf    []byte
	waited bool
}

func (b *bursts) ReadByte() (byte, error) {
	if len(b.buf) == 0 {
		b.waited = true
		return 0, errWouldWait
	}
	c := b.buf[0]
	b.buf = b.buf[1:]
	return c, nil
}

func (b *bursts) Buffered() int { return len(b.buf) }

var errWouldWait = errors.New("would wait for the peer")

// readText reads exactly len(want) octets from r with reads of at most size octets.
func readText(t *testing.T, r *Reader, want []byte, size int) {
	t.Helper()
	got := make([]byte, 0, len(want))
	buf := make([]byte, size)
	for len(got) < len(want) {
		n, err := r.Read(buf[:min(size, len(want)-len(got))])
		got = append(got, buf[:n]...)
		if err != nil {
			t.Fatalf("after %d of %d octets: %v", len(got), len(want), err)
		}
		if n == 0 {
			t.Fatalf("empty read after %d of %d octets", len(got), len(want))
		}
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("decoded %q, want %q", got, want)
	}
}

// TestPartialFlush: each burst a zlib peer sends with Z_PARTIAL_FLUSH decodes whole from
// its own octets, without a read that would wait for the next burst (the deadlock of
// compress/flate and klauspost's flate, package comment). The first stream is what mbsync
// sent when its second sync hung over those decoders.
func TestPartialFlush(t *testing.T) {
	f, err := os.ReadFile("testdata/partial-flush.txt")
	if err != nil {
		t.Fatal(err)
	}
	streams := strings.Split(string(f), "\n\n")[1:]
	if len(streams) < 4 {
		t.Fatalf("%d streams in testdata", len(streams))
	}
	for _, size := range []int{1, 7, 4096} {
		for i, s := range streams {
			src := &bursts{}
			r := NewReader(src)
			for j, line := range strings.Split(strings.TrimSpace(s), "\n") {
				z, text, ok := strings.Cut(line, " ")
				zb, err1 := hex.DecodeString(z)
				tb, err2 := hex.DecodeString(text)
				if !ok || err1 != nil || err2 != nil {
					t.Fatalf("stream %d line %d: bad testdata", i, j)
				}
				src.buf = append(src.buf, zb...)
				readText(t, r, tb, size)
				if src.waited {
					t.Fatalf("stream %d burst %d (reads of %d): waited for the next burst", i, j, size)
				}
			}
		}
	}
}

// TestRoundTrip: what compress/flate writes, at every level, flushed (sync) at random
// points or not at all, decodes to the original, through reads of random sizes.
func TestRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	words := strings.Fields("a IMAP FETCH BODY[] mailbox the of and to é 日本 \x00 \xff OK NO BAD")
	for _, level := range []int{flate.HuffmanOnly, flate.NoCompression, flate.BestSpeed, flate.DefaultCompression, flate.BestCompression} {
		for round := range 6 {
			var text bytes.Buffer
			switch round {
			case 0: // nothing
			case 1: // random octets: stored blocks
				for range 70000 {
					text.WriteByte(byte(rng.IntN(256)))
				}
			default:
				for range rng.IntN(40000) {
					text.WriteString(words[rng.IntN(len(words))])
					text.WriteByte(" \r\n"[rng.IntN(3)])
				}
			}
			var z bytes.Buffer
			w, _ := flate.NewWriter(&z, level)
			for rest := text.Bytes(); len(rest) > 0; {
				n := min(len(rest), 1+rng.IntN(9000))
				w.Write(rest[:n])
				if rng.IntN(2) == 0 {
					w.Flush()
				}
				rest = rest[n:]
			}
			w.Close()
			r := NewReader(bufio.NewReader(&z))
			var got bytes.Buffer
			buf := make([]byte, 1+rng.IntN(5000))
			for {
				n, err := r.Read(buf)
				got.Write(buf[:n])
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatalf("level %d round %d: %v", level, round, err)
				}
			}
			if !bytes.Equal(got.Bytes(), text.Bytes()) {
				t.Fatalf("level %d round %d: decoded %d octets, want %d, not the same", level, round, got.Len(), text.Len())
			}
		}
	}
}

// TestCorrupt: invalid streams end in ErrCorrupt or io.ErrUnexpectedEOF, sticky.
func TestCorrupt(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   []byte
		want error
	}{
		{"reserved block type", []byte{0x07}, ErrCorrupt},
		{"stored length mismatch", []byte{0x01, 0x05, 0x00, 0x00, 0x00}, ErrCorrupt},
		{"truncated stored block", []byte{0x01, 0x05, 0x00, 0xfa, 0xff, 'a'}, io.ErrUnexpectedEOF},
		{"distance before the start", []byte{0x03, 0x02, 0x00}, ErrCorrupt},
		{"empty", nil, io.ErrUnexpectedEOF},
	} {
		r := NewReader(bufio.NewReader(bytes.NewReader(tc.in)))
		_, err := io.ReadAll(r)
		if !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
		if _, again := r.Read(make([]byte, 1)); !errors.Is(again, tc.want) {
			t.Errorf("%s: then %v, want the same error", tc.name, again)
		}
	}
}

// FuzzInflate: arbitrary input never panics and decodes as compress/flate decodes it,
// where both succeed; and the fuzzed text, compressed, decodes back to itself.
func FuzzInflate(f *testing.F) {
	for _, s := range []string{"", "hello hello hello", "\x00\x01\x02"} {
		var z bytes.Buffer
		w, _ := flate.NewWriter(&z, flate.BestSpeed)
		w.Write([]byte(s))
		w.Close()
		f.Add(z.Bytes())
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		got, err := io.ReadAll(io.LimitReader(NewReader(bufio.NewReader(bytes.NewReader(in))), 1<<20))
		want, werr := io.ReadAll(io.LimitReader(flate.NewReader(bytes.NewReader(in)), 1<<20))
		if err == nil && werr == nil && !bytes.Equal(got, want) {
			t.Fatalf("decoded %q, compress/flate %q", got, want)
		}
		var z bytes.Buffer
		w, _ := flate.NewWriter(&z, flate.DefaultCompression)
		w.Write(in)
		w.Close()
		back, err := io.ReadAll(NewReader(bufio.NewReader(&z)))
		if err != nil || !bytes.Equal(back, in) {
			t.Fatalf("round trip: %v", err)
		}
	})
}
