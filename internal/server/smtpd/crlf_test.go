package smtpd

import (
	"bytes"
	"errors"
	"io"
	"slices"
	"strings"
	"testing"
)

// byteCRLFReader is the byte-at-a-time line ending check that crlfReader replaced, kept as
// the reference for FuzzCRLFReader.
type byteCRLFReader struct {
	r      io.Reader
	prevCR bool
}

func (c *byteCRLFReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	for i := range n {
		b := p[i]
		if (c.prevCR && b != '\n') || (!c.prevCR && b == '\n') {
			return 0, errBareLineEnding
		}
		c.prevCR = b == '\r'
	}
	if err == io.EOF && c.prevCR {
		return 0, errBareLineEnding
	}
	return n, err
}

// chunkReader returns its data in reads of the given sizes (cycled), so that CR and LF can
// fall into different reads anywhere.
type chunkReader struct {
	data  []byte
	sizes []int
	i     int
}

func (c *chunkReader) Read(p []byte) (int, error) {
	if len(c.data) == 0 {
		return 0, io.EOF
	}
	n := min(len(p), len(c.data), max(1, c.sizes[c.i%len(c.sizes)]))
	c.i++
	copy(p, c.data[:n])
	c.data = c.data[n:]
	return n, nil
}

// readAllTrace reads r to the end and records every (n, err) result and the bytes passed.
func readAllTrace(r io.Reader, bufSize int) (out []byte, trace []int, err error) {
	buf := make([]byte, bufSize)
	for {
		n, err := r.Read(buf)
		out = append(out, buf[:n]...)
		trace = append(trace, n)
		if err != nil {
			return out, trace, err
		}
	}
}

// FuzzCRLFReader checks crlfReader against the byte-at-a-time reference: the same bytes,
// the same counts from every Read and the same error, however the input is split.
func FuzzCRLFReader(f *testing.F) {
	for _, s := range []string{
		"", "a\r\nb\r\n", "a\r\nb", "a\nb", "a\rb", "a\r", "\n", "\r\n", "\r\r\n", "\r\n\n",
		"a\r\n\r\n.\r\n", "\r", "x\r\n\r", "\n\r", "line\r\nline\r\n\r\nbody\rx\r\n",
	} {
		f.Add([]byte(s), uint8(1), uint8(3), uint16(16))
		f.Add([]byte(s), uint8(0), uint8(0), uint16(4096))
	}
	f.Fuzz(func(t *testing.T, data []byte, s1, s2 uint8, bufSize uint16) {
		sizes := []int{int(s1), int(s2), 7, 4096}
		size := max(1, int(bufSize)%5000)
		want, wantTrace, wantErr := readAllTrace(&byteCRLFReader{r: &chunkReader{data: data, sizes: sizes}}, size)
		got, gotTrace, gotErr := readAllTrace(&crlfReader{r: &chunkReader{data: data, sizes: sizes}}, size)
		if !errors.Is(gotErr, wantErr) || !bytes.Equal(got, want) || !slices.Equal(gotTrace, wantTrace) {
			t.Fatalf("input %q sizes %v buf %d:\ngot  %q %v %v\nwant %q %v %v",
				data, sizes, size, got, gotTrace, gotErr, want, wantTrace, wantErr)
		}
	})
}

// BenchmarkCRLFReader measures the line ending check alone, and the byte-at-a-time
// reference, over a 100 KB body of 64-byte lines read in 32 KiB chunks as io.Copy does.
func BenchmarkCRLFReader(b *testing.B) {
	body := bytes.Repeat([]byte("Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do\r\n"), 1600)
	readers := map[string]func(io.Reader) io.Reader{
		"scan": func(r io.Reader) io.Reader { return &crlfReader{r: r} },
		"byte": func(r io.Reader) io.Reader { return &byteCRLFReader{r: r} },
	}
	for name, newReader := range readers {
		b.Run(name, func(b *testing.B) {
			buf := make([]byte, 32<<10)
			b.SetBytes(int64(len(body)))
			for b.Loop() {
				r := newReader(bytes.NewReader(body))
				for {
					if _, err := r.Read(buf); err != nil {
						if err != io.EOF {
							b.Fatal(err)
						}
						break
					}
				}
			}
		})
	}
}

func TestCRLFReader(t *testing.T) {
	cases := map[string]bool{
		"":               true,
		"a\r\nb\r\n":     true,
		"a\r\nb":         true,
		"a\nb":           false,
		"a\rb":           false,
		"a\r":            false,
		"\n":             false,
		"\r\r\n":         false,
		"a\r\n\r\n.\r\n": true,
	}
	for in, ok := range cases {
		var sb strings.Builder
		_, err := copyByteWise(&sb, &crlfReader{r: strings.NewReader(in)})
		if (err == nil) != ok {
			t.Errorf("%q: err = %v, want ok=%v", in, err, ok)
		}
	}
}

// copyByteWise copies one byte per read, so that a CR and its LF arrive in different reads.
func copyByteWise(w *strings.Builder, r *crlfReader) (int, error) {
	src := r.r
	r.r = oneByteReader{src}
	var buf [16]byte
	n := 0
	for {
		m, err := r.Read(buf[:])
		w.Write(buf[:m])
		n += m
		if err != nil {
			if err.Error() == "EOF" {
				return n, nil
			}
			return n, err
		}
	}
}

type oneByteReader struct {
	r interface{ Read([]byte) (int, error) }
}

func (o oneByteReader) Read(p []byte) (int, error) {
	if len(p) > 1 {
		p = p[:1]
	}
	return o.r.Read(p)
}
