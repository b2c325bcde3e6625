package pop3client

import (
	"bufio"
	"bytes"
	"net"
	"strings"
	"testing"
	"time"
)

func FuzzParseStatus(f *testing.F) {
	for _, s := range []string{"+OK", "+OK hi", "-ERR", "-ERR [IN-USE] x", "+OKx", "", "* x", "-ERR [", "+OK [SYS/TEMP]"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		ok, text, err := ParseStatus(line)
		if err != nil {
			return
		}
		if ok != strings.HasPrefix(line, "+OK") || !strings.HasSuffix(line, text) {
			t.Fatalf("ParseStatus(%q) = %v %q", line, ok, text)
		}
		code, rest := splitCode(text)
		if code != "" && !strings.Contains(text, "["+code+"]") {
			t.Fatalf("code %q from %q", code, text)
		}
		_ = rest
	})
}

func FuzzParseListLine(f *testing.F) {
	for _, s := range []string{"1 200", "2 abc", "0 x", "-1 x", "+1 x", "1  x y", "x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		num, arg, err := ParseListLine(line)
		if err == nil && (num < 1 || strings.Contains(arg, " ")) {
			t.Fatalf("ParseListLine(%q) = %d %q", line, num, arg)
		}
	})
}

// FuzzReadBody feeds arbitrary bytes as a multi-line response: the reader must end at the
// first "." line, never include it, and never panic.
func FuzzReadBody(f *testing.F) {
	f.Add([]byte("a\r\n..b\r\n.\r\n"))
	f.Add([]byte(".\r\n"))
	f.Add([]byte("no end"))
	f.Add([]byte(".x\n.\n"))
	f.Fuzz(func(t *testing.T, wire []byte) {
		a, b := net.Pipe()
		defer a.Close()
		defer b.Close()
		go func() {
			b.Write(wire)
			b.Close()
		}()
		c := &Client{timeout: time.Second}
		c.setConn(a)
		var out bytes.Buffer
		n, err := c.readBody(&out)
		if n != int64(out.Len()) {
			t.Fatalf("n=%d len=%d", n, out.Len())
		}
		if err == nil {
			// The output must be the unstuffed lines before the terminator.
			var want bytes.Buffer
			r := bufio.NewReader(bytes.NewReader(wire))
			for {
				line, _ := r.ReadString('\n')
				if line == ".\r\n" || line == ".\n" {
					break
				}
				want.WriteString(strings.TrimPrefix(line, "."))
			}
			if want.String() != out.String() {
				t.Fatalf("body %q, want %q", out.String(), want.String())
			}
		}
	})
}
