package milter_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"io"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"petrel/internal/mail/door"
	"petrel/internal/mail/milter"
)

// packet frames one milter packet: length, code, data.
func packet(code byte, data string) []byte {
	b := binary.BigEndian.AppendUint32(nil, uint32(len(data)+1))
	return append(append(b, code), data...)
}

// FuzzReply feeds a milter's answers (everything after a valid negotiation) to the client:
// whatever the bytes, every stage returns a verdict or an error, never panics or hangs, and
// the header changes it yields keep the stored header well formed.
func FuzzReply(f *testing.F) {
	cont := packet('c', "")
	f.Add(bytes.Join([][]byte{cont, cont, cont, cont, cont, cont, cont, cont, packet('h', "X-Spam\x00Yes\x00"), packet('a', "")}, nil))
	f.Add(bytes.Join([][]byte{cont, cont, cont, cont, packet('y', "550 5.7.1 Gtube pattern\x00")}, nil))
	f.Add(bytes.Join([][]byte{cont, cont, cont, cont, cont, cont, cont, cont,
		packet('m', "\x00\x00\x00\x01Subject\x00*** SPAM *** hello\x00"), packet('i', "\x00\x00\x00\x00X-First\x00a\r\nb\x00"),
		packet('q', "reason\x00"), packet('p', ""), packet('c', "")}, nil))
	f.Add(packet('y', "999 nonsense"))
	f.Add(packet('y', "25"))
	f.Add([]byte{0, 0, 0, 0})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 'c'})
	f.Add(packet('m', "\x00\x00"))
	f.Add(packet('h', "NoNul"))

	sock := filepath.Join(f.TempDir(), "fuzz.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { l.Close() })
	replies := make(chan []byte, 1)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			reply := <-replies
			go func() {
				defer c.Close()
				// Negotiation: read the MTA's OPTNEG, answer version 6 with the actions
				// offered and no protocol steps left out.
				var hdr [4]byte
				if _, err := io.ReadFull(c, hdr[:]); err != nil {
					return
				}
				io.CopyN(io.Discard, c, int64(binary.BigEndian.Uint32(hdr[:])))
				neg := binary.BigEndian.AppendUint32(nil, 6)
				neg = binary.BigEndian.AppendUint32(neg, 1|1<<4|1<<5)
				neg = binary.BigEndian.AppendUint32(neg, 0)
				c.Write(packet('O', string(neg)))
				// Then hang up: an answer cut short ends in an error at once, not at the
				// deadline (a silent milter is TestMilterSilent's).
				c.Write(reply)
			}()
		}
	}()
	const hdr = "From: <a@example.org>\r\nSubject: hello\r\n\r\n"
	ff := milter.New("fuzz", "unix", sock)
	f.Fuzz(func(t *testing.T, reply []byte) {
		replies <- reply
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		s, err := ff.Begin(ctx, conn())
		if err != nil {
			return
		}
		defer s.Close()
		var v door.Verdict
		stages := []func() (door.Verdict, error){
			func() (door.Verdict, error) { return s.Mail(ctx, "a@example.org") },
			func() (door.Verdict, error) { return s.Rcpt(ctx, "b@example.test") },
			func() (door.Verdict, error) { return s.Data(ctx, []byte(hdr), strings.NewReader("Hello.\r\n")) },
		}
		for _, stage := range stages {
			if v, err = stage(); err != nil {
				return
			}
			if v.Action < door.FilterContinue || v.Action > door.FilterQuarantine {
				t.Fatalf("action %d", v.Action)
			}
			if (v.Action == door.FilterReject || v.Action == door.FilterTempFail) && v.Code != 0 && v.Code/100 != 4 && v.Code/100 != 5 {
				t.Fatalf("refusal with code %d", v.Code)
			}
		}
		out := door.ApplyHeaderMods([]byte(hdr), v.Mods)
		if !bytes.HasSuffix(out, []byte("\r\n\r\n")) {
			t.Fatalf("header lost its end: %q", out)
		}
		if bytes.Count(out, []byte("\n")) != bytes.Count(out, []byte("\r\n")) || bytes.Count(out, []byte("\r")) != bytes.Count(out, []byte("\r\n")) {
			t.Fatalf("bare CR or LF in %q", out)
		}
		for _, line := range strings.Split(strings.TrimSuffix(string(out), "\r\n\r\n"), "\r\n") {
			if line == "" || !strings.Contains(line, ":") && line[0] != ' ' && line[0] != '\t' {
				t.Fatalf("not a field line %q in %q", line, out)
			}
		}
	})
}
