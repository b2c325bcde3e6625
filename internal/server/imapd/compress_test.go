package imapd

import (
	"bytes"
	"compress/flate"
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

// compressed logs in over STARTTLS, starts COMPRESS DEFLATE and returns a dialog over the
// compressed stream.
func (e *testEnv) compressed(t *testing.T) *dialog.Dialog {
	t.Helper()
	d := e.login(t)
	e.run(t, d, `
		C: z COMPRESS DEFLATE
		S: z OK DEFLATE active
	`)
	return dialog.Start(t, dialog.New(newDeflateConn(d.NetConn()), dialog.Lines))
}

// A compressed session works like any other: commands, literals, IDLE woken by a delivery,
// the buffer-less wait, and a second COMPRESS is refused.
func TestCompress(t *testing.T) {
	e := newEnv(t, Config{})
	e.deliver(t, "INBOX", msgA)
	d := e.compressed(t)
	e.run(t, d, `
		C: a CAPABILITY
		S: * CAPABILITY IMAP4rev1 LITERAL+ SASL-IR ID ENABLE IDLE NAMESPACE UNSELECT UIDPLUS MOVE CHILDREN SPECIAL-USE APPENDLIMIT=67108864
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
	waitOnSocket(t)
	e.deliver(t, "INBOX", msgA)
	e.run(t, d, `
		S: * 3 EXISTS
		C: DONE
		S: i OK IDLE completed
	`)
	waitOnSocket(t)
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
	e := newEnv(t, Config{AllowPlaintextAuth: true})
	d := e.dial(t)
	e.run(t, d, `
		C: a COMPRESS DEFLATE
		S: a BAD Command not valid in this state
		C: b LOGIN alice@example.org secret
		S: b OK [CAPABILITY IMAP4rev1 LITERAL+ SASL-IR ID ENABLE IDLE NAMESPACE UNSELECT UIDPLUS MOVE CHILDREN SPECIAL-USE COMPRESS=DEFLATE APPENDLIMIT=67108864] Logged in
		C: c COMPRESS GZIP
		S: c BAD Unknown compression mechanism
	`)
}

// A corrupt compressed stream ends the session with BYE, compressed, and nothing else.
func TestCompressCorrupt(t *testing.T) {
	e := newEnv(t, Config{})
	d := e.login(t)
	e.run(t, d, `
		C: z COMPRESS DEFLATE
		S: z OK DEFLATE active
	`)
	nc := d.NetConn()
	nc.SetDeadline(time.Now().Add(10 * time.Second))
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
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(e.logs.String(), `result="error: flate: corrupt input`); time.Sleep(10 * time.Millisecond) {
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
	e := newEnv(f, Config{AllowPlaintextAuth: true})
	e.deliver(f, "INBOX", msgA)
	f.Fuzz(func(t *testing.T, in []byte) {
		c, err := net.Dial("tcp", e.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(20 * time.Second))
		go func() {
			c.Write([]byte("a LOGIN alice@example.org " + alicePass + "\r\nb COMPRESS DEFLATE\r\n"))
			c.Write(in)
			c.(*net.TCPConn).CloseWrite()
		}()
		if _, err := io.Copy(io.Discard, c); err != nil {
			t.Fatalf("session did not end with the input: %v", err)
		}
		if l := e.logs.Take(); strings.Contains(l, "imap: panic") {
			t.Fatalf("panic:\n%s", l)
		}
	})
}
