package imapd

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"
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
		"t SELECT INBOX (CONDSTORE QRESYNC (67890007 20050715194045000 41,43:211,214:541 (1:3 4:*)))\r\n",
		"t UID FETCH 1:* (FLAGS MODSEQ) (CHANGEDSINCE 12345 VANISHED)\r\n", "t STORE 1:5 (UNCHANGEDSINCE 0) +FLAGS.SILENT x\r\n",
		"t SEARCH RETURN (MIN MAX COUNT ALL SAVE) MODSEQ \"/flags/\\\\draft\" all 620162338 $\r\n", "t FETCH $ (UID)\r\n",
		"t APPEND INBOX UTF8 (~{3+}\r\nabc)\r\n", "t APPEND INBOX UTF8 ({3+}\r\nabc)\r\n", "t ENABLE UTF8=ACCEPT QRESYNC\r\n",
		"t GETQUOTA \"\"\r\n", "t GETQUOTAROOT INBOX\r\n", "t SETQUOTA \"\" (STORAGE 512 MESSAGE 10)\r\n",
		"t UID SORT RETURN (MIN COUNT) (REVERSE DATE SUBJECT DISPLAYFROM) UTF-8 OR FROM {1}\r\nx 1:*\r\n",
		"t NOTIFY SET STATUS (SELECTED (MessageNew (UID BODY.PEEK[HEADER.FIELDS (From)]) MessageExpunge)) (SUBTREE (a {1}\r\nb) (MessageNew MessageExpunge FlagChange)) (MAILBOXES x NONE)\r\n",
		"t NOTIFY NONE\r\n", "t NOTIFY SET (PERSONAL (MailboxName SubscriptionChange)) (INBOXES (MessageNew MessageExpunge))\r\n",
		"t SORT (ARRIVAL) US-ASCII ALL\r\n", "t THREAD REFERENCES UTF-8 (SEEN NOT $)\r\n", "t UID THREAD ORDEREDSUBJECT {5+}\r\nUTF-8 ALL\r\n",
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
				for more := true; more && err == nil; {
					r.takeAppendLiteral()
					if _, err = io.CopyN(io.Discard, br, cmd.Literal.size); err != nil {
						return
					}
					more, err = r.appendNext(cmd)
				}
			}
			if r.used > lim.MaxCommand {
				t.Fatalf("command used %d octets, limit %d", r.used, lim.MaxCommand)
			}
			if err == nil {
				if cmd.Tag == "" || cmd.Name == "" || len(cmd.Seq.Ranges) > lim.MaxSeqRanges || len(cmd.Flags) > lim.MaxListItems {
					t.Fatalf("bad command %+v", cmd)
				}
				if n := cmd.Notify; n != nil && (n.None == (len(n.Groups) > 0) || len(n.Groups) > lim.MaxListItems) {
					t.Fatalf("bad NOTIFY %+v", n)
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

// FuzzSession feeds arbitrary client bytes to a whole logged-in session with a mailbox
// selected, over a real connection to a server on the sqlite store. The session must end
// when the input does (no deadlock) and must not panic (the recover would hide it, so the
// log is checked).
func FuzzSession(f *testing.F) {
	for _, seed := range []string{
		"c FETCH 1:* (FLAGS BODY.PEEK[HEADER.FIELDS (Subject)] BODYSTRUCTURE ENVELOPE BODY[1]<0.5>)\r\n",
		"c UID SEARCH OR TEXT x NOT (SEEN FROM y) 1:*\r\nd STORE 1 +FLAGS (\\Deleted)\r\ne EXPUNGE\r\n",
		"c APPEND INBOX {5+}\r\nhello\r\nd CREATE x/y\r\ne RENAME x z\r\nf LIST \"\" *\r\n",
		"c COPY 1:2 Trash\r\nd MOVE 1 Archive\r\ne IDLE\r\nDONE\r\nf CLOSE\r\n",
		"c STATUS INBOX (MESSAGES UNSEEN SIZE)\r\nd LOGIN {3}\r\nabc {2}\r\nxy\r\n", "c NOOP\r\n\x00\r\n",
		"c ENABLE QRESYNC\r\nd SELECT INBOX (QRESYNC (1 1 1:* (1 1)))\r\ne UID FETCH 1:* FLAGS (CHANGEDSINCE 1 VANISHED)\r\nf STORE 1 +FLAGS \\Deleted\r\ng EXPUNGE\r\n",
		"c ENABLE IMAP4rev2\r\nd FETCH 1:* (BINARY[1]<0.3> BINARY.SIZE[2] BINARY.PEEK[])\r\ne LIST (SUBSCRIBED RECURSIVEMATCH) \"\" * RETURN (STATUS (SIZE))\r\n",
		"c STORE 1:* (UNCHANGEDSINCE 1) FLAGS (\\Seen)\r\nd SEARCH RETURN (SAVE MIN) MODSEQ 1\r\ne MOVE $ Trash\r\nf UID SEARCH RETURN (ALL COUNT) $\r\n",
		"c SORT RETURN (SAVE ALL) (REVERSE SIZE CC) UTF-8 TEXT a\r\nd THREAD REFERENCES UTF-8 $\r\ne UID THREAD ORDEREDSUBJECT US-ASCII 1:*\r\n",
	} {
		f.Add([]byte(seed))
	}
	e := newEnv(f, Config{AllowPlaintextAuth: true})
	e.deliver(f, "INBOX", msgA)
	e.deliver(f, "INBOX", msgB)
	f.Fuzz(func(t *testing.T, in []byte) {
		e.fuzzSession(t, "a LOGIN alice@example.org "+alicePass+"\r\nb SELECT INBOX\r\n", in)
	})
}

// fuzzSession sends prefix, then in, and half-closes: the session must end when the input
// does (no deadlock) and must not panic (the recover would hide it, so the log is checked).
func (e *testEnv) fuzzSession(t *testing.T, prefix string, in []byte) {
	c, err := net.Dial("tcp", e.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(time.Minute))
	go func() {
		c.Write([]byte(prefix))
		c.Write(in)
		c.(*net.TCPConn).CloseWrite()
	}()
	if _, err := io.Copy(io.Discard, c); err != nil {
		t.Fatalf("session did not end with the input: %v", err)
	}
	if l := e.logs.Take(); strings.Contains(l, "imap: panic") {
		t.Fatalf("panic:\n%s", l)
	}
}
