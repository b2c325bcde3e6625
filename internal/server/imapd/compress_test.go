package imapd

import (
	"bufio"
	"bytes"
	"compress/flate"
	"encoding/hex"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"petrel/internal/mailtest/dialog"
)

// deflateConn is the client side of RFC 4978 with the standard library's compress/flate:
// every Write is compressed and sync-flushed, reads are inflated.
type deflateConn struct {
	net.Conn
	zw *flate.Writer
	zr io.Reader
}

func newDeflateConn(c net.Conn) *deflateConn {
	zw, _ := flate.NewWriter(c, flate.DefaultCompression)
	return &deflateConn{Conn: c, zw: zw, zr: flate.NewReader(c)}
}

func (c *deflateConn) Read(p []byte) (int, error) { return c.zr.Read(p) }

func (c *deflateConn) Write(p []byte) (int, error) {
	if _, err := c.zw.Write(p); err != nil {
		return 0, err
	}
	return len(p), c.zw.Flush()
}

// compressedConn logs in over STARTTLS, starts COMPRESS DEFLATE and returns the connection,
// whose octets from now on are compressed, with a deadline of 10 s.
func (e *testEnv) compressedConn(t *testing.T) net.Conn {
	t.Helper()
	d := e.login(t)
	e.run(t, d, `
		C: z COMPRESS DEFLATE
		S: z OK DEFLATE active
	`)
	nc := d.NetConn()
	nc.SetDeadline(time.Now().Add(time.Minute))
	return nc
}

// compressed is compressedConn with a dialog over the compressed stream.
func (e *testEnv) compressed(t *testing.T) *dialog.Dialog {
	t.Helper()
	return dialog.Start(t, dialog.New(newDeflateConn(e.compressedConn(t)), dialog.Lines))
}

// A compressed session works like any other: commands, literals, IDLE woken by a delivery,
// and a second COMPRESS is refused. Waiting (for a command, in IDLE) longer than
// CommandTimeout is no slow command: the octets of the client's flush that decode to nothing
// do not start one.
func TestCompress(t *testing.T) {
	// Each command must beat it (an expired read deadline fails a read even of bytes already
	// waiting, and a loaded machine can keep the session off the CPU for a good part of a
	// second), and the test waits twice it three times.
	const commandTimeout = time.Second
	e := newEnv(t, Config{CommandTimeout: commandTimeout, Compress: true})
	e.deliver(t, "INBOX", msgA)
	d := e.compressed(t)
	e.run(t, d, `
		C: a CAPABILITY
		S: * CAPABILITY IMAP4rev1 LITERAL+ SASL-IR ID ENABLE IDLE NAMESPACE UNSELECT UIDPLUS MOVE CHILDREN SPECIAL-USE IMAP4rev2 UTF8=ACCEPT CONDSTORE QRESYNC ESEARCH SEARCHRES LIST-EXTENDED LIST-STATUS STATUS=SIZE BINARY MULTIAPPEND NOTIFY SORT SORT=DISPLAY ESORT THREAD=ORDEREDSUBJECT THREAD=REFERENCES APPENDLIMIT=67108864 QUOTA QUOTA=RES-STORAGE QUOTA=RES-MESSAGE
		S: a OK CAPABILITY completed
		C: b COMPRESS DEFLATE
		S: b NO [COMPRESSIONACTIVE] Compression is active already
		C: c SELECT INBOX
		S: * FLAGS (\Answered \Flagged \Deleted \Seen \Draft)
		S: * OK [PERMANENTFLAGS (\Answered \Flagged \Deleted \Seen \Draft \*)] Flags permitted
		S: * 1 EXISTS
		S: * 0 RECENT
		S: * OK [UNSEEN 1] First unseen
		S: * OK [UIDVALIDITY $INBOX] UIDs valid
		S: * OK [UIDNEXT 2] Predicted next UID
		S: * OK [HIGHESTMODSEQ $$INBOX] Highest
		S: c OK [READ-WRITE] SELECT completed
		C: d APPEND INBOX {5}
		S: + Ready for literal data
		C: hello
		S: * 2 EXISTS
		S: d OK [APPENDUID $INBOX 2] APPEND completed
		C: f FETCH 2 (BODY.PEEK[])
		S: * 2 FETCH (BODY[] {5}
		S: hello)
		S: f OK FETCH completed
		C: i IDLE
		S: + idling
	`)
	time.Sleep(2 * commandTimeout) // nothing may happen meanwhile
	e.deliver(t, "INBOX", msgA)
	e.run(t, d, "S: * 3 EXISTS")
	time.Sleep(2 * commandTimeout)
	e.run(t, d, `
		C: DONE
		S: i OK IDLE completed
	`)
	time.Sleep(2 * commandTimeout)
	e.run(t, d, `
		C: n NOOP
		S: n OK NOOP completed
		C: l LOGOUT
		S: * BYE Logging out
		S: l OK LOGOUT completed
	`)
}

// COMPRESS is refused before login (compress.go says why) and not offered there.
func TestCompressBeforeLogin(t *testing.T) {
	e := newEnv(t, Config{AllowPlaintextAuth: true, Compress: true})
	d := e.dial(t)
	e.run(t, d, `
		C: a COMPRESS DEFLATE
		S: a BAD Command not valid in this state
		C: b LOGIN alice@example.org secret
		S: b OK [CAPABILITY IMAP4rev1 LITERAL+ SASL-IR ID ENABLE IDLE NAMESPACE UNSELECT UIDPLUS MOVE CHILDREN SPECIAL-USE IMAP4rev2 UTF8=ACCEPT CONDSTORE QRESYNC ESEARCH SEARCHRES LIST-EXTENDED LIST-STATUS STATUS=SIZE BINARY COMPRESS=DEFLATE MULTIAPPEND NOTIFY SORT SORT=DISPLAY ESORT THREAD=ORDEREDSUBJECT THREAD=REFERENCES APPENDLIMIT=67108864 QUOTA QUOTA=RES-STORAGE QUOTA=RES-MESSAGE] Logged in
		C: c COMPRESS GZIP
		S: c BAD Unknown compression mechanism
	`)
	// Off (the default): not offered, refused.
	e = newEnv(t, Config{AllowPlaintextAuth: true})
	d = e.dial(t)
	e.run(t, d, `
		C: b LOGIN alice@example.org secret
		S: b OK [CAPABILITY IMAP4rev1 LITERAL+ SASL-IR ID ENABLE IDLE NAMESPACE UNSELECT UIDPLUS MOVE CHILDREN SPECIAL-USE IMAP4rev2 UTF8=ACCEPT CONDSTORE QRESYNC ESEARCH SEARCHRES LIST-EXTENDED LIST-STATUS STATUS=SIZE BINARY MULTIAPPEND NOTIFY SORT SORT=DISPLAY ESORT THREAD=ORDEREDSUBJECT THREAD=REFERENCES APPENDLIMIT=67108864 QUOTA QUOTA=RES-STORAGE QUOTA=RES-MESSAGE] Logged in
		C: c COMPRESS DEFLATE
		S: c BAD COMPRESS not available
	`)
}

// A corrupt compressed stream ends the session with BYE, compressed, and nothing else.
func TestCompressCorrupt(t *testing.T) {
	e := newEnv(t, Config{Compress: true})
	nc := e.compressedConn(t)
	if _, err := nc.Write([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}); err != nil { // block type 3: invalid
		t.Fatal(err)
	}
	out, err := io.ReadAll(flate.NewReader(nc))
	if err != nil && !strings.Contains(err.Error(), "unexpected EOF") {
		t.Fatalf("reading the server's stream: %v", err)
	}
	if string(out) != "* BYE Corrupt compressed input\r\n" {
		t.Fatalf("server said %q", out)
	}
	for deadline := time.Now().Add(time.Minute); !strings.Contains(e.logs.String(), `result="error: inflate: corrupt input`); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no session log line for the corrupt input:\n%s", e.logs)
		}
	}
}

// FuzzCompressed feeds arbitrary bytes as the compressed stream of a logged-in session: the
// session must end when the input does and must not panic.
func FuzzCompressed(f *testing.F) {
	for _, cmds := range []string{
		"c SELECT INBOX\r\nd FETCH 1:* (FLAGS BODY[])\r\ne IDLE\r\nDONE\r\n",
		"c APPEND INBOX {5+}\r\nhello\r\nd NOOP\r\n",
		"c NOOP\r\n\x00\r\n",
	} {
		var b bytes.Buffer
		zw, _ := flate.NewWriter(&b, flate.BestSpeed)
		zw.Write([]byte(cmds))
		zw.Flush()
		f.Add(b.Bytes())
		f.Add(b.Bytes()[:b.Len()/2])
	}
	f.Add([]byte{0xff, 0xff, 0xff})
	e := newEnv(f, Config{AllowPlaintextAuth: true, Compress: true})
	e.deliver(f, "INBOX", msgA)
	f.Fuzz(func(t *testing.T, in []byte) {
		e.fuzzSession(t, "a LOGIN alice@example.org "+alicePass+"\r\nb COMPRESS DEFLATE\r\n", in)
	})
}

// zlib's Z_PARTIAL_FLUSH (what mbsync sends): the end of each command's block is there, but
// no stored block follows it, so an inflater that hands out data only at a stored block
// (the standard library's) never sees the command. Written by zlib 1.2.13, level 6, for
// "3 NAMESPACE", "4 LIST "" "*"" and "5 NOOP", one partial flush after each.
var partialFlushed = []string{
	"3256f073f4750d0e707476e5e50208",
	"2013051fcfe01005252505252d255e2e8000",
	"3255f0f3f70fe0e50208",
}

func TestCompressPartialFlush(t *testing.T) {
	e := newEnv(t, Config{Compress: true})
	nc := e.compressedConn(t)
	r := bufio.NewReader(flate.NewReader(nc))
	want := [][]string{
		{`* NAMESPACE (("" "/")) NIL NIL`, "3 OK NAMESPACE completed"},
		nil, // the LIST responses, up to its tagged OK
		{"5 OK NOOP completed"},
	}
	for i, h := range partialFlushed {
		b, _ := hex.DecodeString(h)
		if _, err := nc.Write(b); err != nil {
			t.Fatal(err)
		}
		for _, w := range want[i] {
			l, err := r.ReadString('\n')
			if err != nil {
				t.Fatalf("command %d: %v", i+1, err)
			}
			if strings.TrimSuffix(l, "\r\n") != w {
				t.Fatalf("command %d: got %q, want %q", i+1, l, w)
			}
		}
		if i == 1 {
			for l := ""; !strings.HasPrefix(l, "4 OK"); {
				if l, _ = r.ReadString('\n'); l == "" {
					t.Fatal("no end of LIST")
				}
			}
		}
	}
}

// Pipelined commands in one burst and one partial flush, with a LITERAL+ APPEND of 2.4 KB
// among them (as mbsync sends them), after a SELECT. Written by zlib 1.2.13.
var partialFlushedBurst = []string{
	"32560876f571750e51f0f473f28fe0e50208",
	"406a1dac260c04611cbf07f20e83278b459c995af568934d158386263d88ed6121db359026522d3d94be7bd3e2137cb92efcf7f4636666f4bc8e292f764f86984649ba7cccc7f93a35db82862f496dbd77e54d18cc295a996813060b5a6699d9c634f8ff6140dfa2d3c9e8270cd2aa7134a1f68d2cbdbbf3d97a47f674724de94afaaa2ec7eebdae2eeec3d6b754b78d27d7b49ffe782d192e052e152eefe0720a97f7703983cb395c2e70093d10e18a1867c4b823c621312e89714a8c5b621c13e39a04d7243d6612ae49704d826b125c93e09a04d724b826c13529ae49714dda63c5e19a14d7a4b826c53529ae49714d0a690a836ecdfddd5e8929a25577fd0c1f76f17e9c19b339bc7607d7af00",
}

func TestCompressPipelined(t *testing.T) {
	e := newEnv(t, Config{Compress: true})
	e.deliver(t, "INBOX", msgA)
	nc := e.compressedConn(t)
	r := bufio.NewReader(flate.NewReader(nc))
	for i, h := range partialFlushedBurst {
		b, _ := hex.DecodeString(h)
		if _, err := nc.Write(b); err != nil {
			t.Fatal(err)
		}
		last := []string{"3 OK", "10 OK"}[i]
		for l := ""; !strings.HasPrefix(l, last); {
			var err error
			if l, err = r.ReadString('\n'); err != nil {
				t.Fatalf("burst %d: %v", i+1, err)
			}
			t.Logf("%q", l)
		}
	}
}
