package imapd

import (
	"bufio"
	"bytes"
	"strings"
	"testing"
	"time"
)

func TestWriter(t *testing.T) {
	var buf bytes.Buffer
	w := &respWriter{bw: bufio.NewWriter(&buf)}
	w.str("* 1 FETCH (")
	w.string(`a "q" \b`)
	w.sp()
	w.string("line\r\nbreak")
	w.sp()
	w.string("café")
	w.sp()
	w.nstring("", false)
	w.sp()
	w.mailbox("Entwürfe")
	w.sp()
	w.flags([]string{`\Seen`, "$Junk"})
	w.sp()
	w.dateTime(time.Date(1996, 7, 17, 2, 44, 25, 0, time.FixedZone("", -7*3600)))
	w.sp()
	w.num(4294967295)
	w.sp()
	if err := w.literal(3, strings.NewReader("abcdef")); err != nil {
		t.Fatal(err)
	}
	w.byte(')')
	w.crlf()
	w.errorReply("t", &Error{Kind: NO, Code: "TRYCREATE", Text: "No such mailbox"})
	w.errorReply("", badf("Missing tag"))
	w.errorReply("t", errLiteralBYE)
	w.bw.Flush()
	want := "* 1 FETCH (\"a \\\"q\\\" \\\\b\" {11}\r\nline\r\nbreak {5}\r\ncafé NIL Entw&APw-rfe (\\Seen $Junk) " +
		"\"17-Jul-1996 02:44:25 -0700\" 4294967295 {3}\r\nabc)\r\n" +
		"t NO [TRYCREATE] No such mailbox\r\n* BAD Missing tag\r\n* BYE [TOOBIG] Literal too large\r\n"
	if buf.String() != want {
		t.Errorf("got\n%q\nwant\n%q", buf.String(), want)
	}

	// With UTF-8 enabled, 8-bit text is quoted and mailbox names are not encoded.
	buf.Reset()
	w.utf8 = true
	w.string("café")
	w.sp()
	w.mailbox("Entwürfe")
	w.bw.Flush()
	if buf.String() != `"café" "Entwürfe"` {
		t.Errorf("utf8: %q", buf.String())
	}

	// A short body is an error: the client would lose its place in the stream.
	if err := w.literal(10, strings.NewReader("abc")); err == nil {
		t.Error("short literal: no error")
	}
}
