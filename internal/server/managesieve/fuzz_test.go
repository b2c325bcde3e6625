package managesieve

import (
	"bufio"
	"errors"
	"io"
	"strings"
	"testing"
)

// FuzzReadCommand feeds arbitrary bytes to the command reader: it must never panic, never
// return more literal bytes than allowed, and end (the input is finite).
func FuzzReadCommand(f *testing.F) {
	for _, seed := range []string{
		"CAPABILITY\r\n", "PUTSCRIPT \"a\" {5+}\r\nkeep;\r\n", "PUTSCRIPT \"a\" {5}\r\nkeep;\r\n",
		"AUTHENTICATE \"PLAIN\" \"AGEAYg==\"\r\n", "HAVESPACE \"x\" 123\r\n", "NOOP \"a\\\"b\\\\\"\r\n",
		"\"resp\"\r\n", "{3+}\r\nabc\r\n", "X {99999999+}\r\n", "X \"unclosed\r\n",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, in string) {
		r := bufio.NewReaderSize(strings.NewReader(in), 64)
		for i := 0; i < 100; i++ {
			_, args, err := readCommand(r, 256, 1024)
			for _, a := range args {
				if a.literal && len(a.s) > 1024 {
					t.Fatalf("literal of %d bytes passed the limit", len(a.s))
				}
			}
			var se syntaxError
			if err != nil && !errors.As(err, &se) {
				if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, errTooLong) {
					return
				}
				t.Fatalf("unexpected error %v", err)
			}
		}
	})
}
