package smtp

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net/textproto"
	"strings"
	"testing"
)

// checkDataWriter writes data in pieces of the given sizes (cycled) through
// dataWriter and through the DotWriter of net/textproto, closes both, and
// fails unless both wrote the same bytes and returned the same counts.
func checkDataWriter(t *testing.T, data []byte, sizes []int) {
	t.Helper()
	var got, want bytes.Buffer
	gw := &dataWriter{c: &Client{}, w: bufio.NewWriterSize(&got, 16)}
	ww := textproto.NewWriter(bufio.NewWriterSize(&want, 16)).DotWriter()
	var gotCounts, wantCounts []int
	for i, rest := 0, data; len(rest) > 0; i++ {
		size := sizes[i%len(sizes)]
		if size < 1 {
			size = 1
		}
		if size > len(rest) {
			size = len(rest)
		}
		n, err := gw.Write(rest[:size])
		if err != nil {
			t.Fatal(err)
		}
		gotCounts = append(gotCounts, n)
		n, err = ww.Write(rest[:size])
		if err != nil {
			t.Fatal(err)
		}
		wantCounts = append(wantCounts, n)
		rest = rest[size:]
	}
	if err := gw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := ww.Close(); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Bytes(), want.Bytes()) || fmt.Sprint(gotCounts) != fmt.Sprint(wantCounts) {
		t.Fatalf("data %q in writes of %v:\ngot  %q %v\nwant %q %v", data, sizes, got.Bytes(), gotCounts, want.Bytes(), wantCounts)
	}
}

var dataWriterInputs = []string{
	"",
	"a",
	"a\r\n",
	".",
	".\r\n",
	"..\r\n.a\r\n...\r\n",
	"a\nb\n.c\n",
	"a\rb\r.\r\n.",
	"a\r\r\n.\r\n",
	"\r",
	"\n",
	"\r\n.\r\n",
	"line one\r\n.line two\r\n\r\n.\r\n..\r\nend",
	strings.Repeat("0123456789", 50) + "\r\n." + strings.Repeat("x", 100),
}

func TestDataWriterMatchesDotWriter(t *testing.T) {
	for _, in := range dataWriterInputs {
		for _, sizes := range [][]int{{1}, {2}, {3}, {5, 1, 7}, {4096}} {
			checkDataWriter(t, []byte(in), sizes)
		}
	}
}

func FuzzDataWriter(f *testing.F) {
	for _, in := range dataWriterInputs {
		f.Add([]byte(in), uint8(1), uint8(3))
		f.Add([]byte(in), uint8(200), uint8(0))
	}
	f.Fuzz(func(t *testing.T, data []byte, size1, size2 uint8) {
		checkDataWriter(t, data, []int{int(size1), int(size2), 4096})
	})
}

// TestDataWriterClosedByCommand checks that a command sent while a DATA
// writer is open ends the data first, as it did with the DotWriter of
// net/textproto.
func TestDataWriterClosedByCommand(t *testing.T) {
	server := "250 ok\r\n250 ok\r\n354 go ahead\r\n250 ok\r\n250 ok\r\n"
	var wrote bytes.Buffer
	var fake faker
	fake.ReadWriter = struct {
		io.Reader
		io.Writer
	}{strings.NewReader(server), &wrote}
	c := NewClient(fake)
	c.didHello = true
	if err := c.Mail("a@example.org", nil); err != nil {
		t.Fatal(err)
	}
	if err := c.Rcpt("b@example.org", nil); err != nil {
		t.Fatal(err)
	}
	w, err := c.Data()
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(w, "unfinished line")
	if err := c.Reset(); err != nil {
		t.Fatal(err)
	}
	want := "MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.org>\r\nDATA\r\nunfinished line\r\n.\r\nRSET\r\n"
	if wrote.String() != want {
		t.Fatalf("wrote %q, want %q", wrote.String(), want)
	}
}

// BenchmarkDataWriter writes a 100 KB message of 80-byte lines, one Write per
// line; "textproto" is the DotWriter of net/textproto.
func BenchmarkDataWriter(b *testing.B) {
	line := []byte(strings.Repeat("x", 78) + "\r\n")
	newWriters := map[string]func(*bufio.Writer) io.WriteCloser{
		"scan":      func(w *bufio.Writer) io.WriteCloser { return &dataWriter{c: &Client{}, w: w} },
		"textproto": func(w *bufio.Writer) io.WriteCloser { return textproto.NewWriter(w).DotWriter() },
	}
	for _, name := range []string{"scan", "textproto"} {
		newWriter := newWriters[name]
		b.Run(name, func(b *testing.B) {
			b.SetBytes(100 << 10)
			bw := bufio.NewWriter(io.Discard)
			for i := 0; i < b.N; i++ {
				w := newWriter(bw)
				for n := 0; n < 100<<10; n += len(line) {
					w.Write(line)
				}
				w.Close()
			}
		})
	}
}
