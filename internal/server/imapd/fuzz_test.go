package imapd

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzReadCommand feeds arbitrary client bytes to the command reader the way the session
// does (skipRest after an error, BYE ends). It must not panic, must terminate, must never
// read past what a command may hold, and must keep its limits in what it returns.
func FuzzReadCommand(f *testing.F) {
	for _, seed := range []string{
		"a1 CAPABILITY\r\n", "t LOGIN {5}\r\nalice {3+}\r\nx y\r\n", "t LOGIN ( {13+}\r\nx CAPABILITY\r\r\nb NOOP\r\n",
		"t UID FETCH 1:*,5 (UID FLAGS BODY.PEEK[1.2.HEADER.FIELDS (From To)]<0.100> BINARY[2] BINARY.SIZE[])\r\n",
		"t SEARCH RETURN (SAVE) CHARSET UTF-8 OR (SEEN FROM \"a\") NOT 1:3 HEADER X {3}\r\nabc SINCE 1-Feb-2024\r\n",
		"t APPEND INBOX (\\Seen) \" 7-Feb-1994 21:52:25 -0800\" {3}\r\nabc\r\n", "t APPEND INBOX ~{3+}\r\nabc\r\n",
		"t LIST (SUBSCRIBED) \"\" (a b) RETURN (STATUS (MESSAGES))\r\n", "t STORE 1 +FLAGS.SILENT \\Deleted x\r\n",
		"t ID (\"a\" NIL)\r\n", "t LOGIN {4294967295}\r\n", "t LOGIN {4294967295+}\r\n", "t SEARCH ((((((SEEN))))))\r\n",
		"t NOOP\n", "\r\n", "t UID EXPUNGE $\r\n", "t ENABLE IMAP4rev2\r\n", "t STATUS x (MESSAGES UIDNEXT)\r\n",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		lim := Limits{MaxCommand: 256, MaxDepth: 8, MaxListItems: 8, MaxSeqRanges: 8}
		counter := &countingReader{r: bytes.NewReader(in)}
		br := bufio.NewReaderSize(counter, 16)
		r := newReader(br, lim, func() error { return nil })
		for n := 0; ; n++ {
			if n > len(in) {
				t.Fatalf("more commands than input bytes")
			}
			cmd, err := r.readCommand()
			if err == nil && cmd.Name == "APPEND" {
				if _, err = io.CopyN(io.Discard, br, cmd.Literal.size); err != nil {
					return
				}
				err = r.appendDone()
			}
			if r.used > lim.MaxCommand {
				t.Fatalf("command used %d octets, limit %d", r.used, lim.MaxCommand)
			}
			if err == nil {
				if cmd.Tag == "" || cmd.Name == "" || len(cmd.Seq.Ranges) > lim.MaxSeqRanges || len(cmd.Flags) > lim.MaxListItems {
					t.Fatalf("bad command %+v", cmd)
				}
				continue
			}
			var e *Error
			if !errors.As(err, &e) || e.Kind == BYE {
				return // I/O error (end of input) or a BYE: the session ends
			}
			if err := r.skipRest(); err != nil {
				return
			}
		}
	})
}

type countingReader struct {
	r *bytes.Reader
	n int
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}

// FuzzMUTF7: encoding then decoding gives the name back, and a name that decodes has one
// encoding only (so two spellings never name two mailboxes).
func FuzzMUTF7(f *testing.F) {
	for _, s := range []string{"INBOX", "Entw&APw-rfe", "&ZeVnLIqe-", "a&-b", "&2D3eAA-", "&AOl-", "日本語"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if utf8.ValidString(s) && !strings.ContainsRune(s, utf8.RuneError) {
			enc := EncodeMUTF7(s)
			if dec, ok := DecodeMUTF7(enc); !ok || dec != s {
				t.Fatalf("Decode(Encode(%q)) = %q, %v (encoded %q)", s, dec, ok, enc)
			}
		}
		if dec, ok := DecodeMUTF7(s); ok {
			if enc := EncodeMUTF7(dec); enc != s {
				t.Fatalf("Decode(%q) = %q, which encodes as %q", s, dec, enc)
			}
		}
	})
}
