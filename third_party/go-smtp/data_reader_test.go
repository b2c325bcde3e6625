package smtp

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/ioutil"
	"strings"
	"testing"
)

// byteDataReader is dataReader.Read as it was before copyBuffered: the state
// machine fed one ReadByte at a time. It is the reference the tests compare
// dataReader with.
type byteDataReader struct {
	r     *bufio.Reader
	state int

	limited bool
	n       int64
}

func (r *byteDataReader) Read(b []byte) (n int, err error) {
	if r.limited {
		if r.n <= 0 {
			return 0, ErrDataTooLarge
		}
		if int64(len(b)) > r.n {
			b = b[0:r.n]
		}
	}
	for n < len(b) && r.state != stateEOF {
		var c byte
		c, err = r.r.ReadByte()
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			break
		}
		switch r.state {
		case stateBeginLine:
			if c == '.' {
				r.state = stateDot
				continue
			}
			if c == '\r' {
				r.state = stateCR
				break
			}
			r.state = stateData
		case stateDot:
			if c == '\r' {
				r.state = stateDotCR
				continue
			}
			r.state = stateData
		case stateDotCR:
			if c == '\n' {
				r.state = stateEOF
				continue
			}
			r.state = stateData
		case stateCR:
			if c == '\n' {
				r.state = stateBeginLine
				break
			}
			r.state = stateData
		case stateData:
			if c == '\r' {
				r.state = stateCR
			}
		}
		b[n] = c
		n++
	}
	if err == nil && r.state == stateEOF {
		err = io.EOF
	}
	if r.limited {
		r.n -= int64(n)
	}
	return
}

// byteLineLimitReader is lineLimitReader.Read as it was before it counted
// from one LF to the next: the reference for lineLimitReader.
type byteLineLimitReader struct {
	R             io.Reader
	LineLimit     int
	curLineLength int
}

func (r *byteLineLimitReader) Read(b []byte) (int, error) {
	if r.curLineLength > r.LineLimit && r.LineLimit > 0 {
		return 0, ErrTooLongLine
	}
	n, err := r.R.Read(b)
	if err != nil {
		return n, err
	}
	if r.LineLimit == 0 {
		return n, nil
	}
	for _, chr := range b[:n] {
		if chr == '\n' {
			r.curLineLength = 0
		}
		r.curLineLength++
		if r.curLineLength > r.LineLimit {
			return 0, ErrTooLongLine
		}
	}
	return n, nil
}

// chunkReader returns data in reads of the given sizes, cycled, so that any
// byte can be the first or the last of a read.
type chunkReader struct {
	data  []byte
	sizes []int
	i     int
}

func (c *chunkReader) Read(p []byte) (int, error) {
	if len(c.data) == 0 {
		return 0, io.EOF
	}
	n := c.sizes[c.i%len(c.sizes)]
	c.i++
	if n < 1 {
		n = 1
	}
	if n > len(p) {
		n = len(p)
	}
	if n > len(c.data) {
		n = len(c.data)
	}
	copy(p, c.data[:n])
	c.data = c.data[n:]
	return n, nil
}

// readTrace reads r until an error, with reads of the given sizes (cycled),
// and returns the bytes, the count of every read and the error.
func readTrace(r io.Reader, sizes []int) (out []byte, counts []int, err error) {
	buf := make([]byte, 8192)
	for i := 0; ; i++ {
		size := sizes[i%len(sizes)]
		if size < 1 {
			size = 1
		}
		if size > len(buf) {
			size = len(buf)
		}
		n, err := r.Read(buf[:size])
		out = append(out, buf[:n]...)
		counts = append(counts, n)
		if err != nil {
			return out, counts, err
		}
	}
}

// dataReaderCase describes one way to feed data to a dataReader.
type dataReaderCase struct {
	data       []byte
	bufSize    int   // size of the bufio.Reader (at least 16)
	chunks     []int // sizes of the reads under the bufio.Reader
	reads      []int // sizes of the reads from the dataReader
	maxMessage int64 // 0 for no limit
}

func (c dataReaderCase) String() string {
	return fmt.Sprintf("data %q bufio %d chunks %v reads %v limit %d", c.data, c.bufSize, c.chunks, c.reads, c.maxMessage)
}

// check reads c.data with dataReader and with byteDataReader and fails unless
// both return the same bytes, the same count from every Read, the same error,
// and leave the same bytes unread behind the end of the data.
func (c dataReaderCase) check(t *testing.T) {
	t.Helper()
	br := bufio.NewReaderSize(&chunkReader{data: c.data, sizes: c.chunks}, c.bufSize)
	got := &dataReader{r: br, limited: c.maxMessage > 0, n: c.maxMessage}
	wantBr := bufio.NewReaderSize(&chunkReader{data: c.data, sizes: c.chunks}, c.bufSize)
	want := &byteDataReader{r: wantBr, limited: c.maxMessage > 0, n: c.maxMessage}

	gotOut, gotCounts, gotErr := readTrace(got, c.reads)
	wantOut, wantCounts, wantErr := readTrace(want, c.reads)
	if !bytes.Equal(gotOut, wantOut) || fmt.Sprint(gotCounts) != fmt.Sprint(wantCounts) || gotErr != wantErr {
		t.Fatalf("%v:\ngot  %q %v %v\nwant %q %v %v", c, gotOut, gotCounts, gotErr, wantOut, wantCounts, wantErr)
	}
	gotRest, _ := ioutil.ReadAll(br)
	wantRest, _ := ioutil.ReadAll(wantBr)
	if !bytes.Equal(gotRest, wantRest) {
		t.Fatalf("%v: left %q unread, want %q", c, gotRest, wantRest)
	}
}

// dataReaderInputs end DATA (or not) in every way the state machine tells
// apart, with dots, CRs and LFs in every position around line starts.
var dataReaderInputs = []string{
	"",
	".\r\n",
	".\r\nMAIL FROM:<a@b>\r\n",
	"a\r\n.\r\n",
	"a\r\n.\r\nQUIT\r\n",
	"a\r\n..\r\n.\r\n",
	"..\r\n...\r\n.a\r\n..b\r\n.\r\nnext",
	"a\r\n.",
	"a\r\n.\r",
	"a\r\n.\r.\r\n.\r\n",
	"a\r\n.\rX\r\n.\r\n",
	"a\r\n.X\r\n.\r\n",
	"a\n.\r\nb\r\n.\r\n",
	"a\n.\nb\r\n.\r\n",
	"a\r.\r\nb\r\n.\r\n",
	"a\r\r\n.\r\nb\r\n.\r\n",
	"a\r\n\r\n.\r\n",
	"\r\n.\r\n",
	"\r\r\n.\r\n.\r\n",
	"\n.\r\n.\r\n",
	"a\r\n\r.\r\n.\r\n",
	"line one\r\nline two\r\n\r\n.\r\n",
	"no end marker\r\n",
	"x\r\n.\r\n.\r\n",
	strings.Repeat("0123456789", 30) + "\r\n." + strings.Repeat("a", 40) + "\r\n.\r\n",
}

func TestDataReaderMatchesByteReader(t *testing.T) {
	var inputs []string
	inputs = append(inputs, dataReaderInputs...)
	// Put each of a few tails at every offset from the start of the stream,
	// so that each byte of it is the first and the last of a buffer fill.
	for _, tail := range []string{"\r\n.\r\nrest", "\r\n..\r\n.\r\n", "\r\n.\r\r\n.\r\n", "\r\n.x\r\n.\r\n"} {
		for k := 0; k < 40; k++ {
			inputs = append(inputs, strings.Repeat("y", k)+tail)
		}
	}
	for _, in := range inputs {
		for _, bufSize := range []int{16, 17, 23, 4096} {
			for _, chunks := range [][]int{{1}, {2}, {3}, {5, 1, 7}, {4096}} {
				for _, reads := range [][]int{{1}, {2}, {3, 11}, {64}, {4096}} {
					for _, limit := range []int64{0, 1, 5, 64} {
						dataReaderCase{[]byte(in), bufSize, chunks, reads, limit}.check(t)
					}
				}
			}
		}
	}
}

func FuzzDataReader(f *testing.F) {
	for _, in := range dataReaderInputs {
		f.Add([]byte(in), uint8(0), uint8(1), uint8(3), uint16(7), uint16(0))
		f.Add([]byte(in), uint8(200), uint8(255), uint8(255), uint16(4096), uint16(30))
	}
	f.Fuzz(func(t *testing.T, data []byte, bufSize, chunk1, chunk2 uint8, read uint16, limit uint16) {
		dataReaderCase{
			data:       data,
			bufSize:    16 + int(bufSize),
			chunks:     []int{int(chunk1), int(chunk2), 4096},
			reads:      []int{int(read), 1, 4096},
			maxMessage: int64(limit),
		}.check(t)
	})
}

// checkLineLimitReader reads data through lineLimitReader and
// byteLineLimitReader and fails unless both return the same.
func checkLineLimitReader(t *testing.T, data []byte, limit int, chunks, reads []int) {
	t.Helper()
	got := &lineLimitReader{R: &chunkReader{data: data, sizes: chunks}, LineLimit: limit}
	want := &byteLineLimitReader{R: &chunkReader{data: data, sizes: chunks}, LineLimit: limit}
	gotOut, gotCounts, gotErr := readTrace(got, reads)
	wantOut, wantCounts, wantErr := readTrace(want, reads)
	if !bytes.Equal(gotOut, wantOut) || fmt.Sprint(gotCounts) != fmt.Sprint(wantCounts) || !errors.Is(gotErr, wantErr) {
		t.Fatalf("data %q limit %d chunks %v reads %v:\ngot  %q %v %v\nwant %q %v %v",
			data, limit, chunks, reads, gotOut, gotCounts, gotErr, wantOut, wantCounts, wantErr)
	}
}

func TestLineLimitReaderMatchesByteReader(t *testing.T) {
	inputs := []string{"", "\n", "\n\n\n", "abc", "abc\n", "abcd\nab\nabcde\n", "ab\r\nabc\r\n", "a\nabcdef"}
	for _, in := range inputs {
		for _, limit := range []int{-1, 0, 1, 2, 3, 4, 5, 6, 100} {
			for _, chunks := range [][]int{{1}, {2}, {3}, {100}} {
				for _, reads := range [][]int{{1}, {4}, {100}} {
					checkLineLimitReader(t, []byte(in), limit, chunks, reads)
				}
			}
		}
	}
}

func FuzzLineLimitReader(f *testing.F) {
	f.Add([]byte("abcd\nab\nabcde\n"), int8(4), uint8(3), uint8(5))
	f.Add([]byte("\n\nabc"), int8(-1), uint8(1), uint8(1))
	f.Fuzz(func(t *testing.T, data []byte, limit int8, chunk, read uint8) {
		checkLineLimitReader(t, data, int(limit), []int{int(chunk), 7}, []int{int(read), 4096})
	})
}

// BenchmarkDataReader reads a 100 KB message of 64-byte lines, some of them
// dot-stuffed, as io.Copy would, through a 4096-byte bufio.Reader (the size
// net/textproto uses); "byte" is the byte-wise reference.
func BenchmarkDataReader(b *testing.B) {
	var msg bytes.Buffer
	for msg.Len() < 100<<10 {
		msg.WriteString("Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do\r\n")
		msg.WriteString("..stuffed\r\n")
	}
	msg.WriteString(".\r\n")
	data := msg.Bytes()
	newReaders := map[string]func(*bufio.Reader) io.Reader{
		"scan": func(br *bufio.Reader) io.Reader { return &dataReader{r: br} },
		"byte": func(br *bufio.Reader) io.Reader { return &byteDataReader{r: br} },
	}
	for _, name := range []string{"scan", "byte"} {
		newReader := newReaders[name]
		b.Run(name, func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			br := bufio.NewReader(nil)
			buf := make([]byte, 32<<10)
			for i := 0; i < b.N; i++ {
				br.Reset(bytes.NewReader(data))
				r := newReader(br)
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

// BenchmarkLineLimitReader checks 100 KB of 64-byte lines in 4096-byte reads;
// "byte" is the byte-wise reference.
func BenchmarkLineLimitReader(b *testing.B) {
	data := bytes.Repeat([]byte("Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do\r\n"), 1600)
	newReaders := map[string]func(io.Reader) io.Reader{
		"scan": func(r io.Reader) io.Reader { return &lineLimitReader{R: r, LineLimit: 1000} },
		"byte": func(r io.Reader) io.Reader { return &byteLineLimitReader{R: r, LineLimit: 1000} },
	}
	for _, name := range []string{"scan", "byte"} {
		newReader := newReaders[name]
		b.Run(name, func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			buf := make([]byte, 4096)
			for i := 0; i < b.N; i++ {
				r := newReader(bytes.NewReader(data))
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
