package smtpclient

import (
	"bufio"
	"io"
	"net"
	"strings"
	"testing"
	"testing/iotest"
	"time"
)

func TestWriteData(t *testing.T) {
	for in, want := range map[string]string{
		"":                          ".\r\n",
		"a":                         "a\r\n.\r\n",
		"a\r\n":                     "a\r\n.\r\n",
		".":                         "..\r\n.\r\n",
		".a\r\n.\r\n..b\r\n":        "..a\r\n..\r\n...b\r\n.\r\n",
		"a\nb\rc\r\r\n\n.d":         "a\r\nb\r\nc\r\n\r\n\r\n..d\r\n.\r\n",
		"x\r\n.\r\nQUIT\r\n":        "x\r\n..\r\nQUIT\r\n.\r\n", // no smuggled end of data
		"x\n.\nMAIL FROM:<a@b>\r\n": "x\r\n..\r\nMAIL FROM:<a@b>\r\n.\r\n",
		"a\r":                       "a\r\n.\r\n",
		"a\r.b":                     "a\r\n..b\r\n.\r\n",
	} {
		// Whole, and one byte per read: CRs and dots at the edges of reads.
		for _, r := range []io.Reader{strings.NewReader(in), iotest.OneByteReader(strings.NewReader(in))} {
			var b strings.Builder
			w := bufio.NewWriter(&b)
			if err := writeData(w, r, make([]byte, 7)); err != nil {
				t.Fatal(err)
			}
			w.Flush()
			if b.String() != want {
				t.Errorf("%q: %q, want %q", in, b.String(), want)
			}
		}
	}
}

func TestScan(t *testing.T) {
	for in, want := range map[string][2]bool{
		"Subject: a\r\n\r\nbody\r\n":                                        {false, false},
		"Subject: a\r\n\r\nb\xc3\xa9\r\n":                                   {true, false},
		"Subject: caf\xc3\xa9\r\n\r\nbody\r\n":                              {true, true},
		"Subject: a\n\nb\xc3\xa9\n":                                         {true, false},
		"Subject: a\r\n" + strings.Repeat("x", 100000) + "\xc3\xa9\r\n\r\n": {true, true},
	} {
		e, u, err := Scan(strings.NewReader(in))
		if err != nil || e != want[0] || u != want[1] {
			t.Errorf("Scan(%.40q) = %v, %v, %v; want %v", in, e, u, err, want)
		}
	}
}

func TestReplyParsing(t *testing.T) {
	if e, rest, ok := enhancedCode("5.1.1 no such user", 550); !ok || e != "5.1.1" || rest != "no such user" {
		t.Fatal(e, rest, ok)
	}
	for _, bad := range []string{"4.1.1 class differs", "5.1 short", "5.1.1234 long", "x.1.1 letters", "5.1.1.1 four"} {
		if _, _, ok := enhancedCode(bad, 550); ok {
			t.Errorf("%q taken as an enhanced code", bad)
		}
	}
	if got := xtext("a+b=c d\xc3\xa9"); got != "a+2Bb+3Dc+20d+C3+A9" {
		t.Fatal(got)
	}
	if !validNotify("SUCCESS,DELAY") || validNotify("NEVER,SUCCESS") || validNotify("SOMETIMES") {
		t.Fatal("validNotify")
	}
}

// FuzzReadReply feeds server output to the reply reader: it must return a reply or an
// error, within the bounds, never panic.
func FuzzReadReply(f *testing.F) {
	for _, s := range []string{"220 hi\r\n", "250-a\r\n250-SIZE 10\r\n250 8BITMIME\r\n", "550 5.1.1 x\r\n", "999\r\n", "2\r\n", "250-x\n250 y\n"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		c1, c2 := net.Pipe()
		defer c1.Close()
		go func() { c2.Write(b); c2.Close() }()
		cn := newConn(c1, c1)
		r, err := cn.readReply(time.Second)
		if err != nil {
			return
		}
		if r.Code < 200 || r.Code > 599 || len(r.Text) > maxReplyLine*maxReplyLines {
			t.Fatalf("reply %+v", r)
		}
		parseEHLO(r)
	})
}
